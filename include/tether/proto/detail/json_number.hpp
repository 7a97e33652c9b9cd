// tether/proto/detail/json_number.hpp — JSON numbers: the RFC 8259 §6
// grammar, the I-JSON range rule, and the protocol's "whole number" rule.
//
// Range (RFC 7493 §2.2): a number whose magnitude would round to infinity as
// an IEEE 754 double is rejected (1e400). Underflow is accepted: 1e-400 is a
// legal double (it rounds to zero), and every mainstream parser accepts it.
// The check is exact and needs no floating point: a value is finite iff it is
// below 2^1024 - 2^970 (DBL_MAX plus half an ulp; the tie rounds to even,
// which is the overflowing side). Anything with a decimal exponent below 308
// is obviously fine, above 308 obviously not; at 308 the significant digits
// are compared with that boundary's 309 decimal digits.
//
// Whole numbers (PROTOCOL.md §7: integers are whole numbers 0..2^53-1): the
// value, taken exactly as the decimal text says, must be an integer in that
// range. So 42, 42.0, 4.2e1 and 4200e-2 all mean 42, as they do to a
// JavaScript peer; 42.5, 1e-1, -1 and 9007199254740992 are rejected. "-0" is
// zero, which is in range. No rounding through double ever happens, so
// 9007199254740991.5 (which a double would round to an even integer) is
// rejected too.
#pragma once

#include "json_lex.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tether::proto::detail {

/// The pieces of a number token. Digits are the raw text ranges.
struct number_parts {
    const char* int_begin = nullptr;
    const char* int_end = nullptr;
    const char* frac_begin = nullptr;  ///< empty range when there is no '.'
    const char* frac_end = nullptr;
    std::int64_t exponent = 0;  ///< saturated at +-k_exp_cap
    bool negative = false;
    bool has_exponent = false;
};

inline constexpr std::int64_t k_exp_cap = 1'000'000'000'000'000;  // 1e15

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// 2^1024 - 2^970: the smallest magnitude that rounds to +inf.
inline constexpr std::string_view k_overflow_digits =
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977"
    "587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845"
    "817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559"
    "699508093042880177904174497792";

/// RFC 8259 §6: number = [ minus ] int [ frac ] [ exp ]; int = zero /
/// ( digit1-9 *DIGIT ); frac = "." 1*DIGIT; exp = e [ minus / plus ] 1*DIGIT.
/// p points at '-' or a digit; on success it is left after the token.
inline json_error lex_number(const char*& pos, const char* end, number_parts& n) noexcept {
    const char* p = pos;
    n = number_parts{};
    if (*p == '-') {
        n.negative = true;
        ++p;
        if (p == end) {
            pos = p;
            return json_error::unexpected_end;
        }
    }
    n.int_begin = p;
    if (*p == '0') {
        ++p;
    } else if (*p >= '1' && *p <= '9') {
        ++p;
        while (p != end && is_digit(*p)) ++p;
    } else {
        pos = p;
        return json_error::bad_number;
    }
    n.int_end = p;
    n.frac_begin = n.frac_end = p;
    if (p != end && *p == '.') {
        ++p;
        n.frac_begin = p;
        while (p != end && is_digit(*p)) ++p;
        n.frac_end = p;
        if (n.frac_begin == p) {
            pos = p;
            return p == end ? json_error::unexpected_end : json_error::bad_number;
        }
    }
    if (p != end && (*p == 'e' || *p == 'E')) {
        n.has_exponent = true;
        ++p;
        bool neg = false;
        if (p != end && (*p == '+' || *p == '-')) neg = *p++ == '-';
        const char* d = p;
        std::int64_t v = 0;
        while (p != end && is_digit(*p)) {
            if (v < k_exp_cap) v = v * 10 + (*p - '0');
            ++p;
        }
        if (d == p) {
            pos = p;
            return p == end ? json_error::unexpected_end : json_error::bad_number;
        }
        n.exponent = neg ? -v : v;
    }
    // A leading zero followed by more digits ("01") ends the token early; the
    // caller would then see a digit where a separator belongs. Name it here.
    if (p != end && (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
                     *p == '-')) {
        pos = p;
        return json_error::bad_number;
    }
    pos = p;
    return json_error::ok;
}

