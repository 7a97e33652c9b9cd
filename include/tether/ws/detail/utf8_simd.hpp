// tether/ws/detail/utf8_simd.hpp — vectorised UTF-8 check for non-ASCII text.
//
// Theory of operation (after Keiser & Lemire, "Validating UTF-8 In Less Than
// One Instruction Per Byte", 2021, the "lookup" algorithm):
// - Every rule of RFC 3629 §4 except "how many continuation bytes" is a rule
//   about two adjacent bytes, and each such rule is decided by three nibbles:
//   the high and low nibble of the first byte and the high nibble of the
//   second. So each rule gets one bit, three 16-entry tables give for each
//   nibble value the set of rules it can take part in, and the AND of three
//   `pshufb` lookups is the set of rules the pair breaks. The tables are
//   built below at compile time from the rule list, not written by hand.
// - The length rule: a byte must be a continuation (80..BF) exactly when it
//   is the 2nd or 3rd continuation of a sequence, i.e. when the byte two
//   back is E0..FF or the byte three back is F0..FF (the 1st continuation is
//   covered by the pair rules). The pair table marks "continuation after
//   continuation" in bit 7; XOR with "must be a 2nd/3rd continuation" is
//   zero exactly when the two agree.
// - The three bytes before each byte are loaded from memory at -1/-2/-3,
//   except in the first vector of a run: there they come from `alignr`
//   with a synthetic previous vector whose last byte is a lead that stands
//   for the validator's pending state (E1 = "two continuation bytes owed",
//   E0 = "owed, the first A0..BF", ...), so a run may start in the middle
//   of a code point and never reads before its start.
// - The kernel does not judge the last bytes of a run: a sequence left open
//   at the end is the caller's business (it derives the DFA state from the
//   last few bytes, which may be a perfectly valid partial code point at a
//   chunk boundary). Everything else it reports exactly: a run with no flag
//   is a valid continuation of the stream up to an open tail.
// - The flags are sound: a flagged byte is one no valid text can reach
//   (every rule only looks backwards), or the byte right after a C0, C1 or
//   F5..FF. So the caller could reject on a flag; it reruns the scalar DFA
//   from the flagged block instead, which keeps every rejection and its
//   position the DFA's by construction.
//
// Dispatch: the build uses the x86-64 baseline (SSE2, no pshufb), so the
// kernels are compiled with `target` attributes and picked at run time with
// __builtin_cpu_supports (which also checks that the OS saves YMM state),
// once, into an atomic function pointer. Other targets and compilers get no
// kernel and the caller uses its scalar DFA. With AVX-512BW/VL (and BMI2)
// the level is avx512: a 64-byte kernel for the validator, and the fused
// unmask kernels of unmask_utf8.hpp pick their 512-bit code by that level.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TETHER_WS_UTF8_SIMD 1
#include <atomic>
#include <immintrin.h>
#else
#define TETHER_WS_UTF8_SIMD 0
#endif

