// tether/server/directory.hpp — the endpoint's sessions and rooms, and who
// is in which room.
//
// Theory of operation
// -------------------
// Sessions and rooms live in slot arrays with free lists; their indices are
// stable for their lifetime, which is what memberships, timers and
// connections hold. Two hash indexes find them by key:
//   - sessions by their 128-bit random id (the low 64 bits are already a
//     uniform hash, and a peer cannot choose ids, only guess them);
//   - rooms by id string, hashed with SipHash-2-4 under a secret key drawn
//     from the endpoint rng (a peer chooses room ids, so it must not be able
//     to aim collisions).
// Both are core/probe_table.hpp indexes of slot numbers: 4 bytes a bucket.
//
// Memberships are cross-indexed (server/room.hpp): adding and removing one
// is O(1) on both sides; "is session s in room r" scans the session's own
// list, which max_rooms_per_session bounds (100).
//
// The directory only keeps the books. Everything with an effect on the wire
// (presence, events, timers) is the endpoint's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tether/core/probe_table.hpp"
#include "tether/core/random.hpp"
#include "tether/core/siphash.hpp"
#include "tether/core/slot_array.hpp"
#include "tether/core/time.hpp"
#include "tether/server/room.hpp"
#include "tether/server/session.hpp"

namespace tether::server {

class directory {
public:
    /// `r` provides the hash keys now, and session ids and epochs later.
    explicit directory(rng& r) noexcept : rng_(r) {
        for (auto& k : keys_) k = rng_.next();
    }

    // ---- sessions -----------------------------------------------------------------

    session& sess(std::uint32_t s) noexcept { return sessions_[s]; }
    const session& sess(std::uint32_t s) const noexcept { return sessions_[s]; }
    std::size_t session_count() const noexcept { return live_sessions_; }

    /// A new session with a fresh random id.
    std::uint32_t new_session(std::string principal) {
        std::uint32_t s;
        if (!free_sessions_.empty()) {
            s = free_sessions_.back();
            free_sessions_.pop_back();
        } else {
            (void)sessions_.emplace_back();
            s = static_cast<std::uint32_t>(sessions_.size() - 1);
        }
        session_key k;
        do {
            k.hi = rng_.next();
            k.lo = rng_.next();
        } while (find_session(k) != no_index);
        session& ss = sessions_[s];
        ss.key = k;
        ss.principal.assign(principal);
        ss.live = true;
        session_index_.insert(session_hash(k), s, session_hash_of());
        ++live_sessions_;
        return s;
    }

    std::uint32_t find_session(const session_key& k) const noexcept {
        const std::uint32_t* s =
            session_index_.find(session_hash(k), [&](std::uint32_t x) { return sessions_[x].key == k; });
        return s ? *s : no_index;
    }

    /// Forget a session (it must have left every room).
    void release_session(std::uint32_t s) {
        session_index_.erase(session_hash(sessions_[s].key), s, session_hash_of());
        sessions_[s] = session{};
        free_sessions_.push_back(s);
        --live_sessions_;
    }

    // ---- rooms ------------------------------------------------------------------------

    room& rm(std::uint32_t r) noexcept { return *rooms_[r]; }
    const room& rm(std::uint32_t r) const noexcept { return *rooms_[r]; }
    bool room_live(std::uint32_t r) const noexcept { return r < rooms_.size() && rooms_[r] != nullptr; }
    std::size_t room_count() const noexcept { return live_rooms_; }

    std::uint64_t room_hash(std::string_view id) const noexcept {
        siphash24 h(keys_[2], keys_[3]);
        h.update(id);
        return h.finish();
    }

    std::uint32_t find_room(std::string_view id) const noexcept { return find_room(id, room_hash(id)); }
    std::uint32_t find_room(std::string_view id, std::uint64_t h) const noexcept {
        const std::uint32_t* r = room_index_.find(h, [&](std::uint32_t x) { return rooms_[x]->id.view() == id; });
        return r ? *r : no_index;
    }

    /// A new, empty room with a fresh epoch (docs/protocol.md: "e-" + 16 hex
    /// from the endpoint rng).
    std::uint32_t create_room(std::string_view id, std::uint64_t h, std::size_t replay_window, duration replay_max_age) {
        std::uint32_t r;
        if (!free_rooms_.empty()) {
            r = free_rooms_.back();
            free_rooms_.pop_back();
        } else {
            rooms_.emplace_back();
            r = static_cast<std::uint32_t>(rooms_.size() - 1);
        }
        auto R = std::make_unique<room>();
        R->id.assign(id);
        R->id_hash = h;
        static constexpr char digits[] = "0123456789abcdef";
        const std::uint64_t v = rng_.next();
        R->epoch_chars[0] = 'e';
        R->epoch_chars[1] = '-';
        for (int k = 15; k >= 0; --k) R->epoch_chars[static_cast<std::size_t>(17 - k)] = digits[(v >> (4 * k)) & 0xf];
        R->log = replay_log(replay_window, replay_max_age);
        rooms_[r] = std::move(R);
        room_index_.insert(h, r, room_hash_of());
        ++live_rooms_;
        return r;
    }

