// tether/proto/json.hpp — a strict, non-allocating I-JSON validator/scanner.
//
// Theory of operation
// -------------------
// tether never builds a JSON tree. Every incoming frame is scanned once by a
// `json_scanner`, which checks the whole text against RFC 8259 plus the
// I-JSON restrictions of RFC 7493 that PROTOCOL.md §7 adopts:
//   - the text is UTF-8 (§2.1), checked here with an ASCII fast path;
//   - no lone surrogate escapes (§2.1);
//   - no number whose magnitude overflows a double (§2.2; underflow is fine);
//   - no duplicate member names at any depth (§2.3), compared by decoded
//     value, so "a" and "\u0061" collide;
// and, from RFC 8259 itself: whitespace is exactly SP HT LF CR (§2), a BOM is
// not accepted (§8.1 allows ignoring one; a protocol peer has no excuse to
// send it), numbers follow the §6 grammar, controls below U+0020 must be
// escaped (§7). Nesting is bounded by json_config::max_depth.
//
// The scanner is iterative (an explicit stack, so a deep document cannot
// overflow the C++ stack) and owns all of its working memory: the stack of
// open containers, and a stack of member-name slices for the objects still
// open. Both grow to the largest document seen and are then reused, so a
// long-lived scanner does not allocate per document (allocation failure,
// as everywhere without exceptions, terminates).
//
// Duplicate names: while an object has at most k_linear_keys members (the
// common case: a handful), each new unescaped name first looks up a 6-bit
// hash in a per-object 64-bit Bloom mask, and only a hit (or an escaped name
// anywhere in the object) costs a pairwise comparison by decoded value. A
// larger object is checked once more when it closes, by sorting the indices
// of its names: O(k log k), so a hostile object with thousands of members
// cannot make the check quadratic.
//
// Strings, the bulk of every envelope, are scanned 16 bytes at a time (SSE2
// where the target has it, two SWAR words otherwise) up to the next quote,
// backslash or control; non-ASCII bytes on the way only mark the run for one
// UTF-8 check when it ends (see detail/json_lex.hpp), so ASCII text never
// reaches the UTF-8 code. Whitespace is only looked for where the expected
// byte is missing: in compact JSON one compare finds the ':' or ','.
//
// Three ways in: validate() a whole document, begin_object() +
// next_member() to walk the members of a top-level object one by one, or
// walk_object() to do the same in one call with a callback (what the
// envelope reader uses: it also lets the caller check its own names for
// duplicates with one bit each). The
// walk hands out each member's decoded name, its JSON type and the exact
// bytes of its value (fully validated, nested values included); this is what
// the envelope reader is built on. Views stay valid until the next call on
// the scanner (decoded names with escapes live in the scanner) and as long
// as the input text lives.
#pragma once

#include "detail/json_lex.hpp"
#include "detail/json_number.hpp"
#include "detail/utf8.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tether::proto {

struct json_config {
    /// Maximum nesting of arrays and objects; the top-level container is 1.
    std::size_t max_depth = 64;
};

/// One member of the top-level object, as handed out by next_member().
struct json_member {
    std::string_view key;      ///< decoded name
    std::string_view raw_key;  ///< name as written, without the quotes
    json_type type = json_type::null;
    std::string_view value;    ///< exact input bytes of the value (strings keep their quotes)
    bool value_escaped = false;  ///< for strings: the body has escapes to decode
    /// For numbers written as at most 16 plain digits (no sign, fraction or
    /// exponent): true, with the value in uint_value. Other numbers: false.
    bool is_uint = false;
    std::uint64_t uint_value = 0;

    /// For strings: the body between the quotes, as written.
    std::string_view string_body() const noexcept {
        // Not substr(): its range check keeps GCC from inlining this.
        return value.size() >= 2 ? std::string_view(value.data() + 1, value.size() - 2)
                                 : std::string_view{};
    }
};

class json_scanner {
public:
    /// Objects with more members than this are checked for duplicates by
    /// sorting when they close, instead of pairwise as each name arrives.
    static constexpr std::size_t k_linear_keys = 16;