namespace tether::ws::detail::utf8_simd {

// ---------------------------------------------------------------------------
// Pair rules (portable: the tables are also checked exhaustively by tests).

// Rule bits. Bit 7 must be "continuation after continuation" (see above).
inline constexpr std::uint8_t too_short = 0x01;   // lead, then not a continuation
inline constexpr std::uint8_t too_long = 0x02;    // ASCII, then a continuation
inline constexpr std::uint8_t overlong_2 = 0x04;  // C0/C1 + continuation
inline constexpr std::uint8_t overlong_3 = 0x08;  // E0 80..9F
inline constexpr std::uint8_t surrogate = 0x10;   // ED A0..BF
inline constexpr std::uint8_t too_large = 0x20;   // F4..FF 90..BF
inline constexpr std::uint8_t f_8x = 0x40;        // F0 80..8F overlong; F5..FF 80..8F too large
inline constexpr std::uint8_t two_conts = 0x80;   // continuation, continuation

// A set of nibble values as a 16-bit mask.
constexpr std::uint16_t nibbles(unsigned lo, unsigned hi) noexcept {
    std::uint16_t m = 0;
    for (unsigned n = lo; n <= hi; ++n) m = static_cast<std::uint16_t>(m | (1u << n));
    return m;
}

struct pair_rule {
    std::uint8_t bit;
    std::uint16_t first_high;   // high nibbles of the first byte
    std::uint16_t first_low;    // low nibbles of the first byte
    std::uint16_t second_high;  // high nibbles of the second byte
};

// RFC 3629 §4: UTF8-2 = %xC2-DF UTF8-tail; UTF8-3 = %xE0 %xA0-BF UTF8-tail /
// %xE1-EC 2(UTF8-tail) / %xED %x80-9F UTF8-tail / %xEE-EF 2(UTF8-tail);
// UTF8-4 = %xF0 %x90-BF 2(UTF8-tail) / %xF1-F3 3(UTF8-tail) / %xF4 %x80-8F
// 2(UTF8-tail). Each rule is a product of three nibble sets, so one bit.
inline constexpr std::uint16_t any = 0xFFFF;
inline constexpr std::uint16_t ascii_hi = nibbles(0x0, 0x7);
inline constexpr std::uint16_t cont_hi = nibbles(0x8, 0xB);
inline constexpr std::uint16_t lead_hi = nibbles(0xC, 0xF);
inline constexpr std::array<pair_rule, 8> pair_rules{{
    {too_short, lead_hi, any, static_cast<std::uint16_t>(ascii_hi | lead_hi)},
    {too_long, ascii_hi, any, cont_hi},
    {overlong_2, nibbles(0xC, 0xC), nibbles(0x0, 0x1), cont_hi},
    {overlong_3, nibbles(0xE, 0xE), nibbles(0x0, 0x0), nibbles(0x8, 0x9)},
    {surrogate, nibbles(0xE, 0xE), nibbles(0xD, 0xD), nibbles(0xA, 0xB)},
    {too_large, nibbles(0xF, 0xF), nibbles(0x4, 0xF), nibbles(0x9, 0xB)},
    {f_8x, nibbles(0xF, 0xF), static_cast<std::uint16_t>(nibbles(0x0, 0x0) | nibbles(0x5, 0xF)),
     nibbles(0x8, 0x8)},
    {two_conts, cont_hi, any, cont_hi},
}};

enum class nibble_of { first_high, first_low, second_high };

constexpr std::array<std::uint8_t, 16> make_table(nibble_of which) noexcept {
    std::array<std::uint8_t, 16> t{};
    for (unsigned n = 0; n < 16; ++n) {
        for (const pair_rule& r : pair_rules) {
            const std::uint16_t set = which == nibble_of::first_high  ? r.first_high
                                      : which == nibble_of::first_low ? r.first_low
                                                                      : r.second_high;
            if (set & (1u << n)) t[n] = static_cast<std::uint8_t>(t[n] | r.bit);
        }
    }
    return t;
}

alignas(16) inline constexpr std::array<std::uint8_t, 16> first_high_table =
    make_table(nibble_of::first_high);
alignas(16) inline constexpr std::array<std::uint8_t, 16> first_low_table =
    make_table(nibble_of::first_low);
alignas(16) inline constexpr std::array<std::uint8_t, 16> second_high_table =
    make_table(nibble_of::second_high);

/// The rules the adjacent pair (a, b) breaks, as the kernels compute them.
constexpr std::uint8_t pair_flags(std::uint8_t a, std::uint8_t b) noexcept {
    return static_cast<std::uint8_t>(first_high_table[a >> 4] & first_low_table[a & 15] &
                                     second_high_table[b >> 4]);
}

// Spot checks; the exhaustive check is in tests/test_utf8.cpp.
static_assert(pair_flags(0x41, 0x80) == too_long);
static_assert(pair_flags(0xC2, 0x80) == 0 && pair_flags(0xC1, 0x80) == overlong_2);
static_assert(pair_flags(0xE0, 0x9F) == overlong_3 && pair_flags(0xE0, 0xA0) == 0);
static_assert(pair_flags(0xED, 0x9F) == 0 && pair_flags(0xED, 0xA0) == surrogate);
static_assert(pair_flags(0xF0, 0x8F) == f_8x && pair_flags(0xF0, 0x90) == 0);
static_assert(pair_flags(0xF4, 0x8F) == 0 && pair_flags(0xF4, 0x90) == too_large);
static_assert(pair_flags(0xBF, 0x80) == two_conts && pair_flags(0xDF, 0x41) == too_short);

/// What a kernel reports: bytes [p, p + clean) are valid as a continuation
/// of the stream (up to a sequence left open at the end). Without `error`,
/// clean == n; with it, the 1 to 64 bytes at p + clean hold a byte no
/// valid text continues from (at least 16 unless they end the run), and
/// clean is 0 or at least 4.
struct result {
    std::size_t clean;
    bool error;
};

/// p: data; n >= min_run: bytes to check (all of them); lead: 0 when p
/// starts a code point, else a lead byte that owes what the stream owes
/// (see the theory above). Reads nothing outside [p, p + n).
using kernel_fn = result (*)(const std::uint8_t* p, std::size_t n, std::uint8_t lead) noexcept;

inline constexpr std::size_t min_run = 40;

enum class level : std::uint8_t { none, ssse3, avx2, avx512 };

#if TETHER_WS_UTF8_SIMD

// Bytes n-3, n-2, n-1 of a vector that leave a sequence open at its end:
// F0..FF, E0..FF, C0..FF. subs(v, max) is non-zero exactly there.
alignas(32) inline constexpr std::array<std::uint8_t, 32> open_tail_max{
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xEF, 0xDF, 0xBF};

// The same for a 64-byte vector.
alignas(64) inline constexpr std::array<std::uint8_t, 64> open_tail_max_64{
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xEF, 0xDF, 0xBF};

// Both kernels: the first vector of a run gets the bytes before it from
// `alignr` with the synthetic lead; every later vector loads them again from
// memory at -1, -2, -3 (unaligned loads run on the load ports, while
// palignr/vperm2i128 compete with pshufb for the one shuffle port of most
// Intel cores: measured 5-10% faster than alignr here). The last vector is
// placed to end exactly at p + n, overlapping bytes already checked, which
// is harmless as every check is local to a byte and the three before it;
// so a run leaves no tail to the DFA. Errors are tested once per 64 bytes.

// ----------------------------- SSSE3, 16 bytes -----------------------------

struct sse_ctx {
    __m128i t1, t2, t3, low4, must_hi, ge_e0, ge_f0;
};

__attribute__((target("ssse3"))) inline __m128i sse_check(const sse_ctx& c, __m128i cur,
                                                          __m128i prev1, __m128i prev2,
                                                          __m128i prev3) noexcept {
    const __m128i hi1 = _mm_and_si128(_mm_srli_epi16(prev1, 4), c.low4);
    const __m128i lo1 = _mm_and_si128(prev1, c.low4);
    const __m128i hi2 = _mm_and_si128(_mm_srli_epi16(cur, 4), c.low4);
    const __m128i pair =
        _mm_and_si128(_mm_and_si128(_mm_shuffle_epi8(c.t1, hi1), _mm_shuffle_epi8(c.t2, lo1)),
                      _mm_shuffle_epi8(c.t3, hi2));
    // Bit 7 of subs(x, 0x60) is x >= E0; of subs(x, 0x70), x >= F0.
    const __m128i must23 = _mm_and_si128(
        _mm_or_si128(_mm_subs_epu8(prev2, c.ge_e0), _mm_subs_epu8(prev3, c.ge_f0)), c.must_hi);
    return _mm_xor_si128(pair, must23);
}

__attribute__((target("ssse3"))) inline __m128i sse_load(const std::uint8_t* p) noexcept {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// The vector at p, its previous bytes loaded from p - 3 .. p - 1.
__attribute__((target("ssse3"))) inline __m128i sse_check_at(const sse_ctx& c,
                                                             const std::uint8_t* p) noexcept {
    return sse_check(c, sse_load(p), sse_load(p - 1), sse_load(p - 2), sse_load(p - 3));
}

__attribute__((target("ssse3"))) inline bool sse_any(__m128i v) noexcept {
    return _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) != 0xFFFF;
}

__attribute__((target("ssse3"))) inline result kernel_ssse3(const std::uint8_t* p, std::size_t n,
                                                            std::uint8_t lead) noexcept {
    const sse_ctx c{_mm_load_si128(reinterpret_cast<const __m128i*>(first_high_table.data())),
                    _mm_load_si128(reinterpret_cast<const __m128i*>(first_low_table.data())),
                    _mm_load_si128(reinterpret_cast<const __m128i*>(second_high_table.data())),
                    _mm_set1_epi8(0x0F),
                    _mm_set1_epi8(static_cast<char>(0x80)),
                    _mm_set1_epi8(0x60),
                    _mm_set1_epi8(0x70)};
    const __m128i tail_max = sse_load(open_tail_max.data() + 16);
    {
        const __m128i prev = _mm_insert_epi16(_mm_setzero_si128(), lead << 8, 7);
        const __m128i cur = sse_load(p);
        if (sse_any(sse_check(c, cur, _mm_alignr_epi8(cur, prev, 15),
                              _mm_alignr_epi8(cur, prev, 14), _mm_alignr_epi8(cur, prev, 13))))
            return {0, true};
    }
    std::size_t i = 16;
    for (; n - i >= 64; i += 64) {
        const std::uint8_t* const q = p + i;
        const __m128i any = _mm_or_si128(_mm_or_si128(sse_load(q), sse_load(q + 16)),
                                         _mm_or_si128(sse_load(q + 32), sse_load(q + 48)));
        __m128i err;
        if (_mm_movemask_epi8(any) == 0) {
            // All ASCII: the only possible error is a sequence left open
            // just before it.
            err = _mm_subs_epu8(sse_load(q - 16), tail_max);
        } else {
            err = _mm_or_si128(_mm_or_si128(sse_check_at(c, q), sse_check_at(c, q + 16)),
                               _mm_or_si128(sse_check_at(c, q + 32), sse_check_at(c, q + 48)));
        }
        if (sse_any(err)) return {i, true};
    }
    for (; i < n; i += 16) {
        if (n - i < 16) i = n - 16;  // overlap the end
        if (sse_any(sse_check_at(c, p + i))) return {i, true};
    }
    return {n, false};
}

// ------------------------------ AVX2, 32 bytes -----------------------------

struct avx_ctx {
    __m256i t1, t2, t3, low4, must_hi, ge_e0, ge_f0;
};

__attribute__((target("avx2"))) inline __m256i avx_check(const avx_ctx& c, __m256i cur,
                                                         __m256i prev1, __m256i prev2,
                                                         __m256i prev3) noexcept {
    const __m256i hi1 = _mm256_and_si256(_mm256_srli_epi16(prev1, 4), c.low4);
    const __m256i lo1 = _mm256_and_si256(prev1, c.low4);
    const __m256i hi2 = _mm256_and_si256(_mm256_srli_epi16(cur, 4), c.low4);
    const __m256i pair = _mm256_and_si256(
        _mm256_and_si256(_mm256_shuffle_epi8(c.t1, hi1), _mm256_shuffle_epi8(c.t2, lo1)),
        _mm256_shuffle_epi8(c.t3, hi2));
    const __m256i must23 = _mm256_and_si256(
        _mm256_or_si256(_mm256_subs_epu8(prev2, c.ge_e0), _mm256_subs_epu8(prev3, c.ge_f0)),
        c.must_hi);
    return _mm256_xor_si256(pair, must23);
}

__attribute__((target("avx2"))) inline __m256i avx_load(const std::uint8_t* p) noexcept {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

__attribute__((target("avx2"))) inline __m256i avx_check_at(const avx_ctx& c,
                                                            const std::uint8_t* p) noexcept {
    return avx_check(c, avx_load(p), avx_load(p - 1), avx_load(p - 2), avx_load(p - 3));
}

// The two-byte test of z_two_byte (see there; the same rules and the same
// carry), for the 64 bytes of two AVX2 vectors a, b, in compares that AVX2
// has: signed ones, so a byte range test is one add and one signed compare
// (x - 0xC2 below 30 unsigned iff x - 0x42 below -98 signed), and 80..BF are
// the bytes below (int8)0xC0. Returns the bytes it does not settle (0:
// passes); lead_out as z_two_byte's.
struct avx_two_ctx {
    __m256i m42, n98, c0;
};
__attribute__((target("avx2"))) inline avx_two_ctx avx_two_make() noexcept {
    return {_mm256_set1_epi8(static_cast<char>(0xBE)), _mm256_set1_epi8(-98), _mm256_set1_epi8(-64)};
}
__attribute__((target("avx2"))) inline std::uint32_t avx_mask(__m256i v) noexcept {
    return static_cast<std::uint32_t>(_mm256_movemask_epi8(v));
}
__attribute__((target("avx2"))) inline std::uint64_t avx_two_byte_bad(const avx_two_ctx& t, __m256i a, __m256i b,
                                                                      std::uint64_t carry_in,
                                                                      std::uint64_t& lead_out) noexcept {
    const std::uint64_t hi = avx_mask(a) | std::uint64_t{avx_mask(b)} << 32;
    const std::uint64_t lead = avx_mask(_mm256_cmpgt_epi8(t.n98, _mm256_add_epi8(a, t.m42))) |
                               std::uint64_t{avx_mask(_mm256_cmpgt_epi8(t.n98, _mm256_add_epi8(b, t.m42)))} << 32;
    const std::uint64_t cont = avx_mask(_mm256_cmpgt_epi8(t.c0, a)) |
                               std::uint64_t{avx_mask(_mm256_cmpgt_epi8(t.c0, b))} << 32;
    lead_out = lead >> 63;
    return ((lead | cont) ^ hi) | (((lead << 1) | carry_in) ^ cont);
}

__attribute__((target("avx2"))) inline __m256i avx_table(
    const std::array<std::uint8_t, 16>& t) noexcept {
    return _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(t.data())));
}

