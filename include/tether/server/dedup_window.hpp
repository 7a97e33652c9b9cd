// tether/server/dedup_window.hpp — a room's memory of recent message ids.
//
// Theory of operation
// -------------------
// PROTOCOL.md §3/§7: the server deduplicates by (principal, id) over the
// room's dedup window. The endpoint reduces each pair to a keyed 64-bit
// hash (SipHash-2-4 with a secret key, so a peer cannot aim collisions);
// this class only sees those 64-bit keys.
//
// Storage is a FIFO ring of {key, event_id, time} in arrival order plus an
// open-addressing index (core/probe_table.hpp) of absolute sequence numbers
// into the ring, so a lookup is one hash probe and forgetting the oldest
// entry is a pop and a backward-shift erase: O(1) amortised, nothing
// allocated per message once the ring and the index have grown to the
// room's working size.
//
// Bounds (docs/protocol.md "Dedup"): an entry is kept while it is younger
// than `window` OR among the newest `min_ids`; never more than `max_ids`
// entries (a hard bound: past it the oldest goes even inside the window).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include "tether/core/probe_table.hpp"
#include "tether/core/ring_buffer.hpp"
#include "tether/core/time.hpp"

namespace tether::server {

struct dedup_limits {
    duration window = std::chrono::minutes(5);
    std::size_t min_ids = 4096;
    std::size_t max_ids = 65536;
};

class dedup_window {
public:
    /// Forget the entries the bounds no longer require, as of `now`.
    void prune(time_point now, const dedup_limits& lim) {
        while (!ring_.empty()) {
            const entry& f = ring_.front();
            const bool over_hard = ring_.size() > lim.max_ids;
            const bool expired = ring_.size() > lim.min_ids && !(now - f.at < lim.window);
            if (!over_hard && !expired) break;
            pop_front();
        }
    }

    /// The event_id first assigned to `key`, if remembered.
    std::optional<std::int64_t> find(std::uint64_t key) const noexcept {
        const std::uint64_t* s = index_.find(key, [&](std::uint64_t seq) { return at_seq(seq).key == key; });
        if (!s) return std::nullopt;
        return at_seq(*s).event_id;
    }

    /// Remember `key` (not already present). Drops the oldest first when
    /// the hard bound is reached; max_ids == 0 remembers nothing.
    void insert(std::uint64_t key, std::int64_t event_id, time_point now, const dedup_limits& lim) {
        if (lim.max_ids == 0) return;
        while (ring_.size() >= lim.max_ids) pop_front();
        ring_.push_back({key, event_id, now});
        const std::uint64_t seq = front_seq_ + ring_.size() - 1;
        index_.insert(key, seq, [this](std::uint64_t s) { return at_seq(s).key; });
    }

    std::size_t size() const noexcept { return ring_.size(); }
    bool empty() const noexcept { return ring_.empty(); }
    std::size_t memory_bytes() const noexcept { return ring_.capacity() * sizeof(entry) + index_.memory_bytes(); }

private:
    struct entry {
        std::uint64_t key = 0;
        std::int64_t event_id = 0;
        time_point at{};
    };

    const entry& at_seq(std::uint64_t seq) const noexcept { return ring_[static_cast<std::size_t>(seq - front_seq_)]; }

    void pop_front() {
        const std::uint64_t key = ring_.front().key;
        index_.erase(key, front_seq_, [this](std::uint64_t s) { return at_seq(s).key; });
        ring_.pop_front();
        ++front_seq_;
    }

    ring_buffer<entry> ring_;
    std::uint64_t front_seq_ = 0;  ///< absolute sequence number of ring_.front()
    probe_table<std::uint64_t, std::numeric_limits<std::uint64_t>::max()> index_;
};

}  // namespace tether::server
