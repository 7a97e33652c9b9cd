// tether/proto/envelope.hpp — reading tether v1 envelopes (PROTOCOL.md §2).
//
// Theory of operation
// -------------------
// An envelope is a flat view of one frame: every field the protocol names is
// a std::string_view or std::optional into either the frame's own text or a
// scratch arena owned by the `envelope_reader`, plus a bitmask of the fields
// that were present. Nothing is a tree: `payload`, `caps`, `limits`,
// `members` and `heads` are the exact bytes of the JSON value (validated),
// which the server relays and the client hands to the application without
// ever re-encoding them. Strings without escapes (nearly all of them) are
// views into the input; a string with escapes is decoded once into the
// reader's arena, which is sized to the largest frame seen and then reused, so
// a warmed-up reader does not allocate.
//
// The reader is kind-agnostic: it checks JSON validity (I-JSON, see
// json.hpp), the JSON type of every known field, and the value rules that do
// not depend on the kind (room_id syntax, id and correlation_id length, the
// integer range). Which fields a given kind requires is the business of the
// machine that dispatches on `kind`.
//
// Errors (PROTOCOL.md §2, §7), in the order they win:
//   1. the text is over reader_config::max_message_bytes -> too_large;
//   2. the text is not a strict I-JSON object -> bad_request (a JSON error
//      anywhere beats a field error, because a document that is not JSON
//      has no fields);
//   3. the first field, in document order, whose value breaks its rule ->
//      bad_room_id for a room_id (or a `heads` key) that is a string but not
//      a valid room id, bad_request for everything else;
//   4. no `kind` -> bad_request.
// Unknown fields are ignored, but they are still validated as JSON.
//
// Echoing (PROTOCOL.md §7: errors echo correlation_id and id): the parse
// result carries the valid `correlation_id` and `id` the reader saw even when
// it fails for another reason. A value that itself breaks its rule (an id of
// 65 bytes, a numeric correlation_id) is not echoed, and when the text is
// not valid JSON only the fields before the point of failure were seen.
//
// Choices where the protocol is silent, made here once:
//   - integers are *whole numbers by value* (see detail/json_number.hpp):
//     42, 42.0 and 4.2e1 are all 42; 42.5, -1 and 2^53 are bad_request;
//   - `kind` must be 1..max_kind_bytes (default 128) bytes;
//   - `correlation_id` must be 1..max_correlation_id_bytes (default 128)
//     bytes, so that "absent" and "empty" never need telling apart;
//   - `caps` and `members` must be arrays of strings, `limits` an object,
//     `heads` an object of room_id -> whole number; `null` is the wrong type
//     for every field except `payload`, where it is relayed as null.
#pragma once

#include "detail/fast_walk.hpp"
#include "error_code.hpp"
#include "json.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tether::proto {

/// Every field the protocol names; the order gives the bit in envelope::present.
enum class field : std::uint8_t {
    kind, protocol_version, session_id, room_id, event_id, epoch, id, correlation_id,
    sender, payload, ts, resumed, heartbeat_ms, caps, limits, resume_from, resume,
    replay_to, head, reason, members, status, code, message, retry_after_ms, heads, user,
};
inline constexpr std::size_t field_count = 27;

constexpr std::uint32_t field_bit(field f) noexcept { return 1u << static_cast<unsigned>(f); }

/// The field's name on the wire.
constexpr std::string_view to_string(field f) noexcept {
    constexpr std::string_view names[field_count] = {
        "kind", "protocol_version", "session_id", "room_id", "event_id", "epoch", "id",
        "correlation_id", "sender", "payload", "ts", "resumed", "heartbeat_ms", "caps",
        "limits", "resume_from", "resume", "replay_to", "head", "reason", "members",
        "status", "code", "message", "retry_after_ms", "heads", "user",
    };
    return names[static_cast<std::size_t>(f)];
}

struct envelope {
    std::uint32_t present = 0;  ///< field_bit() of every field that was present and valid
    bool has(field f) const noexcept { return (present & field_bit(f)) != 0; }

