// tether/client/error.hpp — errors the client machine returns for *local*
// requests it refuses (the h11/wsproto rule: the peer's misbehaviour is an
// event, the caller's is an error code).
#pragma once

#include <string>
#include <system_error>

namespace tether::client {

enum class client_error {
    ok = 0,
    outbox_full,      ///< the outbox bound (messages or bytes) would be passed
    bad_room_id,      ///< not 1-128 bytes of [A-Za-z0-9._:-] (PROTOCOL.md §2)
    not_joined,       ///< the room is not among the client's rooms (or is being left)
    bad_kind,         ///< empty, too long, not UTF-8, or a reserved kind (PROTOCOL.md §2)
    invalid_payload,  ///< the payload is not one strict I-JSON value (PROTOCOL.md §7)
    too_large,        ///< the envelope would pass max_message_bytes (PROTOCOL.md §7)
    too_many_rooms,   ///< config::max_rooms reached
    bad_argument,     ///< e.g. a negative cursor, an invalid token
    stopped,          ///< the client is stopped; connect() first
};

namespace detail {
class client_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tether.client"; }
    std::string message(int ev) const override {
        switch (static_cast<client_error>(ev)) {
            case client_error::ok: return "success";
            case client_error::outbox_full: return "outbox full";
            case client_error::bad_room_id: return "invalid room id";
            case client_error::not_joined: return "room not joined";
            case client_error::bad_kind: return "invalid or reserved kind";
            case client_error::invalid_payload: return "payload is not valid I-JSON";
            case client_error::too_large: return "message larger than max_message_bytes";
            case client_error::too_many_rooms: return "too many rooms";
            case client_error::bad_argument: return "invalid argument";
            case client_error::stopped: return "client is stopped";
        }
        return "unknown tether.client error";
    }
};
}  // namespace detail

inline const std::error_category& client_error_category() noexcept {
    static const detail::client_error_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(client_error e) noexcept {
    return {static_cast<int>(e), client_error_category()};
}

}  // namespace tether::client

template <>
struct std::is_error_code_enum<tether::client::client_error> : std::true_type {};
