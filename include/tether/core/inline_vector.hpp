// tether/core/inline_vector.hpp — a vector whose first N elements live
// inside the object.
//
// Why: nearly every session is in one room. A std::vector of memberships
// costs 24 bytes in the session plus a heap block (32 bytes with malloc's
// header) for one 8-byte entry; this holds up to N entries inline in 16
// bytes (N = 1) and moves to the heap only past N. For trivially copyable
// elements only (they are copied with memcpy semantics), which is what the
// endpoint's index pairs are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace tether {

template <class T, std::uint32_t N = 1>
class inline_vector {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);
    static_assert(N >= 1);

public:
    inline_vector() noexcept = default;
    inline_vector(const inline_vector&) = delete;
    inline_vector& operator=(const inline_vector&) = delete;
    inline_vector(inline_vector&& o) noexcept { take(o); }
    inline_vector& operator=(inline_vector&& o) noexcept {
        if (this != &o) {
            release();
            take(o);
        }
        return *this;
    }
    ~inline_vector() { release(); }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t capacity() const noexcept { return cap_; }
    /// Heap bytes held (0 while the elements fit inline).
    std::size_t heap_bytes() const noexcept { return on_heap() ? cap_ * sizeof(T) : 0; }

    T* data() noexcept { return on_heap() ? u_.heap : u_.local; }
    const T* data() const noexcept { return on_heap() ? u_.heap : u_.local; }
    T& operator[](std::size_t i) noexcept { return data()[i]; }
    const T& operator[](std::size_t i) const noexcept { return data()[i]; }
    T* begin() noexcept { return data(); }
    T* end() noexcept { return data() + size_; }
    const T* begin() const noexcept { return data(); }
    const T* end() const noexcept { return data() + size_; }

    void push_back(const T& v) {
        if (size_ == cap_) grow();
        data()[size_++] = v;
    }
    void pop_back() noexcept { --size_; }

private:
    bool on_heap() const noexcept { return cap_ > N; }

    void grow() {
        const std::uint32_t cap = cap_ * 2;
        T* heap = static_cast<T*>(::operator new(sizeof(T) * cap));
        std::memcpy(static_cast<void*>(heap), data(), sizeof(T) * size_);
        release();
        u_.heap = heap;
        cap_ = cap;
    }
    void release() noexcept {
        if (on_heap()) ::operator delete(u_.heap);
        cap_ = N;
    }
    void take(inline_vector& o) noexcept {
        std::memcpy(static_cast<void*>(&u_), &o.u_, sizeof u_);
        size_ = o.size_;
        cap_ = o.cap_;
        o.size_ = 0;
        o.cap_ = N;
    }

    union storage {
        T local[N];
        T* heap;
    } u_{};
    std::uint32_t size_ = 0;
    std::uint32_t cap_ = N;
};

}  // namespace tether
