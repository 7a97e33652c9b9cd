// tether/proto/detail/json_lex.hpp — the token-level rules of strict JSON:
// strings (escapes, surrogates, UTF-8, control characters) and the error and
// type vocabularies shared by the scanner, the envelope reader and helpers.
//
// Strings are scanned once, never copied: the scanner learns whether a string
// contains escapes and how long it is once decoded, which is all that
// duplicate-key detection and the envelope reader need. Decoding happens
// later, only for the strings someone asks for, into a buffer the caller owns.
#pragma once

#include "utf8.hpp"

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace tether::proto {

/// Why a document is not strict I-JSON. Everything is a defined error.
enum class json_error : std::uint8_t {
    ok = 0,
    unexpected_end,       ///< the text ends inside a value (truncated, or empty)
    unexpected_char,      ///< a byte the RFC 8259 grammar does not allow here
    trailing_data,        ///< something other than whitespace after the value
    invalid_utf8,         ///< RFC 8259 §8.1 / RFC 3629
    control_char,         ///< raw byte < 0x20 inside a string (RFC 8259 §7)
    bad_escape,           ///< backslash not followed by a valid escape
    lone_surrogate,       ///< \uD800-\uDFFF not forming a pair (RFC 7493 §2.1)
    bad_number,           ///< RFC 8259 §6 grammar: 01, 1., .5, -, +1, 1e ...
    number_out_of_range,  ///< magnitude beyond IEEE 754 double (RFC 7493 §2.2)
    duplicate_key,        ///< same decoded member name twice (RFC 7493 §2.3)
    too_deep,             ///< nesting beyond json_config::max_depth
    not_an_object,        ///< valid JSON, but the top level must be an object
};

constexpr std::string_view to_string(json_error e) noexcept {
    switch (e) {
        case json_error::ok: return "ok";
        case json_error::unexpected_end: return "unexpected end of text";
        case json_error::unexpected_char: return "unexpected character";
        case json_error::trailing_data: return "data after the top-level value";
        case json_error::invalid_utf8: return "invalid UTF-8";
        case json_error::control_char: return "control character in string";
        case json_error::bad_escape: return "invalid escape sequence";
        case json_error::lone_surrogate: return "lone surrogate escape";
        case json_error::bad_number: return "malformed number";
        case json_error::number_out_of_range: return "number out of double range";
        case json_error::duplicate_key: return "duplicate key";
        case json_error::too_deep: return "nesting too deep";
        case json_error::not_an_object: return "top level is not an object";
    }
    return "unknown json error";
}

enum class json_type : std::uint8_t { null, boolean, number, string, array, object };

namespace detail {

/// What the scanner learns about a string without decoding it.
struct string_facts {
    std::size_t decoded_size = 0;
    bool escaped = false;
};

constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// hex_value for every byte, -1 for non-hex: one load per digit.
inline constexpr auto k_hex = [] {
    std::array<std::int8_t, 256> t{};
    for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] =
        static_cast<std::int8_t>(hex_value(static_cast<char>(c)));
    return t;
}();

/// Reads the 4 hex digits after "\u" (p points at the first digit).
inline json_error read_hex4(const char*& p, const char* end, std::uint32_t& cp) noexcept {
    if (end - p >= 4) {
        const int a = k_hex[static_cast<unsigned char>(p[0])];
        const int b = k_hex[static_cast<unsigned char>(p[1])];
        const int c = k_hex[static_cast<unsigned char>(p[2])];
        const int d = k_hex[static_cast<unsigned char>(p[3])];
        if ((a | b | c | d) >= 0) {
            cp = static_cast<std::uint32_t>((a << 12) | (b << 8) | (c << 4) | d);
            p += 4;
            return json_error::ok;
        }
    }
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i, ++p) {
        if (p == end) return json_error::unexpected_end;
        const int h = k_hex[static_cast<unsigned char>(*p)];
        if (h < 0) return json_error::bad_escape;
        v = (v << 4) | static_cast<std::uint32_t>(h);
    }
    cp = v;
    return json_error::ok;
}