// The check's tables and constants (as z_make_ctx for AVX-512).
__attribute__((target("avx2"))) inline avx_ctx avx_make_ctx() noexcept {
    return {avx_table(first_high_table),
            avx_table(first_low_table),
            avx_table(second_high_table),
            _mm256_set1_epi8(0x0F),
            _mm256_set1_epi8(static_cast<char>(0x80)),
            _mm256_set1_epi8(0x60),
            _mm256_set1_epi8(0x70)};
}

__attribute__((target("avx2"))) inline result kernel_avx2(const std::uint8_t* p, std::size_t n,
                                                          std::uint8_t lead) noexcept {
    const avx_ctx c = avx_make_ctx();
    const __m256i tail_max = avx_load(open_tail_max.data());
    {
        // alignr works per 128-bit lane: give it [prev.hi, cur.lo] as the
        // "previous" half so lane 0 sees the end of prev and lane 1 the end
        // of cur's low lane.
        const __m256i prev =
            _mm256_insert_epi8(_mm256_setzero_si256(), static_cast<char>(lead), 31);
        const __m256i cur = avx_load(p);
        const __m256i mid = _mm256_permute2x128_si256(prev, cur, 0x21);
        const __m256i err =
            avx_check(c, cur, _mm256_alignr_epi8(cur, mid, 15), _mm256_alignr_epi8(cur, mid, 14),
                      _mm256_alignr_epi8(cur, mid, 13));
        if (!_mm256_testz_si256(err, err)) return {0, true};
    }
    std::size_t i = 32;
    for (; n - i >= 64; i += 64) {
        const std::uint8_t* const q = p + i;
        __m256i err;
        if (_mm256_movemask_epi8(_mm256_or_si256(avx_load(q), avx_load(q + 32))) == 0)
            err = _mm256_subs_epu8(avx_load(q - 32), tail_max);
        else
            err = _mm256_or_si256(avx_check_at(c, q), avx_check_at(c, q + 32));
        if (!_mm256_testz_si256(err, err)) return {i, true};
    }
    for (; i < n; i += 32) {
        if (n - i < 32) i = n - 32;  // overlap the end
        const __m256i err = avx_check_at(c, p + i);
        if (!_mm256_testz_si256(err, err)) return {i, true};
    }
    return {n, false};
}