/// Digit i of the concatenated integer and fraction digits.
inline char digit_at(const number_parts& n, std::size_t i) noexcept {
    const auto ni = static_cast<std::size_t>(n.int_end - n.int_begin);
    return i < ni ? n.int_begin[i] : n.frac_begin[i - ni];
}

/// RFC 7493 §2.2: does the value fit in an IEEE 754 double without overflow?
inline bool in_double_range(const number_parts& n) noexcept {
    const auto ni = static_cast<std::size_t>(n.int_end - n.int_begin);
    const auto nf = static_cast<std::size_t>(n.frac_end - n.frac_begin);
    if (!n.has_exponent && ni <= 308) return true;  // < 10^308 < DBL_MAX
    const std::size_t total = ni + nf;
    std::size_t first = 0;
    while (first < total && digit_at(n, first) == '0') ++first;
    if (first == total) return true;  // zero
    // Decimal exponent of the leading significant digit: value is in
    // [10^e10, 10^(e10+1)).
    const std::int64_t e10 = n.exponent + static_cast<std::int64_t>(ni) -
                             static_cast<std::int64_t>(first) - 1;
    if (e10 < 308) return true;
    if (e10 > 308) return false;
    for (std::size_t i = 0; i < k_overflow_digits.size(); ++i) {
        const std::size_t k = first + i;
        const char d = k < total ? digit_at(n, k) : '0';
        if (d != k_overflow_digits[i]) return d < k_overflow_digits[i];
    }
    return false;  // equal to the boundary over all 309 digits (or above): inf
}

/// How many of the 8 bytes in `v` (first byte in memory = lowest byte),
/// counted from the first, are ASCII digits; their values are left in the
/// low bytes of `digits`. Little-endian targets only (see k_swar).
inline unsigned leading_digits8(std::uint64_t v, std::uint64_t& digits) noexcept {
    const std::uint64_t t = v ^ (k_ones * '0');  // a digit becomes 0..9
    // High bit set for t >= 10 (t + 0x76 >= 0x80) or t >= 0x80. A carry out of
    // a byte only ever comes from a flagged one, so the lowest flag is exact.
    const std::uint64_t flags = ((t + k_ones * 0x76) | t) & k_highs;
    digits = t;
    return flags == 0 ? 8u : static_cast<unsigned>(std::countr_zero(flags)) >> 3;
}

/// The value of the first n (1..8) digits in `digits` (as leading_digits8
/// leaves them): shifted up so that the missing digits read as leading
/// zeros, then combined pairwise in three multiplications.
inline std::uint64_t digits_value8(std::uint64_t digits, unsigned n) noexcept {
    std::uint64_t v = digits << (8 * (8 - n));
    v = (v * 10 + (v >> 8)) & 0x00FF00FF00FF00FFULL;
    v = (v * 100 + (v >> 16)) & 0x0000FFFF0000FFFFULL;
    return (v * 10000 + (v >> 32)) & 0xFFFFFFFFULL;
}

