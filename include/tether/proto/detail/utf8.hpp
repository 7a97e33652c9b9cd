// tether/proto/detail/utf8.hpp — UTF-8 validation with an ASCII fast path.
//
// JSON text exchanged between systems MUST be UTF-8 (RFC 8259 §8.1), and
// I-JSON forbids anything else (RFC 7493 §2.1). Almost every byte of a tether
// envelope is ASCII, so the scanners look at 16 bytes at a time (SSE2 when
// the target has it, else two 8-byte "SWAR" words) and only drop to the
// per-sequence check of RFC 3629 §4 when a byte has its high bit set. The
// SWAR tricks need a little-endian load so that the lowest set flag is the
// first byte in memory; on a big-endian target without SSE2 the byte loops
// run alone and are merely slower.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "../../ws/detail/utf8_simd.hpp"

namespace tether::proto {
namespace detail {

inline constexpr std::uint64_t k_ones = 0x0101010101010101ULL;
inline constexpr std::uint64_t k_highs = 0x8080808080808080ULL;
inline constexpr bool k_swar = std::endian::native == std::endian::little;

inline std::uint64_t load8(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

/// High bit set in every byte of `v` that is zero. Bytes above the first zero
/// may be flagged spuriously (borrow), which is harmless: callers only ever
/// look at the lowest flag.
constexpr std::uint64_t zero_bytes(std::uint64_t v) noexcept {
    return (v - k_ones) & ~v & k_highs;
}

/// Flags the bytes a JSON string scanner or writer must look at: '"', '\\',
/// controls below 0x20 (RFC 8259 §7) and non-ASCII (UTF-8 to validate).
constexpr std::uint64_t string_specials(std::uint64_t v) noexcept {
    return (zero_bytes(v ^ (k_ones * 0x22)) | zero_bytes(v ^ (k_ones * 0x5C)) |
            ((v - k_ones * 0x20) & ~v) | v) &
           k_highs;
}

/// Index (0..15) of the first string special among the 16 bytes at p, or 16
/// if there is none. The caller guarantees 16 readable bytes.
inline unsigned first_special16(const char* p) noexcept {
#if defined(__SSE2__)
    // One compare per class; the signed compare catches both < 0x20 and
    // >= 0x80 (negative as int8).
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
        _mm_cmpgt_epi8(_mm_set1_epi8(0x20), v));
    const auto bits = static_cast<unsigned>(_mm_movemask_epi8(m)) | 0x10000u;
    return static_cast<unsigned>(std::countr_zero(bits));
#else
    if constexpr (k_swar) {
        if (const std::uint64_t m = string_specials(load8(p)); m != 0)
            return static_cast<unsigned>(std::countr_zero(m) >> 3);
        if (const std::uint64_t m = string_specials(load8(p + 8)); m != 0)
            return 8 + static_cast<unsigned>(std::countr_zero(m) >> 3);
        return 16;
    }
    for (unsigned i = 0; i < 16; ++i) {
        const auto c = static_cast<unsigned char>(p[i]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return i;
    }
    return 16;
#endif
}

/// The string scanner's view of 16 bytes at p (the caller guarantees 16
/// readable bytes): bit i of `stop` is set when byte i ends a plain run
/// ('"', '\\' or a control below 0x20, RFC 8259 §7), bit i of `high` when
/// byte i is non-ASCII. Non-ASCII bytes do not stop the scan; they only
/// mean that the run must go through the UTF-8 check before it is accepted.
struct block_bits {
    unsigned stop;
    unsigned high;
};

/// Flags '"', '\\' and bytes below 0x20 (not non-ASCII). Exact up to the
/// first flag; a word without a true flag has none (borrows only start at a
/// flagged byte).
constexpr std::uint64_t string_stops(std::uint64_t v) noexcept {
    return (zero_bytes(v ^ (k_ones * 0x22)) | zero_bytes(v ^ (k_ones * 0x5C)) |
            ((v - k_ones * 0x20) & ~v)) &
           k_highs;
}

/// One bit per byte from a word of per-byte 0x80 flags (little-endian).
constexpr unsigned pack_flags8(std::uint64_t m) noexcept {
    return static_cast<unsigned>(((m >> 7) * 0x0002040810204081ULL) >> 49) & 0xFFu;
}

inline block_bits classify16(const char* p) noexcept {
#if defined(__SSE2__)
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // The signed compare with 0x20 also catches >= 0x80 (negative as int8);
    // those bits are cleared with `high` below.
    const __m128i m = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
        _mm_cmpgt_epi8(_mm_set1_epi8(0x20), v));
    const auto high = static_cast<unsigned>(_mm_movemask_epi8(v));
    return {static_cast<unsigned>(_mm_movemask_epi8(m)) & ~high, high};
#else
    if constexpr (k_swar) {
        const std::uint64_t a = load8(p), b = load8(p + 8);
        unsigned stop = 0;
        // Past the first flag of a word the SWAR flags may be spurious; keep
        // only the lowest, which is all the scanner looks at.
        if (const std::uint64_t s = string_stops(a); s != 0) stop = 1u << (std::countr_zero(s) >> 3);
        else if (const std::uint64_t t = string_stops(b); t != 0)
            stop = 1u << (8 + (std::countr_zero(t) >> 3));
        return {stop, pack_flags8(a & k_highs) | (pack_flags8(b & k_highs) << 8)};
    }
    block_bits r{0, 0};
    for (unsigned i = 0; i < 16; ++i) {
        const auto c = static_cast<unsigned char>(p[i]);
        if (c == '"' || c == '\\' || c < 0x20) r.stop |= 1u << i;
        if (c >= 0x80) r.high |= 1u << i;
    }
    return r;
#endif
}

/// First byte in [p, end) that is '"', '\\', < 0x20 or >= 0x80; `end` if none.
inline const char* find_string_special(const char* p, const char* end) noexcept {
    while (end - p >= 16) {
        const unsigned i = first_special16(p);
        if (i < 16) return p + i;
        p += 16;
    }
    if constexpr (k_swar) {
        while (end - p >= 8) {
            const std::uint64_t m = string_specials(load8(p));
            if (m != 0) return p + (std::countr_zero(m) >> 3);
            p += 8;
        }
    }
    for (; p != end; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return p;
    }
    return end;
}

/// Length of the well-formed non-ASCII UTF-8 sequence at p (*p >= 0x80), or
/// 0 when it is ill-formed or truncated. RFC 3629 §4: no overlong forms (C0,
/// C1, E0 80..9F, F0 80..8F), no UTF-16 surrogates (ED A0..BF), nothing above
/// U+10FFFF (F4 90.., F5..FF).
inline std::size_t utf8_sequence(const char* p, const char* end) noexcept {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    const auto left = static_cast<std::size_t>(end - p);
    const unsigned c = u[0];
    auto cont = [](unsigned b) noexcept { return (b & 0xC0u) == 0x80u; };
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (left >= 2 && cont(u[1])) ? 2 : 0;
    if (c < 0xF0) {
        if (left < 3) return 0;
        const unsigned lo = c == 0xE0 ? 0xA0u : 0x80u;
        const unsigned hi = c == 0xED ? 0x9Fu : 0xBFu;
        return (u[1] >= lo && u[1] <= hi && cont(u[2])) ? 3 : 0;
    }
    if (c < 0xF5) {
        if (left < 4) return 0;
        const unsigned lo = c == 0xF0 ? 0x90u : 0x80u;
        const unsigned hi = c == 0xF4 ? 0x8Fu : 0xBFu;
        return (u[1] >= lo && u[1] <= hi && cont(u[2]) && cont(u[3])) ? 4 : 0;
    }
    return 0;
}

/// Start of the first ill-formed or truncated UTF-8 sequence in [p, end),
/// or `end` when the whole range is well-formed (RFC 3629). Plain ASCII is
/// skipped eight bytes at a time where the target allows.
inline const char* find_invalid_utf8_scalar(const char* p, const char* end) noexcept {
    while (p != end) {
        if constexpr (k_swar) {
            while (end - p >= 8 && (load8(p) & k_highs) == 0) p += 8;
            if (p == end) break;
        }
        if (static_cast<unsigned char>(*p) < 0x80) {
            ++p;
            continue;
        }
        const std::size_t n = utf8_sequence(p, end);
        if (n == 0) return p;
        p += n;
    }
    return end;
}

#if TETHER_WS_UTF8_SIMD
/// The kernel for JSON strings: tether::ws's, except that at the avx512 level
/// it is the AVX2 one. JSON strings are short runs in the middle of a parse,
/// and there the 512-bit kernel measured slower: on the envelope bench
/// (150-400 B envelopes, one run of some 100-300 B each) the whole read took
/// about 11% longer with it than with the AVX2 kernel (368-374 ns against
/// 329-331 ns per envelope; the scalar DFA is far slower on such text). The
/// likely cause is the cost of bringing 512-bit execution up for a few
/// instructions between long stretches of scalar code, which long frames
/// (tether::ws) amortise and a 200-byte run does not.
inline ws::detail::utf8_simd::kernel_fn json_utf8_kernel() noexcept {
    namespace u = ws::detail::utf8_simd;
    const u::kernel_fn k = u::kernel();
    return k == &u::kernel_avx512 ? &u::kernel_avx2 : k;
}
#endif

/// find_invalid_utf8_scalar over [p, stop), with runs of 16 bytes or more
/// first through the vector kernel of tether::ws (SSSE3/AVX2, picked at run
/// time; see json_utf8_kernel). The kernel needs 64 bytes: a shorter run is checked as the 64-byte
/// window at p when the text has that many readable bytes (`limit`); the
/// bytes after `stop` cannot hide an error before it, because the byte at
/// `stop` is ASCII (the '"', '\\' or control that ended the run), so a code
/// point left open before it is a flagged pair inside the window. The kernel
/// only says "clean" or "flagged somewhere here": a clean run that ends the
/// window still has its last code point checked, and anything flagged is
/// rescanned by the scalar loop, which keeps every rejection and its
/// position the scalar loop's by construction.
inline const char* find_invalid_utf8(const char* p, const char* stop, const char* limit) noexcept {
#if TETHER_WS_UTF8_SIMD
    const auto n = static_cast<std::size_t>(stop - p);
    constexpr std::size_t window = ws::detail::utf8_simd::min_run;
    if (n >= 16) {
        const bool whole = n >= window;
        if (whole || static_cast<std::size_t>(limit - p) > window) {
            if (const auto k = json_utf8_kernel()) {
                const auto r =
                    k(reinterpret_cast<const std::uint8_t*>(p), whole ? n : window, 0);
                if (!r.error) {
                    if (!whole) return stop;
                    // Up to 3 continuation bytes back to the last lead (4 in
                    // a row would have been flagged).
                    const char* q = stop - 1;
                    for (int i = 0; i < 3 && (static_cast<unsigned char>(*q) & 0xC0) == 0x80; ++i)
                        --q;
                    return find_invalid_utf8_scalar(q, stop);
                }
            }
        }
    }
#else
    (void)limit;
#endif
    return find_invalid_utf8_scalar(p, stop);
}

/// Number of UTF-8 bytes that encode code point `cp` (cp <= 0x10FFFF).
constexpr std::size_t utf8_length(std::uint32_t cp) noexcept {
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/// Writes the UTF-8 encoding of `cp` to out; returns the byte count.
inline std::size_t encode_utf8(std::uint32_t cp, char* out) noexcept {
    if (cp < 0x80) {
        out[0] = static_cast<char>(cp);
        return 1;
    }
    if (cp < 0x800) {
        out[0] = static_cast<char>(0xC0 | (cp >> 6));
        out[1] = static_cast<char>(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = static_cast<char>(0xE0 | (cp >> 12));
        out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out[2] = static_cast<char>(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = static_cast<char>(0xF0 | (cp >> 18));
    out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[3] = static_cast<char>(0x80 | (cp & 0x3F));
    return 4;
}

/// Is `s` well-formed UTF-8 (RFC 3629)? (tether::ws has the incremental
/// validator for frames; this one serves whole strings.)
inline bool is_valid_utf8(std::string_view s) noexcept {
    const char* p = s.data();
    const char* const end = p + s.size();
    while (p != end) {
        if constexpr (detail::k_swar) {
            while (end - p >= 8 && (detail::load8(p) & detail::k_highs) == 0) p += 8;
            if (p == end) break;
        }
        if (static_cast<unsigned char>(*p) < 0x80) {
            ++p;
            continue;
        }
        const std::size_t n = detail::utf8_sequence(p, end);
        if (n == 0) return false;
        p += n;
    }
    return true;
}

}  // namespace detail
}  // namespace tether::proto