    std::string_view kind{};
    std::optional<std::int64_t> protocol_version{};
    std::string_view session_id{};
    std::string_view room_id{};
    std::optional<std::int64_t> event_id{};
    std::string_view epoch{};
    std::string_view id{};
    std::string_view correlation_id{};
    std::string_view sender{};
    std::string_view payload{};  ///< raw JSON value, exact input bytes ("null" when null)
    std::optional<std::int64_t> ts{};
    std::optional<bool> resumed{};
    std::optional<std::int64_t> heartbeat_ms{};
    std::string_view caps{};    ///< raw JSON array of strings
    std::string_view limits{};  ///< raw JSON object
    std::optional<std::int64_t> resume_from{};
    std::string_view resume{};  ///< "none" / "replay" / "snapshot_required" (see parse_resume_mode)
    std::optional<std::int64_t> replay_to{};
    std::optional<std::int64_t> head{};
    std::string_view reason{};
    std::string_view members{};  ///< raw JSON array of strings (see for_each_string)
    std::string_view status{};
    std::string_view code{};
    std::string_view message{};
    std::optional<std::int64_t> retry_after_ms{};
    std::string_view heads{};  ///< raw JSON object {room_id: event_id} (see for_each_head)
    std::string_view user{};
};

// ---------------------------------------------------------------------------
// Wire vocabulary

/// PROTOCOL.md §2: kinds with these prefixes belong to the protocol; any
/// other kind is an application event.
constexpr bool is_reserved_kind(std::string_view kind) noexcept {
    return kind.starts_with("server.") || kind.starts_with("client.") ||
           kind.starts_with("room.") || kind.starts_with("presence.");
}

inline constexpr std::size_t max_room_id_bytes = 128;
inline constexpr std::size_t max_id_bytes = 64;

namespace detail {
/// 1 for the bytes a room_id may contain: one load per byte, no compares.
inline constexpr auto k_room_id_byte = [] {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c)
        t[static_cast<std::size_t>(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                         (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                                         c == ':' || c == '-';
    return t;
}();
}  // namespace detail

namespace detail {
/// is_valid_room_id for an id at p that may be followed by more readable
/// bytes up to `limit` (the rest of the frame): 16 bytes per step with SSE2,
/// the table otherwise.
inline bool is_valid_room_id_in(const char* p, std::size_t n, const char* limit) noexcept {
    if (n == 0 || n > max_room_id_bytes) return false;
#if defined(__SSE2__)
    if (static_cast<std::size_t>(limit - p) >= ((n + 15) & ~std::size_t{15})) {
        // [-.] [0-9:] [A-Z] _ [a-z], by signed compares: bytes >= 0x80 are
        // negative and fall outside every range.
        const auto in = [](__m128i v, char lo, char hi) noexcept {
            return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(static_cast<char>(lo - 1))),
                                 _mm_cmpgt_epi8(_mm_set1_epi8(static_cast<char>(hi + 1)), v));
        };
        for (std::size_t i = 0; i < n; i += 16) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
            const __m128i ok = _mm_or_si128(
                _mm_or_si128(_mm_or_si128(in(v, '-', '.'), in(v, '0', ':')), in(v, 'A', 'Z')),
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('_')), in(v, 'a', 'z')));
            const auto bad = ~static_cast<unsigned>(_mm_movemask_epi8(ok)) & 0xFFFFu;
            const std::size_t left = n - i;
            const unsigned lanes = left >= 16 ? 0xFFFFu : (1u << left) - 1;
            if ((bad & lanes) != 0) return false;
        }
        return true;
    }
#else
    (void)limit;
#endif
    unsigned ok = 1;
    for (std::size_t i = 0; i < n; ++i) ok &= k_room_id_byte[static_cast<unsigned char>(p[i])];
    return ok != 0;
}
}  // namespace detail

