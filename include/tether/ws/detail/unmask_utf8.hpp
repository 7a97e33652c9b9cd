// tether/ws/detail/unmask_utf8.hpp — unmask a payload in place and check
// its UTF-8 in one pass over the data.
//
// Theory of operation: a server unmasks every payload byte it receives
// (RFC 6455 §5.3) and validates every text byte (§8.1). Done as two passes
// over a 16 KiB frame, the second pass reads the data back from L2; done
// per block, it reads it back from L1, where the first pass just left it.
// So large chunks go block by block: unmask fuse_block bytes, feed the same
// bytes to the validator, next block. A code point split across two blocks
// is nothing special: the validator carries its state from feed to feed,
// exactly as it does across TCP chunks.
//
// Small chunks (one chat message) take an inline path: 16 bytes at a time
// through SSE2 (8 without it), XOR with the key and OR into an accumulator,
// so that a pure-ASCII message needs no second look at all: if no byte has
// its high bit set and no code point is pending, the text is valid and the
// validator state is unchanged. Anything else is fed to the validator,
// which finds the first non-ASCII byte again and goes on from there.
//
// Where the CPU has AVX2 (the same run-time choice as the UTF-8 kernels,
// including their test hook), the bulk of a text chunk — its largest
// multiple of 32 bytes — goes through one fused loop instead: load 64
// masked bytes, XOR, and test them in registers with three compares that
// settle text of 1- and 2-byte sequences (ASCII and the alphabets of most
// languages), store; from the first 64 bytes they do not settle, load 32,
// XOR, store, and check the unmasked vector in registers with
// the pair-rule lookups of detail/utf8_simd.hpp, the bytes before it taken
// from the previous vector by a lane shuffle (not re-read from memory: a
// load straddling bytes stored a few cycles earlier cannot be
// store-forwarded and stalls). The validator's pending state goes in as
// the kernels' synthetic lead byte and comes out from the last code point,
// exactly as for its own kernel runs; a flagged chunk is fed to the
// validator (it is unmasked by then), so every rejection is still the
// DFA's. The remaining < 32 bytes take the small path.
//
// With AVX-512BW (utf8_simd level avx512) a chunk of 64+ bytes goes
// through fused_avx512 instead: text of 1- and 2-byte sequences (ASCII and
// the alphabets of most languages) in one pass, load, XOR, an exact test
// of three compares in registers, store; from the first vector that test
// does not settle, per 4 KiB block, XOR and store, then check the block
// back from L1 with the full pair rules, the last vector a masked partial
// one, so no tail is left. Whole small messages go through
// small_frames_avx512 (see connection.hpp), a run of them per call.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tether/ws/detail/utf8_simd.hpp"
#include "tether/ws/mask.hpp"
#include "tether/ws/utf8.hpp"

namespace tether::ws::detail {

/// Bytes unmasked before they are validated: well inside L1.
inline constexpr std::size_t fuse_block = 4096;

/// Chunks up to this size take the inline path.
inline constexpr std::size_t fuse_small = 256;

// How far ahead of the vector it loads the one-pass two-byte loop
// (fused_avx2, two_byte_prefix) prefetches its source: the loop is one pass
// over memory, and the test in registers is short enough that the loads
// would otherwise wait on the stream (measured, AVX-512, 1 MiB copied in
// 16 KiB chunks: 74 -> 48 us at 512 B ahead; 2 KiB ahead the same).
inline constexpr std::size_t two_byte_prefetch = 512;

// The key rotated so that byte 0 gets key[phase], as a 32-bit pattern in
// memory order: XORing it into any 4-byte-aligned offset from p is right.
// (Rotating the loaded word, not assembling bytes: a 4-byte load of four
// 1-byte stores cannot be store-forwarded and stalls ~12 cycles.)
inline std::uint32_t key_pattern(const mask_key& key, std::size_t phase) noexcept {
    std::uint32_t k;
    std::memcpy(&k, key.data(), 4);
    const int bits = static_cast<int>((phase & 3) * 8);
    if constexpr (std::endian::native == std::endian::little)
        return std::rotr(k, bits);
    else
        return std::rotl(k, bits);
}

// Unmask [src, src + n) with the 32-bit pattern into [p, p + n) (src == p:
// in place) and return the OR of the 0x80 bits of every resulting byte
// (non-zero: some byte is not ASCII). n <= fuse_small.
inline std::uint64_t unmask_small(std::uint8_t* p, const std::uint8_t* src, std::size_t n,
                                  std::uint32_t k32) noexcept {
    std::size_t i = 0;
    std::uint64_t acc64 = 0;
#if defined(__SSE2__)
    const __m128i k = _mm_set1_epi32(static_cast<int>(k32));
    __m128i acc = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16) {
        const __m128i x = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)), k);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i), x);
        acc = _mm_or_si128(acc, x);
    }
    acc64 = static_cast<std::uint64_t>(_mm_movemask_epi8(acc));
