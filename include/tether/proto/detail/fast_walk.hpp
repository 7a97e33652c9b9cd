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
//   - strings are skipped 16 bytes at a time up to the next '"', '\\' or
//     control (SSE2 where the target has it; detail/utf8.hpp's classify16);
//     escapes are checked where they stand with the scanner's own
//     scan_escape (RFC 8259 §7, RFC 7493 §2.1 surrogates);
//   - UTF-8 (RFC 8259 §8.1, RFC 3629) is checked once per document instead
//     of once per run between escapes: from the first string that had a
//     non-ASCII byte to the end of the last one, in one call to
//     find_invalid_utf8 (the vector kernel of tether::ws for long runs).
//     Non-ASCII bytes outside strings are grammar errors anyway, so this is
//     the same rule as checking every string;
//   - numbers go through the scanner's scan_number (RFC 8259 §6 grammar and
//     the RFC 7493 §2.2 range), literals are compared whole;
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
          max_depth_(max_depth < k_fast_max_depth ? max_depth : k_fast_max_depth) {}

    /// See the header comment. `classify` and `on_member` as for
    /// json_scanner::walk_object. True: the text is one valid strict I-JSON
    /// object and every member was handed out. False: not sure (the caller
    /// must run the exact scanner; members may have been handed out).
    template <class Classify, class OnMember>
    [[gnu::always_inline]] bool walk_object(Classify&& classify, OnMember&& on_member) noexcept {
        const char* p = begin_;
        if (!at_token(p) || *p != '{' || max_depth_ < 1) return false;
        ++p;
        if (!at_token(p)) return false;
        if (*p == '}') return finish(p + 1);
        std::uint64_t seen = 0;
        std::uint64_t top_lengths = 0;
        json_member m;
        for (;;) {
            if (p == end_ || *p != '"') [[unlikely]] {
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
                    if (!skip_container(p)) return false;
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
                    if (scan_number(p, end_, &m.uint_value, &m.is_uint) != json_error::ok)
                        return false;
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
    /// Skips whitespace at p; false if the text ends there.
    [[gnu::always_inline]] bool at_token(const char*& p) const noexcept {
        if (p == end_ || static_cast<unsigned char>(*p) <= 0x20) [[unlikely]] {
            p = skip_ws(p, end_);
            return p != end_;
        }
        return true;
    }

    /// `ws c` at p; p is left after c.
    [[gnu::always_inline]] bool expect(const char*& p, char c) const noexcept {
        if (p == end_ || *p != c) [[unlikely]] {
            p = skip_ws(p, end_);
            if (p == end_ || *p != c) return false;
        }
        ++p;
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
            if (end_ - p >= 16) [[likely]] {
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
            ++p;
            std::size_t saved = 0;
            if (scan_escape(p, end_, saved) != json_error::ok) return false;
        }
        if (high != 0) {
            if (utf8_first_ == nullptr) utf8_first_ = body;
            utf8_last_ = p;
        }
        pp = p;
        return true;
    }

    /// Records an unescaped name of the object whose names start at `first`;
    /// false if it repeats one of them (or the fixed array is full).
    [[gnu::always_inline]] bool record_name(std::string_view k, std::size_t first,
                                            std::uint64_t& lengths) noexcept {
        // `lengths` has bit min(size, 63) of every name of the object so far:
        // a name of a new length cannot repeat one, and needs no compare.
        const std::uint64_t bit = std::uint64_t{1} << (k.size() < 63 ? k.size() : 63);
        if (lengths & bit) {
            for (std::size_t i = first; i < nkeys_; ++i)
                if (keys_[i].size == k.size() &&
                    std::memcmp(keys_[i].data, k.data(), k.size()) == 0)
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
    /// included; p is left after it. The top-level object is depth 1.
    bool skip_container(const char*& pp) noexcept {
        const char* p = pp;
        std::uint64_t is_object = 0;  // bit d: the container at depth d+1 is an object
        std::size_t first_key[k_fast_max_depth + 1];
        std::uint64_t lengths[k_fast_max_depth + 1];  // record_name's mask, per open object
        std::size_t depth = 1;
        for (;;) {
            // A value starts at p (after whitespace).
            if (!at_token(p)) return false;
            bool opened = false;
            switch (*p) {
                case '{':
                case '[': {
                    const bool obj = *p == '{';
                    if (depth >= max_depth_) return false;
                    first_key[depth] = nkeys_;
                    lengths[depth] = 0;
                    is_object = (is_object & ~(std::uint64_t{1} << depth)) |
                                (std::uint64_t{obj} << depth);
                    ++depth;
                    ++p;
                    if (!at_token(p)) return false;
                    if (*p == (obj ? '}' : ']')) {
                        ++p;
                        --depth;
                    } else {
                        if (obj && !member_name(p, nkeys_, lengths[depth - 1])) return false;
                        opened = true;
                    }
                    break;
                }
                case '"': {
                    ++p;
                    bool esc = false;
                    if (!skip_string(p, esc)) return false;
                    ++p;
                    break;
                }
                case 't':
                    if (!literal(p, "true")) return false;
                    break;
                case 'f':
                    if (!literal(p, "false")) return false;
                    break;
                case 'n':
                    if (!literal(p, "null")) return false;
                    break;
                case '-': case '0': case '1': case '2': case '3': case '4':
                case '5': case '6': case '7': case '8': case '9':
                    if (scan_number(p, end_) != json_error::ok) return false;
                    break;
                default:
                    return false;
            }
            if (opened) continue;
            // A value ended: close containers until one wants another value.
            for (;;) {
                if (depth == 1) {
                    pp = p;
                    return true;
                }
                if (!at_token(p)) return false;
                const bool obj = (is_object >> (depth - 1)) & 1;
                if (*p == ',') {
                    ++p;
                    if (obj && !member_name(p, first_key[depth - 1], lengths[depth - 1]))
                        return false;
                    break;
                }
                if (*p != (obj ? '}' : ']')) return false;
                ++p;
                if (obj) nkeys_ = first_key[depth - 1];
                --depth;
            }
        }
    }

    const char* const begin_;
    const char* const end_;
    const std::size_t max_depth_;
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