/// PROTOCOL.md §2: room_id is 1-128 bytes of [A-Za-z0-9._:-].
constexpr bool is_valid_room_id(std::string_view s) noexcept {
    if (s.empty() || s.size() > max_room_id_bytes) return false;
    // AND over the whole id (no early exit): ids are short and a branch per
    // byte costs more than the loads.
    unsigned ok = 1;
    for (const char c : s) ok &= detail::k_room_id_byte[static_cast<unsigned char>(c)];
    return ok != 0;
}

/// PROTOCOL.md §2: id is 1-64 bytes.
constexpr bool is_valid_id(std::string_view s) noexcept {
    return !s.empty() && s.size() <= max_id_bytes;
}

enum class resume_mode : std::uint8_t { none, replay, snapshot_required };
enum class resume_reason : std::uint8_t { truncated, epoch_changed, ahead };
enum class ack_status : std::uint8_t { accepted, duplicate };
enum class presence_kind : std::uint8_t { joined, away, reconnected, left };

constexpr std::string_view to_string(resume_mode m) noexcept {
    switch (m) {
        case resume_mode::none: return "none";
        case resume_mode::replay: return "replay";
        case resume_mode::snapshot_required: return "snapshot_required";
    }
    return "none";
}
constexpr std::string_view to_string(resume_reason r) noexcept {
    switch (r) {
        case resume_reason::truncated: return "truncated";
        case resume_reason::epoch_changed: return "epoch_changed";
        case resume_reason::ahead: return "ahead";
    }
    return "truncated";
}
constexpr std::string_view to_string(ack_status s) noexcept {
    return s == ack_status::duplicate ? "duplicate" : "accepted";
}
/// The full kind, e.g. "presence.away".
constexpr std::string_view to_string(presence_kind k) noexcept {
    switch (k) {
        case presence_kind::joined: return "presence.joined";
        case presence_kind::away: return "presence.away";
        case presence_kind::reconnected: return "presence.reconnected";
        case presence_kind::left: return "presence.left";
    }
    return "presence.left";
}

constexpr std::optional<resume_mode> parse_resume_mode(std::string_view s) noexcept {
    for (auto m : {resume_mode::none, resume_mode::replay, resume_mode::snapshot_required})
        if (to_string(m) == s) return m;
    return std::nullopt;
}
constexpr std::optional<resume_reason> parse_resume_reason(std::string_view s) noexcept {
    for (auto r : {resume_reason::truncated, resume_reason::epoch_changed, resume_reason::ahead})
        if (to_string(r) == s) return r;
    return std::nullopt;
}
constexpr std::optional<ack_status> parse_ack_status(std::string_view s) noexcept {
    if (s == "accepted") return ack_status::accepted;
    if (s == "duplicate") return ack_status::duplicate;
    return std::nullopt;
}
constexpr std::optional<presence_kind> parse_presence_kind(std::string_view kind) noexcept {
    for (auto k : {presence_kind::joined, presence_kind::away, presence_kind::reconnected,
                   presence_kind::left})
        if (to_string(k) == kind) return k;
    return std::nullopt;
}

// ---------------------------------------------------------------------------
// Walking the raw array/object fields