    explicit json_scanner(json_config cfg = {}) : cfg_(cfg) {
        stack_.resize(std::min<std::size_t>(cfg_.max_depth, 64) + 1);
        keys_.resize(64);
    }

    const json_config& config() const noexcept { return cfg_; }

    /// Checks that `doc` is exactly one strict I-JSON value (any type).
    json_error validate(std::string_view doc) noexcept {
        reset(doc);
        const char* p = begin_;
        json_error e = scan_value(p);
        if (e == json_error::ok) e = finish(p);
        return e;
    }

    /// Starts walking a document that must be an object. Returns ok, or the
    /// error (not_an_object when the text is valid JSON of another type).
    json_error begin_object(std::string_view doc) noexcept {
        reset(doc);
        const char* p = detail::skip_ws(begin_, end_);
        if (p == end_) return fail(p, json_error::unexpected_end);
        if (*p != '{') {
            json_error e = scan_value(p);
            if (e == json_error::ok) e = finish(p);
            if (e == json_error::ok) {
                err_pos_ = detail::skip_ws(begin_, end_);
                e = json_error::not_an_object;
            }
            return err_ = e;
        }
        if (cfg_.max_depth == 0) return fail(p, json_error::too_deep);
        push_frame(true);
        p = detail::skip_ws(p + 1, end_);
        pos_ = p;
        if (p != end_ && *p == '}') {
            ++p;
            --depth_;
            walk_ = walk_state::done;
            const json_error e = finish(p);
            if (e != json_error::ok) walk_ = walk_state::failed;
            return e;
        }
        walk_ = walk_state::first;
        return json_error::ok;
    }

    /// Next member of the object opened by begin_object(). Returns false at
    /// the end of the object (error() == ok, the whole text was valid) or on
    /// an error (error() says which).
    [[gnu::always_inline]] bool next_member(json_member& m) noexcept {
        const char* p = pos_;
        if (walk_ != walk_state::first && walk_ != walk_state::more) return false;
        if (walk_ == walk_state::more) {
            p = detail::skip_ws(p, end_);
            if (p == end_) return walk_fail(p, json_error::unexpected_end);
            if (*p == '}') {
                ++p;
                if (const json_error e = close_object(top()); e != json_error::ok) {
                    walk_ = walk_state::failed;
                    return false;
                }
                --depth_;
                walk_ = walk_state::done;
                if (finish(p) != json_error::ok) walk_ = walk_state::failed;
                return false;
            }
            if (*p != ',') return walk_fail(p, json_error::unexpected_char);
            p = detail::skip_ws(p + 1, end_);
        }
        detail::key_ref k;
        if (const json_error e = scan_key(p, k); e != json_error::ok) {
            walk_ = walk_state::failed;
            return false;
        }
        p = detail::skip_ws(p, end_);
        if (const json_error e = scan_member_value(p, m); e != json_error::ok) {
            walk_ = walk_state::failed;
            return false;
        }
        set_names(m, k);
        pos_ = p;
        walk_ = walk_state::more;
        return true;
    }