#endif
    const std::uint64_t k64 = (std::uint64_t{k32} << 32) | k32;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, src + i, 8);
        w ^= k64;
        std::memcpy(p + i, &w, 8);
        acc64 |= w & utf8::high_bits;
    }
    // i is a multiple of 8, so the pattern still starts at byte 0 of k32.
    std::uint8_t kb[4];
    std::memcpy(kb, &k32, 4);
    std::uint8_t acc8 = 0;
    for (std::size_t j = 0; i < n; ++i, ++j) {
        p[i] = static_cast<std::uint8_t>(src[i] ^ kb[j & 3]);
        acc8 = static_cast<std::uint8_t>(acc8 | p[i]);
    }
    return acc64 | (acc8 & 0x80);
}

// OR of the 0x80 bits of [p, p + n), n <= fuse_small (unmasked input).
inline std::uint64_t high_bits_small(const std::uint8_t* p, std::size_t n) noexcept {
    std::size_t i = 0;
    std::uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        acc |= w;
    }
    acc &= utf8::high_bits;
    for (; i < n; ++i) acc |= p[i] & 0x80;
    return acc;
}

#if TETHER_WS_UTF8_SIMD

// The bytes before `cur` for the pair rules: alignr works per 128-bit lane,
// so it gets [prv.hi, cur.lo] as the "previous" half.
__attribute__((target("avx2"))) inline __m256i fused_check(const utf8_simd::avx_ctx& c, __m256i prv,
                                                          __m256i cur) noexcept {
    const __m256i mid = _mm256_permute2x128_si256(prv, cur, 0x21);
    return utf8_simd::avx_check(c, cur, _mm256_alignr_epi8(cur, mid, 15), _mm256_alignr_epi8(cur, mid, 14),
                                _mm256_alignr_epi8(cur, mid, 13));
}

// Unmask (Masked: XOR with the 32-bit pattern k32) and check [src, src + n),
// n a non-zero multiple of 32, as the continuation of a stream whose
// pending state is `lead` (see utf8_simd::kernel_fn), storing the result to
// p (Copy; otherwise src == p and an unmasked chunk is not stored). True:
// no flag, i.e. valid up to a sequence left open at the end. The pair
// rules in registers, 64 bytes per step (fused_avx2 below goes first).
template <bool Masked, bool Copy>
__attribute__((target("avx2"))) inline bool fused_pairs_avx2(std::uint8_t* p, const std::uint8_t* src, std::size_t n,
                                                       std::uint32_t k32, std::uint8_t lead) noexcept {
    namespace s = utf8_simd;
    const s::avx_ctx c = s::avx_make_ctx();
    const __m256i tail_max = s::avx_load(s::open_tail_max.data());
    const __m256i k = _mm256_set1_epi32(static_cast<int>(k32));
    __m256i prev = _mm256_insert_epi8(_mm256_setzero_si256(), static_cast<char>(lead), 31);
    __m256i err = _mm256_setzero_si256();
    std::size_t i = 0;
    for (; n - i >= 64; i += 64) {
        __m256i a = s::avx_load(src + i);
        __m256i b = s::avx_load(src + i + 32);
        if constexpr (Masked) {
            a = _mm256_xor_si256(a, k);
            b = _mm256_xor_si256(b, k);
        }
        if constexpr (Masked || Copy) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), a);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i + 32), b);
        }
        if (_mm256_movemask_epi8(_mm256_or_si256(a, b)) == 0) {
            // All ASCII: the only possible error is a sequence left open
            // just before it.
            err = _mm256_or_si256(err, _mm256_subs_epu8(prev, tail_max));
        } else {
            err = _mm256_or_si256(err, _mm256_or_si256(fused_check(c, prev, a), fused_check(c, a, b)));
        }
        prev = b;
    }
    if (i < n) {
        __m256i a = s::avx_load(src + i);
        if constexpr (Masked) a = _mm256_xor_si256(a, k);
        if constexpr (Masked || Copy) _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), a);
        err = _mm256_or_si256(err, fused_check(c, prev, a));
    }
    return _mm256_testz_si256(err, err) != 0;
}

// Text of 1- and 2-byte sequences in one pass, 64 bytes per step: load,
// XOR, the two-byte test (utf8_simd::avx_two_byte_bad: 12 vector operations
// where the pair rules take ~30, and no lane shuffles), store; from the
// first 64 bytes it does not settle (a 3- or 4-byte sequence, or invalid
// text), and for a last 32, fused_pairs_avx2. Same contract.
template <bool Masked, bool Copy>
__attribute__((target("avx2"))) inline bool fused_avx2(std::uint8_t* p, const std::uint8_t* src, std::size_t n,
                                                       std::uint32_t k32, std::uint8_t lead) noexcept {
    namespace s = utf8_simd;
    // Only "nothing open" and "one continuation owed" are states of the test.
    if (lead != 0 && lead != 0xC2) return fused_pairs_avx2<Masked, Copy>(p, src, n, k32, lead);
    const s::avx_two_ctx t = s::avx_two_make();
    const __m256i k = _mm256_set1_epi32(static_cast<int>(k32));
    std::uint64_t carry = lead != 0;
    std::size_t j = 0;
    for (; n - j >= 64; j += 64) {
        // (An address, not a pointer past the buffer: a prefetch never faults.)
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(src + j) + two_byte_prefetch),
                     _MM_HINT_T0);
        __m256i a = s::avx_load(src + j);
        __m256i b = s::avx_load(src + j + 32);
        if constexpr (Masked) {
            a = _mm256_xor_si256(a, k);
            b = _mm256_xor_si256(b, k);
        }
        std::uint64_t open;
        if (s::avx_two_byte_bad(t, a, b, carry, open) != 0) break;  // before the stores: in place, src is still masked
        carry = open;
        if constexpr (Masked || Copy) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + j), a);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + j + 32), b);
        }
    }
    if (j == n) return true;
    // j is a multiple of 64, so the key pattern holds.
    return fused_pairs_avx2<Masked, Copy>(p + j, src + j, n - j, k32, carry ? 0xC2 : 0);
}

