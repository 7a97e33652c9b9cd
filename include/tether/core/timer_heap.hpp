// tether/core/timer_heap.hpp — an indexed 4-ary min-heap of (deadline, slot).
//
// Theory of operation
// -------------------
// A machine that owns many objects (an endpoint with 100,000 connections)
// must answer next_deadline() without scanning them. Each object is a
// `slot` (a small integer the owner chooses, e.g. an index into its slot
// vector) with at most one entry in the heap. The heap is an array in 4-ary
// layout (children of i are 4i+1 … 4i+4): shallower than a binary heap, so a
// sift touches log4(n) levels — 9 for a million entries — and the four
// children share a cache line or two. A side array `pos_[slot]` gives each
// slot's place in the heap, so update and remove by slot are O(log n), and
// next_deadline() is the root: O(1).
//
// Lazy re-arming. An object usually has several timers (heartbeat ping,
// liveness, a close handshake) and the common case pushes one of them LATER
// (every received frame moves the liveness deadline). The heap key of a slot
// is only required to be NO LATER than the object's true earliest deadline:
//   - a timer moved later: the owner writes its own field; the heap is not
//     touched (arm_no_later_than() sees a later deadline and returns);
//   - a timer moved earlier: arm_no_later_than() decreases the key (sift up);
//   - the key fires early (the real deadline moved on): the owner recomputes
//     its earliest deadline and calls set() to re-key it exactly.
// So the per-event cost is one comparison; the heap pays at most one sift
// per fired key.
//
// The stats() counters count heap work (sift steps and operations), so tests
// can assert costs without timing anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "tether/core/time.hpp"

namespace tether {

struct timer_heap_stats {
    std::uint64_t inserts = 0;
    std::uint64_t updates = 0;     ///< re-keys of a slot already present (set / decrease)
    std::uint64_t removes = 0;
    std::uint64_t sift_steps = 0;  ///< entries moved by sifting (the real cost)
};

class timer_heap {
public:
    using slot_type = std::uint32_t;
    static constexpr slot_type no_slot = std::numeric_limits<slot_type>::max();

    bool empty() const noexcept { return heap_.empty(); }
    std::size_t size() const noexcept { return heap_.size(); }

    /// Earliest key, or tether::never when empty. O(1).
    time_point next_deadline() const noexcept { return heap_.empty() ? never : heap_[0].deadline(); }
    /// Slot of the earliest key, or no_slot when empty.
    slot_type top() const noexcept { return heap_.empty() ? no_slot : heap_[0].slot; }

    bool contains(slot_type s) const noexcept { return s < pos_.size() && pos_[s] != npos; }
    /// The slot's key, or never if it has none.
    time_point key(slot_type s) const noexcept { return contains(s) ? heap_[pos_[s]].deadline() : never; }

    /// Insert the slot or re-key it exactly (either direction).
    void set(slot_type s, time_point deadline) {
        if (deadline == never) {
            remove(s);
            return;
        }
        if (!contains(s)) {
            insert(s, deadline);
            return;
        }
        ++stats_.updates;
        const std::uint32_t i = pos_[s];
        const time_point old = heap_[i].deadline();
        heap_[i].set_deadline(deadline);
        if (deadline < old)
            sift_up(i);
        else if (old < deadline)
            sift_down(i);
    }

    /// The lazy re-arm: make sure the slot fires no later than `deadline`.
    /// A later deadline than the current key costs one comparison and leaves
    /// the heap alone. Returns true when the heap was touched.
    bool arm_no_later_than(slot_type s, time_point deadline) {
        if (deadline == never) return false;
        if (!contains(s)) {
            insert(s, deadline);
            return true;
        }
        const std::uint32_t i = pos_[s];
        if (!(deadline < heap_[i].deadline())) return false;
        ++stats_.updates;
        heap_[i].set_deadline(deadline);
        sift_up(i);
        return true;
    }