    /// Forget a room (it must have no members).
    void erase_room(std::uint32_t r) {
        room_index_.erase(rooms_[r]->id_hash, r, room_hash_of());
        rooms_[r].reset();
        free_rooms_.push_back(r);
        --live_rooms_;
    }

    // ---- membership ---------------------------------------------------------------------

    void add_membership(std::uint32_t s, std::uint32_t r) {
        session& ss = sessions_[s];
        room& R = *rooms_[r];
        ss.rooms.push_back({r, static_cast<std::uint32_t>(R.members.size())});
        // Grow by half, not double: rooms are many and mostly small, and a
        // doubled array is on average a quarter empty.
        if (R.members.size() == R.members.capacity()) R.members.reserve(R.members.size() + R.members.size() / 2 + 1);
        R.members.push_back({s, static_cast<std::uint32_t>(ss.rooms.size() - 1), ss.conn});
    }

    /// Remove the j-th room of session s: swap-with-last on both sides,
    /// fixing the moved entries' back-indices.
    void remove_membership(std::uint32_t s, std::uint32_t j) noexcept {
        session& ss = sessions_[s];
        const membership m = ss.rooms[j];
        room& R = *rooms_[m.room];
        const auto last_k = static_cast<std::uint32_t>(R.members.size() - 1);
        if (m.index != last_k) {
            R.members[m.index] = R.members[last_k];
            const member_ref moved = R.members[m.index];
            sessions_[moved.session].rooms[moved.index].index = m.index;
        }
        R.members.pop_back();
        const auto last_j = static_cast<std::uint32_t>(ss.rooms.size() - 1);
        if (j != last_j) {
            ss.rooms[j] = ss.rooms[last_j];
            const membership moved = ss.rooms[j];
            rooms_[moved.room]->members[moved.index].index = j;
        }
        ss.rooms.pop_back();
    }

    /// Position of room r in session s's list, or no_index.
    std::uint32_t find_membership(std::uint32_t s, std::uint32_t r) const noexcept {
        const auto& rs = sessions_[s].rooms;
        for (std::uint32_t j = 0; j < rs.size(); ++j)
            if (rs[j].room == r) return j;
        return no_index;
    }

    // ---- dedup keys --------------------------------------------------------------------------

    /// PROTOCOL.md §7 "Dedup key": (principal, id), keyed so that peers
    /// cannot aim collisions; length-prefixed so ("ab","c") != ("a","bc").
    std::uint64_t dedup_key(std::string_view principal, std::string_view id) const noexcept {
        siphash24 h(keys_[0], keys_[1]);
        h.update_u64(principal.size());
        h.update(principal);
        h.update(id);
        return h.finish();
    }

    // ---- memory ---------------------------------------------------------------------------------

    std::size_t session_slot_bytes() const noexcept {
        return sessions_.memory_bytes() + free_sessions_.capacity() * sizeof(std::uint32_t);
    }
    std::size_t session_heap_bytes() const noexcept {
        std::size_t n = 0;
        for (const session& s : sessions_)
            if (s.live) n += s.principal.heap_bytes() + s.rooms.heap_bytes();
        return n;
    }
    std::size_t room_bytes() const noexcept {
        std::size_t n = rooms_.capacity() * sizeof(std::unique_ptr<room>) + free_rooms_.capacity() * sizeof(std::uint32_t);
        for (const auto& r : rooms_)
            if (r)
                n += sizeof(room) + r->id.heap_bytes() +
                     r->members.capacity() * sizeof(member_ref) + r->log.memory_bytes() + r->dedup.memory_bytes();
        return n;
    }
    std::size_t replay_frame_bytes() const noexcept {
        std::size_t n = 0;
        for (const auto& r : rooms_)
            if (r) n += r->log.frame_bytes();
        return n;
    }
    std::size_t index_bytes() const noexcept { return session_index_.memory_bytes() + room_index_.memory_bytes(); }

private:
    static std::uint64_t session_hash(const session_key& k) noexcept { return k.lo; }  // 64 random bits
    // hash_of(slot) for the indexes, which move entries on erase and resize.
    struct session_hasher {
        const directory* d;
        std::uint64_t operator()(std::uint32_t x) const noexcept { return session_hash(d->sessions_[x].key); }
    };
    struct room_hasher {
        const directory* d;
        std::uint64_t operator()(std::uint32_t x) const noexcept { return d->rooms_[x]->id_hash; }
    };
    session_hasher session_hash_of() const noexcept { return {this}; }
    room_hasher room_hash_of() const noexcept { return {this}; }
    static std::size_t string_heap(const std::string& s) noexcept {
        return s.capacity() > 15 ? s.capacity() + 1 : 0;  // past the small-string buffer
    }

    rng& rng_;
    std::array<std::uint64_t, 4> keys_{};  ///< dedup (0,1) and room-index (2,3) SipHash keys

    slot_array<session> sessions_;
    std::vector<std::uint32_t> free_sessions_;
    std::vector<std::unique_ptr<room>> rooms_;
    std::vector<std::uint32_t> free_rooms_;
    probe_table<std::uint32_t, no_index> session_index_;
    probe_table<std::uint32_t, no_index> room_index_;
    std::size_t live_sessions_ = 0;
    std::size_t live_rooms_ = 0;
};

}  // namespace tether::server
