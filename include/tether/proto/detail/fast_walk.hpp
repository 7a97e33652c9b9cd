// tether/proto/detail/fast_walk.hpp — a fast, conservative walk of a
// top-level JSON object for the envelope reader.
//
// Theory of operation
// -------------------
// json_scanner (json.hpp) is exact: it reports the first error in document
// order with its offset and kind, so it stops at every escape to check the
// UTF-8 of the run before it, keeps a Bloom mask per object, and so on. On
// the hot path nearly every envelope is valid, and then nobody needs to know
// where the first error would have been. fast_walk_object() is built for
// that case. It answers only "valid" (having handed out every member, as
// json_scanner::walk_object would) or "not sure": on "not sure" the reader
// throws away what it got and runs the exact scanner from the start, so every
// rejection, its kind and its offset stay the scanner's by construction, and
// the fast walk only has to be *sound* (never accept what the scanner
// rejects) and *faithful* (hand out the same members when it accepts).
//
// It gives up ("not sure") on anything rare instead of handling it: an error
// of any kind, a member name with escapes, nesting deeper than
// k_fast_max_depth (or the configured limit), more than k_fast_max_keys names
// open at once. What it does:
//   - the text must end in '}' (then whitespace) or it is "not sure": that
//     brace (last_) bounds every read of the walk, so it reads the byte at
//     its cursor without comparing with the end first. Nothing the walk
//     steps over can be that brace except the close of a container, and a
//     nested container closed there is "not sure" (a valid text closes the
//     top level there); strings, numbers and literals stop before it;
//   - strings are skipped 16 bytes at a time up to the next '"', '\\' or
//     control (SSE2 where the target has it; detail/utf8.hpp's classify16);
//     escapes are checked where they stand: the two-character ones inline,
//     \u ones with the scanner's own scan_escape (RFC 8259 §7, RFC 7493
//     §2.1 surrogates);
//   - UTF-8 (RFC 8259 §8.1, RFC 3629) is checked once per document instead
//     of once per run between escapes: from the first string that had a
//     non-ASCII byte to the end of the last one, in one call to
//     find_invalid_utf8 (the vector kernel of tether::ws for long runs).
//     Non-ASCII bytes outside strings are grammar errors anyway, so this is
//     the same rule as checking every string;
//   - numbers of up to 7 plain digits take scan_number's short path inline
//     (one 8-byte load), the rest go through scan_number itself (RFC 8259
//     §6 grammar and the RFC 7493 §2.2 range); literals are compared whole;
//   - a cursor is never passed by reference to a call that is not inlined
//     (a copy is): that would keep it in memory for the whole walk, a store
//     and a reload on the critical path of every token;
//   - duplicate names (RFC 7493 §2.3): names the caller classifies get one
//     bit each, as in walk_object; every other name is compared with the
//     names of its object so far (length first, then bytes: none of them has
//     escapes, so bytes are values). The names live on a fixed array on the
//     C++ stack: no allocation, nothing to zero.
#pragma once

