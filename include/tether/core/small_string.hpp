// tether/core/small_string.hpp — an immutable string in 16 bytes.
//
// Theory of operation: a connection or a session keeps a few short strings
// for its whole life (the negotiated subprotocol, typically "tether.v1"; the
// principal); a std::string costs 32 bytes inline in every one of 100,000
// idle sessions. This one
// costs 16: up to 15 characters live inside the object, a longer string
// lives in one heap block that starts with its length. It is only ever
// assigned as a whole, never edited, so that is all it supports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace tether {

class small_string {
public:
    small_string() noexcept = default;
    explicit small_string(std::string_view s) { assign(s); }
    small_string(const small_string&) = delete;
    small_string& operator=(const small_string&) = delete;
    small_string(small_string&& o) noexcept : tag_(o.tag_) {
        std::memcpy(chars_, o.chars_, sizeof chars_);
        o.tag_ = 0;
    }
    small_string& operator=(small_string&& o) noexcept {
        if (this != &o) {
            release();
            tag_ = o.tag_;
            std::memcpy(chars_, o.chars_, sizeof chars_);
            o.tag_ = 0;
        }
        return *this;
    }
    ~small_string() { release(); }

    void assign(std::string_view s) {
        release();
        if (s.size() <= inline_capacity) {
            if (!s.empty()) std::memcpy(chars_, s.data(), s.size());
            tag_ = static_cast<std::uint8_t>(s.size());
            return;
        }
        // [size_t length][characters]
        char* block = new char[sizeof(std::size_t) + s.size()];
        const std::size_t n = s.size();
        std::memcpy(block, &n, sizeof n);
        std::memcpy(block + sizeof n, s.data(), n);
        std::memcpy(chars_, &block, sizeof block);
        tag_ = on_heap;
    }

    std::string_view view() const noexcept {
        if (tag_ != on_heap) return {chars_, tag_};
        const char* block = heap_block();
        std::size_t n;
        std::memcpy(&n, block, sizeof n);
        return {block + sizeof n, n};
    }

    static constexpr std::size_t inline_capacity = 15;
    /// Heap bytes held (0 when inline).
    std::size_t heap_bytes() const noexcept { return tag_ == on_heap ? sizeof(std::size_t) + view().size() : 0; }

private:
    static constexpr std::uint8_t on_heap = 0xFF;

    char* heap_block() const noexcept {
        char* block;
        std::memcpy(&block, chars_, sizeof block);
        return block;
    }

    void release() noexcept {
        if (tag_ == on_heap) delete[] heap_block();
        tag_ = 0;
    }

    std::uint8_t tag_ = 0;   // length when inline, on_heap otherwise
    char chars_[15] = {};    // the characters, or the heap block's address
};

}  // namespace tether
