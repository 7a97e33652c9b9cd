// tether/core/probe_table.hpp — an open-addressing index of small references.
//
// Theory of operation
// -------------------
// The table stores only `Ref`s (a 32-bit slot index, a 64-bit sequence
// number): the keys live in the owner's own storage, and the owner passes
// the key's hash plus a predicate (find) or a `hash_of(ref)` function
// (insert/erase, which may move entries). So an index over 100,000 sessions
// costs 4 bytes per bucket instead of a node allocation per entry.
//
// Linear probing over a power-of-two array, load factor at most 1/2, the
// home bucket taken from the high bits of hash * 2^64/phi (Fibonacci
// hashing, so a weak hash still spreads). Deletion is by backward shift
// (Knuth 6.4 Algorithm R): no tombstones, so probe lengths never degrade
// under churn. The table grows by doubling and shrinks by halving when it
// falls under 1/8 full, so its memory follows the live count.
//
// Hashes must not be choosable by a peer (a peer that controls the home
// bucket controls the probe length): use random keys, or a keyed hash
// (tether/core/siphash.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tether {

template <class Ref, Ref Empty>
class probe_table {
public:
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t bucket_count() const noexcept { return slots_.size(); }
    std::size_t memory_bytes() const noexcept { return slots_.capacity() * sizeof(Ref); }

    /// The stored ref for which eq(ref) holds, or nullptr.
    template <class Eq>
    const Ref* find(std::uint64_t hash, Eq&& eq) const noexcept {
        if (slots_.empty()) return nullptr;
        for (std::size_t i = home(hash);; i = (i + 1) & mask()) {
            const Ref& r = slots_[i];
            if (r == Empty) return nullptr;
            if (eq(r)) return &r;
        }
    }

    /// Add `ref` (not already present) whose key hashes to `hash`.
    template <class HashOf>
    void insert(std::uint64_t hash, Ref ref, HashOf&& hash_of) {
        if ((size_ + 1) * 2 > slots_.size()) resize(slots_.empty() ? min_buckets : slots_.size() * 2, hash_of);
        place(hash, ref);
        ++size_;
    }

    /// Remove exactly `ref`, whose key hashes to `hash`. False if absent.
    template <class HashOf>
    bool erase(std::uint64_t hash, Ref ref, HashOf&& hash_of) {
        if (slots_.empty()) return false;
        std::size_t i = home(hash);
        for (;; i = (i + 1) & mask()) {
            if (slots_[i] == Empty) return false;
            if (slots_[i] == ref) break;
        }
        // Backward shift: pull later members of the cluster into the hole
        // when their home bucket does not lie cyclically in (hole, j].
        std::size_t hole = i;
        for (std::size_t j = (hole + 1) & mask(); slots_[j] != Empty; j = (j + 1) & mask()) {
            const std::size_t h = home(hash_of(slots_[j]));
            const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
            if (stays) continue;
            slots_[hole] = slots_[j];
            hole = j;
        }
        slots_[hole] = Empty;
        --size_;
        if (slots_.size() > min_buckets && size_ * 8 < slots_.size()) resize(slots_.size() / 2, hash_of);
        return true;
    }

    /// Re-insert everything (the owner moved its storage, e.g. a ring grew).
    template <class HashOf>
    void rebuild(HashOf&& hash_of) {
        resize(slots_.size(), hash_of);
    }

    void clear() noexcept {
        std::vector<Ref>().swap(slots_);
        size_ = 0;
        shift_ = 64;
    }

private:
    static constexpr std::size_t min_buckets = 16;

    std::size_t mask() const noexcept { return slots_.size() - 1; }
    std::size_t home(std::uint64_t hash) const noexcept {
        return static_cast<std::size_t>((hash * 0x9E3779B97F4A7C15ULL) >> shift_);
    }

    void place(std::uint64_t hash, Ref ref) noexcept {
        std::size_t i = home(hash);
        while (slots_[i] != Empty) i = (i + 1) & mask();
        slots_[i] = ref;
    }

    template <class HashOf>
    void resize(std::size_t buckets, HashOf&& hash_of) {
        std::vector<Ref> old(buckets, Empty);
        old.swap(slots_);
        unsigned bits = 0;
        while ((std::size_t{1} << bits) < buckets) ++bits;
        shift_ = 64 - bits;
        for (const Ref& r : old)
            if (r != Empty) place(hash_of(r), r);
    }

    std::vector<Ref> slots_;
    std::size_t size_ = 0;
    unsigned shift_ = 64;
};

}  // namespace tether