namespace detail {

/// Calls f(body, escaped) for each element of a JSON array of strings.
/// False if `raw` is not exactly such an array (f may have been called for
/// the elements before the problem).
template <class F>
bool walk_string_array(std::string_view raw, F&& f) noexcept {
    const char* p = raw.data();
    const char* const end = p + raw.size();
    p = skip_ws(p, end);
    if (p == end || *p != '[') return false;
    p = skip_ws(p + 1, end);
    if (p != end && *p == ']') return skip_ws(p + 1, end) == end;
    for (;;) {
        if (p == end || *p != '"') return false;
        const char* const body = ++p;
        string_facts sf;
        if (scan_string(p, end, sf) != json_error::ok) return false;
        f(std::string_view(body, static_cast<std::size_t>(p - body)), sf.escaped);
        p = skip_ws(p + 1, end);
        if (p == end) return false;
        if (*p == ']') break;
        if (*p != ',') return false;
        p = skip_ws(p + 1, end);
    }
    return skip_ws(p + 1, end) == end;
}

enum class heads_status : std::uint8_t { ok, bad_request, bad_room_id };

/// Calls f(room_id, event_id) for each member of a `heads` object. Keys must
/// decode to valid room ids (else bad_room_id), values must be whole numbers
/// in 0..2^53-1 (else bad_request), and the text must be one such object.
template <class F>
heads_status walk_heads(std::string_view raw, F&& f) noexcept {
    const char* p = raw.data();
    const char* const end = p + raw.size();
    p = skip_ws(p, end);
    if (p == end || *p != '{') return heads_status::bad_request;
    p = skip_ws(p + 1, end);
    if (p != end && *p == '}')
        return skip_ws(p + 1, end) == end ? heads_status::ok : heads_status::bad_request;
    char key[max_room_id_bytes];
    for (;;) {
        if (p == end || *p != '"') return heads_status::bad_request;
        const char* const body = ++p;
        string_facts sf;
        if (scan_string(p, end, sf) != json_error::ok) return heads_status::bad_request;
        const std::string_view kraw(body, static_cast<std::size_t>(p - body));
        std::string_view room = kraw;
        if (sf.escaped) {
            if (sf.decoded_size > sizeof key) return heads_status::bad_room_id;
            room = {key, decode_validated(kraw, key)};
        }
        if (!is_valid_room_id(room)) return heads_status::bad_room_id;
        p = skip_ws(p + 1, end);
        if (p == end || *p != ':') return heads_status::bad_request;
        p = skip_ws(p + 1, end);
        if (p == end || !(is_digit(*p) || *p == '-')) return heads_status::bad_request;
        const char* const num = p;
        number_parts np;
        if (lex_number(p, end, np) != json_error::ok) return heads_status::bad_request;
        const auto v = parse_whole_number({num, static_cast<std::size_t>(p - num)});
        if (!v) return heads_status::bad_request;
        f(room, static_cast<std::int64_t>(*v));
        p = skip_ws(p, end);
        if (p == end) return heads_status::bad_request;
        if (*p == '}') break;
        if (*p != ',') return heads_status::bad_request;
        p = skip_ws(p + 1, end);
    }
    return skip_ws(p + 1, end) == end ? heads_status::ok : heads_status::bad_request;
}

}  // namespace detail

/// Calls f(std::string_view) with each decoded string of a raw JSON array of
/// strings, such as envelope::members or envelope::caps. Strings with escapes
/// are decoded into `scratch` (the view is valid until the next element).
/// False if `raw_array` is not an array of valid strings; for a field the
/// reader accepted it is always true.
template <class F>
bool for_each_string(std::string_view raw_array, std::string& scratch, F&& f) {
    return detail::walk_string_array(raw_array, [&](std::string_view body, bool escaped) {
        if (!escaped) {
            f(body);
            return;
        }
        scratch.resize(body.size());
        const std::size_t n = detail::decode_validated(body, scratch.data());
        f(std::string_view(scratch.data(), n));
    });
}

/// Calls f(std::string_view room_id, std::int64_t event_id) for each member
/// of a raw `heads` object. False if `raw_object` is not a valid heads
/// object; for a field the reader accepted it is always true.
template <class F>
bool for_each_head(std::string_view raw_object, F&& f) {
    return detail::walk_heads(raw_object, f) == detail::heads_status::ok;
}

// ---------------------------------------------------------------------------
// The reader

struct reader_config {
    /// Texts longer than this are refused with too_large before any scanning.
    /// The WebSocket layer enforces the real limit (close 1009); this bound
    /// keeps the reader's arena bounded on its own.
    std::size_t max_message_bytes = std::size_t{1} << 20;
    std::size_t max_depth = 64;                 ///< JSON nesting, envelope object = 1
    std::size_t max_correlation_id_bytes = 128;
    std::size_t max_kind_bytes = 128;
};

struct parse_result {
    std::optional<error_code> error{};  ///< empty on success
    const char* message = "";         ///< static text, fit for server.error's message
    std::size_t offset = 0;           ///< byte offset of the problem in the text
    /// Valid correlation_id / id seen in the text, for echoing in the answer
    /// (set on success too). Views into the text or the reader's arena.
    std::string_view correlation_id{};
    std::string_view id{};

