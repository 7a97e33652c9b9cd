// tether/core/siphash.hpp — SipHash-2-4, a keyed 64-bit PRF (Aumasson &
// Bernstein, "SipHash: a fast short-input PRF", 2012).
//
// Why: tables keyed by peer-chosen strings (dedup ids) must not let the peer
// choose collisions. With a secret 128-bit key drawn from the machine's rng,
// a peer cannot predict where its keys land, nor make two keys collide
// except by chance (2^-64).
//
// Incremental: update() any number of times, then finish(); the result does
// not depend on how the input was split. Bytes are read little-endian as the
// paper specifies, independent of the host's byte order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace tether {

class siphash24 {
public:
    constexpr siphash24(std::uint64_t k0, std::uint64_t k1) noexcept
        : v0_(k0 ^ 0x736f6d6570736575ULL),
          v1_(k1 ^ 0x646f72616e646f6dULL),
          v2_(k0 ^ 0x6c7967656e657261ULL),
          v3_(k1 ^ 0x7465646279746573ULL) {}

    constexpr void update(std::span<const std::uint8_t> bytes) noexcept {
        for (const std::uint8_t b : bytes) put(b);
    }
    constexpr void update(std::string_view s) noexcept {
        for (const char c : s) put(static_cast<std::uint8_t>(c));
    }
    /// Eight bytes, little-endian (for length prefixes).
    constexpr void update_u64(std::uint64_t v) noexcept {
        for (int i = 0; i < 8; ++i) put(static_cast<std::uint8_t>(v >> (8 * i)));
    }

    /// The tag. The object must not be used afterwards.
    constexpr std::uint64_t finish() noexcept {
        absorb(tail_ | (std::uint64_t{len_ & 0xff} << 56));
        v2_ ^= 0xff;
        for (int i = 0; i < 4; ++i) round();
        return v0_ ^ v1_ ^ v2_ ^ v3_;
    }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }

    constexpr void round() noexcept {
        v0_ += v1_; v1_ = rotl(v1_, 13); v1_ ^= v0_; v0_ = rotl(v0_, 32);
        v2_ += v3_; v3_ = rotl(v3_, 16); v3_ ^= v2_;
        v0_ += v3_; v3_ = rotl(v3_, 21); v3_ ^= v0_;
        v2_ += v1_; v1_ = rotl(v1_, 17); v1_ ^= v2_; v2_ = rotl(v2_, 32);
    }

    constexpr void put(std::uint8_t b) noexcept {
        tail_ |= std::uint64_t{b} << (8 * (len_ & 7));
        ++len_;
        if ((len_ & 7) == 0) {
            absorb(tail_);
            tail_ = 0;
        }
    }

    constexpr void absorb(std::uint64_t m) noexcept {
        v3_ ^= m;
        round();
        round();
        v0_ ^= m;
    }

    std::uint64_t v0_, v1_, v2_, v3_;
    std::uint64_t tail_ = 0;
    std::uint64_t len_ = 0;
};

}  // namespace tether
