// tether/ws/output_queue.hpp — bytes waiting to be written to the transport.
//
// Theory of operation: the queue is a ring of segments. A segment either
// refers to a range of the queue's own contiguous byte buffer (frames this
// connection built: handshake responses, pongs, client-masked frames) or
// holds a reference to a shared_frame (a broadcast framed once for many
// connections). The caller reads the front with front() — or several
// segments at once with gather() for writev — and releases what the socket
// took with consume(n), so partial writes need no copying. In steady state
// nothing is allocated: both the ring and the own buffer are reused.
//
// The queue itself does not enforce a bound; the connection checks
// size() against its configured max_output_bytes before appending, so that
// overflow is reported to the caller as error::output_full.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include "tether/ws/shared_frame.hpp"

namespace tether::ws {

class output_queue {
public:
    output_queue() = default;
    output_queue(const output_queue&) = delete;
    output_queue& operator=(const output_queue&) = delete;
    output_queue(output_queue&& o) noexcept
        : ring_(std::exchange(o.ring_, nullptr)), cap_(std::exchange(o.cap_, 0)), head_(std::exchange(o.head_, 0)),
          count_(std::exchange(o.count_, 0)), own_begin_(std::exchange(o.own_begin_, 0)), own_(std::move(o.own_)),
          bytes_(std::exchange(o.bytes_, 0)) {
        o.own_.clear();
    }
    output_queue& operator=(output_queue&& o) noexcept {
        if (this != &o) {
            clear();
            free_ring();
            ring_ = std::exchange(o.ring_, nullptr);
            cap_ = std::exchange(o.cap_, 0);
            head_ = std::exchange(o.head_, 0);
            count_ = std::exchange(o.count_, 0);
            own_ = std::move(o.own_);
            own_begin_ = std::exchange(o.own_begin_, 0);
            bytes_ = std::exchange(o.bytes_, 0);
            o.own_.clear();
        }
        return *this;
    }
    ~output_queue() {
        clear();
        free_ring();
    }

    /// Total bytes queued.
    std::size_t size() const noexcept { return bytes_; }
    bool empty() const noexcept { return bytes_ == 0; }

    /// Reserve `n` bytes at the end of the own buffer and return where to
    /// write them; they are queued at once (the caller must fill them before
    /// handing control back to the user).
    std::uint8_t* append_own(std::size_t n) {
        compact_own_if_worthwhile();
        const std::size_t off = own_.size();
        own_.resize(off + n);
        segment* last = count_ ? &at(count_ - 1) : nullptr;
        if (last && !last->shared && last->off + last->len == off) {
            last->len += n;
        } else {
            push(nullptr, off, n);
        }
        bytes_ += n;
        return own_.data() + off;
    }

    void append_own(std::span<const std::uint8_t> bytes) {
        if (bytes.empty()) return;
        std::memcpy(append_own(bytes.size()), bytes.data(), bytes.size());
    }

    /// Queue a reference to a shared frame (no copy), from byte `off` on.
    void append_shared(const shared_frame& f, std::size_t off = 0) {
        if (off >= f.size()) return;
        shared_frame copy = f;
        push(copy.detach(), off, f.size() - off);
        bytes_ += f.size() - off;
    }

    /// The first contiguous run of queued bytes (empty when nothing is queued).
    std::span<const std::uint8_t> front() const noexcept {
        if (count_ == 0) return {};
        return bytes_of(ring_[head_]);
    }

    /// Fill `out` with up to out.size() contiguous runs, in order; returns how
    /// many were written. For writev/WSASend-style gathering writes.
    std::size_t gather(std::span<std::span<const std::uint8_t>> out) const noexcept {
        std::size_t n = 0;
        for (; n < out.size() && n < count_; ++n) out[n] = bytes_of(at(n));
        return n;
    }

    /// Release the first `n` bytes (n <= size()).
    void consume(std::size_t n) noexcept {
        if (n > bytes_) n = bytes_;
        bytes_ -= n;
        while (n > 0) {
            segment& s = ring_[head_];
            const std::size_t take = n < s.len ? n : s.len;
            s.off += take;
            s.len -= take;
            n -= take;
            if (!s.shared) own_begin_ = static_cast<std::uint32_t>(s.off);
            if (s.len == 0) pop_front();
        }
        if (count_ == 0) { own_.clear(); own_begin_ = 0; }
    }