    /// Walks a whole document that must be an object in one call, for a
    /// reader that knows the names it cares about. `classify(name)` maps each
    /// decoded member name to an id in 0..63, or -1 for any other name; ids
    /// must be one per name (two different names never share an id). Then
    /// `on_member(id, m)` is called with the member as next_member() would
    /// hand it out. Names with an id are checked for duplicates by one bit
    /// each instead of being recorded (they cannot equal a name without one);
    /// the rest go through the usual check. Returns ok, or the first error,
    /// exactly as begin_object() + next_member() would report it, except that
    /// a repeated name with an id is always reported where it repeats (the
    /// usual check defers objects of more than k_linear_keys names to their
    /// end). Members before the error have been handed out.
    template <class Classify, class OnMember>
    json_error walk_object(std::string_view doc, Classify&& classify,
                           OnMember&& on_member) noexcept {
        if (const json_error e = begin_object(doc); e != json_error::ok || walk_ != walk_state::first)
            return e;
        walk_ = walk_state::failed;  // next_member() must not continue this walk
        const char* p = pos_;
        std::uint64_t seen = 0;
        json_member m;
        for (;;) {
            detail::key_ref k;
            if (const json_error e = scan_name(p, k); e != json_error::ok) return e;
            set_names(m, k);
            const int id = classify(m.key);
            if (id >= 0) {
                const std::uint64_t bit = std::uint64_t{1} << id;
                if (seen & bit) [[unlikely]]
                    return fail(k.data - 1, json_error::duplicate_key);
                seen |= bit;
            } else if (const json_error e = record_name(k); e != json_error::ok) {
                return e;
            }
            if (const json_error e = expect_colon(p); e != json_error::ok) return e;
            if (const json_error e = scan_member_value(p, m); e != json_error::ok) return e;
            on_member(id, static_cast<const json_member&>(m));
            if (!at_token(p)) [[unlikely]]
                return fail(p, json_error::unexpected_end);
            if (*p == ',') {
                ++p;  // scan_name skips whitespace before the name
                continue;
            }
            if (*p != '}') [[unlikely]]
                return fail(p, json_error::unexpected_char);
            ++p;
            if (const json_error e = close_object(top()); e != json_error::ok) return e;
            --depth_;
            walk_ = walk_state::done;
            return finish(p);
        }
    }

    /// The first error met by the last call (ok while a walk is going well).
    json_error error() const noexcept { return err_; }

    /// Byte offset in the document where error() was detected.
    std::size_t error_offset() const noexcept {
        return static_cast<std::size_t>(err_pos_ - begin_);
    }

private:
    struct frame {
        std::size_t key_begin;   ///< first index in keys_ of this object's names
        bool is_object;
        bool has_escaped = false;  ///< some name in this object had escapes
        std::uint64_t bloom = 0;   ///< name_hash6 bits of the unescaped names
    };
    enum class walk_state : std::uint8_t { idle, first, more, done, failed };

    frame& top() noexcept { return stack_[depth_ - 1]; }

    void push_frame(bool is_object) {
        if (depth_ == stack_.size()) stack_.resize(stack_.size() * 2);
        stack_[depth_++] = frame{nkeys_, is_object, false, 0};
    }

    void reset(std::string_view doc) noexcept {
        begin_ = doc.data();
        end_ = begin_ + doc.size();
        pos_ = err_pos_ = begin_;
        err_ = json_error::ok;
        walk_ = walk_state::idle;
        depth_ = 0;
        nkeys_ = 0;
    }

    json_error fail(const char* at, json_error e) noexcept {
        err_pos_ = at;
        err_ = e;
        return e;
    }

    bool walk_fail(const char* at, json_error e) noexcept {
        fail(at, e);
        walk_ = walk_state::failed;
        return false;
    }

    /// After the top-level value: only whitespace may follow.
    json_error finish(const char* p) noexcept {
        p = detail::skip_ws(p, end_);
        if (p != end_) return fail(p, json_error::trailing_data);
        return json_error::ok;
    }

    /// Scans one member value at p (whitespace allowed before it) into m's type,
    /// value and flags; p is left after it.
    [[gnu::always_inline]] json_error scan_member_value(const char*& p, json_member& m) noexcept {
        if (!at_token(p)) [[unlikely]]
            return fail(p, json_error::unexpected_end);
        const char* const vbeg = p;
        m.value_escaped = false;
        m.is_uint = false;
        json_error e = json_error::ok;
        switch (*p) {
            case '"': {
                m.type = json_type::string;
                ++p;
                detail::string_facts f;
                if ((e = detail::scan_string_fast(p, end_, f)) != json_error::ok)
                    return fail(p, e);
                ++p;
                m.value_escaped = f.escaped;
                break;
            }
            case '{':
                m.type = json_type::object;
                e = scan_value(p);
                break;
            case '[':
                m.type = json_type::array;
                e = scan_value(p);
                break;
            case 't':
                m.type = json_type::boolean;
                e = scan_literal(p, "true");
                break;
            case 'f':
                m.type = json_type::boolean;
                e = scan_literal(p, "false");
                break;
            case 'n':
                m.type = json_type::null;
                e = scan_literal(p, "null");
                break;
            default:
                m.type = json_type::number;
                if (*p != '-' && !detail::is_digit(*p)) [[unlikely]]
                    return fail(p, json_error::unexpected_char);
                if ((e = detail::scan_number(p, end_, &m.uint_value, &m.is_uint)) !=
                    json_error::ok)
                    return fail(p, e);
                break;
        }
        if (e != json_error::ok) return e;
        m.value = {vbeg, static_cast<std::size_t>(p - vbeg)};
        return json_error::ok;
    }

