// tether/server/session.hpp — the logical session a client resumes.
//
// A session outlives its connections (PROTOCOL.md §1 "Resuming a session"):
// it holds the authenticated principal and the room memberships, and is
// either attached to one connection or "away" for the grace period, after
// which it expires. Its id is 128 random bits from the endpoint's rng,
// written as 32 lowercase hex characters (docs/protocol.md); it is kept
// here in binary (16 bytes, not a 33-byte heap string) and doubles as its
// own hash in the endpoint's session index.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/core/inline_vector.hpp"
#include "tether/core/small_string.hpp"
#include "tether/core/time.hpp"

namespace tether::server {

inline constexpr std::uint32_t no_index = std::numeric_limits<std::uint32_t>::max();

struct session_key {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    bool operator==(const session_key&) const = default;

    /// 32 lowercase hex digits.
    std::array<char, 32> hex() const noexcept {
        static constexpr char digits[] = "0123456789abcdef";
        std::array<char, 32> out{};
        for (int i = 0; i < 16; ++i) {
            out[static_cast<std::size_t>(i)] = digits[(hi >> (60 - 4 * i)) & 0xf];
            out[static_cast<std::size_t>(16 + i)] = digits[(lo >> (60 - 4 * i)) & 0xf];
        }
        return out;
    }

    /// Parse exactly 32 lowercase hex digits; anything else is not an id
    /// this endpoint could have issued.
    static std::optional<session_key> parse(std::string_view s) noexcept {
        if (s.size() != 32) return std::nullopt;
        session_key k;
        for (std::size_t i = 0; i < 32; ++i) {
            const char c = s[i];
            std::uint64_t v;
            if (c >= '0' && c <= '9')
                v = static_cast<std::uint64_t>(c - '0');
            else if (c >= 'a' && c <= 'f')
                v = static_cast<std::uint64_t>(c - 'a' + 10);
            else
                return std::nullopt;
            std::uint64_t& w = i < 16 ? k.hi : k.lo;
            w = (w << 4) | v;
        }
        return k;
    }
};

/// session.rooms[j]: a room the session is in.
struct membership {
    std::uint32_t room = 0;   ///< room slot
    std::uint32_t index = 0;  ///< position of this session in that room's `members`
};

struct session {
    session_key key;
    small_string principal;               ///< 16 bytes: most principals fit inline
    inline_vector<membership, 1> rooms;   ///< the first room inline (nearly every session has one)
    time_point grace_deadline = never;  ///< while away
    std::uint32_t conn = no_index;      ///< attached connection slot, or no_index when away
    bool live = false;                  ///< slot in use

    bool away() const noexcept { return conn == no_index; }
};

}  // namespace tether::server
