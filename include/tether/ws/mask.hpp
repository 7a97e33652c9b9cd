// tether/ws/mask.hpp — RFC 6455 §5.3 payload masking.
//
// RFC 6455 §5.3: "j = i MOD 4; transformed-octet-i = original-octet-i XOR
// masking-key-octet-j".
// Every byte a client sends, and every byte a server receives, goes through
// here, so it has to run at memory speed.
//
// Theory of operation:
// - `phase` is the key index of the first byte, so a payload that arrives
//   in several chunks is unmasked chunk by chunk: feed each call the phase
//   the previous one returned.
// - Rotating the key by the phase and repeating it gives a pattern with
//   period 4 that lines up with any multiple of 4 bytes, so the bulk can be
//   XORed 8 bytes (uint64 via memcpy, endian-neutral because the pattern is
//   built in memory order), 16 bytes (SSE2) or 32 bytes (AVX2) at a time.
//   Large buffers first step bytewise to an aligned destination so the wide
//   stores never split a cache line; only that head (< 32 bytes) and the
//   final < 8 bytes are handled one byte at a time.
// - The ISA is chosen at compile time from __AVX2__/__SSE2__; no runtime
//   dispatch. Masking is its own inverse.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tether::ws {

/// The 4-byte masking key in wire order (RFC 6455 §5.2 "Masking-key").
using mask_key = std::array<std::uint8_t, 4>;

/// A key given as an integer is read as the wire field: big-endian, so
/// 0x37fa213d is the key 37 fa 21 3d.
constexpr mask_key to_mask_key(std::uint32_t key) noexcept {
    return {static_cast<std::uint8_t>(key >> 24), static_cast<std::uint8_t>(key >> 16),
            static_cast<std::uint8_t>(key >> 8), static_cast<std::uint8_t>(key)};
}

