// tether/core/ring_buffer.hpp — a growable FIFO ring with indexed access.
//
// Why not std::deque: a deque allocates and frees blocks as elements come
// and go, so a steady FIFO (a replay log that drops one event per event it
// appends, an event queue) keeps touching the allocator. This ring grows by
// doubling (power-of-two capacity, so indexing is a mask) and then reuses its
// storage forever: no allocation in steady state. It does not bound itself;
// the owner pops before pushing past its own limit.
//
// pop_front() resets the slot to T{} so that elements holding resources
// (shared frames, strings) release them at once, not when overwritten.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace tether {

template <class T>
class ring_buffer {
public:
    ring_buffer() = default;
    ring_buffer(ring_buffer&&) noexcept = default;
    ring_buffer& operator=(ring_buffer&&) noexcept = default;

    std::size_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    std::size_t capacity() const noexcept { return buf_.size(); }

    /// i-th element from the front.
    T& operator[](std::size_t i) noexcept { return buf_[(head_ + i) & mask_]; }
    const T& operator[](std::size_t i) const noexcept { return buf_[(head_ + i) & mask_]; }
    T& front() noexcept { return (*this)[0]; }
    const T& front() const noexcept { return (*this)[0]; }
    T& back() noexcept { return (*this)[count_ - 1]; }
    const T& back() const noexcept { return (*this)[count_ - 1]; }

    void push_back(T v) {
        if (count_ == mask_ + 1) [[unlikely]]  // full (or no storage: mask_ + 1 wraps to 0)
            grow();
        buf_[(head_ + count_) & mask_] = std::move(v);
        ++count_;
    }

    /// Remove and return the front element (the ring must not be empty).
    T take_front() noexcept {
        T v = std::move(buf_[head_]);
        buf_[head_] = T{};
        head_ = (head_ + 1) & mask_;
        --count_;
        return v;
    }

    void pop_front() noexcept {
        buf_[head_] = T{};
        head_ = (head_ + 1) & mask_;
        --count_;
    }

    void clear() noexcept {
        while (count_) pop_front();
        head_ = 0;
    }

    /// Give the storage back (the ring must be empty to lose nothing).
    void release() noexcept {
        clear();
        std::vector<T>().swap(buf_);
        mask_ = no_storage;
    }

private:
    // Out of line: push_back() is on hot paths (one per broadcast
    // recipient) and must stay small enough to inline.
#if defined(__GNUC__) || defined(__clang__)
    [[gnu::noinline]]
#endif
    void grow() {
        const std::size_t cap = buf_.empty() ? 4 : buf_.size() * 2;
        std::vector<T> bigger(cap);
        for (std::size_t i = 0; i < count_; ++i) bigger[i] = std::move((*this)[i]);
        buf_.swap(bigger);
        mask_ = cap - 1;
        head_ = 0;
    }

    std::vector<T> buf_;
    // buf_.size() - 1, kept: for an element of 12 bytes (the endpoint's
    // event order) the size is a division, paid on every push of a broadcast.
    // capacity - 1. Kept rather than buf_.size(): the size of a vector of
    // 12-byte elements is a division, and push_back() runs once per
    // broadcast recipient. Without storage it is all ones, so that
    // mask_ + 1 == 0 == count_ says "full" in push_back().
    static constexpr std::size_t no_storage = ~std::size_t{0};
    std::size_t mask_ = no_storage;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
};

}  // namespace tether