// ---- AVX-512BW ----

/// Largest payload small_frames_avx512() takes (one vector).
inline constexpr std::size_t small_frame_max = 64;

// The full UTF-8 check of one small payload x (bytes past its length
// zero): true if valid and complete. Only text the cheap two-byte test does
// not settle comes here (3- and 4-byte sequences, or invalid). Inlined: as a
// call (zmm registers are all caller-saved) g++ spilled the loop's values
// around it and text with 3-byte sequences got 1.5 ns per frame slower; its
// constants are not pinned (z_pin), so a compiler may also sink them here.
TETHER_WS_TARGET_AVX512 __attribute__((always_inline)) inline bool small_text_valid(__m512i x) noexcept {
    namespace s = utf8_simd;
    const s::z_ctx c = s::z_make_ctx();
    // Bytes past the length are zeros, so a code point left open before
    // them breaks a pair rule; at length 64 the open-tail test does it.
    return !s::z_any(s::z_check_regs(c, _mm512_subs_epu8(x, s::z_load(s::open_tail_max_64.data())),
                                     _mm512_setzero_si512(), x));
}

// How far ahead of the frame a run reads from it prefetches its source
// (measured on 1 MiB of 70-byte frames, copying form: 6.6 -> 5.5 ns per frame
// at 256..1024, clang; 7.0 -> 6.1 g++).
inline constexpr std::size_t small_run_prefetch = 512;

// One frame of a run at src + at (see below; unless Sure, at most `avail`
// bytes there from src; Sure: hs + max_len bytes are there): true if taken,
// at then past it.
template <bool Copy, bool Masked, bool Sure>
TETHER_WS_TARGET_AVX512 __attribute__((always_inline)) inline bool small_frame_avx512(
    std::uint8_t* dst, const std::uint8_t* src, std::size_t& at, std::size_t avail, std::size_t max_len,
    std::uint8_t* lens, std::size_t count, const utf8_simd::z_two_closed_ctx& two) noexcept {
    constexpr std::size_t hs = Masked ? 6 : 2;
    const std::uint8_t* const f = src + at;
    // The next frame's header is loaded at an address known only from this
    // one's length, a chain of loads through the whole run: each a new
    // cache line (a frame is > 64 bytes), an L1 miss unless fetched ahead.
    // (Prefetching dst as well measured slower.)
    // (An address, not a pointer past the buffer: a prefetch never faults.)
    if constexpr (Sure)
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(f) + small_run_prefetch),
                     _MM_HINT_T0);
    const std::size_t binary = std::size_t{f[0]} - 0x81;  // 0x81 text: 0, 0x82 binary: 1
    if (binary > 1) return false;                          // (below 0x81: wraps)
    // Masked: the length byte minus the mask bit; without it, it wraps
    // (> max_len).
    const std::size_t len = std::size_t{f[1]} - (Masked ? 0x80 : 0x00);
    if (len > max_len) return false;
    if (!Sure && avail - at - hs < len) return false;
    __mmask64 m = _bzhi_u64(~std::uint64_t{0}, static_cast<unsigned>(len));  // len 64: all
    // Made in a mask register here: clang 14 under -fsanitize=address,undefined
    // otherwise takes the bits of the masked load's lanes from the general
    // register it came from, with a 64-to-32-bit copy it cannot emit
    // ("cannot emit physreg copy").
    __asm__("" : "+k"(m));
    __m512i x = _mm512_maskz_loadu_epi8(m, f + hs);
    if constexpr (Masked) {
        std::uint32_t k32;
        std::memcpy(&k32, f + 2, 4);
        x = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(x, _mm512_set1_epi32(static_cast<int>(k32))));
    }
    // Text with only 1- and 2-byte sequences is settled by the cheap exact
    // test (nothing open at the end: a lead at byte 63 is not taken);
    // anything else goes through the full check.
    if (binary == 0 && !utf8_simd::z_two_byte_closed(two, x) && !small_text_valid(x)) return false;
    if constexpr (Copy) {
        // The header: one masked load and store of hs bytes. Measured
        // against the alternatives: two or three scalar copies cost
        // ~1.2 ns more per 70-byte frame (the store port), a 512-bit
        // one ~0.4 ns (a line split more often); a 128-bit one costs
        // the same but crashes clang 14's back end under
        // -fsanitize=address,undefined ("cannot emit physreg copy").
        constexpr __mmask32 head_mask = Masked ? 0x3F : 0x03;
        _mm256_mask_storeu_epi8(dst + at, head_mask, _mm256_maskz_loadu_epi8(head_mask, f));
        _mm512_mask_storeu_epi8(dst + at + hs, m, x);
    } else if constexpr (Masked) {
        _mm512_mask_storeu_epi8(dst + at + hs, m, x);
    }
    if (lens) lens[count] = static_cast<std::uint8_t>(len + 0x80 - (binary << 7));  // text: | 0x80
    at += hs + len;
    return true;
}

