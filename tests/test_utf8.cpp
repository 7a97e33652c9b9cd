// Tests for tether/ws/utf8.hpp: Kuhn-style stress vectors with the exact
// fail-fast position, every split point, every fast-path alignment, and a
// differential test against a plain decoder written here from RFC 3629.
// The vector kernels (detail/utf8_simd.hpp) are tested at every level the
// CPU has (scalar DFA, SSSE3, AVX2, forced with the set_max_level hook):
// their pair tables exhaustively, the kernels directly (a clean run must
// be reported clean), and through the validator on long texts with an
// error at every position of a 64-byte window at every run offset, every
// pending state with every two bytes after it, and random long buffers,
// against the reference and against the scalar-only results.
#include <doctest/doctest.h>

#include <tether/core/random.hpp>
#include <tether/ws/utf8.hpp>
#include <tether/ws/detail/unmask_utf8.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

using tether::ws::is_valid_utf8;
using tether::ws::utf8_validator;
namespace simd = tether::ws::detail::utf8_simd;

namespace {

using bytes = std::vector<std::uint8_t>;
constexpr std::size_t never = static_cast<std::size_t>(-1);

// ---------------------------------------------------------------------------
// Reference: decode code points the obvious way (RFC 3629 §3/§4) and check
// range, shortest form and surrogates on the decoded value. Deliberately
// shares nothing with the DFA.
bool ref_valid(const std::uint8_t* s, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t b = s[i];
        if (b < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        std::uint32_t min;
        if ((b & 0xE0) == 0xC0) {
            len = 2, cp = b & 0x1Fu, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, cp = b & 0x0Fu, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, cp = b & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (std::size_t j = 1; j < len; ++j) {
            const std::uint8_t c = s[i + j];
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

bool ref_valid(const bytes& s) { return ref_valid(s.data(), s.size()); }

// Could the first `len` bytes of s be the start of valid UTF-8? Brute force:
// try every way of appending up to three continuation bytes. Only the value
// of the first continuation byte after a lead matters beyond "is a
// continuation" (it decides overlong / surrogate / range), and there it only
// matters which of 80..8F, 90..9F, A0..BF it falls into; the end points of
// each class are used so an off-by-one in the classes would show.
bool ref_viable(const bytes& s, std::size_t len) {
    static const std::uint8_t reps[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF};
    bytes t(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(len));
    if (ref_valid(t)) return true;
    for (const std::uint8_t a : reps) {
        t.push_back(a);
        if (ref_valid(t)) return true;
        for (const std::uint8_t b : reps) {
            t.push_back(b);
            if (ref_valid(t)) return true;
            for (const std::uint8_t c : reps) {
                t.push_back(c);
                if (ref_valid(t)) return true;
                t.pop_back();
            }
            t.pop_back();
        }
        t.pop_back();
    }
    return false;
}

// Index of the first byte after which the input can no longer be valid, or
// `never`. Viability is monotone in the prefix length, so binary search.
std::size_t ref_fail_pos(const bytes& s) {
    if (ref_viable(s, s.size())) return never;
    std::size_t lo = 0;         // viable
    std::size_t hi = s.size();  // not viable
    while (hi - lo > 1) {
        const std::size_t mid = lo + (hi - lo) / 2;
        (ref_viable(s, mid) ? lo : hi) = mid;
    }
    return hi - 1;
}

void append_utf8(bytes& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<std::uint8_t>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<std::uint8_t>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<std::uint8_t>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<std::uint8_t>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
    }
}

bytes b(std::initializer_list<int> v) {
    bytes out;
    for (int x : v) out.push_back(static_cast<std::uint8_t>(x));
    return out;
}

bytes str(const std::string& s) { return bytes(s.begin(), s.end()); }

bytes cat(bytes a, const bytes& c) {
    a.insert(a.end(), c.begin(), c.end());
    return a;
}

bytes ascii(std::size_t n, char c = 'a') { return bytes(n, static_cast<std::uint8_t>(c)); }

std::span<const std::uint8_t> sub(const bytes& s, std::size_t pos, std::size_t len) {
    return std::span<const std::uint8_t>(s).subspan(pos, len);
}

// ---------------------------------------------------------------------------
// Checks shared by the table and the random tests.

// Byte by byte: feed() must return false exactly at `fail_at` (not before,
// not after), stay failed, and complete() must match at the end.
void check_byte_by_byte(const bytes& s, bool valid, std::size_t fail_at) {
    utf8_validator v;
    std::size_t failed_at = never;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool ok = v.feed(sub(s, i, 1));
        if (!ok && failed_at == never) failed_at = i;
        if (failed_at != never) CHECK_FALSE(ok);  // sticky
    }
    CHECK(failed_at == fail_at);
    CHECK(v.failed() == (fail_at != never));
    CHECK((v.complete() && !v.failed()) == valid);
}

// Two chunks split at every point, three chunks at every pair (short
// inputs): a chunk returns false iff it contains the failure byte or a
// later one.
void check_splits(const bytes& s, bool valid, std::size_t fail_at) {
    for (std::size_t k = 0; k <= s.size(); ++k) {
        utf8_validator v;
        CHECK(v.feed(sub(s, 0, k)) == (fail_at == never || fail_at >= k));
        CHECK(v.feed(sub(s, k, s.size() - k)) == (fail_at == never));
        CHECK((v.complete() && !v.failed()) == valid);
    }
    if (s.size() > 24) return;
    for (std::size_t k1 = 0; k1 <= s.size(); ++k1) {
        for (std::size_t k2 = k1; k2 <= s.size(); ++k2) {
            utf8_validator v;
            v.feed(sub(s, 0, k1));
            v.feed(sub(s, k1, k2 - k1));
            const bool ok = v.feed(sub(s, k2, s.size() - k2));
            CHECK(ok == (fail_at == never));
            CHECK((v.complete() && ok) == valid);
        }
    }
}

// The fast path at every position: put `pad` ASCII bytes in front, feed the
// whole thing in one call, and check fail-fast with one call too: the bytes
// before the failure are accepted, one more byte is rejected.
void check_padded(const bytes& s, bool valid, std::size_t fail_at, std::size_t pad) {
    const bytes p = cat(ascii(pad, 'x'), s);
    CHECK(is_valid_utf8(p) == valid);
    if (fail_at != never) {
        const std::size_t f = pad + fail_at;
        utf8_validator v;
        CHECK(v.feed(sub(p, 0, f)));
        CHECK_FALSE(v.failed());
        utf8_validator w;
        CHECK_FALSE(w.feed(sub(p, 0, f + 1)));
        CHECK(w.failed());
    }
}

struct vector_case {
    const char* name;
    bytes data;
    bool valid;
    std::size_t fail_at;  // first byte no valid text can continue from
};

const std::string kosme = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";  // κόσμε, 11 bytes

std::vector<vector_case> vectors() {
    return {
        // --- valid: Kuhn §1-§2 boundaries --------------------------------
        {"empty", {}, true, never},
        {"ascii", str("Hello, world"), true, never},
        {"kosme", str(kosme), true, never},
        {"U+0000", b({0x00}), true, never},
        {"U+007F", b({0x7F}), true, never},
        {"U+0080", b({0xC2, 0x80}), true, never},
        {"U+07FF", b({0xDF, 0xBF}), true, never},
        {"U+0800", b({0xE0, 0xA0, 0x80}), true, never},
        {"U+D7FF", b({0xED, 0x9F, 0xBF}), true, never},
        {"U+E000", b({0xEE, 0x80, 0x80}), true, never},
        {"U+FEFF (BOM)", b({0xEF, 0xBB, 0xBF}), true, never},
        {"U+FFFD", b({0xEF, 0xBF, 0xBD}), true, never},
        {"U+FFFE (noncharacter is valid)", b({0xEF, 0xBF, 0xBE}), true, never},
        {"U+FFFF", b({0xEF, 0xBF, 0xBF}), true, never},
        {"U+10000", b({0xF0, 0x90, 0x80, 0x80}), true, never},
        {"U+3FFFF", b({0xF0, 0xBF, 0xBF, 0xBF}), true, never},
        {"U+40000", b({0xF1, 0x80, 0x80, 0x80}), true, never},
        {"U+FFFFF", b({0xF3, 0xBF, 0xBF, 0xBF}), true, never},
        {"U+100000", b({0xF4, 0x80, 0x80, 0x80}), true, never},
        {"U+10FFFF", b({0xF4, 0x8F, 0xBF, 0xBF}), true, never},
        {"mixed a€𝄞b", b({0x61, 0xE2, 0x82, 0xAC, 0xF0, 0x9D, 0x84, 0x9E, 0x62}), true, never},
        {"long ascii around kosme", cat(cat(ascii(70), str(kosme)), ascii(70)), true, never},
        {"kosme x 10", [] {
             bytes r;
             for (int i = 0; i < 10; ++i) r = cat(r, str(kosme));
             return r;
         }(), true, never},

        // --- Kuhn §3.1: unexpected continuation bytes -----------------------
        {"lone 80", b({0x80}), false, 0},
        {"lone BF", b({0xBF}), false, 0},
        {"a then 80", b({0x61, 0x80}), false, 1},
        {"80 BF 80", b({0x80, 0xBF, 0x80}), false, 0},
        {"U+0080 then extra continuation", b({0xC2, 0x80, 0x80}), false, 2},
        {"U+0800 then extra continuation", b({0xE0, 0xA0, 0x80, 0xBF}), false, 3},
        {"U+10FFFF then extra continuation", b({0xF4, 0x8F, 0xBF, 0xBF, 0x80}), false, 4},
        {"continuation after 70 ascii", cat(ascii(70), b({0x80})), false, 70},

        // --- §3.2: lead followed by a non-continuation ----------------------
        {"C2 41", b({0xC2, 0x41}), false, 1},
        {"C2 C2 80", b({0xC2, 0xC2, 0x80}), false, 1},
        {"E1 80 41", b({0xE1, 0x80, 0x41}), false, 2},
        {"E1 C2 80", b({0xE1, 0xC2, 0x80}), false, 1},
        {"F1 80 80 41", b({0xF1, 0x80, 0x80, 0x41}), false, 3},
        {"F1 80 E0 A0 80", b({0xF1, 0x80, 0xE0, 0xA0, 0x80}), false, 2},
        {"DF E0 A0 80", b({0xDF, 0xE0, 0xA0, 0x80}), false, 1},

        // --- §3.3: truncated sequences (never fail, never complete) ---------
        {"trunc C2", b({0xC2}), false, never},
        {"trunc DF", b({0xDF}), false, never},
        {"trunc E0 A0", b({0xE0, 0xA0}), false, never},
        {"trunc E1", b({0xE1}), false, never},
        {"trunc ED 9F", b({0xED, 0x9F}), false, never},
        {"trunc F0 90 80", b({0xF0, 0x90, 0x80}), false, never},
        {"trunc F4 8F BF", b({0xF4, 0x8F, 0xBF}), false, never},
        {"trunc F1", b({0xF1}), false, never},
        {"kosme + CE", cat(str(kosme), b({0xCE})), false, never},
        {"ascii(70) + F0 9D 84", cat(ascii(70), b({0xF0, 0x9D, 0x84})), false, never},
        {"trunc C2 then ascii", b({0xC2, 0x41, 0x41}), false, 1},

        // --- §3.5: impossible bytes -----------------------------------------
        {"FE", b({0xFE}), false, 0},
        {"FF", b({0xFF}), false, 0},
        {"FE FE FF FF", b({0xFE, 0xFE, 0xFF, 0xFF}), false, 0},
        {"ab FE", b({0x61, 0x62, 0xFE}), false, 2},
        {"F5 80 80 80", b({0xF5, 0x80, 0x80, 0x80}), false, 0},
        {"F7 BF BF BF (U+1FFFFF)", b({0xF7, 0xBF, 0xBF, 0xBF}), false, 0},
        {"F8 88 80 80 80 (5-byte)", b({0xF8, 0x88, 0x80, 0x80, 0x80}), false, 0},
        {"FC 84 80 80 80 80 (6-byte)", b({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}), false, 0},

        // --- §4: overlong forms ----------------------------------------------
        {"C0 AF (overlong /)", b({0xC0, 0xAF}), false, 0},
        {"C0 80 (overlong NUL)", b({0xC0, 0x80}), false, 0},
        {"C1 BF (overlong U+007F)", b({0xC1, 0xBF}), false, 0},
        {"E0 80 AF (overlong /)", b({0xE0, 0x80, 0xAF}), false, 1},
        {"E0 9F BF (overlong U+07FF)", b({0xE0, 0x9F, 0xBF}), false, 1},
        {"F0 80 80 AF (overlong /)", b({0xF0, 0x80, 0x80, 0xAF}), false, 1},
        {"F0 8F BF BF (overlong U+FFFF)", b({0xF0, 0x8F, 0xBF, 0xBF}), false, 1},

        // --- §5: surrogates ---------------------------------------------------
        {"ED A0 80 (U+D800)", b({0xED, 0xA0, 0x80}), false, 1},
        {"ED AD BF (U+DB7F)", b({0xED, 0xAD, 0xBF}), false, 1},
        {"ED B0 80 (U+DC00)", b({0xED, 0xB0, 0x80}), false, 1},
        {"ED BF BF (U+DFFF)", b({0xED, 0xBF, 0xBF}), false, 1},
        {"surrogate pair D800 DC00", b({0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80}), false, 1},
        {"kosme + ED A0 80", cat(str(kosme), b({0xED, 0xA0, 0x80})), false, 12},
        {"ascii(70) + ED A0 80", cat(ascii(70), b({0xED, 0xA0, 0x80})), false, 71},

        // --- beyond U+10FFFF --------------------------------------------------
        {"F4 90 80 80 (U+110000)", b({0xF4, 0x90, 0x80, 0x80}), false, 1},
        {"F4 BF BF BF", b({0xF4, 0xBF, 0xBF, 0xBF}), false, 1},
    };
}

// A near-valid random string: valid UTF-8 from code points biased toward
// the interesting boundaries, then a few mutations.
bytes near_valid(tether::rng& r) {
    static const std::uint32_t edges[] = {
        0x0,    0x7F,    0x80,    0x7FF,   0x800,   0xFFF,    0x1000,  0xD7FF,
        0xE000, 0xFFFD,  0xFFFF,  0x10000, 0x3FFFF, 0x40000,  0xFFFFF, 0x100000,
        0x10FFFF};
    static const std::uint8_t nasty[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                         0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5,
                                         0xF8, 0xFE, 0xFF};
    bytes out;
    const std::size_t n = static_cast<std::size_t>(r.below(24));
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t cp;
        switch (r.below(6)) {
            case 0: cp = static_cast<std::uint32_t>(r.below(0x80)); break;
            case 1: cp = 0x80 + static_cast<std::uint32_t>(r.below(0x800 - 0x80)); break;
            case 2: cp = 0x800 + static_cast<std::uint32_t>(r.below(0x10000 - 0x800)); break;
            case 3: cp = 0x10000 + static_cast<std::uint32_t>(r.below(0x110000 - 0x10000)); break;
            default: cp = edges[r.below(std::size(edges))]; break;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        append_utf8(out, cp);
    }
    const std::size_t mutations = static_cast<std::size_t>(r.below(4));
    for (std::size_t m = 0; m < mutations; ++m) {
        const std::size_t at = static_cast<std::size_t>(r.below(out.size() + 1));
        switch (r.below(5)) {
            case 0:  // flip a bit
                if (at < out.size()) out[at] ^= static_cast<std::uint8_t>(1u << r.below(8));
                break;
            case 1:  // insert a nasty byte
                out.insert(out.begin() + static_cast<std::ptrdiff_t>(at), nasty[r.below(std::size(nasty))]);
                break;
            case 2:  // replace with a nasty byte
                if (at < out.size()) out[at] = nasty[r.below(std::size(nasty))];
                break;
            case 3:  // delete
                if (at < out.size()) out.erase(out.begin() + static_cast<std::ptrdiff_t>(at));
                break;
            default:  // truncate
                out.resize(at);
                break;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------
// Kernel levels.

// Every level this CPU can run, the scalar DFA first.
std::vector<simd::level> levels() {
    std::vector<simd::level> out{simd::level::none};
    const simd::level best = simd::best_supported();
    if (best >= simd::level::ssse3) out.push_back(simd::level::ssse3);
    if (best >= simd::level::avx2) out.push_back(simd::level::avx2);
    if (best >= simd::level::avx512) out.push_back(simd::level::avx512);
    return out;
}

std::string level_name(simd::level l) {
    return l == simd::level::avx512 ? "avx512" : l == simd::level::avx2 ? "avx2" : l == simd::level::ssse3 ? "ssse3" : "scalar";
}

// Forces a level for its lifetime, then restores the default (the best).
struct level_scope {
    explicit level_scope(simd::level l) { REQUIRE(simd::set_max_level(l) == l); }
    ~level_scope() { simd::set_max_level(simd::level::avx512); }
    level_scope(const level_scope&) = delete;
    level_scope& operator=(const level_scope&) = delete;
};

// ---------------------------------------------------------------------------
// Long texts.

// Relative weights of 1-, 2-, 3- and 4-byte code points.
struct mix {
    const char* name;
    unsigned w[4];
};
const mix mixes[] = {
    {"cyrillic", {1, 6, 0, 0}},    {"cjk", {1, 0, 8, 0}},     {"emoji", {1, 1, 1, 4}},
    {"english 5%", {19, 1, 1, 0}}, {"uniform", {1, 1, 1, 1}},
};

bytes make_text(tether::rng& r, std::size_t n, const mix& m) {
    const unsigned total = m.w[0] + m.w[1] + m.w[2] + m.w[3];
    bytes out;
    while (out.size() < n) {
        unsigned k = static_cast<unsigned>(r.below(total));
        int len = 0;
        while (k >= m.w[len]) k -= m.w[len++];
        std::uint32_t cp;
        switch (len) {
            case 0: cp = 0x20 + static_cast<std::uint32_t>(r.below(0x5F)); break;
            case 1: cp = 0x80 + static_cast<std::uint32_t>(r.below(0x780)); break;
            case 2:
                cp = 0x800 + static_cast<std::uint32_t>(r.below(0xF800));
                if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x4E00 + (cp & 0xFFF);
                break;
            default: cp = 0x10000 + static_cast<std::uint32_t>(r.below(0x100000)); break;
        }
        append_utf8(out, cp);
    }
    return out;
}

// make_text with a random mix and a length in [min, min + spread). The
// draws are sequenced here (not in one argument list), so every compiler
// generates the same inputs.
bytes random_text(tether::rng& r, std::size_t min, std::size_t spread) {
    const mix& m = mixes[r.below(std::size(mixes))];
    const std::size_t n = min + static_cast<std::size_t>(r.below(spread));
    return make_text(r, n, m);
}

// Index of the first code point the reference cannot decode, or s.size().
std::size_t ref_first_bad(const bytes& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const std::uint8_t b = s[i];
        const std::size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : 4;
        if (i + len > s.size() || !ref_valid(s.data() + i, len)) return i;
        i += len;
    }
    return i;
}

// ref_fail_pos for long inputs: before the first undecodable code point the
// text is valid and complete, so the brute-force reference only needs a
// window from there (the bad code point is at most 4 bytes).
std::size_t ref_fail_pos_long(const bytes& s) {
    const std::size_t start = ref_first_bad(s);
    if (start == s.size()) return never;
    const bytes window(s.begin() + static_cast<std::ptrdiff_t>(start),
                       s.begin() + static_cast<std::ptrdiff_t>(std::min(s.size(), start + 12)));
    const std::size_t rel = ref_fail_pos(window);
    return rel == never ? never : start + rel;
}

// Everything the validator says about s fed in chunks of the given sizes
// (the last chunk takes the rest): each feed() result, then complete()
// and failed().
std::vector<int> trace(const bytes& s, const std::vector<std::size_t>& cuts) {
    std::vector<int> out;
    utf8_validator v;
    std::size_t pos = 0;
    for (const std::size_t c : cuts) {
        const std::size_t len = std::min(c, s.size() - pos);
        out.push_back(v.feed(sub(s, pos, len)));
        pos += len;
    }
    out.push_back(v.feed(sub(s, pos, s.size() - pos)));
    out.push_back(v.complete());
    out.push_back(v.failed());
    return out;
}

std::vector<std::size_t> random_cuts(tether::rng& r, std::size_t n) {
    std::vector<std::size_t> cuts;
    std::size_t pos = 0;
    while (pos < n) {
        // Mostly chunks a kernel gets (>= 64), some the DFA keeps.
        const std::size_t len =
            static_cast<std::size_t>(r.below(4) ? 64 + r.below(400) : r.below(64));
        cuts.push_back(len);
        pos += len;
    }
    return cuts;
}

// The validator (at the current level) on a long input whose failure point
// is fail_at: whole, exact position in one and two calls, a chunking.
void check_long(const bytes& s, bool valid, std::size_t fail_at, tether::rng& r) {
    CHECK(is_valid_utf8(s) == valid);
    if (fail_at == never) {
        utf8_validator v;
        CHECK(v.feed(s));
        CHECK(v.complete() == valid);
    } else {
        utf8_validator v;
        CHECK(v.feed(sub(s, 0, fail_at)));
        CHECK_FALSE(v.failed());
        CHECK_FALSE(v.feed(sub(s, fail_at, s.size() - fail_at)));
        utf8_validator w;
        CHECK_FALSE(w.feed(sub(s, 0, fail_at + 1)));
    }
    utf8_validator v;
    std::size_t pos = 0;
    bool ok = true;
    while (pos < s.size()) {
        const std::size_t len = std::min<std::size_t>(
            s.size() - pos, static_cast<std::size_t>(r.below(2) ? r.below(300) : r.below(40)));
        const bool chunk_ok = v.feed(sub(s, pos, len));
        CHECK(chunk_ok == (fail_at == never || fail_at >= pos + len));
        ok = ok && chunk_ok;
        pos += len;
    }
    CHECK((ok && v.complete()) == valid);
}

// Mutations of valid text (near_valid's, on long text).
void mutate(bytes& out, tether::rng& r, std::size_t count) {
    static const std::uint8_t nasty[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                         0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF,
                                         0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFE, 0xFF};
    for (std::size_t m = 0; m < count; ++m) {
        const std::size_t at = static_cast<std::size_t>(r.below(out.size() + 1));
        switch (r.below(5)) {
            case 0:
                if (at < out.size()) out[at] ^= static_cast<std::uint8_t>(1u << r.below(8));
                break;
            case 1:
                out.insert(out.begin() + static_cast<std::ptrdiff_t>(at),
                           nasty[r.below(std::size(nasty))]);
                break;
            case 2:
                if (at < out.size()) out[at] = nasty[r.below(std::size(nasty))];
                break;
            case 3:
                if (at < out.size()) out.erase(out.begin() + static_cast<std::ptrdiff_t>(at));
                break;
            default:
                if (r.below(4) == 0) out.resize(at);
                break;
        }
    }
}

}  // namespace

TEST_CASE("utf8: reference decoder agrees with the table") {
    // Guards the reference itself, so the differential test means something.
    for (const auto& v : vectors()) {
        CAPTURE(v.name);
        CHECK(ref_valid(v.data) == v.valid);
        CHECK(ref_fail_pos(v.data) == v.fail_at);
    }
}

TEST_CASE("utf8: stress vectors, whole, byte by byte, every split, every padding") {
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        for (const auto& v : vectors()) {
            CAPTURE(v.name);
            CHECK(is_valid_utf8(v.data) == v.valid);
            CHECK(is_valid_utf8(std::string_view(reinterpret_cast<const char*>(v.data.data()),
                                                 v.data.size())) == v.valid);
            check_byte_by_byte(v.data, v.valid, v.fail_at);
            check_splits(v.data, v.valid, v.fail_at);
            for (std::size_t pad = 0; pad < 80; ++pad)
                check_padded(v.data, v.valid, v.fail_at, pad);
        }
    }
}

TEST_CASE("utf8: fail fast on kosme + surrogate at the A0 byte") {
    utf8_validator v;
    CHECK(v.feed(kosme));
    CHECK(v.complete());
    CHECK(v.feed("\xED"));
    CHECK_FALSE(v.complete());
    CHECK_FALSE(v.failed());
    CHECK_FALSE(v.feed("\xA0"));
    CHECK(v.failed());
    CHECK_FALSE(v.complete());
    // Sticky: even valid input no longer helps.
    CHECK_FALSE(v.feed("abc"));
    CHECK_FALSE(v.feed(std::span<const std::uint8_t>{}));
    CHECK(v.failed());
    // reset() starts a new message.
    v.reset();
    CHECK_FALSE(v.failed());
    CHECK(v.complete());
    CHECK(v.feed(kosme));
    CHECK(v.complete());
}

TEST_CASE("utf8: empty feeds keep the state") {
    utf8_validator v;
    CHECK(v.feed(std::span<const std::uint8_t>{}));
    CHECK(v.complete());
    CHECK(v.feed("\xF0\x9D"));
    CHECK(v.feed(std::string_view{}));
    CHECK_FALSE(v.complete());
    CHECK(v.feed("\x84\x9E"));
    CHECK(v.complete());
}

TEST_CASE("utf8: exhaustive two-byte inputs match the reference") {
    for (unsigned x = 0; x < 256; ++x) {
        for (unsigned y = 0; y < 256; ++y) {
            const bytes s{static_cast<std::uint8_t>(x), static_cast<std::uint8_t>(y)};
            const bool valid = ref_valid(s);
            const std::size_t fail_at = ref_fail_pos(s);
            utf8_validator v;
            const bool ok0 = v.feed(sub(s, 0, 1));
            const bool ok1 = v.feed(sub(s, 1, 1));
            const std::size_t got = !ok0 ? 0 : !ok1 ? 1 : never;
            if (got != fail_at || (ok1 && v.complete()) != valid || is_valid_utf8(s) != valid) {
                CAPTURE(x);
                CAPTURE(y);
                CHECK(got == fail_at);
                CHECK((ok1 && v.complete()) == valid);
                CHECK(is_valid_utf8(s) == valid);
            }
        }
    }
}

TEST_CASE("utf8: exhaustive three-byte inputs with a non-ASCII lead") {
    // Validity only (the fail position is covered by the 2-byte and random
    // tests); 4M inputs through both the validator and the reference.
    std::size_t mismatches = 0;
    std::uint8_t s[3];
    for (unsigned x = 0x80; x < 256; ++x) {
        for (unsigned y = 0; y < 256; ++y) {
            for (unsigned z = 0; z < 256; ++z) {
                s[0] = static_cast<std::uint8_t>(x);
                s[1] = static_cast<std::uint8_t>(y);
                s[2] = static_cast<std::uint8_t>(z);
                if (is_valid_utf8(std::span<const std::uint8_t>(s, 3)) != ref_valid(s, 3)) {
                    if (mismatches++ < 5) {
                        CAPTURE(x);
                        CAPTURE(y);
                        CAPTURE(z);
                        CHECK(false);
                    }
                }
            }
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("utf8: differential random test against the reference decoder") {
    tether::rng r(0x75746638);
    std::size_t n_valid = 0;
    std::size_t n_truncated = 0;
    std::size_t n_failed = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        // Core (near-valid) followed by an optional suffix, so truncated
        // sequences also get to meet a following ASCII or lead byte.
        bytes s = near_valid(r);
        if (r.below(2)) s = cat(s, r.below(2) ? ascii(static_cast<std::size_t>(r.below(40))) : near_valid(r));
        const bool valid = ref_valid(s);
        const std::size_t fail_at = ref_fail_pos(s);
        CAPTURE(iter);
        CHECK(!(valid && fail_at != never));
        CHECK(ref_fail_pos_long(s) == fail_at);  // guards the long-input reference
        (valid ? n_valid : fail_at == never ? n_truncated : n_failed)++;

        CHECK(is_valid_utf8(s) == valid);
        check_byte_by_byte(s, valid, fail_at);

        // A random chunking.
        {
            utf8_validator v;
            std::size_t pos = 0;
            bool ok = true;
            while (pos < s.size()) {
                const std::size_t len =
                    std::min<std::size_t>(s.size() - pos, static_cast<std::size_t>(r.below(20)));
                const bool chunk_ok = v.feed(sub(s, pos, len));
                // Feeds up to the failing byte succeed; the one holding it fails.
                CHECK(chunk_ok == (fail_at == never || fail_at >= pos + len));
                ok = ok && chunk_ok;
                pos += len;
            }
            CHECK((ok && v.complete()) == valid);
        }

        // Every position relative to the 8/16/64-byte blocks of the fast path.
        // An ASCII prefix never changes viability, so the failure just moves.
        // (The kernels need a run of simd::min_run bytes.)
        for (const simd::level l : levels()) {
            if (l != simd::level::none && s.size() < simd::min_run) continue;
            const level_scope scope(l);
            CAPTURE(level_name(l));
            for (std::size_t pad = 0; pad < 72; ++pad) check_padded(s, valid, fail_at, pad);
        }
    }
    // The generator must actually produce all three kinds of input.
    CHECK(n_valid > 300);
    CHECK(n_truncated > 100);
    CHECK(n_failed > 300);
    MESSAGE("valid " << n_valid << ", truncated " << n_truncated << ", failed " << n_failed);
}

TEST_CASE("utf8: long multibyte text across chunk and block boundaries") {
    tether::rng r(0x75746639);
    bytes text;
    while (text.size() < 20000) {
        std::uint32_t cp;
        switch (r.below(4)) {
            case 0: cp = static_cast<std::uint32_t>(r.below(0x80)); break;
            case 1: cp = 0x80 + static_cast<std::uint32_t>(r.below(0x780)); break;
            case 2: cp = 0x800 + static_cast<std::uint32_t>(r.below(0xF800)); break;
            default: cp = 0x10000 + static_cast<std::uint32_t>(r.below(0x100000)); break;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        append_utf8(text, cp);
    }
    CHECK(ref_valid(text));
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        CHECK(is_valid_utf8(text));
        for (int iter = 0; iter < 200; ++iter) {
            utf8_validator v;
            std::size_t pos = 0;
            bool ok = true;
            while (pos < text.size()) {
                const std::size_t len =
                    std::min<std::size_t>(text.size() - pos,
                                          static_cast<std::size_t>(r.below(300)));
                ok = v.feed(sub(text, pos, len)) && ok;
                pos += len;
            }
            CHECK(ok);
            CHECK(v.complete());
        }
        // One corrupted byte anywhere is caught, exactly where the reference says.
        for (int iter = 0; iter < 200; ++iter) {
            bytes t = text;
            const std::size_t at = static_cast<std::size_t>(r.below(t.size()));
            t[at] = static_cast<std::uint8_t>(r.below(2) ? 0xFF : 0x80);
            // The text before the corrupted code point is valid and complete, so
            // the reference only needs a window from that code point's start
            // (the whole 20 KB through the brute-force reference is too slow);
            // 12 bytes hold the corrupted code point and the next one.
            std::size_t start = at;
            while (start > 0 && (text[start] & 0xC0) == 0x80) --start;
            const bytes window(t.begin() + static_cast<std::ptrdiff_t>(start),
                               t.begin() +
                                   static_cast<std::ptrdiff_t>(std::min(t.size(), start + 12)));
            const std::size_t rel = ref_fail_pos(window);
            const bool valid = ref_valid(t);
            CAPTURE(at);
            if (rel != never) {
                const std::size_t fail_at = start + rel;
                CHECK_FALSE(valid);
                utf8_validator v;
                CHECK(v.feed(sub(t, 0, fail_at)));
                CHECK_FALSE(v.feed(sub(t, fail_at, t.size() - fail_at)));
            }
            CHECK(is_valid_utf8(t) == valid);
        }
    }
}

// ---------------------------------------------------------------------------
// Vector kernels.

TEST_CASE("utf8 simd: the pair tables flag exactly the pairs valid text cannot hold") {
    // Every adjacent pair valid UTF-8 can contain, from all code points:
    // pairs inside one encoding, and (last byte, first byte) across two.
    std::vector<bool> possible(256 * 256);
    std::array<bool, 256> first{};
    std::array<bool, 256> last{};
    bytes e;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        e.clear();
        append_utf8(e, cp);
        first[e.front()] = true;
        last[e.back()] = true;
        for (std::size_t i = 0; i + 1 < e.size(); ++i) possible[e[i] * 256u + e[i + 1]] = true;
    }
    for (unsigned a = 0; a < 256; ++a)
        for (unsigned b = 0; b < 256; ++b)
            if (last[a] && first[b]) possible[a * 256 + b] = true;

    std::size_t mismatches = 0;
    for (unsigned a = 0; a < 256; ++a) {
        for (unsigned b = 0; b < 256; ++b) {
            const std::uint8_t f =
                simd::pair_flags(static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b));
            const bool conts = (a & 0xC0) == 0x80 && (b & 0xC0) == 0x80;
            // C0, C1, F5..FF are never valid, but the kernel can only see
            // that at the pair they start (any next byte is flagged).
            const bool b_never = b == 0xC0 || b == 0xC1 || b >= 0xF5;
            bool ok = ((f & simd::two_conts) != 0) == conts;
            if (!b_never) ok = ok && (((f & 0x7F) != 0) == !possible[a * 256 + b]);
            if (!ok && mismatches++ < 5) {
                CAPTURE(a);
                CAPTURE(b);
                CAPTURE(static_cast<unsigned>(f));
                CHECK(false);
            }
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("utf8 simd: state stand-in leads and the state after a run") {
    namespace u = tether::ws::detail::utf8;
    // The stand-in lead byte leaves the DFA in the state it stands for.
    for (const std::uint8_t s : u::all_states) {
        if (s == u::s_reject) continue;
        const std::uint8_t lead = u::state_lead(s);
        CHECK((lead == 0 ? u::s_accept : u::next_state(u::s_accept, lead)) == s);
    }
    // state_after_run: ASCII, then four bytes from every byte class end
    // point; wherever the DFA does not reject (the kernel flags the rest),
    // the state from the last four bytes alone is the DFA's.
    std::size_t checked = 0;
    static const std::uint8_t reps[] = {0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC2, 0xDF,
                                        0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4};
    for (const std::uint8_t a : reps)
        for (const std::uint8_t b : reps)
            for (const std::uint8_t c : reps)
                for (const std::uint8_t d : reps) {
                    const std::uint8_t buf[8] = {0x41, 0x41, 0x41, 0x41, a, b, c, d};
                    std::uint64_t s = u::s_accept;
                    for (const std::uint8_t x : buf) s = u::step(s, x);
                    if ((s & 63) == u::s_reject) continue;  // the kernel would have flagged it
                    ++checked;
                    CHECK((u::state_after_run(buf + 8) & 63) == (s & 63));
                }
    CHECK(checked > 1000);
}

TEST_CASE("utf8 simd: kernels call clean runs clean and flag only real errors") {
    static const std::uint8_t leads[] = {0x00, 0xC2, 0xE1, 0xF1, 0xE0, 0xED, 0xF0, 0xF4};
    tether::rng r(0x6B65726E);
    for (const simd::level l : levels()) {
        if (l == simd::level::none) continue;
        const level_scope scope(l);
        CAPTURE(level_name(l));
        const simd::kernel_fn k = simd::kernel();
        REQUIRE(static_cast<bool>(k));
        std::size_t n_clean = 0;
        std::size_t n_flagged = 0;
        for (int iter = 0; iter < 3000; ++iter) {
            CAPTURE(iter);
            const std::uint8_t lead = leads[r.below(std::size(leads))];
            // What the lead owes, then text; cut anywhere (an open tail is
            // the caller's business and must not be flagged).
            bytes text;
            const std::uint8_t tail = static_cast<std::uint8_t>(0x80 + r.below(0x40));
            switch (lead) {
                case 0xC2: text = {tail}; break;
                case 0xE1: text = {tail, tail}; break;
                case 0xF1: text = {tail, tail, tail}; break;
                case 0xE0: text = {static_cast<std::uint8_t>(0xA0 + r.below(0x20)), tail}; break;
                case 0xED: text = {static_cast<std::uint8_t>(0x80 + r.below(0x20)), tail}; break;
                case 0xF0:
                    text = {static_cast<std::uint8_t>(0x90 + r.below(0x30)), tail, tail};
                    break;
                case 0xF4:
                    text = {static_cast<std::uint8_t>(0x80 + r.below(0x10)), tail, tail};
                    break;
                default: break;
            }
            text = cat(text, random_text(r, 70, 600));
            text.resize(64 + static_cast<std::size_t>(r.below(text.size() - 63)));
            if (r.below(2)) mutate(text, r, 1 + static_cast<std::size_t>(r.below(2)));
            if (text.size() < simd::min_run) continue;
            const std::size_t n = text.size();

            bytes stream = lead ? bytes{lead} : bytes{};
            stream = cat(stream, text);
            const std::size_t f = ref_fail_pos_long(stream);
            const std::size_t f_rel = f == never ? never : f - (lead ? 1 : 0);

            // At an arbitrary address.
            const std::size_t off = static_cast<std::size_t>(r.below(64));
            bytes buf(off + n);
            std::copy(text.begin(), text.end(), buf.begin() + static_cast<std::ptrdiff_t>(off));
            const simd::result res = k(buf.data() + off, n, lead);

            if (f_rel == never) {
                CHECK_FALSE(res.error);
                CHECK(res.clean == n);
                ++n_clean;
                continue;
            }
            const std::uint8_t last = text[n - 1];
            const bool unseen = f_rel == n - 1 && (last == 0xC0 || last == 0xC1 || last >= 0xF5);
            if (!unseen) CHECK(res.error);
            if (res.error) {
                ++n_flagged;
                // Everything before `clean` is clean; the flagged block
                // holds the failing byte (or the one after a C0/C1/F5..FF).
                CHECK(res.clean <= f_rel + 1);
                CHECK(f_rel < res.clean + 64);
            } else {
                CHECK(res.clean == n);
            }
        }
        CHECK(n_clean > 1000);
        CHECK(n_flagged > 1000);
    }
}

TEST_CASE("utf8 simd: an error at every position of a 64-byte window, every run offset") {
    struct corruption {
        const char* name;
        bytes with;
        bool insert;
    };
    const corruption corruptions[] = {
        {"FF", {0xFF}, false},
        {"80", {0x80}, false},
        {"ascii", {'x'}, false},
        {"C1", {0xC1}, false},
        {"F5", {0xF5}, false},
        {"F4 90", {0xF4, 0x90}, false},
        {"E0 9F", {0xE0, 0x9F}, false},
        {"F0 8F", {0xF0, 0x8F}, false},
        {"+ED A0 80", {0xED, 0xA0, 0x80}, true},
        {"+E1", {0xE1}, true},
        {"+80", {0x80}, true},
    };
    const std::size_t nc = std::size(corruptions);
    const std::vector<simd::level> lv = levels();
    tether::rng r(0x77696E64);
    std::size_t n_cases = 0;
    std::size_t n_invalid = 0;
    for (const mix& m : mixes) {
        CAPTURE(m.name);
        const bytes text = make_text(r, 300, m);
        const std::size_t windows[] = {0, 150, text.size() - 64};
        for (const std::size_t w : windows) {
            for (std::size_t pos = w; pos < w + 64; ++pos) {
                // Two corruptions per position, rotating through all.
                for (const std::size_t ci : {pos % nc, (pos * 7 + 3) % nc}) {
                    const corruption& c = corruptions[ci];
                    bytes t = text;
                    if (c.insert) {
                        t.insert(t.begin() + static_cast<std::ptrdiff_t>(pos), c.with.begin(),
                                 c.with.end());
                    } else {
                        for (std::size_t j = 0; j < c.with.size() && pos + j < t.size(); ++j)
                            t[pos + j] = c.with[j];
                    }
                    const bool valid = ref_valid(t);
                    const std::size_t f = ref_fail_pos_long(t);
                    n_invalid += !valid;
                    CAPTURE(pos);
                    CAPTURE(c.name);
                    for (const simd::level l : lv) {
                        const level_scope scope(l);
                        CAPTURE(level_name(l));
                        // k: where the first chunk ends, so where the second
                        // chunk's run starts (possibly inside a code point);
                        // the copy's address moves with it.
                        for (std::size_t k = 0; k < 64; ++k) {
                            ++n_cases;
                            const std::size_t off = (k * 13) % 64;
                            bytes buf(off + t.size());
                            std::copy(t.begin(), t.end(),
                                      buf.begin() + static_cast<std::ptrdiff_t>(off));
                            const std::span<const std::uint8_t> all(buf.data() + off, t.size());
                            CHECK(is_valid_utf8(all) == valid);
                            utf8_validator v;
                            const bool ok1 = v.feed(all.first(k));
                            CHECK(ok1 == (f == never || f >= k));
                            if (f == never) {
                                CHECK(v.feed(all.subspan(k)));
                                CHECK(v.complete() == valid);
                            } else if (f >= k) {
                                // Exactly at f: all before it passes, f fails.
                                utf8_validator w2 = v;
                                CHECK(v.feed(all.subspan(k, f - k)));
                                CHECK_FALSE(v.feed(all.subspan(f, 1)));
                                CHECK_FALSE(w2.feed(all.subspan(k)));
                            }
                        }
                    }
                }
            }
        }
    }
    CHECK(n_invalid > 1000);
    MESSAGE(n_cases << " cases, " << n_invalid << " invalid texts");
}

namespace {

// Runs every input through the validator at every level (level outermost:
// switching is not free under sanitizers) and checks that each level gives
// the scalar DFA's answer and that the DFA's matches the reference.
// An input is `prefix` fed alone (leaving a pending state), then `body`.
struct level_sweep {
    std::vector<bytes> prefixes;
    std::vector<bytes> bodies;
    std::vector<std::pair<std::size_t, std::size_t>> inputs;  // (prefix, body)

    void run() {
        const std::vector<simd::level> lv = levels();
        std::vector<std::uint8_t> scalar;
        std::size_t mismatches = 0;
        for (const simd::level l : lv) {
            const level_scope scope(l);
            std::vector<std::uint8_t> got;
            got.reserve(inputs.size());
            for (const auto& [pi, bi] : inputs) {
                utf8_validator v;
                v.feed(prefixes[pi]);
                const bool ok = v.feed(bodies[bi]);
                got.push_back(
                    static_cast<std::uint8_t>(ok | (v.complete() << 1) | (v.failed() << 2)));
            }
            if (l == simd::level::none) {
                scalar = got;
                // Both kinds of input, or the sweep proves nothing.
                const auto n_valid = static_cast<std::size_t>(std::count_if(
                    got.begin(), got.end(), [](std::uint8_t g) { return (g & 3) == 3; }));
                CHECK(n_valid * 1000 > inputs.size());
                CHECK((inputs.size() - n_valid) * 1000 > inputs.size());
                for (std::size_t i = 0; i < inputs.size(); ++i) {
                    const bytes all = cat(prefixes[inputs[i].first], bodies[inputs[i].second]);
                    if (((scalar[i] & 3) == 3) != ref_valid(all) && mismatches++ < 5) {
                        CAPTURE(i);
                        CHECK(false);
                    }
                }
            } else {
                for (std::size_t i = 0; i < inputs.size(); ++i) {
                    if (got[i] != scalar[i] && mismatches++ < 5) {
                        CAPTURE(level_name(l));
                        CAPTURE(i);
                        CAPTURE(prefixes[inputs[i].first].size());
                        CAPTURE(static_cast<unsigned>(got[i]));
                        CAPTURE(static_cast<unsigned>(scalar[i]));
                        CHECK(false);
                    }
                }
            }
        }
        CHECK(mismatches == 0);
    }
};

// Exactly `len` bytes of valid text: whole code points of `text`, then ASCII.
bytes head_of(const bytes& text, std::size_t len) {
    std::size_t n = 0;
    while (n < text.size()) {
        std::size_t next = n + 1;
        while (next < text.size() && (text[next] & 0xC0) == 0x80) ++next;
        if (next > len) break;
        n = next;
    }
    bytes out(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(n));
    out.resize(len, 'a');
    return out;
}

// Every byte class end point (and the never-valid bytes).
const std::uint8_t class_reps[] = {0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2,
                                   0xDF, 0xE0, 0xE1, 0xED, 0xF0, 0xF1, 0xF4, 0xF5};

}  // namespace

TEST_CASE("utf8 simd: every pending state, then every two bytes, then a long run") {
    // Prefixes that leave the DFA in each state, fed as their own chunk so
    // the body's run starts inside the code point (the kernel's stand-in
    // lead), then all 65536 two-byte starts.
    level_sweep sw;
    sw.prefixes = {{},     {0xC2}, {0xE1}, {0xE1, 0x80}, {0xF1}, {0xF1, 0x80}, {0xF1, 0x80, 0x80},
                   {0xE0}, {0xED}, {0xF0}, {0xF4}};
    tether::rng r(0x73746174);
    const bytes cyr = make_text(r, 70, mixes[0]);
    for (unsigned x = 0; x < 256; ++x)
        for (unsigned y = 0; y < 256; ++y) {
            sw.bodies.push_back(
                cat(bytes{static_cast<std::uint8_t>(x), static_cast<std::uint8_t>(y)}, cyr));
            for (std::size_t p = 0; p < sw.prefixes.size(); ++p)
                sw.inputs.emplace_back(p, sw.bodies.size() - 1);
        }
    sw.run();
}

TEST_CASE("utf8 simd: four bytes from every byte class across the first vector and at the end") {
    // The first vector of a run takes its previous bytes from the stand-in
    // lead and alignr, later ones load them; the last vector overlaps the
    // one before. Four bytes of any classes straddling the end of the first
    // vector (16 or 32 bytes) or ending the run, after a pending state.
    level_sweep sw;
    sw.prefixes = {{}, {0xF1, 0x80}};
    tether::rng r(0x666F7572);
    const bytes cjk = make_text(r, 120, mixes[1]);
    for (const std::size_t at : {std::size_t{14}, std::size_t{30}, std::size_t{100}}) {
        const bytes head = head_of(cjk, at);
        REQUIRE(ref_valid(head));
        for (const std::uint8_t a : class_reps)
            for (const std::uint8_t b : class_reps)
                for (const std::uint8_t c : class_reps)
                    for (const std::uint8_t d : class_reps) {
                        bytes body = cat(head, bytes{a, b, c, d});
                        if (at < 64) body = cat(body, cjk);
                        sw.bodies.push_back(std::move(body));
                        sw.inputs.emplace_back(0, sw.bodies.size() - 1);
                        if (at < 16) sw.inputs.emplace_back(1, sw.bodies.size() - 1);
                    }
    }
    sw.run();
}

TEST_CASE("utf8 simd: a sequence left open before an all-ASCII block") {
    // The kernels skip the pair checks on an all-ASCII 64-byte group and
    // only look at whether the group before left a sequence open: put
    // every open (and closed) sequence end at every offset of a group.
    level_sweep sw;
    sw.prefixes = {{}, {0xF0}};
    tether::rng r(0x6F70656E);
    const bytes cyr = make_text(r, 200, mixes[0]);
    const bytes ends[] = {{0xC2},
                          {0xE1},
                          {0xE1, 0x80},
                          {0xF1},
                          {0xF1, 0x80},
                          {0xF1, 0x80, 0x80},
                          {0xF4, 0x8F, 0xBF},
                          {0xC2, 0x80},
                          {0xE1, 0x80, 0x80},
                          {0xF1, 0x80, 0x80, 0x80},
                          {0xC0},
                          {0xFF}};
    for (std::size_t len = 0; len < 140; ++len) {
        const bytes head = head_of(cyr, len);
        REQUIRE(ref_valid(head));
        for (const bytes& e : ends) {
            sw.bodies.push_back(cat(cat(cat(bytes{0x90, 0x80, 0x80}, head), e), ascii(150)));
            sw.inputs.emplace_back(0, sw.bodies.size() - 1);  // starts with a stray continuation
            sw.inputs.emplace_back(1, sw.bodies.size() - 1);  // valid start (F0 90 80 80)
        }
    }
    sw.run();
}

TEST_CASE("utf8 simd: random long buffers against the reference, at every level") {
    tether::rng r(0x6C6F6E67);
    const std::vector<simd::level> lv = levels();
    std::size_t n_valid = 0;
    std::size_t n_truncated = 0;
    std::size_t n_failed = 0;
    for (int iter = 0; iter < 400; ++iter) {
        CAPTURE(iter);
        bytes s = random_text(r, 64, 3000);
        mutate(s, r, static_cast<std::size_t>(r.below(4)));
        if (r.below(4) == 0) s.resize(static_cast<std::size_t>(r.below(s.size() + 1)));
        const bool valid = ref_valid(s);
        const std::size_t fail_at = ref_fail_pos_long(s);
        (valid ? n_valid : fail_at == never ? n_truncated : n_failed)++;
        for (const simd::level l : lv) {
            const level_scope scope(l);
            CAPTURE(level_name(l));
            check_long(s, valid, fail_at, r);
        }
    }
    CHECK(n_valid > 50);
    CHECK(n_truncated > 10);
    CHECK(n_failed > 150);
    MESSAGE("valid " << n_valid << ", truncated " << n_truncated << ", failed " << n_failed);
}

TEST_CASE("utf8 simd: the kernels change nothing (hook off vs on, same chunks)") {
    tether::rng r(0x686F6F6B);
    const std::vector<simd::level> lv = levels();
    MESSAGE("best kernel on this CPU: " << level_name(lv.back()));
    for (int iter = 0; iter < 1500; ++iter) {
        CAPTURE(iter);
        bytes s;
        switch (r.below(3)) {
            case 0:  // text, mutated
                s = random_text(r, 0, 2000);
                mutate(s, r, static_cast<std::size_t>(r.below(3)));
                break;
            case 1: {  // byte soup biased to the interesting bytes
                static const std::uint8_t pool[] = {0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                                    0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF,
                                                    0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
                s.resize(static_cast<std::size_t>(r.below(300)));
                for (auto& c : s) c = pool[r.below(std::size(pool))];
                break;
            }
            default:  // valid text with one open sequence or error near a chunk edge
                s = random_text(r, 64, 500);
                s.push_back(static_cast<std::uint8_t>(0xC0 + r.below(0x40)));
                s = cat(s, random_text(r, 0, 200));
                break;
        }
        const std::vector<std::size_t> cuts = random_cuts(r, s.size());
        std::vector<int> scalar;
        for (const simd::level l : lv) {
            const level_scope scope(l);
            const std::vector<int> got = trace(s, cuts);
            if (l == simd::level::none) {
                scalar = got;
                CHECK((got[got.size() - 2] == 1 && got[got.size() - 1] == 0) == ref_valid(s));
            } else {
                CAPTURE(level_name(l));
                CHECK(got == scalar);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// detail::unmask_validate: unmasking and checking in one pass (the fused
// AVX2 loop, the inline small path, block by block without AVX2) against
// the RFC 6455 §5.3 definition of masking plus the reference validator.

namespace {

using tether::ws::mask_key;

// Feed `text`, masked with `key` (or not, key == nullptr) from key byte
// `phase0`, through unmask_validate in chunks of the given sizes; check
// every chunk's verdict against the reference failure point and that the
// bytes come out unmasked. check_text false: binary (unmask only).
void check_unmask_validate(const bytes& text, const mask_key* key, std::size_t phase0,
                           const std::vector<std::size_t>& cuts, bool check_text) {
    bytes wire = text;
    if (key)
        for (std::size_t i = 0; i < wire.size(); ++i) wire[i] ^= (*key)[(phase0 + i) % 4];
    const std::size_t fail_at = check_text ? ref_fail_pos_long(text) : never;
    utf8_validator v;
    std::size_t pos = 0;
    std::size_t ci = 0;
    while (pos < wire.size() || ci == 0) {
        const std::size_t len = ci < cuts.size() ? std::min(cuts[ci], wire.size() - pos) : wire.size() - pos;
        ++ci;
        const bool ok = tether::ws::detail::unmask_validate(wire.data() + pos, len, key, (phase0 + pos) % 4,
                                                             check_text ? &v : nullptr);
        // (After a failure only the part up to the error is promised.)
        if (ok)
            CHECK(std::equal(wire.begin() + static_cast<std::ptrdiff_t>(pos),
                             wire.begin() + static_cast<std::ptrdiff_t>(pos + len),
                             text.begin() + static_cast<std::ptrdiff_t>(pos)));
        CHECK(ok == (fail_at == never || fail_at >= pos + len));
        pos += len;
        if (!ok || pos == wire.size()) break;
    }
    if (check_text && fail_at == never) CHECK(v.complete() == ref_valid(text));
}

}  // namespace

TEST_CASE("unmask_validate: unmask + UTF-8 check in one pass equals mask, then validate") {
    tether::rng r(0x5eed);
    const mask_key key{0x37, 0xfa, 0x21, 0x3d};
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        // Every size through the small path and the 32-byte fused blocks,
        // valid and broken, whole and split at random.
        for (std::size_t n = 0; n <= 300; ++n) {
            bytes text = make_text(r, n, mixes[n % std::size(mixes)]);
            text.resize(n);  // may cut a code point: the end is then open
            if (n > 0 && r.below(3) == 0) mutate(text, r, 1);
            const std::size_t phase = n % 4;
            CAPTURE(n);
            check_unmask_validate(text, &key, phase, {}, true);
            check_unmask_validate(text, nullptr, 0, {}, true);
            check_unmask_validate(text, &key, phase, {}, false);
            check_unmask_validate(text, &key, phase, random_cuts(r, text.size()), true);
        }
    }
}

TEST_CASE("unmask_validate: invalid UTF-8 at every position, and code points across 32-byte and block boundaries") {
    const mask_key key{0x01, 0x80, 0xC3, 0xFE};
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        // A 4-byte code point at every offset around the fused vectors
        // (32, 64) and the unmask-then-validate block (fuse_block), in one
        // call and split right inside it.
        const std::size_t block = tether::ws::detail::fuse_block;
        for (const std::size_t base : {std::size_t{32}, std::size_t{64}, block, 2 * block}) {
            for (std::size_t at = base - 4; at <= base + 1; ++at) {
                bytes text = cat(ascii(at, 'x'), b({0xF0, 0x9F, 0x98, 0x80}));
                text = cat(text, ascii(block + 40 - (at % 32), 'y'));
                CAPTURE(at);
                for (std::size_t phase = 0; phase < 4; ++phase) {
                    check_unmask_validate(text, &key, phase, {}, true);
                    check_unmask_validate(text, &key, phase, {at + 2}, true);
                    // Broken: the last continuation byte replaced by ASCII;
                    // and a stray continuation byte right at the boundary.
                    bytes bad = text;
                    bad[at + 3] = 'z';
                    check_unmask_validate(bad, &key, phase, {}, true);
                    check_unmask_validate(bad, &key, phase, {at + 2}, true);
                    bad = text;
                    bad[base] = 0x80;
                    check_unmask_validate(bad, &key, phase, {}, true);
                }
            }
        }
        // Every byte position of a 100-byte non-ASCII text made invalid, in
        // one call (the fused loop's flagged-block fallback) and in two.
        tether::rng r(7);
        const bytes good = make_text(r, 100, mixes[0]);
        for (std::size_t i = 0; i < good.size(); ++i) {
            for (const std::uint8_t badbyte : {std::uint8_t{0xFF}, std::uint8_t{0xC0}, std::uint8_t{0x80},
                                               std::uint8_t{0xED}}) {
                bytes t = good;
                t[i] = badbyte;
                CAPTURE(i);
                check_unmask_validate(t, &key, i % 4, {}, true);
                check_unmask_validate(t, &key, 0, {i / 2 + 1}, true);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// detail::small_frames_avx512: a run of small whole frames taken at once.

#if TETHER_WS_UTF8_SIMD
namespace {

// A payload of exactly n bytes for the small-frame tests: valid text cut
// anywhere (so possibly a code point left open at the end), near-valid
// text, or one adversarial sequence (overlong, surrogate, > U+10FFFF, a
// stray continuation, a truncated lead) placed anywhere, often at the end.
bytes small_payload(tether::rng& r, std::size_t n) {
    static const bytes bad[] = {
        b({0xC0, 0x80}),       b({0xC1, 0xBF}),       b({0xE0, 0x80, 0x80}), b({0xE0, 0x9F, 0xBF}),
        b({0xED, 0xA0, 0x80}), b({0xED, 0xBF, 0xBF}), b({0xF0, 0x80, 0x80, 0x80}),
        b({0xF0, 0x8F, 0xBF, 0xBF}), b({0xF4, 0x90, 0x80, 0x80}), b({0xF5, 0x80, 0x80, 0x80}),
        b({0xFF}),             b({0x80}),             b({0xBF}),             b({0xC2}),
        b({0xE1, 0x80}),       b({0xF1, 0x80, 0x80}), b({0xE0}),             b({0xF4, 0x8F}),
    };
    bytes t;
    switch (r.below(5)) {
        case 0: t = make_text(r, n + 4, mixes[r.below(std::size(mixes))]); break;
        case 1:
            while (t.size() < n) t = cat(t, near_valid(r));
            break;
        case 2: t = ascii(n, 'q'); break;
        default: {
            t = make_text(r, n + 4, mixes[r.below(std::size(mixes))]);
            t.resize(n);
            const bytes& s = bad[r.below(std::size(bad))];
            if (s.size() <= n) {
                // At the very end half of the time: the open-tail cases.
                const std::size_t at = r.below(2) ? n - s.size() : static_cast<std::size_t>(r.below(n - s.size() + 1));
                std::copy(s.begin(), s.end(), t.begin() + static_cast<std::ptrdiff_t>(at));
            }
            break;
        }
    }
    t.resize(n, 'z');
    return t;
}

struct small_frame {
    std::uint8_t b0;
    bool masked;
    bytes payload;  // unmasked
    mask_key key;
};

bytes wire_of(const small_frame& f) {
    bytes w{f.b0, static_cast<std::uint8_t>((f.masked ? 0x80 : 0) | f.payload.size())};
    if (f.masked) w.insert(w.end(), f.key.begin(), f.key.end());
    bytes p = f.payload;
    if (f.masked) tether::ws::apply_mask(std::span<std::uint8_t>(p), f.key, 0);
    return cat(w, p);
}

// The copying form of small_frames_avx512 on `in` (its avail bytes), read
// from src_align in a buffer of exactly that size (ASan sees a read past
// it) and written to dst_align in one filled with random bytes: checks
// that src is unchanged and that nothing of dst outside the bytes taken
// is written; returns the count and the bytes taken as written.
std::size_t copy_run(tether::rng& r, const bytes& in, std::size_t src_align, std::size_t dst_align, bool masked,
                     std::size_t max_len, std::size_t max_bytes, std::uint8_t* lens, std::size_t max_frames,
                     bytes& taken) {
    bytes src(src_align + in.size());
    r.fill(std::span<std::uint8_t>(src));
    std::copy(in.begin(), in.end(), src.begin() + static_cast<std::ptrdiff_t>(src_align));
    const bytes src0 = src;
    bytes dst(dst_align + in.size() + 64);
    r.fill(std::span<std::uint8_t>(dst));
    const bytes dst0 = dst;
    const std::size_t got = tether::ws::detail::small_frames_avx512(dst.data() + dst_align, src.data() + src_align,
                                                                    in.size(), masked, max_len, max_bytes, lens,
                                                                    max_frames);
    CHECK(src == src0);
    REQUIRE(got <= in.size());
    const auto end = static_cast<std::ptrdiff_t>(dst_align + got);
    CHECK(std::equal(dst.begin(), dst.begin() + static_cast<std::ptrdiff_t>(dst_align), dst0.begin()));
    CHECK(std::equal(dst.begin() + end, dst.end(), dst0.begin() + end));
    taken.assign(dst.begin() + static_cast<std::ptrdiff_t>(dst_align), dst.begin() + end);
    return got;
}

}  // namespace

TEST_CASE("small_frames_avx512: runs of small frames against the scalar reference, every length and alignment") {
    namespace d = tether::ws::detail;
    if (simd::best_supported() < simd::level::avx512) return;  // nothing to test on this CPU
    tether::rng r(0x736d616c);
    tether::rng fill(0x66696c6c);  // the copying form's buffers (r's sequence as before)
    std::size_t taken_all = 0, stopped_utf8 = 0;
    for (const bool masked : {true, false}) {
        for (std::size_t len = 0; len <= 70; ++len) {
            for (std::size_t align = 0; align < 64; ++align) {
                CAPTURE(masked);
                CAPTURE(len);
                CAPTURE(align);
                // Two to five frames; the one of length `len` first, so
                // every length starts a run; the rest random.
                std::vector<small_frame> frames;
                const std::size_t count = 2 + static_cast<std::size_t>(r.below(4));
                for (std::size_t i = 0; i < count; ++i) {
                    const std::size_t n = i == 0 ? len : static_cast<std::size_t>(r.below(66));
                    small_frame f{static_cast<std::uint8_t>(r.below(8) == 0 ? 0x82 : 0x81), masked,
                                  small_payload(r, n), {}};
                    r.fill(f.key);
                    if (r.below(40) == 0) f.b0 = 0x01;                      // not FIN
                    if (r.below(40) == 0) f.b0 = 0x89;                      // a ping
                    if (r.below(40) == 0) f.masked = !masked;                // wrong masking
                    frames.push_back(std::move(f));
                }
                bytes wire;
                for (const auto& f : frames) wire = cat(wire, wire_of(f));
                // Cut the stream anywhere in the last frame (or not).
                const std::size_t avail = r.below(2) ? wire.size() : wire.size() - static_cast<std::size_t>(r.below(wire.size() + 1));
                const std::size_t max_len = r.below(8) == 0 ? static_cast<std::size_t>(r.below(65)) : 64;
                const std::size_t max_bytes = r.below(8) == 0 ? static_cast<std::size_t>(r.below(200)) : 4096;
                const std::size_t max_frames = r.below(8) == 0 ? static_cast<std::size_t>(r.below(4)) : 256;

                // Reference: whole frames while each is one the run takes,
                // and the table of their lengths (| 0x80: text).
                std::size_t expect = 0;
                bytes unmasked = wire;
                bytes expect_lens;
                for (const auto& f : frames) {
                    const std::size_t hs = masked ? 6 : 2;
                    if (avail - expect < hs || expect >= max_bytes || expect_lens.size() == max_frames) break;
                    if ((f.b0 != 0x81 && f.b0 != 0x82) || f.masked != masked) break;
                    if (f.payload.size() > max_len || avail - expect - hs < f.payload.size()) break;
                    if (f.b0 == 0x81 && !ref_valid(f.payload)) {
                        ++stopped_utf8;
                        break;
                    }
                    std::copy(f.payload.begin(), f.payload.end(), unmasked.begin() + static_cast<std::ptrdiff_t>(expect + hs));
                    expect += hs + f.payload.size();
                    expect_lens.push_back(static_cast<std::uint8_t>(f.payload.size() | (f.b0 == 0x81 ? 0x80 : 0)));
                }

                bytes buf(align + avail + 64, 0xEE);
                std::copy(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(avail), buf.begin() + static_cast<std::ptrdiff_t>(align));
                bytes lens(257, 0xEE);
                bytes buf2 = buf;  // the same without a table: the same frames
                const std::size_t got =
                    d::small_frames_avx512(buf.data() + align, avail, masked, max_len, max_bytes, lens.data(), max_frames);
                CHECK(got == expect);
                CHECK(d::small_frames_avx512(buf2.data() + align, avail, masked, max_len, max_bytes, nullptr,
                                             max_frames) == expect);
                CHECK(buf2 == buf);
                // One table entry per frame taken, nothing written past them.
                CHECK(std::equal(expect_lens.begin(), expect_lens.end(), lens.begin()));
                CHECK(std::all_of(lens.begin() + static_cast<std::ptrdiff_t>(expect_lens.size()), lens.end(),
                                  [](std::uint8_t x) { return x == 0xEE; }));
                // Taken frames unmasked, everything after untouched, nothing
                // written outside [0, avail).
                CHECK(std::equal(buf.begin() + static_cast<std::ptrdiff_t>(align), buf.begin() + static_cast<std::ptrdiff_t>(align + expect), unmasked.begin()));
                CHECK(std::equal(buf.begin() + static_cast<std::ptrdiff_t>(align + expect), buf.begin() + static_cast<std::ptrdiff_t>(align + avail), wire.begin() + static_cast<std::ptrdiff_t>(expect)));
                CHECK(std::all_of(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(align), [](std::uint8_t x) { return x == 0xEE; }));
                CHECK(std::all_of(buf.begin() + static_cast<std::ptrdiff_t>(align + avail), buf.end(), [](std::uint8_t x) { return x == 0xEE; }));
                // The copying form, src and dst at other alignments (never
                // equal: 28 * align + 17 is odd): the same count and table,
                // and dst holds what the in-place form left in its buffer
                // for the frames taken (headers as they came, payloads
                // unmasked), nothing written past them.
                const bytes in(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(avail));
                bytes copy_lens(257, 0xEE), taken;
                const std::size_t dst_align = (align * 29 + 17) % 64;
                CHECK(copy_run(fill, in, align, dst_align, masked, max_len, max_bytes, copy_lens.data(), max_frames, taken) ==
                      expect);
                CHECK(copy_lens == lens);
                CHECK(std::equal(taken.begin(), taken.end(), buf.begin() + static_cast<std::ptrdiff_t>(align)));
                CHECK(copy_run(fill, in, dst_align, align, masked, max_len, max_bytes, nullptr, max_frames, taken) == expect);
                CHECK(std::equal(taken.begin(), taken.end(), buf.begin() + static_cast<std::ptrdiff_t>(align)));
                taken_all += expect != 0;
            }
        }
    }
    // The inputs reach both outcomes often.
    CHECK(taken_all > 2000);
    CHECK(stopped_utf8 > 1000);
}

TEST_CASE("small_frames_avx512: a long run cut at every byte, and limited at every byte count") {
    // Runs long enough that most frames go through the loop that skips the
    // room checks (while the longest frame still fits); the cut and the
    // max_bytes limit at every byte put the switch to the checked loop
    // everywhere, frames of exactly max_len among them.
    namespace d = tether::ws::detail;
    if (simd::best_supported() < simd::level::avx512) return;
    tether::rng r(0x6375742b);
    tether::rng fill(0x6375742c);
    std::size_t runs = 0;
    for (const bool masked : {true, false}) {
        for (const std::size_t max_len : {std::size_t{64}, std::size_t{63}, std::size_t{17}, std::size_t{0}}) {
            CAPTURE(masked);
            CAPTURE(max_len);
            const std::size_t hs = masked ? 6 : 2;
            std::vector<small_frame> frames;
            for (int i = 0; i < 24; ++i) {
                const std::size_t n = r.below(2) ? max_len : static_cast<std::size_t>(r.below(max_len + 1));
                small_frame f{static_cast<std::uint8_t>(r.below(4) == 0 ? 0x82 : 0x81), masked, {}, {}};
                f.payload = make_text(r, n + 4, mixes[r.below(std::size(mixes))]);
                f.payload.resize(n);
                while (!ref_valid(f.payload)) f.payload.pop_back();  // a cut code point
                f.payload.resize(n, 'v');
                r.fill(f.key);
                frames.push_back(std::move(f));
            }
            bytes wire, unmasked;
            std::vector<std::size_t> ends;  // where each frame ends
            bytes all_lens;
            for (const auto& f : frames) {
                const bytes w = wire_of(f);
                unmasked = cat(unmasked, cat(bytes(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(hs)), f.payload));
                wire = cat(wire, w);
                ends.push_back(wire.size());
                all_lens.push_back(static_cast<std::uint8_t>(f.payload.size() | (f.b0 == 0x81 ? 0x80 : 0)));
            }
            // The reference: the whole frames within both limits.
            auto expect_of = [&](std::size_t avail, std::size_t max_bytes, std::size_t& nframes) {
                std::size_t at = 0;
                nframes = 0;
                for (const std::size_t e : ends) {
                    if (at >= max_bytes || e > avail) break;
                    at = e;
                    ++nframes;
                }
                return at;
            };
            auto check = [&](std::size_t avail, std::size_t max_bytes) {
                CAPTURE(avail);
                CAPTURE(max_bytes);
                std::size_t nframes = 0;
                const std::size_t expect = expect_of(avail, max_bytes, nframes);
                bytes buf(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(avail));
                bytes lens(frames.size() + 1, 0xEE);
                CHECK(d::small_frames_avx512(buf.data(), avail, masked, max_len, max_bytes, lens.data(), 256) == expect);
                CHECK(std::equal(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(expect), unmasked.begin()));
                CHECK(std::equal(buf.begin() + static_cast<std::ptrdiff_t>(expect), buf.end(),
                                 wire.begin() + static_cast<std::ptrdiff_t>(expect)));
                CHECK(std::equal(lens.begin(), lens.begin() + static_cast<std::ptrdiff_t>(nframes), all_lens.begin()));
                CHECK(lens[nframes] == 0xEE);
                const bytes in(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(avail));
                bytes copy_lens(frames.size() + 1, 0xEE), taken;
                CHECK(copy_run(fill, in, avail % 64, 64 - avail % 64, masked, max_len, max_bytes, copy_lens.data(), 256,
                               taken) == expect);
                CHECK(std::equal(taken.begin(), taken.end(), unmasked.begin()));
                CHECK(copy_lens == lens);
                runs += expect != 0;
            };
            for (std::size_t avail = 0; avail <= wire.size(); ++avail) check(avail, 4096);
            for (std::size_t max_bytes = 0; max_bytes <= wire.size(); ++max_bytes) check(wire.size(), max_bytes);
        }
    }
    CHECK(runs > 5000);
}

// The AVX2 form: the same frames taken as by the scalar reference, except
// that a frame is taken only while its header and 64 bytes after it lie in
// avail (it loads 64 bytes whatever the length); in place, nothing but the
// payloads taken changes; copying, src is unchanged and nothing outside
// [dst, dst + avail) is written. Buffers are exactly avail long (ASan sees
// a read past them).
TEST_CASE("small_frames_avx2: runs of small frames against the scalar reference, reads and writes inside avail") {
    namespace d = tether::ws::detail;
    if (simd::best_supported() < simd::level::avx2) return;  // nothing to test on this CPU
    tether::rng r(0xA5F2);
    std::size_t taken_all = 0, stopped_utf8 = 0, stopped_room = 0;
    for (int round = 0; round < 6000; ++round) {
        const bool masked = r.below(2) == 0;
        const std::size_t hs = masked ? 6 : 2;
        std::vector<small_frame> frames;
        const std::size_t count = 1 + static_cast<std::size_t>(r.below(8));
        for (std::size_t i = 0; i < count; ++i) {
            small_frame f{static_cast<std::uint8_t>(r.below(8) == 0 ? 0x82 : 0x81), masked,
                          small_payload(r, static_cast<std::size_t>(r.below(66))), {}};
            r.fill(f.key);
            if (r.below(60) == 0) f.b0 = 0x01;
            if (r.below(60) == 0) f.masked = !masked;
            frames.push_back(std::move(f));
        }
        bytes wire;
        for (const auto& f : frames) wire = cat(wire, wire_of(f));
        const std::size_t avail = r.below(2) ? wire.size() : wire.size() - static_cast<std::size_t>(r.below(wire.size() + 1));
        const std::size_t max_len = r.below(8) == 0 ? static_cast<std::size_t>(r.below(65)) : 64;
        const std::size_t max_bytes = r.below(8) == 0 ? static_cast<std::size_t>(r.below(300)) : 4096;
        const std::size_t max_frames = r.below(8) == 0 ? static_cast<std::size_t>(r.below(4)) : 256;
        std::size_t expect = 0;
        bytes unmasked(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(avail));
        bytes expect_lens;
        for (const auto& f : frames) {
            if (expect >= max_bytes || expect_lens.size() == max_frames) break;
            if (avail - expect < hs + 64) {
                ++stopped_room;
                break;
            }
            if ((f.b0 != 0x81 && f.b0 != 0x82) || f.masked != masked || f.payload.size() > max_len) break;
            if (f.b0 == 0x81 && !ref_valid(f.payload)) {
                ++stopped_utf8;
                break;
            }
            std::copy(f.payload.begin(), f.payload.end(), unmasked.begin() + static_cast<std::ptrdiff_t>(expect + hs));
            expect += hs + f.payload.size();
            expect_lens.push_back(static_cast<std::uint8_t>(f.payload.size() | (f.b0 == 0x81 ? 0x80 : 0)));
        }
        CAPTURE(round);
        const auto run = [&](auto copy, std::uint8_t* dst, const std::uint8_t* src, std::uint8_t* lens) {
            constexpr bool Copy = decltype(copy)::value;
            return masked ? d::small_frames_avx2<Copy, true>(dst, src, avail, max_len, max_bytes, lens, max_frames)
                          : d::small_frames_avx2<Copy, false>(dst, src, avail, max_len, max_bytes, lens, max_frames);
        };
        // In place.
        bytes buf(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(avail));
        bytes lens(257, 0xEE);
        const std::size_t got = run(std::false_type{}, buf.data(), buf.data(), lens.data());
        CHECK(got == expect);
        CHECK(std::equal(expect_lens.begin(), expect_lens.end(), lens.begin()));
        CHECK(std::all_of(lens.begin() + static_cast<std::ptrdiff_t>(expect_lens.size()), lens.end(),
                          [](std::uint8_t x) { return x == 0xEE; }));
        CHECK(buf == unmasked);  // the frames taken unmasked, the rest as it came
        // Copying: dst in a buffer with guard bytes around [0, avail).
        const bytes src0(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(avail));
        bytes src = src0;
        bytes dst(avail + 128, 0xEE);
        bytes copy_lens(257, 0xEE);
        CHECK(run(std::true_type{}, dst.data() + 64, src.data(), copy_lens.data()) == expect);
        CHECK(src == src0);
        CHECK(copy_lens == lens);
        CHECK(std::equal(unmasked.begin(), unmasked.begin() + static_cast<std::ptrdiff_t>(expect), dst.begin() + 64));
        CHECK(std::all_of(dst.begin(), dst.begin() + 64, [](std::uint8_t x) { return x == 0xEE; }));
        CHECK(std::all_of(dst.end() - 64, dst.end(), [](std::uint8_t x) { return x == 0xEE; }));
        taken_all += expect != 0;
    }
    CHECK(taken_all > 1000);
    CHECK(stopped_utf8 > 300);
    CHECK(stopped_room > 1000);
}

TEST_CASE("small_frames_avx512: every two-byte pair, and every byte at every position of a 64-byte payload") {
    namespace d = tether::ws::detail;
    if (simd::best_supported() < simd::level::avx512) return;
    const mask_key key{0x91, 0x03, 0x7E, 0xC5};
    tether::rng fill(0x636f7079);  // the copying form's buffers
    auto one = [&](const bytes& payload, bool masked) {
        small_frame f{0x81, masked, payload, key};
        const bytes wire = wire_of(f);
        bytes buf = wire;
        std::uint8_t lens[2] = {0, 0};
        const std::size_t got = d::small_frames_avx512(buf.data(), buf.size(), masked, 64, 4096, lens, 1);
        const bool valid = ref_valid(payload);
        CHECK(got == (valid ? wire.size() : 0));
        if (!valid) CHECK(buf == wire);
        // The copying form: the same, written to another buffer.
        bytes taken;
        std::uint8_t copy_lens[2] = {0, 0};
        CHECK(copy_run(fill, wire, 0, 5, masked, 64, 4096, copy_lens, 1, taken) == got);
        CHECK(std::equal(taken.begin(), taken.end(), buf.begin()));
        CHECK(copy_lens[0] == lens[0]);
    };
    // Every pair of bytes, alone, after ASCII, and ending a 64-byte payload
    // (the open-tail test of a full vector).
    for (unsigned a = 0; a < 256; ++a) {
        for (unsigned c = 0; c < 256; ++c) {
            const bytes pair{static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(c)};
            CAPTURE(a);
            CAPTURE(c);
            one(pair, true);
            one(cat(ascii(62, 'x'), pair), a & 1);
            if ((a + c) % 7 == 0) one(cat(ascii(30, 'x'), pair), true);
        }
    }
    // Every byte value at every position of a valid 64-byte text, and
    // every 3- and 4-byte sequence start near the end.
    tether::rng r(64);
    const bytes good = make_text(r, 64, mixes[4]);
    bytes g = good;
    g.resize(64, 'a');
    for (std::size_t i = 0; i < 64; ++i)
        for (unsigned v = 0; v < 256; v += 5) {
            bytes t = g;
            t[i] = static_cast<std::uint8_t>(v);
            one(t, true);
        }
    for (std::size_t n = 0; n <= 64; ++n)
        for (const bytes& s : {b({0xE2, 0x82, 0xAC}), b({0xF0, 0x9F, 0x98, 0x80}), b({0xDF, 0xBF})})
            for (std::size_t cut = 1; cut <= s.size(); ++cut) {
                if (n < cut) continue;
                bytes t = ascii(n - cut, 'k');
                t.insert(t.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(cut));
                one(t, true);
            }
}
#endif

TEST_CASE("unmask_validate: large chunks at every alignment and phase (the aligned 512-bit blocks)") {
    namespace d = tether::ws::detail;
    tether::rng r(0xA11E);
    const mask_key key{0x5A, 0xC3, 0x0F, 0x99};
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        for (const std::size_t n : {std::size_t{4095}, std::size_t{4096}, std::size_t{5000}, std::size_t{9001}}) {
            const bytes text = make_text(r, n + 8, mixes[n % std::size(mixes)]);
            for (std::size_t align = 0; align < 64; ++align) {
                CAPTURE(n);
                CAPTURE(align);
                const std::size_t phase = align % 4;
                // Valid (cut at a code point boundary), or one byte broken
                // near the aligned head, a block boundary, or the end.
                bytes t(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(n));
                while (!t.empty() && (t.back() & 0xC0) == 0x80) t.pop_back();
                if (!t.empty() && t.back() >= 0xC0) t.pop_back();
                const std::size_t where[] = {64 + align, 127, 128, 4095, 4096, 4160, t.size() - 1};
                if (align % 3 != 0) t[std::min(where[align % std::size(where)], t.size() - 1)] = 0xC0;
                bytes buf(align + t.size());
                std::copy(t.begin(), t.end(), buf.begin() + static_cast<std::ptrdiff_t>(align));
                tether::ws::apply_mask(std::span<std::uint8_t>(buf.data() + align, t.size()), key, phase);
                utf8_validator v;
                const bool ok = d::unmask_validate(buf.data() + align, t.size(), &key, phase, &v) && v.complete();
                CHECK(ok == ref_valid(t));
                if (ok) CHECK(std::equal(t.begin(), t.end(), buf.begin() + static_cast<std::ptrdiff_t>(align)));
            }
        }
    }
}

TEST_CASE("unmask_validate: a code point, whole or broken, at every offset around the 4 KiB blocks of the fused loop") {
    // fused_avx512 checks a block from the high nibbles it stored in pass
    // 1, the byte before each vector's included: a sequence across a
    // vector or block boundary needs the last nibbles of the previous
    // vector or block. The blocks start at 64 + (bytes to the next 64-byte
    // boundary): placed here by the buffer's alignment.
    namespace d = tether::ws::detail;
    const mask_key key{0xC5, 0x3A, 0x77, 0x0E};
    const bytes seqs[] = {b({0xC3, 0xA9}), b({0xE2, 0x82, 0xAC}), b({0xF0, 0x9F, 0x98, 0x80}), b({0xED, 0x9F, 0xBF})};
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        for (std::size_t align = 0; align < 64; align += 9) {
            const std::size_t head = 64 + ((64 - (align + 64) % 64) % 64);  // first block, for a 64-aligned buffer
            for (const std::size_t boundary : {head, head + 64, head + d::fuse_block - 64, head + d::fuse_block,
                                               head + 2 * d::fuse_block}) {
                for (std::size_t at = boundary - 4; at <= boundary + 1; ++at) {
                    for (const bytes& sq : seqs) {
                        for (std::size_t broken = 0; broken <= sq.size() + 1; ++broken) {
                            // broken == 0: whole; 1..size: byte broken-1
                            // turned into ASCII (a cut sequence, or a
                            // stray continuation); size + 1: the last byte
                            // turned into a lead (two leads in a row).
                            bytes t = cat(ascii(at, 'x'), sq);
                            if (broken > sq.size())
                                t[at + sq.size() - 1] = 0xC3;
                            else if (broken)
                                t[at + broken - 1] = 'q';
                            t = cat(t, ascii(3 * d::fuse_block - t.size() % 64, 'y'));
                            CAPTURE(align);
                            CAPTURE(boundary);
                            CAPTURE(at);
                            CAPTURE(broken);
                            // 64-aligned storage, the text at `align`.
                            std::vector<std::uint64_t> store((align + t.size() + 127) / 8 + 8);
                            auto* base = reinterpret_cast<std::uint8_t*>(store.data());
                            base += (64 - reinterpret_cast<std::uintptr_t>(base) % 64) % 64 + 64 + align;
                            // First ASCII text 64 bytes earlier: its scratch
                            // lies 64 bytes earlier too (it follows the data
                            // modulo 4 KiB), so the nibbles it leaves where
                            // this call's scratch starts would be wrong here.
                            std::fill(base - 64, base - 64 + t.size(), std::uint8_t{'y'});
                            utf8_validator scrub;
                            const bool scrub_ok = d::unmask_validate(base - 64, t.size(), nullptr, 0, &scrub);
                            CHECK(scrub_ok);
                            std::copy(t.begin(), t.end(), base);
                            tether::ws::apply_mask(std::span<std::uint8_t>(base, t.size()), key, 0);
                            utf8_validator v;
                            const bool ok = d::unmask_validate(base, t.size(), &key, 0, &v) && v.complete();
                            CHECK(ok == ref_valid(t));
                            if (ok) CHECK(std::equal(t.begin(), t.end(), base));
                        }
                    }
                }
            }
        }
    }
}

#if TETHER_WS_UTF8_SIMD
namespace {
// z_two_byte() on 64 bytes, in its own target function (the test TU is
// built without -mavx512*).
TETHER_WS_TARGET_AVX512 bool two_byte_on(const std::uint8_t* p, std::uint64_t carry, std::uint64_t& lead63) {
    namespace s = tether::ws::detail::utf8_simd;
    return s::z_two_byte(s::z_two_make(), s::z_load(p), carry, lead63);
}
// The same test in AVX2 compares (avx_two_byte_bad) and in AVX-512BW
// (z_two_byte_bad): the bytes each leaves unsettled.
__attribute__((target("avx2"))) std::uint64_t two_byte_bad_avx2_on(const std::uint8_t* p, std::uint64_t carry,
                                                                   std::uint64_t& lead63) {
    namespace s = tether::ws::detail::utf8_simd;
    return s::avx_two_byte_bad(s::avx_two_make(), s::avx_load(p), s::avx_load(p + 32), carry, lead63);
}
TETHER_WS_TARGET_AVX512 std::uint64_t two_byte_bad_on(const std::uint8_t* p, std::uint64_t carry,
                                                      std::uint64_t& lead63) {
    namespace s = tether::ws::detail::utf8_simd;
    return s::z_two_byte_bad(s::z_two_make(), s::z_load(p), carry, lead63);
}
// z_two_byte_closed() on 64 bytes.
TETHER_WS_TARGET_AVX512 bool two_byte_closed_on(const std::uint8_t* p) {
    namespace s = tether::ws::detail::utf8_simd;
    return s::z_two_byte_closed(s::z_two_closed_make(), s::z_load(p));
}
}  // namespace

TEST_CASE("z_two_byte, z_two_byte_closed, avx_two_byte_bad: pass exactly the 1- and 2-byte texts, never an invalid one") {
    if (simd::best_supported() < simd::level::avx512) return;
    tether::rng r(0x2B17E);
    // Alphabets: ASCII, 2-byte leads and continuations, and every other
    // class (C0/C1, 3- and 4-byte leads, F5+), mostly the first three.
    std::size_t passed = 0;
    std::size_t passed_closed = 0;
    for (int round = 0; round < 200000; ++round) {
        bytes x(64);
        const bool two_only = r.below(2) == 0;
        if (two_only) {  // valid 1-/2-byte text, maybe a lead left at 63
            std::size_t i = 0;
            const bool carry_cont = r.below(2) == 0;
            if (carry_cont) x[i++] = static_cast<std::uint8_t>(0x80 + r.below(64));
            while (i < 64) {
                if (r.below(3) == 0 || i == 63) {
                    x[i++] = static_cast<std::uint8_t>(r.below(128));
                    if (i == 64 && r.below(2)) x[63] = static_cast<std::uint8_t>(0xC2 + r.below(30));
                } else {
                    x[i++] = static_cast<std::uint8_t>(0xC2 + r.below(30));
                    x[i++] = static_cast<std::uint8_t>(0x80 + r.below(64));
                }
            }
            // Sometimes one byte changed to anything.
            if (r.below(3) == 0) x[r.below(64)] = static_cast<std::uint8_t>(r.below(256));
        } else {
            for (auto& c : x) c = static_cast<std::uint8_t>(r.below(256));
        }
        for (const std::uint64_t carry : {std::uint64_t{0}, std::uint64_t{1}}) {
            // The reference: the text after a pending 2-byte lead (carry) is
            // valid, with a lead at 63 allowed to stay open.
            // (Built from x first: g++ 12 -O2 takes insert-after-push_back
            // for an over-read, -Wstringop-overread.)
            bytes ref(x.begin(), x.end());
            if (carry) ref.insert(ref.begin(), std::uint8_t{0xC3});
            const bool open63 = x[63] >= 0xC2 && x[63] <= 0xDF;
            bytes closed = ref;
            if (open63) closed.push_back(0x80);
            const bool valid = ref_valid(closed);
            bool only12 = true;  // no byte of a 3- or 4-byte sequence, no C0/C1/F5+
            for (const std::uint8_t c : x) only12 = only12 && (c < 0xC0 || (c >= 0xC2 && c <= 0xDF));
            std::uint64_t lead63 = 9;
            const bool ok = two_byte_on(x.data(), carry, lead63);
            CAPTURE(carry);
            CAPTURE(round);
            CHECK(lead63 == (open63 ? 1u : 0u));
            if (ok) CHECK(valid);               // sound: never passes invalid text
            if (valid && only12) CHECK(ok);     // complete for 1-/2-byte text
            // The AVX2 form: the same bytes unsettled, the same lead at 63.
            std::uint64_t lead63_z = 9;
            std::uint64_t lead63_avx2 = 9;
            const std::uint64_t bad_z = two_byte_bad_on(x.data(), carry, lead63_z);
            CHECK((bad_z == 0) == ok);
            CHECK(two_byte_bad_avx2_on(x.data(), carry, lead63_avx2) == bad_z);
            CHECK(lead63_avx2 == lead63);
            CHECK(lead63_z == lead63);
            // The mask-register form: exactly "passes, nothing open at 63".
            if (carry == 0) {
                const bool closed_ok = two_byte_closed_on(x.data());
                CHECK(closed_ok == (ok && lead63 == 0));
                passed_closed += closed_ok;
            }
            passed += ok;
        }
    }
    CHECK(passed > 50000);
    CHECK(passed_closed > 20000);
}

TEST_CASE("unmask_validate: 2-byte text with a 3-byte sequence, valid or cut, at every offset (the fast test's carry)") {
    namespace d = tether::ws::detail;
    const mask_key key{0x13, 0x9C, 0x44, 0xE1};
    tether::rng r(0x3B);
    const bytes base = make_text(r, 700, mixes[0]);  // cyrillic: 1- and 2-byte only
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        for (std::size_t at = 100; at < 400; ++at) {
            for (const bytes& s : {b({0xE2, 0x82, 0xAC}), b({0xE2, 0x82}), b({0xE2}), b({0xF0, 0x9F, 0x98}),
                                   b({0xF0, 0x9F, 0x98, 0x80}), b({0xC3}), b({0x80})}) {
                // ASCII around it, so whatever follows is not a continuation.
                bytes t(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(at));
                while (!t.empty() && t.back() >= 0x80) t.back() = 'q';
                t.insert(t.end(), s.begin(), s.end());
                t.insert(t.end(), 70, 'z');
                t.insert(t.end(), base.begin() + 400, base.end());
                while (!t.empty() && t.back() >= 0x80) t.pop_back();
                for (const std::size_t phase : {std::size_t{0}, std::size_t{3}}) {
                    CAPTURE(at);
                    CAPTURE(s.size());
                    CAPTURE(phase);
                    bytes buf = t;
                    tether::ws::apply_mask(std::span<std::uint8_t>(buf), key, phase);
                    utf8_validator v;
                    const bool ok = d::unmask_validate(buf.data(), buf.size(), &key, phase, &v) && v.complete();
                    CHECK(ok == ref_valid(t));
                    if (ok) CHECK(buf == t);  // invalid: unmasked only up to the error
                }
            }
        }
    }
}
#endif

// Fuzzing found (fuzz/regressions/frame_decoder/): a vector kernel leaves
// a clean run's last 1-3 bytes "open" for the next run, and a byte that can
// never start a code point (C0, C1, F5..FF) there was only reported when more
// bytes came. A chunk that ends in one must fail at once (fail fast,
// RFC 6455 §8.1), through every path: the fused AVX-512 and AVX2 loops,
// their multiple-of-32 prefix, and the validator's own kernels.
TEST_CASE("unmask_validate and feed fail at once on a chunk that ends in a byte no code point starts with") {
    const tether::ws::mask_key key{0x12, 0x34, 0x56, 0x78};
    for (const simd::level l : levels()) {
        const level_scope scope(l);
        CAPTURE(level_name(l));
        for (const std::uint8_t bad : {std::uint8_t{0xC0}, std::uint8_t{0xC1}, std::uint8_t{0xF5}, std::uint8_t{0xFF}}) {
            CAPTURE(int{bad});
            for (std::size_t n = 1; n <= 300; ++n) {
                CAPTURE(n);
                bytes text(n, 'a');
                if (n > 8) text[n / 2] = 0xC3, text[n / 2 + 1] = 0xA9;  // not all ASCII
                text[n - 1] = bad;
                for (const bool masked : {false, true}) {
                    CAPTURE(masked);
                    bytes wire = text;
                    if (masked)
                        for (std::size_t i = 0; i < n; ++i) wire[i] ^= key[i % 4];
                    utf8_validator v;
                    CHECK_FALSE(tether::ws::detail::unmask_validate(wire.data(), n, masked ? &key : nullptr, 0, &v));
                    CHECK(v.failed());
                }
                utf8_validator v;
                CHECK_FALSE(v.feed(text));
            }
        }
    }
}