/// Validates one escape; p points just after the backslash and is left after
/// the escape. `saved` grows by (escaped length - decoded length).
inline json_error scan_escape(const char*& p, const char* end, std::size_t& saved) noexcept {
    if (p == end) return json_error::unexpected_end;
    switch (*p) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            ++p;
            saved += 1;
            return json_error::ok;
        case 'u': break;
        default: return json_error::bad_escape;
    }
    ++p;
    std::uint32_t cp = 0;
    if (const json_error e = read_hex4(p, end, cp); e != json_error::ok) return e;
    // RFC 8259 §7: a code point beyond the BMP is a UTF-16 surrogate pair;
    // RFC 7493 §2.1 forbids the unpaired halves that JSON itself tolerates.
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        p -= 6;
        return json_error::lone_surrogate;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (end - p < 2) {
            if (p == end || *p == '\\') return json_error::unexpected_end;
            p -= 6;
            return json_error::lone_surrogate;
        }
        if (p[0] != '\\' || p[1] != 'u') {
            p -= 6;
            return json_error::lone_surrogate;
        }
        p += 2;
        std::uint32_t lo = 0;
        if (const json_error e = read_hex4(p, end, lo); e != json_error::ok) return e;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            p -= 12;
            return json_error::lone_surrogate;
        }
        saved += 12 - 4;
        return json_error::ok;
    }
    saved += 6 - utf8_length(cp);
    return json_error::ok;
}

/// Scans a string body. `p` points just after the opening quote; on success
/// it points at the closing quote. With `UntilEnd`, the body is a raw slice
/// without quotes: reaching `end` is success and a raw '"' is an error.
/// On failure `p` points at (or near) the offending byte.
///
/// The body is cut into segments by its escapes. Each segment is skipped 16
/// bytes at a time up to the next '"', '\\' or control, noting whether any
/// byte was non-ASCII; only a segment that had one goes through the UTF-8
/// check, once, before the byte that ended it is looked at (so errors are
/// still reported in document order). Plain ASCII strings, nearly all of
/// them, never touch the UTF-8 code.
template <bool UntilEnd = false>
inline json_error scan_string(const char*& pos, const char* end, string_facts& facts) noexcept {
    const char* p = pos;
    const char* const start = p;
    const char* seg = p;  // start of the current run (after the last escape)
    std::size_t saved = 0;
    bool escaped = false;
    unsigned high = 0;
    json_error e = json_error::ok;
    for (;;) {
        while (end - p >= 16) {
            const block_bits b = classify16(p);
            if (b.stop != 0) {
                const auto i = static_cast<unsigned>(std::countr_zero(b.stop));
                high |= b.high & ((1u << i) - 1);
                p += i;
                goto stop;
            }
            high |= b.high;
            p += 16;
        }
        for (; p != end; ++p) {
            const auto c = static_cast<unsigned char>(*p);
            if (c == '"' || c == '\\' || c < 0x20) goto stop;
            high |= c & 0x80u;
        }
        // The text ends inside the string (or, with UntilEnd, the body does).
        if (high != 0) {
            if (const char* bad = find_invalid_utf8(seg, p, end); bad != p) {
                p = bad;
                e = json_error::invalid_utf8;
                break;
            }
        }
        if constexpr (!UntilEnd) e = json_error::unexpected_end;
        break;
    stop:
        if (high != 0) {
            high = 0;
            if (const char* bad = find_invalid_utf8(seg, p, end); bad != p) {
                p = bad;
                e = json_error::invalid_utf8;
                break;
            }
        }
        if (*p == '"') {
            if constexpr (UntilEnd) e = json_error::unexpected_char;
            break;
        }
        if (*p == '\\') {
            escaped = true;
            ++p;
            e = scan_escape(p, end, saved);
            if (e != json_error::ok) break;
            seg = p;
            continue;
        }
        e = json_error::control_char;
        break;
    }
    pos = p;
    if (e == json_error::ok) facts = {static_cast<std::size_t>(p - start) - saved, escaped};
    return e;
}

/// scan_string with a short-string fast path: most member names and many
/// values are plain ASCII under 16 bytes, settled by one 16-byte probe
/// without entering the general loop.
[[gnu::always_inline]] inline json_error scan_string_fast(const char*& p, const char* end,
                                                          string_facts& facts) noexcept {
    if (end - p >= 16) [[likely]] {
        const block_bits b = classify16(p);
        const unsigned first = b.stop & (0u - b.stop);  // lowest stop bit (0 if none)
        if (first != 0 && (b.high & (first - 1)) == 0) {
            const auto i = static_cast<unsigned>(std::countr_zero(first));
            if (p[i] == '"') {
                facts = {i, false};
                p += i;
                return json_error::ok;
            }
        }
    }
    return scan_string(p, end, facts);
}