template <bool Copy, bool Masked>
TETHER_WS_TARGET_AVX512 inline std::size_t small_frames_avx512_loop(std::uint8_t* dst, const std::uint8_t* src,
                                                                    std::size_t avail, std::size_t max_len,
                                                                    std::size_t max_bytes, std::uint8_t* lens,
                                                                    std::size_t max_frames) noexcept {
    constexpr std::size_t hs = Masked ? 6 : 2;
    std::size_t at = 0;
    if (max_frames == 0) return 0;
    std::size_t count = 0;
    // While a frame starts before `sure`, its header and the longest
    // payload taken are there and max_bytes is not reached: no checks of
    // the room left.
    const std::size_t room_end = avail >= hs + max_len ? avail - hs - max_len + 1 : 0;
    const std::size_t sure = room_end < max_bytes ? room_end : max_bytes;
    for (const utf8_simd::z_two_closed_ctx two = utf8_simd::z_two_closed_make(); at < sure;) {
        if (!small_frame_avx512<Copy, Masked, true>(dst, src, at, avail, max_len, lens, count, two)) return at;
        if (++count == max_frames) return at;
    }
    for (const utf8_simd::z_two_closed_ctx two = utf8_simd::z_two_closed_make(); avail - at >= hs && at < max_bytes;) {
        if (!small_frame_avx512<Copy, Masked, false>(dst, src, at, avail, max_len, lens, count, two)) break;
        if (++count == max_frames) break;
    }
    return at;
}

// A run of small whole messages, as a read of chat traffic holds hundreds
// of them: from src (a frame header, at most `avail` bytes there), take each
// frame that is FIN text or binary, masked exactly when `masked`, with a
// 7-bit length <= max_len (<= small_frame_max), whose payload is all
// there and, for text, valid UTF-8 on its own; write it unmasked to dst
// at the same offset; stop before the first frame that is anything else,
// or once max_bytes are taken or max_frames frames. Returns the bytes taken
// (whole frames). One call per run: the constants are set up once, and no
// per-message call or dispatch remains.
// Copy false (dst == src, in place): only the payloads of masked frames
// are stored; headers and the frame it stops before are left as they
// arrived (a frame is checked and unmasked after the load, stored only if
// valid, so the general path sees it exactly as it arrived).
// Copy true (dst and src do not overlap): each frame taken is written to
// dst, its header verbatim and its payload unmasked; nothing at or past
// dst + (the return value) is written: the caller copies the rest as it
// is. This folds the copy into the kernel's own pass (the recv buffer to
// the connection's buffer): it loads and stores every payload byte anyway,
// the header is one more masked store.
// lens[i] (unless lens is null) gets frame i's payload length, | 0x80 for
// text: the hand-out then reads each message's length from this table
// instead of from its header, whose place is known only once the message
// before it is handed out (a load on the critical path of every message).
// The loop body is the same for every frame; while the whole longest frame
// fits in what is left (nearly all of a run) it skips the room checks.
template <bool Copy>
TETHER_WS_TARGET_AVX512 inline std::size_t small_frames_avx512_run(std::uint8_t* dst, const std::uint8_t* src,
                                                                   std::size_t avail, bool masked, std::size_t max_len,
                                                                   std::size_t max_bytes, std::uint8_t* lens,
                                                                   std::size_t max_frames) noexcept {
    return masked ? small_frames_avx512_loop<Copy, true>(dst, src, avail, max_len, max_bytes, lens, max_frames)
                  : small_frames_avx512_loop<Copy, false>(dst, src, avail, max_len, max_bytes, lens, max_frames);
}

// In place: p is both src and dst.
TETHER_WS_TARGET_AVX512 inline std::size_t small_frames_avx512(std::uint8_t* p, std::size_t avail, bool masked,
                                                               std::size_t max_len, std::size_t max_bytes,
                                                               std::uint8_t* lens,
                                                               std::size_t max_frames) noexcept {
    return small_frames_avx512_run<false>(p, p, avail, masked, max_len, max_bytes, lens, max_frames);
}

// Copying: [src, src + avail), [dst, dst + avail) and the lens table must
// not overlap.
TETHER_WS_TARGET_AVX512 inline std::size_t small_frames_avx512(std::uint8_t* dst, const std::uint8_t* src,
                                                               std::size_t avail, bool masked, std::size_t max_len,
                                                               std::size_t max_bytes, std::uint8_t* lens,
                                                               std::size_t max_frames) noexcept {
    return small_frames_avx512_run<true>(dst, src, avail, masked, max_len, max_bytes, lens, max_frames);
}

