// tether/core/slot_array.hpp — a growable array in fixed-size chunks.
//
// Why: the endpoint keeps one slot per connection and per session, 100,000
// of each on a busy server. A std::vector doubles: at 100,000 elements its
// capacity is 131,072 (a third more memory than used), and each doubling
// moves every element. Chunks of 2^ChunkBits elements never move (an
// element's address is stable), and at most one chunk is unused. An index
// costs one more load (the chunk table, a few hundred bytes that stay in
// cache).
//
// Elements are value-initialised when their chunk is allocated; emplace_back()
// hands out the next one. Slots are recycled by the owner (free lists), so
// there is no erase.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

namespace tether {

template <class T, unsigned ChunkBits = 10>
class slot_array {
public:
    static constexpr std::size_t chunk_size = std::size_t{1} << ChunkBits;

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    T& operator[](std::size_t i) noexcept { return chunks_[i >> ChunkBits][i & (chunk_size - 1)]; }
    const T& operator[](std::size_t i) const noexcept { return chunks_[i >> ChunkBits][i & (chunk_size - 1)]; }

    /// The next element (value-initialised, or as the owner left it).
    T& emplace_back() {
        if (size_ == chunks_.size() * chunk_size) chunks_.push_back(std::make_unique<T[]>(chunk_size));
        return (*this)[size_++];
    }

    /// Bytes held: every allocated chunk and the chunk table.
    std::size_t memory_bytes() const noexcept {
        return chunks_.size() * chunk_size * sizeof(T) + chunks_.capacity() * sizeof(void*);
    }

    template <class A, class V>
    class basic_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = V*;
        using reference = V&;
        basic_iterator() = default;
        basic_iterator(A* a, std::size_t i) noexcept : a_(a), i_(i) {}
        V& operator*() const noexcept { return (*a_)[i_]; }
        V* operator->() const noexcept { return &(*a_)[i_]; }
        basic_iterator& operator++() noexcept {
            ++i_;
            return *this;
        }
        basic_iterator operator++(int) noexcept {
            basic_iterator t = *this;
            ++i_;
            return t;
        }
        bool operator==(const basic_iterator& o) const noexcept { return i_ == o.i_; }

    private:
        A* a_ = nullptr;
        std::size_t i_ = 0;
    };
    using iterator = basic_iterator<slot_array, T>;
    using const_iterator = basic_iterator<const slot_array, const T>;

    iterator begin() noexcept { return {this, 0}; }
    iterator end() noexcept { return {this, size_}; }
    const_iterator begin() const noexcept { return {this, 0}; }
    const_iterator end() const noexcept { return {this, size_}; }

private:
    std::vector<std::unique_ptr<T[]>> chunks_;
    std::size_t size_ = 0;
};

}  // namespace tether
