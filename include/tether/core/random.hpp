// tether/core/random.hpp — the only source of randomness the machines use.
//
// Every machine owns an `rng` seeded from its config; nothing reads
// /dev/urandom or std::random_device. Same seed + same inputs = same bytes
// out, which is what makes traces replayable and fuzzing reproducible.
// Adapters and examples seed it from real entropy; tests pass constants.
//
// xoshiro256** (Blackman & Vigna) seeded through splitmix64: fast, small,
// good statistical quality. It is NOT a CSPRNG: session ids and masking keys
// only need to be unpredictable to the extent the seed is (RFC 6455 §10.3
// asks for masks a peer cannot predict; seed from OS entropy in production).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace tether {

class rng {
public:
    explicit constexpr rng(std::uint64_t seed = 0) noexcept { reseed(seed); }

    constexpr void reseed(std::uint64_t seed) noexcept {
        for (auto& w : s_) w = splitmix64(seed);
    }

    /// Next 64 random bits.
    constexpr std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    std::uint32_t next_u32() noexcept { return static_cast<std::uint32_t>(next() >> 32); }

    /// Uniform in [0, bound) (Lemire's multiply-shift; bias < 2^-32 for the
    /// bounds the protocol uses, which is irrelevant for jitter).
    std::uint64_t below(std::uint64_t bound) noexcept {
        if (bound == 0) return 0;
        __extension__ using u128 = unsigned __int128;
        return static_cast<std::uint64_t>((static_cast<u128>(next()) * bound) >> 64);
    }

    void fill(std::span<std::uint8_t> out) noexcept {
        std::size_t i = 0;
        while (i < out.size()) {
            std::uint64_t v = next();
            for (int k = 0; k < 8 && i < out.size(); ++k, ++i) {
                out[i] = static_cast<std::uint8_t>(v);
                v >>= 8;
            }
        }
    }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
        return (x << k) | (x >> (64 - k));
    }
    static constexpr std::uint64_t splitmix64(std::uint64_t& x) noexcept {
        std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    std::uint64_t s_[4]{};
};

}  // namespace tether