// Unmask (Masked) and check [src, src + n), n >= 64, as the continuation of a
// stream whose pending state is `lead`, storing the result to p (Copy;
// otherwise src == p and an unmasked chunk is not stored). Two passes per
// fuse_block: XOR and store the block, and store the high nibbles of its bytes
// in a scratch block; then the full check of every vector, from memory (L1),
// with the bytes before it loaded at -1..-3 and the high nibbles of the vector
// and of the bytes before it loaded from the scratch block: unaligned loads go
// to the two load ports, where the register shuffles of a one-pass loop would
// queue on the single shuffle port behind the three table lookups, and each
// high nibble is computed once instead of twice (as the byte and as the byte
// before the next one: 2 of the check's 14 vector ALU operations). Measured in
// L1 on the AVX-512 Xeon: 10.0 -> 7.2 cycles per 64 bytes. (Text of 1- and
// 2-byte sequences does not come here unless it is invalid: fused_avx512
// below takes it in one pass.) The block's stores are long retired when its first
// vector is read back, so nothing waits on store forwarding. (Copying, pass 1
// reads the caller's bytes and pass 2 still checks what it stored, from L1: the
// copy into the input buffer and the check are then one pass over the data from
// memory.) True: no flag (valid up to a sequence left open at the end); false:
// flagged, and the whole range is unmasked (and copied) all the same.
inline constexpr std::size_t align_min = 4096;

template <bool Masked, bool Copy>
TETHER_WS_TARGET_AVX512 inline bool fused_pairs_avx512(std::uint8_t* p, const std::uint8_t* src, std::size_t n,
                                                       std::uint32_t k32, std::uint8_t lead) noexcept {
    namespace s = utf8_simd;
    const s::z_ctx c = s::z_make_ctx();
    const __m512i k = _mm512_set1_epi32(static_cast<int>(k32));
    __m512i first = s::z_load(src);
    if constexpr (Masked) first = _mm512_xor_si512(first, k);
    if constexpr (Masked || Copy) _mm512_storeu_si512(p, first);
    __m512i err = s::z_check_regs(c, _mm512_setzero_si512(), s::z_lead(lead), first);
    // Up to the next 64-byte boundary with a masked vector: from there on
    // no store (and no vector load) splits a cache line, which costs
    // about twice as much here; worth the extra vector only for larger
    // chunks (measured: ~3% faster at 16 KiB, ~5% slower at 1 KiB). The key
    // pattern rotates with the offset.
    std::size_t i = 64;
    if (n >= align_min) i += (std::size_t{0} - reinterpret_cast<std::uintptr_t>(p + 64)) & 63;
    if (i > 64) {
        const __mmask64 m = s::z_first(i - 64);
        if constexpr (Masked)
            _mm512_mask_storeu_epi8(p + 64, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + 64), k));
        else if constexpr (Copy)
            _mm512_mask_storeu_epi8(p + 64, m, _mm512_maskz_loadu_epi8(m, src + 64));
        err = s::z_check_part(c, err, p + 64, i - 64);
    }
    const __m512i ka = _mm512_set1_epi32(static_cast<int>(std::rotr(k32, static_cast<int>((i & 3) * 8))));
    bool clean = true;
    // High nibbles of the 64 bytes before the block, then of the block's,
    // placed 2 KiB apart from the data modulo 4 KiB: a load of the data
    // whose address matches a pending scratch store in its low 12 bits
    // would wait for it (4K aliasing), which, depending on where the stack
    // and the buffer happen to lie, cost up to 30% in one pass.
    alignas(64) std::uint8_t scratch[64 + fuse_block + 4096 - 64];
    std::uint8_t* const hi =
        scratch + ((reinterpret_cast<std::uintptr_t>(p) + i - 64 + 2048 - reinterpret_cast<std::uintptr_t>(scratch)) &
                   (4096 - 64));
    while (i < n) {
        const std::size_t e = n - i > fuse_block ? i + fuse_block : n;
        // Pass 1 over the block: XOR, store, and the high nibbles.
        if (clean) _mm512_store_si512(hi, s::z_high_nibbles(c, s::z_load(p + i - 64)));  // checked already
        std::size_t j = i;
        for (std::uint8_t* h = hi + 64; e - j >= 64; j += 64, h += 64) {
            __m512i x = s::z_load(src + j);
            if constexpr (Masked) x = _mm512_xor_si512(x, ka);
            if constexpr (Masked || Copy) _mm512_storeu_si512(p + j, x);
            if (clean) _mm512_store_si512(h, s::z_high_nibbles(c, x));
        }
        if (j < e) {
            const __mmask64 m = s::z_first(e - j);
            if constexpr (Masked)
                _mm512_mask_storeu_epi8(p + j, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + j), ka));
            else if constexpr (Copy)
                _mm512_mask_storeu_epi8(p + j, m, _mm512_maskz_loadu_epi8(m, src + j));
        }
        if (clean) {
            // Pass 2: the full check of every whole vector, from L1, and of
            // the partial last one.
            const std::uint8_t* h = hi + 64;
            // The check is bound by the vector ALUs, the copy by loads and
            // stores that miss L1: fetch the next block's source (and, when
            // copying, its destination) meanwhile, a line per vector, so
            // that pass 1 finds them in L1 (measured, 1 MiB copied in 16 KiB
            // chunks: 97 -> 67 us).
            const std::uint8_t* pf = src + e;
            std::uint8_t* pw = p + e;
            for (std::size_t q = i; q != j; q += 64, h += 64, pf += 64, pw += 64) {
                _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
                if constexpr (Copy) __builtin_prefetch(pw, 1, 3);
                err = s::z_check_nibbles(c, err, p + q, h);
            }
            if (j < e) err = s::z_check_part(c, err, p + j, e - j);
            if (s::z_any(err)) {
                if constexpr (!Masked && !Copy) return false;
                clean = false;
            }
        }
        i = e;
    }
    return clean && !s::z_any(err);
}

