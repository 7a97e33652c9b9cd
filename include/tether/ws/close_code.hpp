// tether/ws/close_code.hpp — RFC 6455 §7.4 status codes and their validity.
#pragma once

#include <cstdint>

namespace tether::ws {

/// Close status codes (RFC 6455 §7.4.1), plus the tether v1 application codes.
enum class close_code : std::uint16_t {
    none = 0,  ///< the close frame carried no status (RFC 6455 §7.1.5: "1005")
    normal = 1000,
    going_away = 1001,
    protocol_error = 1002,
    unsupported_data = 1003,
    no_status = 1005,  ///< never sent on the wire
    abnormal = 1006,   ///< never sent on the wire: transport closed without a close frame
    invalid_payload = 1007,
    policy_violation = 1008,
    message_too_big = 1009,
    mandatory_extension = 1010,
    internal_error = 1011,
    service_restart = 1012,
    try_again_later = 1013,
    tls_handshake = 1015,  ///< never sent on the wire
    // tether v1 (PROTOCOL.md §4)
    unauthorized = 4001,
    upgrade_required = 4002,
    session_taken_over = 4003,
    heartbeat_timeout = 4008,
    rate_limit_abuse = 4029,
};

/// May a peer put `code` in a close frame? RFC 6455 §7.4.1/§7.4.2: 1000-1003,
/// 1007-1011 are defined; 1012-1014 are registered by IANA since; 3000-4999
/// are for libraries and applications. 1004, 1005, 1006 and 1015 are reserved
/// and must never appear on the wire; everything below 1000 is unused.
constexpr bool is_valid_wire_code(std::uint16_t code) noexcept {
    if (code >= 3000 && code <= 4999) return true;
    switch (code) {
        case 1000: case 1001: case 1002: case 1003:
        case 1007: case 1008: case 1009: case 1010: case 1011:
        case 1012: case 1013: case 1014:
            return true;
        default:
            return false;
    }
}

constexpr std::uint16_t to_int(close_code c) noexcept { return static_cast<std::uint16_t>(c); }

}  // namespace tether::ws