    /// m.raw_key and m.key (decoded into key_scratch_ when it has escapes).
    [[gnu::always_inline]] void set_names(json_member& m, const detail::key_ref& k) noexcept {
        m.raw_key = k.body();
        if (k.escaped) [[unlikely]] {
            key_scratch_.resize(k.raw_size);
            const std::size_t n = detail::decode_validated(k.body(), key_scratch_.data());
            m.key = {key_scratch_.data(), n};
        } else {
            m.key = k.body();
        }
    }

    /// Scans `"name" ws ":"` at p (inside an object whose frame is on top),
    /// records the name and checks it against the earlier names.
    // always_inline: the per-member path (next_member -> scan_key, and the
    // reader's lookup/apply) costs ~25% more instructions as separate calls.
    [[gnu::always_inline]] json_error scan_key(const char*& p, detail::key_ref& k) noexcept {
        if (const json_error e = scan_name(p, k); e != json_error::ok) [[unlikely]]
            return e;
        if (const json_error e = record_name(k); e != json_error::ok) [[unlikely]]
            return e;
        return expect_colon(p);
    }

    /// Skips whitespace at p; false if the text ends there. The usual case,
    /// a token right at p, costs one compare.
    [[gnu::always_inline]] bool at_token(const char*& p) const noexcept {
        if (p == end_ || static_cast<unsigned char>(*p) <= 0x20) [[unlikely]] {
            p = detail::skip_ws(p, end_);
            return p != end_;
        }
        return true;
    }

    /// The quoted name at p (whitespace allowed before it); p is left after
    /// the closing quote. Whitespace is only looked for when the expected
    /// byte is not there: in compact JSON the one compare does both.
    [[gnu::always_inline]] json_error scan_name(const char*& p, detail::key_ref& k) noexcept {
        if (p == end_ || *p != '"') [[unlikely]] {
            p = detail::skip_ws(p, end_);
            if (p == end_ || *p != '"')
                return fail(p, p == end_ ? json_error::unexpected_end : json_error::unexpected_char);
        }
        const char* const body = ++p;
        detail::string_facts f;
        if (const json_error e = detail::scan_string_fast(p, end_, f); e != json_error::ok)
            [[unlikely]] return fail(p, e);
        k = detail::key_ref{body, static_cast<std::size_t>(p - body), f.decoded_size, f.escaped};
        ++p;
        return json_error::ok;
    }

    /// `ws ":"` at p; p is left after the colon.
    [[gnu::always_inline]] json_error expect_colon(const char*& p) noexcept {
        if (p == end_ || *p != ':') [[unlikely]] {
            p = detail::skip_ws(p, end_);
            if (p == end_ || *p != ':')
                return fail(p, p == end_ ? json_error::unexpected_end : json_error::unexpected_char);
        }
        ++p;
        return json_error::ok;
    }

    /// Checks name `k` against the earlier names of the object on top of the
    /// stack (RFC 7493 §2.3) and records it.
    [[gnu::always_inline]] json_error record_name(const detail::key_ref& k) noexcept {
        frame& fr = top();
        if (nkeys_ - fr.key_begin < k_linear_keys) {
            // A name whose Bloom bit is new cannot repeat an unescaped name;
            // once an escaped name is in the object, always compare.
            bool compare = true;
            if (!k.escaped && !fr.has_escaped) [[likely]] {
                const std::uint64_t bit = std::uint64_t{1}
                                          << detail::name_hash6(k.data, k.raw_size, end_);
                compare = (fr.bloom & bit) != 0;
                fr.bloom |= bit;
            }
            fr.has_escaped |= k.escaped;
            if (compare && repeats(fr, k)) [[unlikely]]
                return fail(k.data - 1, json_error::duplicate_key);
        }
        if (nkeys_ == keys_.size()) [[unlikely]]
            keys_.resize(keys_.size() * 2);
        keys_[nkeys_++] = k;
        return json_error::ok;
    }