// The longest prefix of whole vectors of [src, src + n) that the two-byte
// test (utf8_simd::z_two_byte) settles, unmasked (Masked) and stored to p
// (Masked or Copy) in one pass: load, XOR, test in registers, store. The
// test is 4 vector operations and 3 moves to general registers per 64
// bytes, against 12 vector operations and a second pass for the pair
// rules, and it is exact for most text that is not plain ASCII (Latin,
// Greek, Cyrillic, Hebrew, Arabic: letters of two bytes). Returns the
// bytes it covered (a multiple of 64); nothing at or after that is stored,
// so the caller goes on there with the full check. carry: in, 1 if a
// 2-byte lead is open before src (0: nothing open); out, the same at the
// end of the prefix.
template <bool Masked, bool Copy>
TETHER_WS_TARGET_AVX512 inline std::size_t two_byte_prefix(std::uint8_t* p, const std::uint8_t* src, std::size_t n,
                                                           std::uint32_t k32, std::uint64_t& carry) noexcept {
    namespace s = utf8_simd;
    const s::z_two_ctx t = s::z_two_make();
    const __m512i k = _mm512_set1_epi32(static_cast<int>(k32));
    std::uint64_t cy = carry;
    std::size_t j = 0;
    for (; n - j >= 64; j += 64) {
        // (An address, not a pointer past the buffer: a prefetch never faults.)
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(src + j) + two_byte_prefetch),
                     _MM_HINT_T0);
        __m512i x = s::z_load(src + j);
        if constexpr (Masked) x = _mm512_xor_si512(x, k);
        std::uint64_t open;
        if (s::z_two_byte_bad(t, x, cy, open) != 0) break;  // before the store: in place, src is still masked
        cy = open;
        if constexpr (Masked || Copy) _mm512_storeu_si512(p + j, x);
    }
    carry = cy;
    return j;
}

// Unmask (Masked) and check [src, src + n), n >= 64, as the continuation of a
// stream whose pending state is `lead`, storing the result to p (Copy;
// otherwise src == p and an unmasked chunk is not stored). True: no flag
// (valid up to a sequence left open at the end); false: flagged, and the
// whole range is unmasked (and copied) all the same.
// Text of 1- and 2-byte sequences goes through two_byte_prefix, in one pass;
// from the first vector it does not settle (a 3- or 4-byte sequence, or
// invalid text), the rest of the chunk takes the pair rules
// (fused_pairs_avx512), in two passes per block. The end of the chunk
// (< 64 bytes) is settled in a masked vector, by the two-byte test if it
// passes, else by the pair rules on the stored bytes (the bytes before it
// are stored, in p, by then).
template <bool Masked, bool Copy>
TETHER_WS_TARGET_AVX512 inline bool fused_avx512(std::uint8_t* p, const std::uint8_t* src, std::size_t n,
                                                 std::uint32_t k32, std::uint8_t lead) noexcept {
    namespace s = utf8_simd;
    // Only "nothing open" and "one continuation owed" (state_lead's C2) are
    // states of the two-byte test.
    if (lead != 0 && lead != 0xC2) return fused_pairs_avx512<Masked, Copy>(p, src, n, k32, lead);
    std::uint64_t carry = lead != 0;
    const std::size_t j = two_byte_prefix<Masked, Copy>(p, src, n, k32, carry);
    if (j == n) return true;
    const std::uint8_t lead_j = carry ? 0xC2 : 0;
    // j is a multiple of 64, so the key pattern holds.
    if (n - j >= 64) return fused_pairs_avx512<Masked, Copy>(p + j, src + j, n - j, k32, lead_j);
    const __mmask64 m = s::z_first(n - j);  // j >= 64 here: p[j - 3 .. j - 1] are stored
    __m512i x = _mm512_maskz_loadu_epi8(m, src + j);
    if constexpr (Masked) x = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(x, _mm512_set1_epi32(static_cast<int>(k32))));
    if constexpr (Masked || Copy) _mm512_mask_storeu_epi8(p + j, m, x);
    std::uint64_t open;
    if ((s::z_two_byte_bad(s::z_two_make(), x, carry, open) & m) == 0) return true;
    return !s::z_any(s::z_check_part(s::z_make_ctx(), _mm512_setzero_si512(), p + j, n - j));
}

inline bool use_avx512() noexcept { return utf8_simd::current_level() == utf8_simd::level::avx512; }

// The fused loop, if this CPU runs the AVX2 UTF-8 kernel.
inline bool use_fused() noexcept { return utf8_simd::kernel() == &utf8_simd::kernel_avx2; }

// The fused loop over the multiple-of-32 prefix of [src, src + n) (n >= 32),
// stored to p (see fused_avx2); returns how many bytes it covered, or
// n + 1 when the text is invalid.
template <bool Copy>
inline std::size_t fused_prefix(std::uint8_t* p, const std::uint8_t* src, std::size_t n, const mask_key* key,
                                std::size_t phase, utf8_validator& v) noexcept {
    const std::size_t m = n & ~std::size_t{31};
    const bool clean = key ? fused_avx2<true, Copy>(p, src, m, key_pattern(*key, phase), v.pending_lead())
                           : fused_avx2<false, Copy>(p, src, m, 0, v.pending_lead());
    if (clean ? !v.resume_after_clean_run(p + m)
              : !v.feed(std::span<const std::uint8_t>(p, m)))  // the DFA places the error
        return n + 1;
    return m;
}