// --------------------------- AVX-512BW, 64 bytes --------------------------
// The same algorithm in 512-bit registers (AVX-512BW for byte shuffles,
// VL for nothing here but required by the fused kernels that share the
// level): half the instructions per byte of the AVX2 kernel, which is
// bound by the front end (~20 instructions per 32 bytes), not by a port.
// The three-way ANDs and the final XOR-OR are single vpternlogd.

#define TETHER_WS_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,bmi2")))

struct z_ctx {
    __m512i t1, t2, t3, low4, must_hi, ge_e0, ge_f0;
};

// The tables repeated in each 128-bit lane (vpshufb looks up per lane).
// Loaded, not broadcast: GCC 12's _mm512_broadcast_i32x4 trips
// -Wuninitialized inside its own header.
constexpr std::array<std::uint8_t, 64> lanes4(const std::array<std::uint8_t, 16>& t) noexcept {
    std::array<std::uint8_t, 64> r{};
    for (std::size_t i = 0; i < 64; ++i) r[i] = t[i % 16];
    return r;
}
alignas(64) inline constexpr std::array<std::uint8_t, 64> first_high_table_64 = lanes4(first_high_table);
alignas(64) inline constexpr std::array<std::uint8_t, 64> first_low_table_64 = lanes4(first_low_table);
alignas(64) inline constexpr std::array<std::uint8_t, 64> second_high_table_64 = lanes4(second_high_table);