    void remove(slot_type s) noexcept {
        if (!contains(s)) return;
        ++stats_.removes;
        const std::uint32_t i = pos_[s];
        pos_[s] = npos;
        const std::uint32_t last = static_cast<std::uint32_t>(heap_.size() - 1);
        if (i != last) {
            heap_[i] = heap_[last];
            pos_[heap_[i].slot] = i;
            heap_.pop_back();
            // The moved entry may belong above or below its new place.
            if (i > 0 && heap_[i].deadline() < heap_[parent(i)].deadline())
                sift_up(i);
            else
                sift_down(i);
        } else {
            heap_.pop_back();
        }
    }

    void clear() noexcept {
        for (const entry& e : heap_) pos_[e.slot] = npos;
        heap_.clear();
    }

    void reserve(std::size_t slots) {
        heap_.reserve(slots);
        pos_.reserve(slots);
    }

    const timer_heap_stats& stats() const noexcept { return stats_; }

    /// Heap bytes held (capacity of both arrays).
    std::size_t memory_bytes() const noexcept {
        return heap_.capacity() * sizeof(entry) + pos_.capacity() * sizeof(std::uint32_t);
    }

private:
    // 12 bytes, not 16: the deadline is kept as two 32-bit halves so the
    // entry needs no padding after its slot (the heap holds one entry per
    // connection: 4 bytes less per idle session at 100,000).
    struct entry {
        std::uint32_t lo;
        std::uint32_t hi;
        slot_type slot;

        static entry make(time_point d, slot_type s) noexcept {
            entry e{0, 0, s};
            e.set_deadline(d);
            return e;
        }
        time_point deadline() const noexcept {
            const std::uint64_t ticks = (std::uint64_t{hi} << 32) | lo;
            return time_point{duration{static_cast<duration::rep>(ticks)}};
        }
        void set_deadline(time_point d) noexcept {
            const auto ticks = static_cast<std::uint64_t>(d.time_since_epoch().count());
            lo = static_cast<std::uint32_t>(ticks);
            hi = static_cast<std::uint32_t>(ticks >> 32);
        }
    };
    static_assert(sizeof(entry) == 12);
    static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();
    static constexpr std::uint32_t arity = 4;

    static std::uint32_t parent(std::uint32_t i) noexcept { return (i - 1) / arity; }

    void insert(slot_type s, time_point deadline) {
        ++stats_.inserts;
        if (s >= pos_.size()) pos_.resize(static_cast<std::size_t>(s) + 1, npos);
        const auto i = static_cast<std::uint32_t>(heap_.size());
        heap_.push_back(entry::make(deadline, s));
        pos_[s] = i;
        sift_up(i);
    }

    void sift_up(std::uint32_t i) noexcept {
        const entry moving = heap_[i];
        while (i > 0) {
            const std::uint32_t p = parent(i);
            if (!(moving.deadline() < heap_[p].deadline())) break;
            heap_[i] = heap_[p];
            pos_[heap_[i].slot] = i;
            i = p;
            ++stats_.sift_steps;
        }
        heap_[i] = moving;
        pos_[moving.slot] = i;
    }

    void sift_down(std::uint32_t i) noexcept {
        const entry moving = heap_[i];
        const auto n = static_cast<std::uint32_t>(heap_.size());
        for (;;) {
            const std::uint64_t first = std::uint64_t{i} * arity + 1;
            if (first >= n) break;
            const auto f = static_cast<std::uint32_t>(first);
            const std::uint32_t end = f + arity < n ? f + arity : n;
            std::uint32_t best = f;
            for (std::uint32_t c = f + 1; c < end; ++c)
                if (heap_[c].deadline() < heap_[best].deadline()) best = c;
            if (!(heap_[best].deadline() < moving.deadline())) break;
            heap_[i] = heap_[best];
            pos_[heap_[i].slot] = i;
            i = best;
            ++stats_.sift_steps;
        }
        heap_[i] = moving;
        pos_[moving.slot] = i;
    }

    std::vector<entry> heap_;
    std::vector<std::uint32_t> pos_;  ///< heap index of each slot, npos when absent
    timer_heap_stats stats_;
};

}  // namespace tether
