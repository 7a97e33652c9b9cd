// tether/client/close_policy.hpp — what a tether v1 client does when its
// connection ends: PROTOCOL.md §4 as a pure table.
//
// Theory of operation
// -------------------
// Like h11's or wsproto's transition tables, this header knows nothing of
// state, timers or I/O: it maps a close code (or, when the WebSocket upgrade
// was refused, an HTTP status) to one `close_action`, and reads the optional
// `retry_after_ms` out of a close reason. The client machine applies the
// action; tests check the table row by row against the protocol text.
//
// PROTOCOL.md §4, "Close codes and what the client does":
//
//   1000                 normal                      -> stop_normal
//   1001                 going away                  -> reconnect_backoff
//   1002, 1003, 1007     protocol / data error       -> stop_report_bug
//   1008                 policy violation            -> stop_policy
//   1009                 message too big             -> stop_policy
//   1011                 server error                -> reconnect_backoff
//   1012                 service restart             -> reconnect_after_server_delay
//   1013                 try again later             -> reconnect_after_server_delay
//   1006                 transport failure           -> reconnect_backoff
//   4001                 unauthorized / expired      -> need_token
//   4002                 protocol version            -> stop_upgrade_required
//   4003                 session taken over          -> stop_taken_over
//   4008                 heartbeat timeout           -> reconnect_backoff
//   4029                 rate limit abuse            -> reconnect_after_server_delay
//
// Where the table is silent (docs/protocol.md, "Client"): 1005 (a close
// frame without a code), 1014 (bad gateway), 1015 (TLS failure), and every
// other code are transient failures -> reconnect_backoff; the attempt limit
// bounds the retries. 1010 (the client's own "missing extension" code) is a
// bug -> stop_report_bug.
//
// HTTP status at the upgrade (§1, §4: "not retried before the application
// supplies new credentials"): 401 -> need_token, 403 -> forbidden,
// 426 (the server wants another WebSocket version) -> stop_upgrade_required,
// 408/429/5xx -> reconnect_backoff, 101 with a broken handshake and every
// other 3xx/4xx -> stop_report_bug (redirects are not followed; a wrong path
// or request will not heal by retrying).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "tether/proto/detail/json_number.hpp"
#include "tether/proto/json.hpp"

namespace tether::client {

enum class close_action : std::uint8_t {
    stop_normal,                   ///< 1000: the session ended on purpose; no reconnect
    stop_report_bug,               ///< 1002/1003/1007: one side broke the protocol; no reconnect
    stop_policy,                   ///< 1008/1009: refused by policy; no reconnect
    stop_upgrade_required,         ///< 4002: this client cannot speak the server's version
    stop_taken_over,               ///< 4003: a newer connection owns the session
    reconnect_backoff,             ///< reconnect after the client's own backoff delay
    reconnect_after_server_delay,  ///< 1012/1013/4029: wait retry_after_ms if given
    need_token,                    ///< 401 / 4001: wait for the application's new token
    forbidden,                     ///< 403: stop until the application intervenes
};

constexpr std::string_view to_string(close_action a) noexcept {
    switch (a) {
        case close_action::stop_normal: return "stop_normal";
        case close_action::stop_report_bug: return "stop_report_bug";
        case close_action::stop_policy: return "stop_policy";
        case close_action::stop_upgrade_required: return "stop_upgrade_required";
        case close_action::stop_taken_over: return "stop_taken_over";
        case close_action::reconnect_backoff: return "reconnect_backoff";
        case close_action::reconnect_after_server_delay: return "reconnect_after_server_delay";
        case close_action::need_token: return "need_token";
        case close_action::forbidden: return "forbidden";
    }
    return "stop_report_bug";
}

/// Does the action lead to another connection attempt on its own?
constexpr bool reconnects(close_action a) noexcept {
    return a == close_action::reconnect_backoff || a == close_action::reconnect_after_server_delay;
}

/// PROTOCOL.md §4: the policy for a close code (received in a close frame,
/// chosen locally, or 1006 for a transport that died without one).
constexpr close_action policy_for_close_code(std::uint16_t code) noexcept {
    switch (code) {
        case 1000: return close_action::stop_normal;
        case 1001: return close_action::reconnect_backoff;
        case 1002:
        case 1003:
        case 1007: return close_action::stop_report_bug;
        case 1008:
        case 1009: return close_action::stop_policy;
        case 1010: return close_action::stop_report_bug;
        case 1011: return close_action::reconnect_backoff;
        case 1012:
        case 1013: return close_action::reconnect_after_server_delay;
        case 1006: return close_action::reconnect_backoff;
        case 4001: return close_action::need_token;
        case 4002: return close_action::stop_upgrade_required;
        case 4003: return close_action::stop_taken_over;
        case 4008: return close_action::reconnect_backoff;
        case 4029: return close_action::reconnect_after_server_delay;
        default: return close_action::reconnect_backoff;  // 1005, 1014, 1015, unknown codes
    }
}

/// PROTOCOL.md §1/§4: the policy for an HTTP status answering the upgrade
/// (anything but a valid 101).
constexpr close_action policy_for_http_status(int status) noexcept {
    switch (status) {
        case 401: return close_action::need_token;
        case 403: return close_action::forbidden;
        case 426: return close_action::stop_upgrade_required;
        case 408:
        case 429: return close_action::reconnect_backoff;
        default: break;
    }
    if (status >= 500 && status <= 599) return close_action::reconnect_backoff;
    return close_action::stop_report_bug;
}

/// The whole decision for one connection end: the HTTP status wins when the
/// upgrade was refused (http_status != 0), else the close code.
constexpr close_action policy_for(std::uint16_t close_code, int http_status = 0) noexcept {
    return http_status != 0 ? policy_for_http_status(http_status) : policy_for_close_code(close_code);
}

/// PROTOCOL.md §4: a close reason, when present, is JSON of at most 123
/// bytes, `{"reason":"restart","retry_after_ms":1830}`. Returns
/// retry_after_ms when `reason` is such an object with a whole number there;
/// nullopt for plain-text reasons, invalid JSON or a missing/ill-typed field
/// (then the client falls back to its own backoff). `scanner` is scratch.
inline std::optional<std::int64_t> retry_after_from_reason(std::string_view reason,
                                                           proto::json_scanner& scanner) noexcept {
    if (reason.empty()) return std::nullopt;
    if (scanner.begin_object(reason) != proto::json_error::ok) return std::nullopt;
    std::optional<std::int64_t> found;
    proto::json_member m;
    while (scanner.next_member(m)) {
        if (m.key != "retry_after_ms" || m.type != proto::json_type::number) continue;
        if (const auto v = proto::detail::parse_whole_number(m.value)) found = static_cast<std::int64_t>(*v);
    }
    // A document that turns out invalid after the field gives nothing: the
    // reason is not the JSON the protocol describes.
    if (scanner.error() != proto::json_error::ok) return std::nullopt;
    return found;
}

/// Convenience overload with its own scratch scanner (allocates; the client
/// machine keeps one and uses the overload above).
inline std::optional<std::int64_t> retry_after_from_reason(std::string_view reason) {
    proto::json_scanner scanner;
    return retry_after_from_reason(reason, scanner);
}

}  // namespace tether::client