// Keep the constants in registers across a loop: GCC otherwise sinks
// their loads into the (conditional) check and repeats them per message.
TETHER_WS_TARGET_AVX512 inline void z_pin(z_ctx& c) noexcept {
    __asm__("" : "+v"(c.t1), "+v"(c.t2), "+v"(c.t3), "+v"(c.low4), "+v"(c.must_hi), "+v"(c.ge_e0), "+v"(c.ge_f0));
}

TETHER_WS_TARGET_AVX512 inline __m512i z_load(const std::uint8_t* p) noexcept {
    return _mm512_loadu_si512(reinterpret_cast<const void*>(p));
}

TETHER_WS_TARGET_AVX512 inline z_ctx z_make_ctx() noexcept {
    return {z_load(first_high_table_64.data()),
            z_load(first_low_table_64.data()),
            z_load(second_high_table_64.data()),
            _mm512_set1_epi8(0x0F),
            _mm512_set1_epi8(static_cast<char>(0x80)),
            _mm512_set1_epi8(0x60),
            _mm512_set1_epi8(0x70)};
}

// err | (pair rules broken) ^ (must-be-2nd/3rd-continuation), per byte.
TETHER_WS_TARGET_AVX512 inline __m512i z_check(const z_ctx& c, __m512i err, __m512i cur, __m512i prev1,
                                               __m512i prev2, __m512i prev3) noexcept {
    const __m512i hi1 = _mm512_and_si512(_mm512_srli_epi16(prev1, 4), c.low4);
    const __m512i lo1 = _mm512_and_si512(prev1, c.low4);
    const __m512i hi2 = _mm512_and_si512(_mm512_srli_epi16(cur, 4), c.low4);
    // 0x80: a & b & c; 0xA8: (a | b) & c; 0xF6: a | (b ^ c).
    const __m512i pair = _mm512_ternarylogic_epi32(_mm512_shuffle_epi8(c.t1, hi1), _mm512_shuffle_epi8(c.t2, lo1),
                                                   _mm512_shuffle_epi8(c.t3, hi2), 0x80);
    const __m512i must23 = _mm512_ternarylogic_epi32(_mm512_subs_epu8(prev2, c.ge_e0),
                                                     _mm512_subs_epu8(prev3, c.ge_f0), c.must_hi, 0xA8);
    return _mm512_ternarylogic_epi32(err, pair, must23, 0xF6);
}