/// The byte after a run of plain digits ends the token (it is not part of a
/// longer number such as 12.5, 1e3 or 0123).
constexpr bool ends_number(char c) noexcept {
    return !(is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-');
}

/// Lexes and range-checks a number token (the scanner's entry point). A
/// token of at most 16 plain digits, the only kind of number the protocol's
/// own fields carry, takes a short path that also yields its value in
/// `*uint_value` (and sets `*is_uint`) when those are given: eight digits at
/// a time where the target allows, one by one near the end of the text.
inline json_error scan_number(const char*& p, const char* end, std::uint64_t* uint_value = nullptr,
                              bool* is_uint = nullptr) noexcept {
    if constexpr (k_swar) {
        if (end - p >= 17) {
            std::uint64_t d = 0;
            const unsigned n = leading_digits8(load8(p), d);
            // "0" alone is fine, "0" followed by a digit is not (RFC 8259 §6).
            if (n != 0 && (*p != '0' || n == 1)) {
                std::uint64_t v = digits_value8(d, n);
                unsigned len = n;
                if (n == 8) {
                    std::uint64_t d2 = 0;
                    const unsigned n2 = leading_digits8(load8(p + 8), d2);
                    if (n2 != 0) {
                        static constexpr std::uint64_t pow10[9] = {
                            1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
                        v = v * pow10[n2] + digits_value8(d2, n2);
                        len += n2;
                    }
                }
                if (len <= 16 && ends_number(p[len])) {
                    p += len;
                    if (uint_value) *uint_value = v;
                    if (is_uint) *is_uint = true;
                    return json_error::ok;
                }
            }
        }
    }
    if (is_digit(*p) && (*p != '0' || end - p < 2 || !is_digit(p[1]))) {
        const char* q = p;
        const char* const stop = end - q > 17 ? q + 17 : end;
        std::uint64_t v = 0;
        while (q != stop && is_digit(*q)) v = v * 10 + static_cast<std::uint64_t>(*q++ - '0');
        if (q - p <= 16 && (q == end || ends_number(*q))) {
            p = q;
            if (uint_value) *uint_value = v;
            if (is_uint) *is_uint = true;
            return json_error::ok;
        }
    }
    number_parts n;
    const char* start = p;
    if (const json_error e = lex_number(p, end, n); e != json_error::ok) return e;
    if (!in_double_range(n)) {
        p = start;
        return json_error::number_out_of_range;
    }
    return json_error::ok;
}

inline constexpr std::uint64_t k_max_safe_integer = 9007199254740991ULL;  // 2^53 - 1

/// The value of `text` if it is a JSON number denoting a whole number in
/// 0..2^53-1 (see the header comment); nullopt otherwise.
inline std::optional<std::uint64_t> parse_whole_number(std::string_view text) noexcept {
    const char* p = text.data();
    const char* const end = p + text.size();
    if (p == end) return std::nullopt;
    // Fast path: plain digits, the only form well-behaved peers send.
    if (text.size() <= 16 && *p != '-' && (*p != '0' || text.size() == 1)) {
        std::uint64_t v = 0;
        bool plain = true;
        for (const char c : text) {
            if (!is_digit(c)) {
                plain = false;
                break;
            }
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (plain) {
            if (v > k_max_safe_integer) return std::nullopt;
            return v;
        }
    }
    if (!is_digit(*p) && *p != '-') return std::nullopt;
    number_parts n;
    if (lex_number(p, end, n) != json_error::ok || p != end) return std::nullopt;
    const auto ni = static_cast<std::size_t>(n.int_end - n.int_begin);
    const auto nf = static_cast<std::size_t>(n.frac_end - n.frac_begin);
    const std::size_t total = ni + nf;
    std::size_t first = 0;
    while (first < total && digit_at(n, first) == '0') ++first;
    if (first == total) return 0;  // zero, "-0" included
    if (n.negative) return std::nullopt;
    std::size_t last = total - 1;
    while (digit_at(n, last) == '0') --last;
    // value = D[first..last] * 10^k
    const std::int64_t k = n.exponent - static_cast<std::int64_t>(nf) +
                           static_cast<std::int64_t>(total - 1 - last);
    if (k < 0) return std::nullopt;  // a fractional part remains
    const std::size_t digits = last - first + 1;
    if (static_cast<std::int64_t>(digits) + k > 16) return std::nullopt;  // >= 10^16 > 2^53
    std::uint64_t v = 0;
    for (std::size_t i = first; i <= last; ++i)
        v = v * 10 + static_cast<std::uint64_t>(digit_at(n, i) - '0');
    for (std::int64_t i = 0; i < k; ++i) v *= 10;
    if (v > k_max_safe_integer) return std::nullopt;
    return v;
}

}  // namespace tether::proto::detail