namespace detail::mask {

#if defined(__AVX2__)
using vec = __m256i;
inline vec splat(std::uint32_t k) noexcept { return _mm256_set1_epi32(static_cast<int>(k)); }
inline vec vxor(vec a, vec b) noexcept { return _mm256_xor_si256(a, b); }
inline vec vload(const std::uint8_t* p) noexcept {
    return _mm256_loadu_si256(reinterpret_cast<const vec*>(p));
}
inline void vstore(std::uint8_t* p, vec v) noexcept {
    _mm256_storeu_si256(reinterpret_cast<vec*>(p), v);
}
#elif defined(__SSE2__)
using vec = __m128i;
inline vec splat(std::uint32_t k) noexcept { return _mm_set1_epi32(static_cast<int>(k)); }
inline vec vxor(vec a, vec b) noexcept { return _mm_xor_si128(a, b); }
inline vec vload(const std::uint8_t* p) noexcept {
    return _mm_loadu_si128(reinterpret_cast<const vec*>(p));
}
inline void vstore(std::uint8_t* p, vec v) noexcept { _mm_storeu_si128(reinterpret_cast<vec*>(p), v); }
#endif

#if defined(__AVX2__) || defined(__SSE2__)
inline constexpr std::size_t vector_bytes = sizeof(vec);

// XORs whole vectors, 64 bytes per iteration, and advances the cursors.
// Unaligned instructions throughout: on an aligned address they cost the
// same as the aligned ones (measured), and src need not share dst's
// alignment.
inline void xor_vectors(std::uint8_t*& dst, const std::uint8_t*& src, std::size_t& n,
                        vec k) noexcept {
    constexpr std::size_t w = vector_bytes;
    while (n >= 64) {
        const vec a = vload(src);
        const vec b = vload(src + w);
        vstore(dst, vxor(a, k));
        vstore(dst + w, vxor(b, k));
        if constexpr (w == 16) {
            const vec c = vload(src + 2 * w);
            const vec d = vload(src + 3 * w);
            vstore(dst + 2 * w, vxor(c, k));
            vstore(dst + 3 * w, vxor(d, k));
        }
        dst += 64;
        src += 64;
        n -= 64;
    }
    while (n >= w) {
        vstore(dst, vxor(vload(src), k));
        dst += w;
        src += w;
        n -= w;
    }
}
#else
inline constexpr std::size_t vector_bytes = 8;
#endif

// Below this size aligning the destination costs more than it saves. Above
// it, aligned stores never split a cache line: measured +30% (AVX2) for a
// buffer that starts 3 bytes off.
inline constexpr std::size_t align_threshold = 128;

inline std::uint64_t load_u64(const std::uint8_t* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
}

inline void store_u64(std::uint8_t* p, std::uint64_t w) noexcept { std::memcpy(p, &w, sizeof w); }

// dst[i] = src[i] ^ key[(phase + i) % 4] for i < n. dst == src is allowed
// (every block is loaded before it is stored); partial overlap is not.
inline void xor_key(std::uint8_t* dst, const std::uint8_t* src, std::size_t n,
                    const mask_key& key, std::size_t phase) noexcept {
    phase &= 3;
    if (n >= align_threshold) {
        const std::size_t head =
            (vector_bytes - (reinterpret_cast<std::uintptr_t>(dst) & (vector_bytes - 1))) &
            (vector_bytes - 1);
        for (std::size_t i = 0; i < head; ++i) dst[i] = src[i] ^ key[(phase + i) & 3];
        dst += head;
        src += head;
        n -= head;
        phase = (phase + head) & 3;
    }

    // The key rotated to the current phase, repeated: the pattern for any
    // block that starts a multiple of 4 bytes from here. Rotated as a word:
    // assembling it from byte stores and loading it as a word would stall
    // on store forwarding (~12 cycles, a third of a 64-byte message).
    std::uint32_t k32;
    std::memcpy(&k32, key.data(), sizeof k32);
    if constexpr (std::endian::native == std::endian::little)
        k32 = std::rotr(k32, static_cast<int>(phase * 8));
    else
        k32 = std::rotl(k32, static_cast<int>(phase * 8));

#if defined(__AVX2__) || defined(__SSE2__)
    xor_vectors(dst, src, n, splat(k32));
#endif

    const std::uint64_t k64 = (std::uint64_t{k32} << 32) | k32;
    std::uint8_t pattern[8];
    std::memcpy(pattern, &k64, sizeof pattern);
    while (n >= 32) {
        const std::uint64_t a = load_u64(src);
        const std::uint64_t b = load_u64(src + 8);
        const std::uint64_t c = load_u64(src + 16);
        const std::uint64_t d = load_u64(src + 24);
        store_u64(dst, a ^ k64);
        store_u64(dst + 8, b ^ k64);
        store_u64(dst + 16, c ^ k64);
        store_u64(dst + 24, d ^ k64);
        dst += 32;
        src += 32;
        n -= 32;
    }
    while (n >= 8) {
        store_u64(dst, load_u64(src) ^ k64);
        dst += 8;
        src += 8;
        n -= 8;
    }
    // Every block above is a multiple of 4 bytes, so the pattern still
    // starts at the right key byte.
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i] ^ pattern[i];
}

}  // namespace detail::mask

/// Masks (or unmasks: the operation is an involution) `data` in place with
/// `key`, whose byte `phase` applies to data[0]. Returns the phase for the
/// byte after the last one, to pass to the call for the next chunk.
inline std::size_t apply_mask(std::span<std::uint8_t> data, mask_key key,
                              std::size_t phase = 0) noexcept {
    detail::mask::xor_key(data.data(), data.data(), data.size(), key, phase);
    return (phase + data.size()) & 3;
}

/// Same, with the key as the big-endian wire field (see to_mask_key).
inline std::size_t apply_mask(std::span<std::uint8_t> data, std::uint32_t key,
                              std::size_t phase = 0) noexcept {
    return apply_mask(data, to_mask_key(key), phase);
}

/// Writes src masked with `key` (starting at key byte `phase`) to dst,
/// leaving src untouched: the client encoder masks a payload the user owns
/// while copying it into the output buffer. Processes
/// min(dst.size(), src.size()) bytes and returns the phase after them.
/// dst and src must be the same buffer or not overlap at all.
inline std::size_t mask_copy(std::span<std::uint8_t> dst, std::span<const std::uint8_t> src,
                             mask_key key, std::size_t phase = 0) noexcept {
    const std::size_t n = dst.size() < src.size() ? dst.size() : src.size();
    detail::mask::xor_key(dst.data(), src.data(), n, key, phase);
    return (phase + n) & 3;
}

inline std::size_t mask_copy(std::span<std::uint8_t> dst, std::span<const std::uint8_t> src,
                             std::uint32_t key, std::size_t phase = 0) noexcept {
    return mask_copy(dst, src, to_mask_key(key), phase);
}

}  // namespace tether::ws