// The high nibble of each byte of x (as the check's table index).
TETHER_WS_TARGET_AVX512 inline __m512i z_high_nibbles(const z_ctx& c, __m512i x) noexcept {
    return _mm512_and_si512(_mm512_srli_epi16(x, 4), c.low4);
}

// z_check() of the vector at p, the bytes before it loaded from
// p - 3 .. p - 1, and the high nibbles of p[-1 .. 63] loaded from
// h - 1 .. h + 63 (stored by z_high_nibbles), not computed again.
TETHER_WS_TARGET_AVX512 inline __m512i z_check_nibbles(const z_ctx& c, __m512i err, const std::uint8_t* p,
                                                       const std::uint8_t* h) noexcept {
    const __m512i lo1 = _mm512_and_si512(z_load(p - 1), c.low4);
    // 0x80: a & b & c; 0xA8: (a | b) & c; 0xF6: a | (b ^ c), as in z_check.
    const __m512i pair = _mm512_ternarylogic_epi32(_mm512_shuffle_epi8(c.t1, z_load(h - 1)),
                                                   _mm512_shuffle_epi8(c.t2, lo1),
                                                   _mm512_shuffle_epi8(c.t3, z_load(h)), 0x80);
    const __m512i must23 = _mm512_ternarylogic_epi32(_mm512_subs_epu8(z_load(p - 2), c.ge_e0),
                                                     _mm512_subs_epu8(z_load(p - 3), c.ge_f0), c.must_hi, 0xA8);
    return _mm512_ternarylogic_epi32(err, pair, must23, 0xF6);
}

// The vector at p, the bytes before it loaded from p - 3 .. p - 1.
TETHER_WS_TARGET_AVX512 inline __m512i z_check_at(const z_ctx& c, __m512i err, const std::uint8_t* p) noexcept {
    return z_check(c, err, z_load(p), z_load(p - 1), z_load(p - 2), z_load(p - 3));
}

// The vector `cur`, the bytes before it taken from the vector `prev` that
// precedes it (registers only: vpalignr works per 128-bit lane, so it gets
// [prev.lane3, cur.lane0..2] as the "previous" half).
TETHER_WS_TARGET_AVX512 inline __m512i z_check_regs(const z_ctx& c, __m512i err, __m512i prev,
                                                    __m512i cur) noexcept {
    // (maskz form: GCC 12's plain _mm512_alignr_epi64 trips -Wuninitialized.)
    const __m512i mid = _mm512_maskz_alignr_epi64(0xFF, cur, prev, 6);
    return z_check(c, err, cur, _mm512_alignr_epi8(cur, mid, 15), _mm512_alignr_epi8(cur, mid, 14),
                   _mm512_alignr_epi8(cur, mid, 13));
}

// The first n < 64 bytes at p (p[-3..-1] readable), the rest zero and
// its flags dropped.
TETHER_WS_TARGET_AVX512 inline __m512i z_check_part(const z_ctx& c, __m512i err, const std::uint8_t* p,
                                                    std::size_t n) noexcept {
    const __mmask64 m = (__mmask64{1} << n) - 1;
    return _mm512_mask_mov_epi8(err, m,
                                z_check(c, err, _mm512_maskz_loadu_epi8(m, p), _mm512_maskz_loadu_epi8(m, p - 1),
                                        _mm512_maskz_loadu_epi8(m, p - 2), _mm512_maskz_loadu_epi8(m, p - 3)));
}