/// A 6-bit hash of an unescaped name (its length and first 8 bytes), for the
/// per-object Bloom mask that lets most names skip the pairwise comparison.
inline unsigned name_hash6(const char* p, std::size_t n, const char* end) noexcept {
    std::uint64_t v = 0;
    if (end - p >= 8) {
        v = load8(p);
        if (n < 8) v &= (std::uint64_t{1} << (8 * n)) - 1;
    } else {
        std::memcpy(&v, p, n < 8 ? n : 8);
    }
    v ^= static_cast<std::uint64_t>(n) * 0x9E3779B97F4A7C15ULL;
    v *= 0xFF51AFD7ED558CCDULL;
    return static_cast<unsigned>(v >> 58);
}

/// Decodes a string body that scan_string accepted; `out` must hold
/// decoded_size bytes (never more than body.size()). Returns bytes written.
inline std::size_t decode_validated(std::string_view body, char* out) noexcept {
    const char* p = body.data();
    const char* const end = p + body.size();
    char* o = out;
    while (p != end) {
        const void* bs = std::memchr(p, '\\', static_cast<std::size_t>(end - p));
        const char* run_end = bs ? static_cast<const char*>(bs) : end;
        const auto run = static_cast<std::size_t>(run_end - p);
        if (run != 0) std::memcpy(o, p, run);
        o += run;
        p = run_end;
        if (p == end) break;
        ++p;  // backslash
        const char c = *p++;
        switch (c) {
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                std::uint32_t cp = 0;
                read_hex4(p, end, cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    p += 2;
                    std::uint32_t lo = 0;
                    read_hex4(p, end, lo);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                o += encode_utf8(cp, o);
                break;
            }
            default: *o++ = c; break;  // " \ /
        }
    }
    return static_cast<std::size_t>(o - out);
}

/// Yields the decoded bytes of a validated string body one at a time, so
/// that two keys can be compared by value without a buffer (RFC 7493 §2.3
/// compares names after escapes are processed).
class decoded_bytes {
public:
    explicit decoded_bytes(std::string_view body) noexcept
        : p_(body.data()), end_(body.data() + body.size()) {}

    /// Next byte (0..255), or -1 at the end.
    int next() noexcept {
        if (i_ < n_) return static_cast<unsigned char>(buf_[i_++]);
        if (p_ == end_) return -1;
        if (*p_ != '\\') return static_cast<unsigned char>(*p_++);
        // Decode one escape into buf_ by reusing decode_validated on its span.
        const char* q = p_ + 1;
        std::size_t len = 2;
        if (*q == 'u') {
            len = 6;
            std::uint32_t cp = 0;
            const char* h = q + 1;
            read_hex4(h, end_, cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) len = 12;
        }
        n_ = decode_validated({p_, len}, buf_);
        i_ = 1;
        p_ += len;
        return static_cast<unsigned char>(buf_[0]);
    }

private:
    const char* p_;
    const char* end_;
    char buf_[4]{};
    std::size_t i_ = 0, n_ = 0;
};

/// A member name as scanned: raw body (no quotes) plus what we know of it.
struct key_ref {
    const char* data;
    std::size_t raw_size;
    std::size_t decoded_size;
    bool escaped;

    std::string_view body() const noexcept { return {data, raw_size}; }
};

/// Orders keys by (decoded length, decoded bytes); 0 means same name.
inline int compare_keys(const key_ref& a, const key_ref& b) noexcept {
    if (a.decoded_size != b.decoded_size) return a.decoded_size < b.decoded_size ? -1 : 1;
    if (!a.escaped && !b.escaped) {
        if (a.raw_size == 0) return 0;
        const int r = std::memcmp(a.data, b.data, a.raw_size);
        return (r > 0) - (r < 0);
    }
    decoded_bytes da(a.body()), db(b.body());
    for (;;) {
        const int x = da.next();
        const int y = db.next();
        if (x != y) return x < y ? -1 : 1;
        if (x < 0) return 0;
    }
}

inline bool is_json_ws(char c) noexcept {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/// RFC 8259 §2: ws = *( %x20 / %x09 / %x0A / %x0D ). Nothing else, no BOM.
inline const char* skip_ws(const char* p, const char* end) noexcept {
    while (p != end && static_cast<unsigned char>(*p) <= 0x20 && is_json_ws(*p)) ++p;
    return p;
}

}  // namespace detail
}  // namespace tether::proto