    /// Free the storage of an empty queue (idle connections).
    void shrink_if_empty() noexcept {
        if (count_ != 0) return;
        free_ring();
        std::vector<std::uint8_t>().swap(own_);
        head_ = 0;
        own_begin_ = 0;
    }

    void clear() noexcept {
        while (count_) pop_front();
        own_.clear();
        own_begin_ = 0;
        bytes_ = 0;
    }

private:
    struct segment {
        void* shared;      ///< shared_frame block, or nullptr for own bytes
        std::size_t off;   ///< offset into the shared frame or into own_
        std::size_t len;
    };

    std::span<const std::uint8_t> bytes_of(const segment& s) const noexcept {
        if (s.shared) return {shared_frame::data_of(s.shared) + s.off, s.len};
        return {own_.data() + s.off, s.len};
    }

    // The ring's size is a power of two (8, then doubled), so an index wraps
    // with a mask: a division here was a visible share of a broadcast.
    std::size_t mask() const noexcept { return cap_ - 1; }

    segment& at(std::size_t i) noexcept { return ring_[(head_ + i) & mask()]; }
    const segment& at(std::size_t i) const noexcept { return ring_[(head_ + i) & mask()]; }

    // The segment is written field by field, in place: built on the stack
    // and copied, it was a 16-byte load of two 8-byte stores (a failed store
    // forward), which waits for every older store to reach the cache — in a
    // broadcast those are the previous recipients' cold ring writes, so the
    // misses ran one after another instead of overlapping.
    void push(void* shared, std::size_t off, std::size_t len) {
        if (count_ == cap_) grow();
        segment& s = ring_[(head_ + count_) & mask()];
        s.shared = shared;
        s.off = off;
        s.len = len;
        ++count_;
    }

    void grow() {
        const std::uint32_t cap = cap_ == 0 ? 8 : cap_ * 2;
        auto* bigger = static_cast<segment*>(::operator new(sizeof(segment) * cap));
        for (std::uint32_t i = 0; i < count_; ++i) bigger[i] = at(i);
        free_ring();
        ring_ = bigger;
        cap_ = cap;
        head_ = 0;
    }

    void free_ring() noexcept {
        ::operator delete(ring_);
        ring_ = nullptr;
        cap_ = 0;
    }

    void pop_front() noexcept {
        segment& s = ring_[head_];
        if (s.shared) (void)shared_frame::adopt(s.shared);  // drops the reference
        s = {};
        head_ = static_cast<std::uint32_t>((head_ + 1) & mask());
        --count_;
    }

    // Own bytes before own_begin_ are consumed; slide the live tail down when
    // that dead prefix dominates, so the buffer does not creep forever while
    // the queue never fully drains.
    void compact_own_if_worthwhile() {
        if (own_begin_ == 0 || own_begin_ < own_.size() / 2) return;
        const std::size_t live = own_.size() - own_begin_;
        std::memmove(own_.data(), own_.data() + own_begin_, live);
        own_.resize(live);
        for (std::size_t i = 0; i < count_; ++i) {
            segment& s = at(i);
            if (!s.shared) s.off -= own_begin_;
        }
        own_begin_ = 0;
    }

    // The ring is a bare array (a power of two, 8 and up) with 32-bit
    // indices, and offsets into the own buffer are 32-bit too: 24 bytes
    // instead of a vector and three size_t, in every one of 100,000 idle
    // connections.
    segment* ring_ = nullptr;
    std::uint32_t cap_ = 0;
    std::uint32_t head_ = 0;
    std::uint32_t count_ = 0;
    std::uint32_t own_begin_ = 0;  // the own buffer is bounded by the connection's max_output_bytes (32-bit)
    std::vector<std::uint8_t> own_;
    std::size_t bytes_ = 0;
};

}  // namespace tether::ws