// A check that is exact for text whose only non-ASCII bytes form 2-byte
// sequences (Latin, Greek, Cyrillic, Hebrew, Arabic, ... and ASCII): then
// the 64 bytes of x are valid iff every byte >= 0x80 is a lead C2..DF or a
// continuation 80..BF, and the continuations are exactly the bytes after
// the leads (C0/C1 are overlong leads, RFC 3629 §4; a 2-byte sequence has
// no other rule). No table lookup and no previous bytes: three compares
// into masks. A 3- or 4-byte sequence, C0/C1, F5..FF or a stray
// continuation never passes, and the caller then runs the full check, so
// passing proves validity and failing proves nothing.
// carry_in: 1 if the byte just before x is a 2-byte lead (x[0] must then be
// its continuation) and nothing else is open there; 0 if nothing is open.
// lead_out: 1 if x[63] is a 2-byte lead (left open).
struct z_two_ctx {
    __m512i c2, n30, c0;
};
// The constants, in registers across a loop (see z_pin).
TETHER_WS_TARGET_AVX512 inline z_two_ctx z_two_make() noexcept {
    z_two_ctx t{_mm512_set1_epi8(static_cast<char>(0xC2)), _mm512_set1_epi8(30),
                _mm512_set1_epi8(static_cast<char>(0xC0))};
    __asm__("" : "+v"(t.c2), "+v"(t.n30), "+v"(t.c0));
    return t;
}
// The bytes the test does not settle (0: passes), one bit per byte; one
// value to test, so a loop over vectors ends on one branch. For a partial
// vector (bytes past it zero), bad & (its mask): a lead at its last byte
// then stays open as lead_out would say at byte 63.
TETHER_WS_TARGET_AVX512 inline std::uint64_t z_two_byte_bad(const z_two_ctx& t, __m512i x, std::uint64_t carry_in,
                                                            std::uint64_t& lead_out) noexcept {
    const std::uint64_t hi = _mm512_movepi8_mask(x);
    const std::uint64_t lead = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(x, t.c2), t.n30);
    const std::uint64_t cont = _mm512_mask_cmplt_epu8_mask(hi, x, t.c0);
    lead_out = lead >> 63;
    return ((lead | cont) ^ hi) | (((lead << 1) | carry_in) ^ cont);
}
TETHER_WS_TARGET_AVX512 inline bool z_two_byte(const z_two_ctx& t, __m512i x, std::uint64_t carry_in,
                                               std::uint64_t& lead_out) noexcept {
    return z_two_byte_bad(t, x, carry_in, lead_out) == 0;
}

// z_two_byte(t, x, 0, o) && o == 0 (valid, nothing open at the end), the
// test kept in mask registers and ended by one kortest: the general-register
// form moves five masks out (kmov k->r, all on one port) and compares there.
// cont is taken by a signed compare (80..BF are exactly the bytes below
// (int8)0xC0). A lead at byte 63 is not a lead here (its limit in n30 is 0,
// from a vector: a mask constant would be rebuilt in a k register per call),
// so it fails as a byte >= C0 that is not a (closed) lead. Valid iff the
// bytes >= C0 are exactly the leads and the continuations exactly the bytes
// after them. The constants are not pinned (z_pin): pinned, g++ 12 kept
// them on the stack, as memory operands in the loop.
struct z_two_closed_ctx {
    __m512i c2, n30, c0;
};
alignas(64) inline constexpr std::array<std::uint8_t, 64> two_closed_n30 = [] {
    std::array<std::uint8_t, 64> r{};
    for (std::size_t i = 0; i < 63; ++i) r[i] = 30;
    return r;
}();
TETHER_WS_TARGET_AVX512 inline z_two_closed_ctx z_two_closed_make() noexcept {
    return {_mm512_set1_epi8(static_cast<char>(0xC2)), z_load(two_closed_n30.data()),
            _mm512_set1_epi8(static_cast<char>(0xC0))};
}
TETHER_WS_TARGET_AVX512 inline bool z_two_byte_closed(const z_two_closed_ctx& t, __m512i x) noexcept {
    const __mmask64 lead = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(x, t.c2), t.n30);
    const __mmask64 ge_c0 = _mm512_cmpge_epu8_mask(x, t.c0);
    const __mmask64 cont = _mm512_cmplt_epi8_mask(x, t.c0);
    return _kortestz_mask64_u8(_kxor_mask64(ge_c0, lead), _kxor_mask64(_kshiftli_mask64(lead, 1), cont)) != 0;
}

TETHER_WS_TARGET_AVX512 inline bool z_any(__m512i v) noexcept { return _mm512_test_epi64_mask(v, v) != 0; }

