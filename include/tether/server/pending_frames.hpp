// tether/server/pending_frames.hpp — broadcast frames held in a connection's
// slot until they join its WebSocket output queue.
//
// Why: a broadcast to a room of 10,000 queues one frame on 10,000
// connections. Queueing on each ws::connection touches three cold cache
// lines per recipient (the endpoint's slot, the connection object, its ring
// of segments), and their stores commit one miss at a time. So while a
// connection's WebSocket queue is empty (the common case: the loop writes
// after every read), the endpoint holds up to `capacity` broadcast frames
// here, in the slot array it walks anyway, and the recipient costs one
// prefetched cache line. The frames are logically at the tail of the
// connection's output: the endpoint's output getters read the WebSocket
// queue first and these after, and before anything else is queued on the
// connection they move into its queue in order (endpoint::spill), so what
// the socket gets is byte for byte what a direct send_shared() would give.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "tether/ws/shared_frame.hpp"

namespace tether::server {

class pending_frames {
public:
    static constexpr std::size_t capacity = 2;

    pending_frames() = default;
    pending_frames(const pending_frames&) = delete;
    pending_frames& operator=(const pending_frames&) = delete;
    pending_frames(pending_frames&& o) noexcept { take(o); }
    pending_frames& operator=(pending_frames&& o) noexcept {
        if (this != &o) {
            clear();
            take(o);
        }
        return *this;
    }
    ~pending_frames() { clear(); }

    bool empty() const noexcept { return n_ == 0; }
    bool full() const noexcept { return n_ == capacity; }

    /// Hold one reference the caller already owns (or will add: see
    /// ws::shared_frame::retain) to the frame block `raw`.
    void push_raw(void* raw) noexcept { f_[n_++] = raw; }

    /// Bytes not yet written.
    std::size_t bytes() const noexcept {
        std::size_t b = 0;
        for (std::uint32_t i = 0; i < n_; ++i) b += ws::shared_frame::size_of(f_[i]);
        return b - off_;
    }

    std::span<const std::uint8_t> front() const noexcept {
        if (n_ == 0) return {};
        return {ws::shared_frame::data_of(f_[0]) + off_, ws::shared_frame::size_of(f_[0]) - off_};
    }

    /// Up to out.size() runs, in order; returns how many were written.
    std::size_t gather(std::span<std::span<const std::uint8_t>> out) const noexcept {
        std::size_t k = 0;
        for (; k < out.size() && k < n_; ++k) {
            const std::size_t skip = k == 0 ? off_ : 0;
            out[k] = {ws::shared_frame::data_of(f_[k]) + skip, ws::shared_frame::size_of(f_[k]) - skip};
        }
        return k;
    }

    /// Release up to n written bytes; returns how many were released.
    std::size_t consume(std::size_t n) noexcept {
        std::size_t done = 0;
        while (n_ > 0 && done < n) {
            const std::size_t left = ws::shared_frame::size_of(f_[0]) - off_;
            const std::size_t take = n - done < left ? n - done : left;
            done += take;
            off_ += static_cast<std::uint32_t>(take);
            if (take == left) pop_front();
        }
        return done;
    }

    /// Hand every frame, in order, to f(const ws::shared_frame&, offset of
    /// the first unwritten byte) and forget them.
    template <class F>
    void drain(F&& f) {
        while (n_ > 0) {
            const ws::shared_frame frame = ws::shared_frame::adopt(f_[0]);
            f_[0] = nullptr;
            const std::size_t off = off_;
            off_ = 0;
            shift();
            f(frame, off);
        }
    }

    void clear() noexcept {
        while (n_ > 0) pop_front();
    }

private:
    void pop_front() noexcept {
        (void)ws::shared_frame::adopt(f_[0]);  // drops the reference
        off_ = 0;
        shift();
    }
    void shift() noexcept {
        for (std::uint32_t i = 1; i < n_; ++i) f_[i - 1] = f_[i];
        f_[--n_] = nullptr;
    }
    void take(pending_frames& o) noexcept {
        for (std::size_t i = 0; i < capacity; ++i) f_[i] = std::exchange(o.f_[i], nullptr);
        off_ = std::exchange(o.off_, 0);
        n_ = std::exchange(o.n_, 0);
    }

    void* f_[capacity] = {};
    std::uint32_t off_ = 0;  ///< bytes of the first frame already written
    // Not a character type: stores through an unsigned char may alias
    // anything, and the broadcast loop would reload its own state after
    // every push_raw().
    std::uint32_t n_ = 0;
};

}  // namespace tether::server
