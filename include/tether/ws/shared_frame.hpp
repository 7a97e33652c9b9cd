// tether/ws/shared_frame.hpp — an immutable, reference-counted byte block.
//
// Why: a server broadcast is serialised and framed once, and every
// recipient's output queue holds a reference to the same bytes instead of a
// copy (server frames are unmasked, so they are identical for everyone).
// One allocation per broadcast, zero per recipient.
//
// The count is deliberately not atomic: machines are single-threaded objects
// (like every Sans-IO state machine), and a shared_frame must not cross
// threads while queued in more than one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <utility>

namespace tether::ws {

class shared_frame {
public:
    shared_frame() noexcept = default;
    shared_frame(const shared_frame& o) noexcept : b_(o.b_) { if (b_) ++b_->refs; }
    shared_frame(shared_frame&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
    shared_frame& operator=(shared_frame o) noexcept { std::swap(b_, o.b_); return *this; }
    ~shared_frame() { release(); }

    /// Allocate an uninitialised block of `size` bytes; empty on allocation failure.
    static shared_frame allocate(std::size_t size) noexcept {
        void* mem = ::operator new(sizeof(block) + size, std::nothrow);
        if (!mem) return {};
        shared_frame f;
        f.b_ = ::new (mem) block{1, size};
        return f;
    }

    std::uint8_t* data() noexcept { return b_ ? reinterpret_cast<std::uint8_t*>(b_ + 1) : nullptr; }
    const std::uint8_t* data() const noexcept { return b_ ? reinterpret_cast<const std::uint8_t*>(b_ + 1) : nullptr; }
    std::size_t size() const noexcept { return b_ ? b_->size : 0; }
    std::span<const std::uint8_t> bytes() const noexcept { return {data(), size()}; }
    std::uint32_t use_count() const noexcept { return b_ ? b_->refs : 0; }
    explicit operator bool() const noexcept { return b_ != nullptr; }

    // Raw handle operations for containers that store the pointer themselves
    // (output_queue keeps segments trivially copyable).
    void* detach() noexcept { return std::exchange(b_, nullptr); }
    static shared_frame adopt(void* p) noexcept { shared_frame f; f.b_ = static_cast<block*>(p); return f; }
    static const std::uint8_t* data_of(const void* p) noexcept {
        return reinterpret_cast<const std::uint8_t*>(static_cast<const block*>(p) + 1);
    }
    static std::size_t size_of(const void* p) noexcept { return static_cast<const block*>(p)->size; }
    /// The block, without taking a reference: a loop that hands the same
    /// frame to many holders stores raw() in each and then calls retain(n)
    /// once, instead of one increment per holder.
    void* raw() const noexcept { return b_; }
    void retain(std::uint32_t n) const noexcept { if (b_) b_->refs += n; }

private:
    struct alignas(std::max_align_t) block {
        std::uint32_t refs;
        std::size_t size;
    };
    void release() noexcept {
        if (b_ && --b_->refs == 0) {
            b_->~block();
            ::operator delete(b_);
        }
        b_ = nullptr;
    }
    block* b_ = nullptr;
};

}  // namespace tether::ws