// A vector whose last byte is `lead` (the pending state) and the rest zero.
TETHER_WS_TARGET_AVX512 inline __m512i z_lead(std::uint8_t lead) noexcept {
    return _mm512_maskz_set1_epi8(__mmask64{1} << 63, static_cast<char>(lead));
}

// Bytes [0, n) of a vector (n <= 64).
TETHER_WS_TARGET_AVX512 inline __mmask64 z_first(std::size_t n) noexcept {
    return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
}

TETHER_WS_TARGET_AVX512 inline result kernel_avx512(const std::uint8_t* p, std::size_t n,
                                                    std::uint8_t lead) noexcept {
    const z_ctx c = z_make_ctx();
    const __m512i zero = _mm512_setzero_si512();
    // n >= min_run (40) may be less than a vector: the first vector is a
    // masked load (zeros past the end, errors there ignored).
    {
        const __mmask64 m = z_first(n);
        const __m512i err = z_check_regs(c, zero, z_lead(lead), _mm512_maskz_loadu_epi8(m, p));
        if (_mm512_mask_test_epi8_mask(m, err, err) != 0) return {0, true};
    }
    if (n <= 64) return {n, false};
    std::size_t i = 64;
    for (; n - i >= 128; i += 128) {
        const std::uint8_t* const q = p + i;
        if (z_any(z_check_at(c, z_check_at(c, zero, q), q + 64)))  // which vector, then
            return {z_any(z_check_at(c, zero, q)) ? i : i + 64, true};
    }
    for (; i < n; i += 64) {
        if (n - i >= 64) {
            if (z_any(z_check_at(c, zero, p + i))) return {i, true};
        } else if (z_any(z_check_part(c, zero, p + i, n - i))) {
            return {i, true};
        }
    }
    return {n, false};
}

// ------------------------------- dispatch ----------------------------------

inline level best_supported() noexcept {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2"))
        return level::avx512;
    if (__builtin_cpu_supports("avx2")) return level::avx2;
    if (__builtin_cpu_supports("ssse3")) return level::ssse3;
    return level::none;
}

inline kernel_fn kernel_for(level l) noexcept {
    switch (l) {
        case level::avx512: return &kernel_avx512;
        case level::avx2: return &kernel_avx2;
        case level::ssse3: return &kernel_ssse3;
        default: return nullptr;
    }
}

// Constant-initialised (no static-init order issue, no guard variable);
// `unresolved` until the first non-ASCII run asks.
inline result kernel_unresolved(const std::uint8_t*, std::size_t, std::uint8_t) noexcept {
    return {0, false};
}
inline constinit std::atomic<kernel_fn> active{&kernel_unresolved};
// The level of `active`, for the fused unmask kernels (unmask_utf8.hpp),
// which pick their own code by level; `unresolved` as above.
inline constexpr std::uint8_t level_unresolved = 0xFF;
inline constinit std::atomic<std::uint8_t> active_level{level_unresolved};

inline void resolve() noexcept {
    const level l = best_supported();
    active_level.store(static_cast<std::uint8_t>(l), std::memory_order_relaxed);
    active.store(kernel_for(l), std::memory_order_relaxed);
}

/// The kernel to use, or nullptr for "scalar only". One relaxed load once
/// resolved; the first call probes the CPU (racing threads store the same).
inline kernel_fn kernel() noexcept {
    kernel_fn k = active.load(std::memory_order_relaxed);
    if (k == &kernel_unresolved) [[unlikely]] {
        resolve();
        k = active.load(std::memory_order_relaxed);
    }
    return k;
}

/// The level in use (what kernel() runs), resolved on first use.
inline level current_level() noexcept {
    std::uint8_t l = active_level.load(std::memory_order_relaxed);
    if (l == level_unresolved) [[unlikely]] {
        resolve();
        l = active_level.load(std::memory_order_relaxed);
    }
    return static_cast<level>(l);
}

#else  // !TETHER_WS_UTF8_SIMD

inline level best_supported() noexcept { return level::none; }
inline kernel_fn kernel() noexcept { return nullptr; }
inline level current_level() noexcept { return level::none; }

#endif

/// Test hook: use at most `l` (clamped to what the CPU has); level::none
/// forces the scalar DFA. Returns the level now in use. Not for production
/// code paths: it changes behaviour for every validator in the process.
inline level set_max_level(level l) noexcept {
    const level best = best_supported();
    const level use = static_cast<std::uint8_t>(l) < static_cast<std::uint8_t>(best) ? l : best;
#if TETHER_WS_UTF8_SIMD
    active_level.store(static_cast<std::uint8_t>(use), std::memory_order_relaxed);
    active.store(kernel_for(use), std::memory_order_relaxed);
#endif
    return use;
}

}  // namespace tether::ws::detail::utf8_simd
