// tether/server/room.hpp — one room: its history and its members.
//
// A room is created on first join and owns everything that outlives its
// members' connections (PROTOCOL.md §7: dedup state "lives with the room,
// not the session"):
//   - `epoch`: identity of this history (docs/protocol.md: "e-" + 16 hex
//     from the endpoint rng, drawn at creation);
//   - `head`: the latest event_id (0 for an empty room);
//   - the replay log and the dedup window;
//   - the members: sessions, connected or away.
//
// Membership is a pair of cross-indexed arrays: room.members[k] names the
// session and the position of this room in that session's list, and the
// session's entry names the room and k. Both sides can then remove an entry
// by swap-with-last in O(1), which matters for rooms with thousands of
// members and churn.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <string>
#include <vector>

#include "tether/core/small_string.hpp"
#include "tether/server/dedup_window.hpp"
#include "tether/server/replay_log.hpp"

namespace tether::server {

/// room.members[k]: a session in the room.
struct member_ref {
    std::uint32_t session = 0;  ///< session slot
    std::uint32_t index = 0;    ///< position of this room in that session's `rooms`
    std::uint32_t conn = 0xffff'ffff;  ///< that session's connection slot (no_index: away), for broadcasts
};

struct room {
    small_string id;  ///< 16 bytes: most room ids fit inline
    std::uint64_t id_hash = 0;  ///< keyed hash of id (the endpoint's room index)
    /// "e-" + 16 hex digits, kept in place (a std::string would put the
    /// 18 characters on the heap: 56 bytes per room instead of 18).
    std::array<char, 18> epoch_chars{};
    std::string_view epoch() const noexcept { return {epoch_chars.data(), epoch_chars.size()}; }
    std::int64_t head = 0;
    replay_log log;
    dedup_window dedup;
    std::vector<member_ref> members;
};

/// What room() tells the application.
struct room_info {
    std::int64_t head = 0;
    std::string_view epoch;
    std::size_t members = 0;       ///< sessions, away ones included
    std::size_t replay_events = 0;  ///< events held for replay
    std::int64_t replay_first = 0;  ///< oldest event_id held (0: none)
    std::size_t dedup_ids = 0;      ///< ids remembered
};

}  // namespace tether::server