    /// Does `k` repeat a name already recorded for the object `fr`?
    bool repeats(const frame& fr, const detail::key_ref& k) const noexcept {
        for (std::size_t i = fr.key_begin; i < nkeys_; ++i) {
            const detail::key_ref& o = keys_[i];
            if (o.decoded_size == k.decoded_size && detail::compare_keys(o, k) == 0) return true;
        }
        return false;
    }

    /// Called when an object closes: large objects get the sorted check.
    json_error close_object(const frame& f) noexcept {
        const std::size_t n = nkeys_ - f.key_begin;
        if (n > k_linear_keys) {
            order_.resize(n);
            for (std::size_t i = 0; i < n; ++i) order_[i] = f.key_begin + i;
            std::sort(order_.begin(), order_.end(), [this](std::size_t a, std::size_t b) {
                return detail::compare_keys(keys_[a], keys_[b]) < 0;
            });
            for (std::size_t i = 1; i < n; ++i) {
                const detail::key_ref& a = keys_[order_[i - 1]];
                const detail::key_ref& b = keys_[order_[i]];
                if (detail::compare_keys(a, b) == 0)
                    return fail(std::max(a.data, b.data) - 1, json_error::duplicate_key);
            }
        }
        nkeys_ = f.key_begin;
        return json_error::ok;
    }

    json_error scan_literal(const char*& p, std::string_view lit) noexcept {
        const auto left = static_cast<std::size_t>(end_ - p);
        if (left >= lit.size() && std::memcmp(p, lit.data(), lit.size()) == 0) {
            p += lit.size();
            return json_error::ok;
        }
        if (left < lit.size() && std::memcmp(p, lit.data(), left) == 0)
            return fail(end_, json_error::unexpected_end);
        return fail(p, json_error::unexpected_char);
    }

    /// Scans exactly one value at p (leading whitespace allowed), including
    /// everything nested in it; leaves p just after it.
    json_error scan_value(const char*& pp) noexcept {
        const char* p = pp;
        const char* const end = end_;
        const std::size_t base = depth_;
        json_error e = json_error::ok;
        detail::key_ref k;
        for (;;) {
            // A value starts here.
            if (!at_token(p)) return fail(p, json_error::unexpected_end);
            bool opened = false;
            switch (*p) {
                case '{':
                case '[': {
                    const bool obj = *p == '{';
                    if (depth_ >= cfg_.max_depth) return fail(p, json_error::too_deep);
                    push_frame(obj);
                    p = detail::skip_ws(p + 1, end);
                    if (p == end) return fail(p, json_error::unexpected_end);
                    if (*p == (obj ? '}' : ']')) {
                        ++p;
                        --depth_;
                    } else {
                        if (obj && (e = scan_key(p, k)) != json_error::ok) return e;
                        opened = true;
                    }
                    break;
                }
                case '"': {
                    ++p;
                    detail::string_facts f;
                    if ((e = detail::scan_string_fast(p, end, f)) != json_error::ok)
                        return fail(p, e);
                    ++p;
                    break;
                }
                case 't':
                    if ((e = scan_literal(p, "true")) != json_error::ok) return e;
                    break;
                case 'f':
                    if ((e = scan_literal(p, "false")) != json_error::ok) return e;
                    break;
                case 'n':
                    if ((e = scan_literal(p, "null")) != json_error::ok) return e;
                    break;
                case '-': case '0': case '1': case '2': case '3': case '4':
                case '5': case '6': case '7': case '8': case '9':
                    if ((e = detail::scan_number(p, end)) != json_error::ok) return fail(p, e);
                    break;
                default:
                    return fail(p, json_error::unexpected_char);
            }
            if (opened) continue;
            // A value ended: close containers until one wants another value.
            for (;;) {
                if (depth_ == base) {
                    pp = p;
                    return json_error::ok;
                }
                if (!at_token(p)) return fail(p, json_error::unexpected_end);
                const frame& fr = top();
                if (*p == ',') {
                    ++p;
                    if (fr.is_object && (e = scan_key(p, k)) != json_error::ok) return e;
                    break;
                }
                if (*p == (fr.is_object ? '}' : ']')) {
                    ++p;
                    if (fr.is_object && (e = close_object(fr)) != json_error::ok) return e;
                    --depth_;
                    continue;
                }
                return fail(p, json_error::unexpected_char);
            }
        }
    }

