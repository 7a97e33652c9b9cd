// tether/proto/error_code.hpp — the `code` values of `server.error`
// (PROTOCOL.md §3 "Errors", §7 "Error codes"). These are wire names: the
// enumerator order is not part of the protocol, the strings are.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tether::proto {

enum class error_code : std::uint8_t {
    bad_request,     ///< invalid JSON, wrong field type, missing required field
    unknown_kind,    ///< a reserved kind the client may not send
    not_member,      ///< valid room the session has not joined
    forbidden,       ///< the application's policy refuses the action
    rate_limited,    ///< token bucket empty; carries retry_after_ms
    too_many_rooms,  ///< per-session room bound reached
    bad_room_id,     ///< room_id breaks the 1-128 bytes [A-Za-z0-9._:-] rule
    too_large,       ///< message or field over a configured size bound
};

constexpr std::string_view to_string(error_code c) noexcept {
    switch (c) {
        case error_code::bad_request: return "bad_request";
        case error_code::unknown_kind: return "unknown_kind";
        case error_code::not_member: return "not_member";
        case error_code::forbidden: return "forbidden";
        case error_code::rate_limited: return "rate_limited";
        case error_code::too_many_rooms: return "too_many_rooms";
        case error_code::bad_room_id: return "bad_room_id";
        case error_code::too_large: return "too_large";
    }
    return "bad_request";
}

/// The code named by a wire string; nullopt for a name this version does not
/// know (a newer server may add codes: treat them as generic errors).
constexpr std::optional<error_code> parse_error_code(std::string_view s) noexcept {
    for (auto c : {error_code::bad_request, error_code::unknown_kind, error_code::not_member,
                   error_code::forbidden, error_code::rate_limited, error_code::too_many_rooms,
                   error_code::bad_room_id, error_code::too_large})
        if (to_string(c) == s) return c;
    return std::nullopt;
}

}  // namespace tether::proto