// ---- AVX2: runs of small frames ----

// small_frames_avx512's loop for CPUs with AVX2 only. AVX2 has no byte-masked
// loads or stores, so each frame loads 64 bytes whatever its length: a frame
// is taken only while its header and 64 bytes after it lie within `avail`
// (the run stops before the last ~70 bytes; the general path takes those),
// and the bytes past its length are zeroed in registers before the check.
// Stores: in place, the 64 bytes with the bytes past the length blended
// back as they were (the same values rewritten); copying, the header as 8
// bytes and the payload as 64, so bytes of dst past the frames taken, up to
// avail, may be overwritten (the caller copies the rest of the read over
// them). Otherwise the contract of small_frames_avx512.
alignas(32) inline constexpr std::array<std::uint8_t, 64> iota_64 = [] {
    std::array<std::uint8_t, 64> r{};
    for (std::size_t i = 0; i < 64; ++i) r[i] = static_cast<std::uint8_t>(i);
    return r;
}();

// The full check of one small payload a|b (bytes past its length zero):
// valid and complete. For text the two-byte test leaves open.
__attribute__((target("avx2"))) inline bool small_text_valid_avx2(__m256i a, __m256i b) noexcept {
    namespace s = utf8_simd;
    const s::avx_ctx c = s::avx_make_ctx();
    // Past the length the bytes are zeros, so a code point left open
    // before them breaks a pair rule; at length 64 the open-tail test does.
    const __m256i err = _mm256_or_si256(
        _mm256_or_si256(fused_check(c, _mm256_setzero_si256(), a), fused_check(c, a, b)),
        _mm256_subs_epu8(b, utf8_simd::avx_load(utf8_simd::open_tail_max.data())));
    return _mm256_testz_si256(err, err) != 0;
}

template <bool Copy, bool Masked>
__attribute__((target("avx2"))) inline std::size_t small_frames_avx2(std::uint8_t* dst, const std::uint8_t* src,
                                                                     std::size_t avail, std::size_t max_len,
                                                                     std::size_t max_bytes, std::uint8_t* lens,
                                                                     std::size_t max_frames) noexcept {
    namespace s = utf8_simd;
    constexpr std::size_t hs = Masked ? 6 : 2;
    const std::size_t room_end = avail >= hs + small_frame_max ? avail - hs - small_frame_max + 1 : 0;
    const std::size_t stop = room_end < max_bytes ? room_end : max_bytes;
    const s::avx_two_ctx two = s::avx_two_make();
    const __m256i iota0 = s::avx_load(iota_64.data());
    const __m256i iota1 = s::avx_load(iota_64.data() + 32);
    std::size_t at = 0;
    for (std::size_t count = 0; at < stop && count < max_frames; ++count) {
        const std::uint8_t* const f = src + at;
        // (An address, not a pointer past the buffer: a prefetch never faults.)
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(f) + small_run_prefetch),
                     _MM_HINT_T0);
        const std::size_t binary = std::size_t{f[0]} - 0x81;  // 0x81 text: 0, 0x82 binary: 1
        if (binary > 1) break;                                 // (below 0x81: wraps)
        const std::size_t len = std::size_t{f[1]} - (Masked ? 0x80 : 0x00);  // unmasked when masked: wraps
        if (len > max_len) break;
        const __m256i raw_a = s::avx_load(f + hs);
        const __m256i raw_b = s::avx_load(f + hs + 32);
        const __m256i n = _mm256_set1_epi8(static_cast<char>(len));
        const __m256i in_a = _mm256_cmpgt_epi8(n, iota0);  // len <= 64: no signed wrap
        const __m256i in_b = _mm256_cmpgt_epi8(n, iota1);
        __m256i a = raw_a;
        __m256i b = raw_b;
        if constexpr (Masked) {
            std::uint32_t k32;
            std::memcpy(&k32, f + 2, 4);
            const __m256i k = _mm256_set1_epi32(static_cast<int>(k32));
            a = _mm256_xor_si256(a, k);
            b = _mm256_xor_si256(b, k);
        }
        a = _mm256_and_si256(a, in_a);
        b = _mm256_and_si256(b, in_b);
        if (binary == 0) {
            std::uint64_t open;
            // A lead at the last byte is open: not taken (at length 64 the
            // test says so in `open`; shorter, the zero after it is no
            // continuation).
            if ((s::avx_two_byte_bad(two, a, b, 0, open) | open) != 0 && !small_text_valid_avx2(a, b)) break;
        }
        if constexpr (Copy) {
            std::uint64_t head;
            std::memcpy(&head, f, 8);
            std::memcpy(dst + at, &head, 8);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + at + hs), a);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + at + hs + 32), b);
        } else if constexpr (Masked) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + at + hs), _mm256_blendv_epi8(raw_a, a, in_a));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + at + hs + 32), _mm256_blendv_epi8(raw_b, b, in_b));
        }
        if (lens) lens[count] = static_cast<std::uint8_t>(len + 0x80 - (binary << 7));  // text: | 0x80
        at += hs + len;
    }
    return at;
}

#endif

// ---- runs of small frames, at the level in use ----

