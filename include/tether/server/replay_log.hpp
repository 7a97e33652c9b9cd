// tether/server/replay_log.hpp — a room's last W events, as sent.
//
// Theory of operation
// -------------------
// PROTOCOL.md §7: "a room keeps exactly its last W events (and, when an age
// bound is set, only those younger than it)". Each entry keeps the exact
// broadcast frame (a ws::shared_frame: the same refcounted bytes that live
// members' output queues hold), so a replay sends byte-for-byte what live
// members got, and keeping an event for replay costs one reference, not a
// copy.
//
// Event ids in the log are contiguous (first_id() … last_id()), so finding
// event N is an index computation. The ring grows up to `window` entries and
// is then reused: appending the (W+1)-th event drops the oldest.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tether/core/ring_buffer.hpp"
#include "tether/core/time.hpp"
#include "tether/ws/shared_frame.hpp"

namespace tether::server {

class replay_log {
public:
    replay_log() = default;
    /// `max_age` zero: no age bound.
    replay_log(std::size_t window, duration max_age) noexcept : window_(window), max_age_(max_age) {}

    /// Append the event that follows last_id() (the caller keeps ids contiguous).
    void append(std::int64_t event_id, time_point at, ws::shared_frame frame) {
        if (window_ == 0) return;
        while (ring_.size() >= window_) pop_front();
        bytes_ += frame.size();
        ring_.push_back({event_id, at, std::move(frame)});
    }

    /// Drop events at or past the age bound, as of `now`.
    void prune(time_point now) noexcept {
        if (max_age_ <= duration::zero()) return;
        while (!ring_.empty() && !(now - ring_.front().at < max_age_)) pop_front();
    }

    bool empty() const noexcept { return ring_.empty(); }
    std::size_t size() const noexcept { return ring_.size(); }
    /// Oldest / newest event_id held (0 when empty).
    std::int64_t first_id() const noexcept { return ring_.empty() ? 0 : ring_.front().event_id; }
    std::int64_t last_id() const noexcept { return ring_.empty() ? 0 : ring_.back().event_id; }

    /// Does the log hold every event after `n` up to last_id()? True when
    /// nothing after n is missing; the caller checks n against the head.
    bool covers_after(std::int64_t n) const noexcept { return !ring_.empty() && n + 1 >= first_id(); }

    /// The frame of event `id`, or nullptr if not held.
    const ws::shared_frame* find(std::int64_t id) const noexcept {
        if (ring_.empty() || id < first_id() || id > last_id()) return nullptr;
        return &ring_[static_cast<std::size_t>(id - first_id())].frame;
    }

    /// Calls f(const ws::shared_frame&) for each event after `n`, in order.
    template <class F>
    void for_each_after(std::int64_t n, F&& f) const {
        if (ring_.empty()) return;
        const std::int64_t from = n + 1 > first_id() ? n + 1 : first_id();
        for (std::int64_t id = from; id <= last_id(); ++id) f(ring_[static_cast<std::size_t>(id - first_id())].frame);
    }

    /// Frame bytes referenced (shared with output queues while queued).
    std::size_t frame_bytes() const noexcept { return bytes_; }
    std::size_t memory_bytes() const noexcept { return ring_.capacity() * sizeof(entry) + bytes_; }

private:
    struct entry {
        std::int64_t event_id = 0;
        time_point at{};
        ws::shared_frame frame;
    };

    void pop_front() noexcept {
        bytes_ -= ring_.front().frame.size();
        ring_.pop_front();
    }

    ring_buffer<entry> ring_;
    std::size_t bytes_ = 0;
    std::size_t window_ = 1024;
    duration max_age_{};
};

}  // namespace tether::server