#include "../json.hpp"
#include "json_lex.hpp"
#include "json_number.hpp"
#include "utf8.hpp"

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace tether::proto::detail {

inline constexpr std::size_t k_fast_max_depth = 64;  ///< containers open at once, top level included
inline constexpr std::size_t k_fast_max_keys = 64;   ///< unclassified names open at once

/// The state of one fast walk (lives on the C++ stack of the walk).
class fast_walker {
public:
    fast_walker(const char* begin, const char* end, std::size_t max_depth) noexcept
        : begin_(begin), end_(end),
          max_depth_(max_depth < k_fast_max_depth ? max_depth : k_fast_max_depth),
          last16_(end - begin >= 16 ? reinterpret_cast<std::uintptr_t>(end) - 16 : 0) {}

    /// See the header comment. `classify` and `on_member` as for
    /// json_scanner::walk_object. True: the text is one valid strict I-JSON
    /// object and every member was handed out. False: not sure (the caller
    /// must run the exact scanner; members may have been handed out).
    template <class Classify, class OnMember>
    [[gnu::always_inline]] bool walk_object(Classify&& classify, OnMember&& on_member) noexcept {
        const char* p = skip_ws(begin_, end_);
        if (p == end_ || *p != '{' || max_depth_ < 1) return false;
        if (!find_last(p)) return false;
        ++p;
        if (!at_token(p)) return false;
        if (*p == '}') return finish(p + 1);
        std::uint64_t seen = 0;
        std::uint64_t top_lengths = 0;
        json_member m;
        for (;;) {
            if (*p != '"') [[unlikely]] {
                if (!at_token(p) || *p != '"') return false;
            }
            std::string_view key;
            if (!read_name(p, key)) return false;
            const int id = classify(key);
            if (id >= 0) {
                const std::uint64_t bit = std::uint64_t{1} << id;
                if (seen & bit) [[unlikely]]
                    return false;
                seen |= bit;
            } else if (!record_name(key, 0, top_lengths)) {
                return false;
            }
            if (!expect(p, ':') || !at_token(p)) return false;
            const char* const vbeg = p;
            m.value_escaped = false;
            m.is_uint = false;
            switch (*p) {
                case '"': {
                    m.type = json_type::string;
                    ++p;
                    bool esc = false;
                    if (!skip_string(p, esc)) return false;
                    ++p;
                    m.value_escaped = esc;
                    break;
                }
                case '{':
                case '[':
                    m.type = *p == '{' ? json_type::object : json_type::array;
                    p = skip_container(p);
                    if (p == nullptr) return false;
                    break;
                case 't':
                    m.type = json_type::boolean;
                    if (!literal(p, "true")) return false;
                    break;
                case 'f':
                    m.type = json_type::boolean;
                    if (!literal(p, "false")) return false;
                    break;
                case 'n':
                    m.type = json_type::null;
                    if (!literal(p, "null")) return false;
                    break;
                default:
                    m.type = json_type::number;
                    if (*p != '-' && !is_digit(*p)) return false;
                    if (!number(p, &m.uint_value, &m.is_uint)) return false;
                    break;
            }
            m.value = {vbeg, static_cast<std::size_t>(p - vbeg)};
            // Two separate views, not one copied into the other: a 16-byte
            // copy of the pair just stored as two 8-byte halves misses store
            // forwarding, which cost a sixth of the whole read.
            m.key = std::string_view(key.data(), key.size());
            m.raw_key = std::string_view(key.data(), key.size());
            on_member(id, static_cast<const json_member&>(m));
            if (!at_token(p)) return false;
            if (*p == ',') {
                ++p;
                continue;
            }
            if (*p != '}') return false;
            return finish(p + 1);
        }
    }

private:
    /// last_: the text must end in '}' (and whitespace) to be an object, so
    /// the walk can read *p without comparing p with end_ first: nothing
    /// it steps over can be that '}' except the close of a container (see
    /// skip_container), and only whitespace comes after it. The top-level
    /// open brace is at `open`.
    bool find_last(const char* open) noexcept {
        const char* q = end_;
        // Stops at `open` at the latest ('{' is not whitespace).
        while (static_cast<unsigned char>(q[-1]) <= 0x20) {
            if (!is_json_ws(q[-1])) return false;
            --q;
        }
        if (q[-1] != '}' || q - 1 == open) return false;
        last_ = q - 1;
        return true;
    }

    /// Skips whitespace at p; false if the text ends there. p <= last_.
    [[gnu::always_inline]] bool at_token(const char*& p) const noexcept {
        if (static_cast<unsigned char>(*p) <= 0x20) [[unlikely]] {
            p = skip_ws(p, end_);
            return p != end_;
        }
        return true;
    }

    /// `ws c` at p; p is left after c. p <= last_.
    [[gnu::always_inline]] bool expect(const char*& p, char c) const noexcept {
        if (*p != c) [[unlikely]] {
            p = skip_ws(p, end_);
            if (p == end_ || *p != c) return false;
        }
        ++p;
        return true;
    }

    /// scan_number on a copy of the cursor: a cursor passed by reference to
    /// a call that is not inlined lives in memory for the whole walk (a store
    /// and a reload on the critical path of every token, the reload the
    /// hottest instruction of the walk); only the copy does here.
    [[gnu::always_inline]] bool number(const char*& p, std::uint64_t* uint_value = nullptr,
                                       bool* is_uint = nullptr) const noexcept {
        // Up to 7 plain digits inline, as scan_number's short path takes
        // them (one 8-byte load); longer ones and the rest through the call.
        if (k_swar && reinterpret_cast<std::uintptr_t>(p) <= last16_) {
            std::uint64_t d = 0;
            const unsigned n = leading_digits8(load8(p), d);
            if (n - 1 < 7 && (*p != '0' || n == 1) && ends_number(p[n])) [[likely]] {
                if (uint_value != nullptr) {
                    *uint_value = digits_value8(d, n);
                    *is_uint = true;
                }
                p += n;
                return true;
            }
        }
        const char* q = p;
        if (scan_number(q, end_, uint_value, is_uint) != json_error::ok) return false;
        p = q;
        return true;
    }

    bool literal(const char*& p, std::string_view lit) const noexcept {
        if (static_cast<std::size_t>(end_ - p) < lit.size() ||
            std::memcmp(p, lit.data(), lit.size()) != 0)
            return false;
        p += lit.size();
        return true;
    }

    /// After the top-level object: only whitespace, then the UTF-8 check.
    bool finish(const char* p) const noexcept {
        if (skip_ws(p, end_) != end_) return false;
        if (utf8_first_ == nullptr) return true;
        return find_invalid_utf8(utf8_first_, utf8_last_, end_) == utf8_last_;
    }

    /// The 16 bytes at p as classify16 sees them, for p with fewer than 16
    /// bytes left: the last 16 bytes of the text, shifted so that bit 0 is p
    /// (the text has at least 16 bytes), else a zero-padded copy.
    block_bits classify_tail(const char* p) const noexcept {
        const auto left = static_cast<unsigned>(end_ - p);
        if (end_ - begin_ >= 16) {
            block_bits b = classify16(end_ - 16);
            b.stop >>= 16 - left;
            b.high >>= 16 - left;
            return b;
        }
        char buf[16] = {};
        std::memcpy(buf, p, left);
        block_bits b = classify16(buf);
        const unsigned lanes = (1u << left) - 1;
        return {b.stop & lanes, b.high & lanes};
    }

    /// Skips a string body: p just after the opening quote, left at the
    /// closing quote. Notes escapes in `escaped` and the span of non-ASCII
    /// text for the UTF-8 check. False on anything the scanner would reject
    /// (and on an unterminated string).
    [[gnu::always_inline]] bool skip_string(const char*& pp, bool& escaped) noexcept {
        const char* p = pp;
        const char* const body = p;
        unsigned high = 0;
        for (;;) {
            block_bits b;
            if (reinterpret_cast<std::uintptr_t>(p) <= last16_) [[likely]] {
                b = classify16(p);
            } else {
                b = classify_tail(p);
                if (b.stop == 0) return false;  // ends inside the string
            }
            if (b.stop == 0) {
                high |= b.high;
                p += 16;
                continue;
            }
            // Non-ASCII after the stop belongs to later text; counting it
            // here only widens the UTF-8 span, never skips a check.
            high |= b.high;
            p += std::countr_zero(b.stop);
            if (*p == '"') break;
            if (*p != '\\') return false;  // control character
            escaped = true;
            // RFC 8259 §7: the two-character escapes, here; \u (and errors)
            // through scan_escape. p[1] is readable: a backslash is never
            // last_, so it comes before it.
            if (k_short_escape[static_cast<unsigned char>(p[1])]) [[likely]] {
                p += 2;
                continue;
            }
            ++p;
            std::size_t saved = 0;
            // A copy of the cursor for the call (see number()).
            const char* q = p;
            if (scan_escape(q, end_, saved) != json_error::ok) return false;
            p = q;
        }
        if (high != 0) {
            if (utf8_first_ == nullptr) utf8_first_ = body;
            utf8_last_ = p;
        }
        pp = p;
        return true;
    }

    static constexpr auto k_short_escape = [] {
        std::array<bool, 256> t{};
        for (const char c : {'"', '\\', '/', 'b', 'f', 'n', 'r', 't'})
            t[static_cast<unsigned char>(c)] = true;
        return t;
    }();

    /// Records an unescaped name of the object whose names start at `first`;
    /// false if it repeats one of them (or the fixed array is full).
    [[gnu::always_inline]] bool record_name(std::string_view k, std::size_t first,
                                            std::uint64_t& lengths) noexcept {
        // `lengths` has bit min(size, 63) of every name of the object so far:
        // a name of a new length cannot repeat one, and needs no compare.
        const std::uint64_t bit = std::uint64_t{1} << (k.size() < 63 ? k.size() : 63);
        if (lengths & bit) {
            for (std::size_t i = first; i < nkeys_; ++i)
                if (keys_[i].size == k.size() && std::memcmp(keys_[i].data, k.data(), k.size()) == 0)
                    return false;
        }
        lengths |= bit;
        if (nkeys_ == k_fast_max_keys) return false;
        keys_[nkeys_++] = {k.data(), k.size()};
        return true;
    }

    /// `"name" ws ":"` at p (whitespace allowed before it) inside the object
    /// whose names start at `first`.
    [[gnu::always_inline]] bool member_name(const char*& p, std::size_t first,
                                            std::uint64_t& lengths) noexcept {
        if (!at_token(p) || *p != '"') return false;
        std::string_view key;
        return read_name(p, key) && record_name(key, first, lengths) && expect(p, ':');
    }

    /// The name of the string at p (p on its opening quote), past its closing
    /// quote; an escaped name is left to the exact scanner.
    [[gnu::always_inline]] bool read_name(const char*& p, std::string_view& key) noexcept {
        const char* const name = ++p;
        bool escaped = false;
        if (!skip_string(p, escaped) || escaped) return false;
        key = std::string_view(name, static_cast<std::size_t>(p - name));
        ++p;
        return true;
    }

    /// Skips a nested array or object at p ('[' or '{'), everything in it
    /// included: the end of it, or nullptr. (Not a cursor by reference, see
    /// number().) The top-level object is depth 1.
    const char* skip_container(const char* p) noexcept {
        std::uint64_t is_object = 0;  // bit d: the container at depth d+1 is an object
        std::size_t first_key[k_fast_max_depth + 1];
        std::uint64_t lengths[k_fast_max_depth + 1];  // record_name's mask, per open object
        std::size_t depth = 1;
        for (;;) {
            // A value starts at p (after whitespace).
            if (!at_token(p)) return nullptr;
            bool opened = false;
            switch (*p) {
                case '{':
                case '[': {
                    const bool obj = *p == '{';
                    if (depth >= max_depth_) return nullptr;
                    first_key[depth] = nkeys_;
                    lengths[depth] = 0;
                    is_object = (is_object & ~(std::uint64_t{1} << depth)) |
                                (std::uint64_t{obj} << depth);
                    ++depth;
                    ++p;
                    if (!at_token(p)) return nullptr;
                    if (*p == (obj ? '}' : ']')) {
                        // A close at last_ cannot close a nested container
                        // of a valid text; the walk reads at p next.
                        if (p == last_) return nullptr;
                        ++p;
                        --depth;
                    } else {
                        if (obj && !member_name(p, nkeys_, lengths[depth - 1])) return nullptr;
                        opened = true;
                    }
                    break;
                }
                case '"': {
                    ++p;
                    bool esc = false;
                    if (!skip_string(p, esc)) return nullptr;
                    ++p;
                    break;
                }
                case 't':
                    if (!literal(p, "true")) return nullptr;
                    break;
                case 'f':
                    if (!literal(p, "false")) return nullptr;
                    break;
                case 'n':
                    if (!literal(p, "null")) return nullptr;
                    break;
                case '-': case '0': case '1': case '2': case '3': case '4':
                case '5': case '6': case '7': case '8': case '9':
                    if (!number(p)) return nullptr;
                    break;
                default:
                    return nullptr;
            }
            if (opened) continue;
            // A value ended: close containers until one wants another value.
            for (;;) {
                if (depth == 1) return p;
                if (!at_token(p)) return nullptr;
                const bool obj = (is_object >> (depth - 1)) & 1;
                if (*p == ',') {
                    ++p;
                    if (obj && !member_name(p, first_key[depth - 1], lengths[depth - 1]))
                        return nullptr;
                    break;
                }
                if (*p != (obj ? '}' : ']') || p == last_) return nullptr;  // (see above)
                ++p;
                if (obj) nkeys_ = first_key[depth - 1];
                --depth;
            }
        }
    }

    const char* const begin_;
    const char* const end_;
    const std::size_t max_depth_;
    // The last p with 16 readable bytes (0: none; one compare per step of
    // the string skip instead of a subtraction and a compare).
    const std::uintptr_t last16_;
    const char* last_ = nullptr;        // the final '}' (find_last)
    const char* utf8_first_ = nullptr;  // first string body with non-ASCII text
    const char* utf8_last_ = nullptr;   // closing quote of the last such string
    std::size_t nkeys_ = 0;
    // Only [0, nkeys_) is ever read: left uninitialised, not zeroed per walk.
    struct name_ref {
        const char* data;
        std::size_t size;
    };
    name_ref keys_[k_fast_max_keys];
};

}  // namespace tether::proto::detail