    explicit operator bool() const noexcept { return !error.has_value(); }
};

namespace detail {

enum class field_type : std::uint8_t { string, integer, boolean, any, object, string_array, heads };

struct field_desc {
    field_type type;
    const char* wrong;                              ///< message when the rule is broken
    std::string_view envelope::*text;               ///< where string and raw fields go
    std::optional<std::int64_t> envelope::*number;  ///< where integer fields go
};

constexpr field_desc view(field_type t, const char* wrong, std::string_view envelope::*slot) {
    return {t, wrong, slot, nullptr};
}
constexpr field_desc integer(const char* wrong, std::optional<std::int64_t> envelope::*slot) {
    return {field_type::integer, wrong, nullptr, slot};
}

/// Indexed by `field`.
inline constexpr field_desc k_fields[field_count] = {
    view(field_type::string, "kind: expected a string", &envelope::kind),
    integer("protocol_version: expected a whole number in 0..2^53-1", &envelope::protocol_version),
    view(field_type::string, "session_id: expected a string", &envelope::session_id),
    view(field_type::string, "room_id: expected a string", &envelope::room_id),
    integer("event_id: expected a whole number in 0..2^53-1", &envelope::event_id),
    view(field_type::string, "epoch: expected a string", &envelope::epoch),
    view(field_type::string, "id: expected a string", &envelope::id),
    view(field_type::string, "correlation_id: expected a string", &envelope::correlation_id),
    view(field_type::string, "sender: expected a string", &envelope::sender),
    view(field_type::any, "", &envelope::payload),
    integer("ts: expected a whole number in 0..2^53-1", &envelope::ts),
    {field_type::boolean, "resumed: expected true or false", nullptr, nullptr},
    integer("heartbeat_ms: expected a whole number in 0..2^53-1", &envelope::heartbeat_ms),
    view(field_type::string_array, "caps: expected an array of strings", &envelope::caps),
    view(field_type::object, "limits: expected an object", &envelope::limits),
    integer("resume_from: expected a whole number in 0..2^53-1", &envelope::resume_from),
    view(field_type::string, "resume: expected a string", &envelope::resume),
    integer("replay_to: expected a whole number in 0..2^53-1", &envelope::replay_to),
    integer("head: expected a whole number in 0..2^53-1", &envelope::head),
    view(field_type::string, "reason: expected a string", &envelope::reason),
    view(field_type::string_array, "members: expected an array of strings", &envelope::members),
    view(field_type::string, "status: expected a string", &envelope::status),
    view(field_type::string, "code: expected a string", &envelope::code),
    view(field_type::string, "message: expected a string", &envelope::message),
    integer("retry_after_ms: expected a whole number in 0..2^53-1", &envelope::retry_after_ms),
    view(field_type::heads, "heads: expected an object of room_id to whole numbers in 0..2^53-1",
         &envelope::heads),
    view(field_type::string, "user: expected a string", &envelope::user),
};

/// Field for a decoded member name, or -1 for an unknown (ignored) one.
/// Dispatch on length, then compare with fixed-size memcmp (inlined).
[[gnu::always_inline]] inline int lookup_field(std::string_view k) noexcept {
    const char* const d = k.data();
    // Two overlapping loads of the width that fits (the size is known equal):
    // memcmp of an odd constant size is sometimes a call, one per member.
    const auto is = [d]<std::size_t N>(const char (&name)[N]) noexcept {
        constexpr std::size_t n = N - 1;
        const auto same = [&]<class W>(W) noexcept {
            W a0, a1, b0, b1;
            std::memcpy(&a0, d, sizeof(W));
            std::memcpy(&a1, d + n - sizeof(W), sizeof(W));
            std::memcpy(&b0, name, sizeof(W));
            std::memcpy(&b1, name + n - sizeof(W), sizeof(W));
            return ((a0 ^ b0) | (a1 ^ b1)) == 0;
        };
        static_assert(n >= 2 && n <= 16);
        if constexpr (n >= 8) return same(std::uint64_t{});
        else if constexpr (n >= 4) return same(std::uint32_t{});
        else return same(std::uint16_t{});
    };
    const auto r = [](field f) noexcept { return static_cast<int>(f); };
    switch (k.size()) {
        case 2:
            if (is("id")) return r(field::id);
            if (is("ts")) return r(field::ts);
            break;
        case 4:
            if (is("kind")) return r(field::kind);
            if (is("caps")) return r(field::caps);
            if (is("code")) return r(field::code);
            if (is("head")) return r(field::head);
            if (is("user")) return r(field::user);
            break;
        case 5:
            if (is("epoch")) return r(field::epoch);
            if (is("heads")) return r(field::heads);
            break;
        case 6:
            if (is("sender")) return r(field::sender);
            if (is("status")) return r(field::status);
            if (is("reason")) return r(field::reason);
            if (is("resume")) return r(field::resume);
            if (is("limits")) return r(field::limits);
            break;
        case 7:
            if (is("room_id")) return r(field::room_id);
            if (is("payload")) return r(field::payload);
            if (is("members")) return r(field::members);
            if (is("resumed")) return r(field::resumed);
            if (is("message")) return r(field::message);
            break;
        case 8:
            if (is("event_id")) return r(field::event_id);
            break;
        case 9:
            if (is("replay_to")) return r(field::replay_to);
            break;
        case 10:
            if (is("session_id")) return r(field::session_id);
            break;
        case 11:
            if (is("resume_from")) return r(field::resume_from);
            break;
        case 12:
            if (is("heartbeat_ms")) return r(field::heartbeat_ms);
            break;
        case 14:
            if (is("correlation_id")) return r(field::correlation_id);
            if (is("retry_after_ms")) return r(field::retry_after_ms);
            break;
        case 16:
            if (is("protocol_version")) return r(field::protocol_version);
            break;
        default: break;
    }
    return -1;
}

inline constexpr const char* json_error_message(json_error e) noexcept {
    switch (e) {
        case json_error::ok: return "";
        case json_error::unexpected_end: return "invalid JSON: unexpected end of text";
        case json_error::unexpected_char: return "invalid JSON: unexpected character";
        case json_error::trailing_data: return "invalid JSON: data after the top-level value";
        case json_error::invalid_utf8: return "invalid JSON: invalid UTF-8";
        case json_error::control_char: return "invalid JSON: control character in string";
        case json_error::bad_escape: return "invalid JSON: invalid escape sequence";
        case json_error::lone_surrogate: return "invalid JSON: lone surrogate escape";
        case json_error::bad_number: return "invalid JSON: malformed number";
        case json_error::number_out_of_range: return "invalid JSON: number out of double range";
        case json_error::duplicate_key: return "invalid JSON: duplicate key";
        case json_error::too_deep: return "invalid JSON: nesting too deep";
        case json_error::not_an_object: return "envelope is not a JSON object";
    }
    return "invalid JSON";
}

}  // namespace detail

