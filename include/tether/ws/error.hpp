// tether/ws/error.hpp — errors returned to the caller for *local* misuse.
//
// Following wsproto/h11: a violation by the peer is never an error code
// returned from a call; it becomes an event that carries the close code the
// connection was failed with. An error code here means "you, the
// application, asked for something the state does not allow" or "a bound
// you configured would be exceeded".
#pragma once

#include <string>
#include <system_error>

namespace tether::ws {

enum class error {
    ok = 0,
    not_open,          ///< send before the handshake completed
    closing,           ///< send after a close frame was sent or received
    closed,            ///< the connection is closed
    bad_close_code,    ///< close() with a code RFC 6455 §7.4 forbids on the wire
    reason_too_long,   ///< close reason over 123 bytes (RFC 6455 §5.5)
    invalid_utf8,      ///< send_text / close reason is not valid UTF-8
    control_too_big,   ///< ping/pong payload over 125 bytes (RFC 6455 §5.5)
    output_full,       ///< the send would pass config.max_output_bytes
    message_too_big,   ///< the message is larger than config.max_message_bytes
    wrong_state,       ///< e.g. accept() on a connection that is not awaiting it
    bad_argument,      ///< e.g. an invalid subprotocol token or status code
};

namespace detail {
class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tether.ws"; }
    std::string message(int ev) const override {
        switch (static_cast<error>(ev)) {
            case error::ok: return "success";
            case error::not_open: return "websocket handshake not complete";
            case error::closing: return "websocket is closing";
            case error::closed: return "websocket is closed";
            case error::bad_close_code: return "close code may not be sent";
            case error::reason_too_long: return "close reason longer than 123 bytes";
            case error::invalid_utf8: return "text is not valid UTF-8";
            case error::control_too_big: return "control frame payload longer than 125 bytes";
            case error::output_full: return "output buffer bound reached";
            case error::message_too_big: return "message larger than the configured maximum";
            case error::wrong_state: return "operation not allowed in this state";
            case error::bad_argument: return "invalid argument";
        }
        return "unknown tether.ws error";
    }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

}  // namespace tether::ws

template <>
struct std::is_error_code_enum<tether::ws::error> : std::true_type {};