/// Whether small_frames() takes runs on this CPU (AVX-512BW or AVX2).
inline bool has_small_frames() noexcept {
#if TETHER_WS_UTF8_SIMD
    return use_avx512() || use_fused();
#else
    return false;
#endif
}

/// A run of small frames (see small_frames_avx512) at the level in use; 0
/// without one. The AVX2 form stops before the last ~70 bytes of `avail`
/// and, copying, may write dst up to avail (see small_frames_avx2).
/// In place: dst == src.
template <bool Copy>
inline std::size_t small_frames(std::uint8_t* dst, const std::uint8_t* src, std::size_t avail, bool masked,
                                std::size_t max_len, std::size_t max_bytes, std::uint8_t* lens,
                                std::size_t max_frames) noexcept {
#if TETHER_WS_UTF8_SIMD
    if (use_avx512()) return small_frames_avx512_run<Copy>(dst, src, avail, masked, max_len, max_bytes, lens, max_frames);
    if (use_fused())
        return masked ? small_frames_avx2<Copy, true>(dst, src, avail, max_len, max_bytes, lens, max_frames)
                      : small_frames_avx2<Copy, false>(dst, src, avail, max_len, max_bytes, lens, max_frames);
#endif
    (void)dst, (void)src, (void)avail, (void)masked, (void)max_len, (void)max_bytes, (void)lens, (void)max_frames;
    return 0;
}

// [src, src + n) unmasked (key null: as it is) into [p, p + n), without
// a check; in place (src == p) an unmasked range is left alone. Returns
// the phase after it.
template <bool Copy>
inline std::size_t unmask_to(std::uint8_t* p, const std::uint8_t* src, std::size_t n, const mask_key* key,
                             std::size_t phase) noexcept {
    if (key) return mask_copy(std::span<std::uint8_t>(p, n), std::span<const std::uint8_t>(src, n), *key, phase);
    if constexpr (Copy) std::memcpy(p, src, n);
    return phase;
}

// One body for both entry points below: Copy reads src and writes p, the
// in-place form has src == p.
template <bool Copy>
inline bool unmask_validate_to(std::uint8_t* p, const std::uint8_t* src, std::size_t n, const mask_key* key,
                               std::size_t phase, utf8_validator* v) noexcept {
    if (v && v->failed()) {  // sticky, as for feed(); the data is still unmasked
        unmask_to<Copy>(p, src, n, key, phase);
        return false;
    }
#if TETHER_WS_UTF8_SIMD
    if (v && n >= 64 && use_avx512()) {
        const bool clean = key ? fused_avx512<true, Copy>(p, src, n, key_pattern(*key, phase), v->pending_lead())
                               : fused_avx512<false, Copy>(p, src, n, 0, v->pending_lead());
        if (clean) return v->resume_after_clean_run(p + n);
        return v->feed(std::span<const std::uint8_t>(p, n));  // the DFA places the error
    }
    if (v && n >= 32 && use_fused()) {
        const std::size_t m = fused_prefix<Copy>(p, src, n, key, phase, *v);
        if (m > n) {
            // Invalid: the data after the prefix is still owed (see below).
            unmask_to<Copy>(p + n - n % 32, src + n - n % 32, n % 32, key, phase);
            return false;
        }
        p += m;
        src += m;
        n -= m;  // < 32 left; m is a multiple of 4, so the phase holds
        if (n == 0) return true;
    }
#endif
    if (n <= fuse_small) {
        std::uint64_t high = 0;
        if (key) {
            high = unmask_small(p, src, n, key_pattern(*key, phase));
        } else {
            if constexpr (Copy) std::memcpy(p, src, n);
            if (v) high = high_bits_small(p, n);
        }
        if (!v || (high == 0 && v->complete())) return true;
        return v->feed(std::span<const std::uint8_t>(p, n));
    }
    if (!v) {
        unmask_to<Copy>(p, src, n, key, phase);
        return true;
    }
    bool ok = true;
    while (n > 0) {
        const std::size_t b = n < fuse_block ? n : fuse_block;
        phase = unmask_to<Copy>(p, src, b, key, phase);
        ok = ok && v->feed(std::span<const std::uint8_t>(p, b));
        p += b;
        src += b;
        n -= b;
    }
    return ok;
}

/// Unmask [p, p + n) in place with `key` starting at key byte `phase`
/// (`key` null: the data is not masked) and, when `v` is given, validate it
/// as the continuation of what `v` has seen. Returns false on invalid UTF-8;
/// the whole range is unmasked either way.
inline bool unmask_validate(std::uint8_t* p, std::size_t n, const mask_key* key, std::size_t phase,
                            utf8_validator* v) noexcept {
    return unmask_validate_to<false>(p, p, n, key, phase, v);
}

/// The same, reading [src, src + n) and writing the result to [dst, dst + n)
/// (the two must not overlap): the copy into a connection's input buffer
/// and the unmask-and-check are then one pass over the data. All n bytes are
/// written, valid or not.
inline bool copy_unmask_validate(std::uint8_t* dst, const std::uint8_t* src, std::size_t n, const mask_key* key,
                                 std::size_t phase, utf8_validator* v) noexcept {
    return unmask_validate_to<true>(dst, src, n, key, phase, v);
}

}  // namespace tether::ws::detail