/// Parses envelopes. Reuse one reader per connection (or per thread): it owns
/// the JSON scanner's stacks and the arena for decoded strings, all of which
/// grow to the largest frame seen (bounded by max_message_bytes) and are then
/// reused. Views in the envelope and the result stay valid until the next
/// read() and while `text` lives.
class envelope_reader {
public:
    explicit envelope_reader(reader_config cfg = {})
        : cfg_(cfg), scanner_(json_config{cfg.max_depth}) {}

    const reader_config& config() const noexcept { return cfg_; }

    /// Parses one frame into `out` (reset first). On failure the result
    /// names the error code, a static message and the byte offset, plus the
    /// echo fields; `out` then holds the fields that were valid, for
    /// diagnostics only.
    parse_result read(std::string_view text, envelope& out) noexcept {
        out = envelope{};
        parse_result r;
        if (text.size() > cfg_.max_message_bytes) {
            r.error = error_code::too_large;
            r.message = "message larger than max_message_bytes";
            return r;
        }
        // Decoded strings are never longer than their escaped form, so an
        // arena the size of the text can never overflow.
        if (arena_.size() < text.size()) arena_.resize(text.size());
        arena_used_ = 0;
        text_ = text.data();
        text_end_ = text.data() + text.size();
        const field_classifier classify;
        // The fast walk settles valid texts (nearly all of them); whatever it
        // is not sure of, errors included, is read again from scratch by the
        // exact scanner, which alone decides what is reported (see
        // detail/fast_walk.hpp).
        {
            detail::fast_walker fast(text_, text_end_, cfg_.max_depth);
            if (fast.walk_object(classify, member_sink{*this, out, r})) [[likely]]
                return finish(r, out);
        }
        out = envelope{};
        r = parse_result{};
        arena_used_ = 0;
        // One call walks the whole object; the scanner checks the protocol's
        // own names for duplicates with one bit each (their field number).
        const json_error e = scanner_.walk_object(text, classify, member_sink{*this, out, r});
        if (e != json_error::ok) return json_failure(r, e);
        return finish(r, out);
    }

private:
    // Named functors rather than lambdas: GCC inlines neither a lambda of
    // lookup_field's size (an indirect jump table behind a call per member)
    // nor one of apply's.
    struct field_classifier {
        [[gnu::always_inline]] int operator()(std::string_view name) const noexcept {
            return detail::lookup_field(name);
        }
    };