    json_config cfg_;
    // Both stacks are used up to depth_/nkeys_ and only ever grow, so the
    // hot path is an index bump rather than vector bookkeeping.
    std::vector<frame> stack_;
    std::vector<detail::key_ref> keys_;
    std::size_t depth_ = 0;
    std::size_t nkeys_ = 0;
    std::vector<std::size_t> order_;
    std::string key_scratch_;
    const char* begin_ = nullptr;
    const char* end_ = nullptr;
    const char* pos_ = nullptr;
    const char* err_pos_ = nullptr;
    json_error err_ = json_error::ok;
    walk_state walk_ = walk_state::idle;
};

/// Validates and decodes a string body (the text between the quotes) into
/// `out`, replacing its contents. False (out unspecified) if the body is not
/// a valid I-JSON string body: raw '"', bad escapes, lone surrogates, raw
/// controls, invalid UTF-8.
inline bool decode_json_string(std::string_view body, std::string& out) {
    const char* p = body.data();
    detail::string_facts f;
    if (detail::scan_string<true>(p, body.data() + body.size(), f) != json_error::ok) return false;
    out.resize(f.decoded_size);
    if (f.decoded_size != 0) detail::decode_validated(body, out.data());
    return true;
}

/// Same into a caller-owned buffer; a buffer of body.size() bytes always
/// suffices. On success `written` is the decoded length; false if the body
/// is invalid or `out` is too small.
inline bool decode_json_string(std::string_view body, std::span<char> out,
                               std::size_t& written) noexcept {
    const char* p = body.data();
    detail::string_facts f;
    if (detail::scan_string<true>(p, body.data() + body.size(), f) != json_error::ok) return false;
    if (f.decoded_size > out.size()) return false;
    written = detail::decode_validated(body, out.data());
    return true;
}

/// Appends `s` to `out` as a quoted JSON string: '"' and '\\' are escaped,
/// controls below 0x20 become \b \f \n \r \t or \u00XX, everything else
/// (UTF-8 included, and '/') is copied as is. Bytes that are not valid UTF-8
/// are replaced by U+FFFD, one per byte, so the output is always I-JSON.
inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    const char* p = s.data();
    const char* const end = p + s.size();
    // Short and nothing to escape (nearly every protocol string): one append.
    if (s.size() <= 62 && detail::find_string_special(p, end) == end) {
        char buf[64];
        buf[0] = '"';
        if (!s.empty()) std::memcpy(buf + 1, p, s.size());
        buf[s.size() + 1] = '"';
        out.append(buf, s.size() + 2);
        return;
    }
    out.push_back('"');
    while (p != end) {
        const char* q = detail::find_string_special(p, end);
        out.append(p, static_cast<std::size_t>(q - p));
        p = q;
        if (p == end) break;
        const auto c = static_cast<unsigned char>(*p);
        if (c >= 0x80) {
            const std::size_t n = detail::utf8_sequence(p, end);
            if (n == 0) {
                out.append("\xEF\xBF\xBD");
                ++p;
            } else {
                out.append(p, n);
                p += n;
            }
            continue;
        }
        ++p;
        char esc = 0;
        switch (c) {
            case '"': esc = '"'; break;
            case '\\': esc = '\\'; break;
            case '\b': esc = 'b'; break;
            case '\f': esc = 'f'; break;
            case '\n': esc = 'n'; break;
            case '\r': esc = 'r'; break;
            case '\t': esc = 't'; break;
            default: break;
        }
        if (esc != 0) {
            const char two[2] = {'\\', esc};
            out.append(two, 2);
        } else {
            const char six[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            out.append(six, 6);
        }
    }
    out.push_back('"');
}

}  // namespace tether::proto