    // A named functor rather than a lambda: GCC does not inline a lambda of
    // this size into the walk, and the call costs the member a trip through
    // memory.
    struct member_sink {
        envelope_reader& self;
        envelope& out;
        parse_result& r;
        [[gnu::always_inline]] void operator()(int f, const json_member& m) noexcept {
            if (f >= 0) self.apply(static_cast<field>(f), m, out, r);
        }
    };

    /// After a valid walk: the first field error, else a missing kind.
    static parse_result& finish(parse_result& r, const envelope& out) noexcept {
        if (r.error) return r;
        if (!out.has(field::kind)) {
            r.error = error_code::bad_request;
            r.message = "kind: missing";
        }
        return r;
    }

    parse_result& json_failure(parse_result& r, json_error e) noexcept {
        r.error = error_code::bad_request;
        r.message = detail::json_error_message(e);
        r.offset = scanner_.error_offset();
        return r;
    }

    void field_failure(parse_result& r, error_code c, const char* msg,
                       const json_member& m) noexcept {
        if (r.error) return;  // the first field error in document order wins
        r.error = c;
        r.message = msg;
        r.offset = static_cast<std::size_t>(m.value.data() - text_);
    }

    // The plain case inline (a call cost more than the work), the
    // decoding out of line.
    [[gnu::always_inline]] std::string_view decode(const json_member& m) noexcept {
        const std::string_view body = m.string_body();
        if (!m.value_escaped) [[likely]]
            return body;
        return decode_escaped(body);
    }

    std::string_view decode_escaped(std::string_view body) noexcept {
        char* const dst = arena_.data() + arena_used_;
        const std::size_t n = detail::decode_validated(body, dst);
        arena_used_ += n;
        return {dst, n};
    }

    /// One switch on the field, each case compiled for its own field: one
    /// jump per member instead of one on the type and another on the field.
    [[gnu::always_inline]] void apply(field f, const json_member& m, envelope& out,
                                      parse_result& r) noexcept {
        switch (f) {
#define TETHER_APPLY_CASE(name) \
    case field::name: return apply_field<field::name>(m, out, r);
            TETHER_APPLY_CASE(kind) TETHER_APPLY_CASE(protocol_version)
            TETHER_APPLY_CASE(session_id) TETHER_APPLY_CASE(room_id) TETHER_APPLY_CASE(event_id)
            TETHER_APPLY_CASE(epoch) TETHER_APPLY_CASE(id) TETHER_APPLY_CASE(correlation_id)
            TETHER_APPLY_CASE(sender) TETHER_APPLY_CASE(payload) TETHER_APPLY_CASE(ts)
            TETHER_APPLY_CASE(resumed) TETHER_APPLY_CASE(heartbeat_ms) TETHER_APPLY_CASE(caps)
            TETHER_APPLY_CASE(limits) TETHER_APPLY_CASE(resume_from) TETHER_APPLY_CASE(resume)
            TETHER_APPLY_CASE(replay_to) TETHER_APPLY_CASE(head) TETHER_APPLY_CASE(reason)
            TETHER_APPLY_CASE(members) TETHER_APPLY_CASE(status) TETHER_APPLY_CASE(code)
            TETHER_APPLY_CASE(message) TETHER_APPLY_CASE(retry_after_ms) TETHER_APPLY_CASE(heads)
            TETHER_APPLY_CASE(user)
#undef TETHER_APPLY_CASE
        }
    }

    template <field f>
    [[gnu::always_inline]] void apply_field(const json_member& m, envelope& out,
                                            parse_result& r) noexcept {
        constexpr const detail::field_desc& d = detail::k_fields[static_cast<std::size_t>(f)];
        const auto wrong = [&] { field_failure(r, error_code::bad_request, d.wrong, m); };
        switch (d.type) {
            case detail::field_type::string: {
                if (m.type != json_type::string) return wrong();
                const std::string_view s = decode(m);
                switch (f) {
                    case field::kind:
                        if (s.empty() || s.size() > cfg_.max_kind_bytes)
                            return field_failure(r, error_code::bad_request,
                                                 "kind: empty or too long", m);
                        break;
                    case field::room_id:
                        if (!detail::is_valid_room_id_in(s.data(), s.size(),
                                                         m.value_escaped ? s.data() + s.size()
                                                                         : text_end_))
                            return field_failure(
                                r, error_code::bad_room_id,
                                "room_id: must be 1-128 bytes of [A-Za-z0-9._:-]", m);
                        break;
                    case field::id:
                        if (!is_valid_id(s))
                            return field_failure(r, error_code::bad_request,
                                                 "id: must be 1-64 bytes", m);
                        r.id = s;
                        break;
                    case field::correlation_id:
                        if (s.empty() || s.size() > cfg_.max_correlation_id_bytes)
                            return field_failure(r, error_code::bad_request,
                                                 "correlation_id: empty or too long", m);
                        r.correlation_id = s;
                        break;
                    default: break;
                }
                out.*d.text = s;
                break;
            }
            case detail::field_type::integer: {
                if (m.type != json_type::number) return wrong();
                const auto v = m.is_uint ? std::optional<std::uint64_t>(m.uint_value)
                                         : detail::parse_whole_number(m.value);
                if (!v || *v > detail::k_max_safe_integer) return wrong();
                out.*d.number = static_cast<std::int64_t>(*v);
                break;
            }
            case detail::field_type::boolean:
                if (m.type != json_type::boolean) return wrong();
                out.resumed = m.value.front() == 't';
                break;
            case detail::field_type::any:
                out.*d.text = m.value;
                break;
            case detail::field_type::object:
                if (m.type != json_type::object) return wrong();
                out.*d.text = m.value;
                break;
            case detail::field_type::string_array:
                if (m.type != json_type::array ||
                    !detail::walk_string_array(m.value, [](std::string_view, bool) {}))
                    return wrong();
                out.*d.text = m.value;
                break;
            case detail::field_type::heads: {
                if (m.type != json_type::object) return wrong();
                const auto st =
                    detail::walk_heads(m.value, [](std::string_view, std::int64_t) {});
                if (st == detail::heads_status::bad_room_id)
                    return field_failure(r, error_code::bad_room_id,
                                         "heads: key is not a valid room_id", m);
                if (st != detail::heads_status::ok) return wrong();
                out.*d.text = m.value;
                break;
            }
        }
        out.present |= field_bit(f);
    }

    reader_config cfg_;
    json_scanner scanner_;
    std::vector<char> arena_;
    std::size_t arena_used_ = 0;
    const char* text_ = nullptr;
    const char* text_end_ = nullptr;
};

}  // namespace tether::proto
