// fuzz_envelope — proto::envelope_reader against nlohmann::json.
//
// The input is the frame text itself (seeds are plain JSON envelopes). It is
// read by two long-lived readers (warm arenas, as in production): one with
// the default reader_config and one with tight bounds (max_depth 4, kind and
// correlation_id at most 8 bytes, texts over 300 bytes too_large).
//
// The reference is nlohmann::json, in two passes: a SAX pass that records
// what I-JSON (RFC 7493) adds to RFC 8259 and nlohmann does not enforce —
// duplicate names at any depth (compared decoded), nesting depth, a leading
// BOM (nlohmann skips it), a raw NUL byte (nlohmann takes it for the end of
// the input and ignores what follows) — plus every top-level member in
// document order with its decoded value and, for numbers, the exact token;
// and a DOM pass for value comparison. Lone surrogates, invalid UTF-8 and numbers that
// overflow a double are rejected by nlohmann itself (error 101 / 406).
//
// From that the harness computes the exact expected result: too_large; or
// bad_request when the text is not a strict I-JSON object; or the first
// member (document order) that breaks its field rule (bad_room_id for a
// room_id string, or a heads key, that is not a room id; bad_request
// otherwise, with "whole number in 0..2^53-1" decided exactly from the
// decimal token, never through a double); or bad_request for a missing kind;
// else success. On success every field must equal nlohmann's: strings
// decoded, integers by value, raw fields (payload, caps, limits, members,
// heads) exact slices of the input that parse to the same value as the
// document's member. So: nlohmann rejects => tether rejects; tether accepts
// => nlohmann accepts with the same values; and the I-JSON rules, which
// nlohmann does not apply, are checked by this file's own rules.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_util.hpp"
#include "tether/proto/envelope.hpp"

namespace {

namespace proto = tether::proto;
using json = nlohmann::json;
using fuzz::printable;

constexpr std::uint64_t k_max_safe = 9007199254740991ULL;  // 2^53 - 1

// ---------------------------------------------------------------------------
// SAX pass

struct val {
    enum kind { null, boolean, negative, unsigned_, floating, string, object, array } type = null;
    bool b = false;
    std::int64_t i = 0;
    std::uint64_t u = 0;
    std::string raw;  ///< floating: the token
    std::string s;    ///< string: decoded
    std::vector<val> elems;                               ///< array members (depth+1 only)
    std::vector<std::string> child_keys;                  ///< object member names (depth+1 only)
    std::vector<val> children;                            ///< object member values, same order
};

struct member {
    std::string key;
    val v;
};

struct facts {
    std::size_t depth = 0;
    std::size_t max_depth = 0;
    bool dup = false;
    bool top_object = false;
    bool started = false;
    std::vector<std::set<std::string>> keys;  // per open container (empty for arrays)
    std::vector<bool> is_obj;
    std::vector<member> members;
    std::string child_key;

    void on_value(val v) {
        if (depth == 0) {
            started = true;
            return;
        }
        if (depth == 1) {
            if (is_obj[0]) members.back().v = std::move(v);
            return;
        }
        if (depth == 2 && is_obj[0] && !members.empty()) {
            val& m = members.back().v;
            if (m.type == val::array) m.elems.push_back(std::move(v));
            else if (m.type == val::object) {
                m.child_keys.push_back(child_key);
                m.children.push_back(std::move(v));
            }
        }
    }
    bool open(bool obj) {
        val v;
        v.type = obj ? val::object : val::array;
        if (depth == 0) top_object = obj;
        on_value(std::move(v));
        keys.emplace_back();
        is_obj.push_back(obj);
        ++depth;
        max_depth = std::max(max_depth, depth);
        return true;
    }
    bool close() {
        keys.pop_back();
        is_obj.pop_back();
        --depth;
        return true;
    }

    // nlohmann SAX interface
    bool null() { on_value(val{}); return true; }
    bool boolean(bool b) {
        val v;
        v.type = val::boolean;
        v.b = b;
        on_value(std::move(v));
        return true;
    }
    bool number_integer(json::number_integer_t n) {
        val v;
        v.type = val::negative;
        v.i = n;
        on_value(std::move(v));
        return true;
    }
    bool number_unsigned(json::number_unsigned_t n) {
        val v;
        v.type = val::unsigned_;
        v.u = n;
        on_value(std::move(v));
        return true;
    }
    bool number_float(json::number_float_t, const std::string& token) {
        val v;
        v.type = val::floating;
        v.raw = token;
        on_value(std::move(v));
        return true;
    }
    bool string(std::string& s) {
        val v;
        v.type = val::string;
        v.s = s;
        on_value(std::move(v));
        return true;
    }
    bool binary(json::binary_t&) { return false; }
    bool start_object(std::size_t) { return open(true); }
    bool end_object() { return close(); }
    bool start_array(std::size_t) { return open(false); }
    bool end_array() { return close(); }
    bool key(std::string& k) {
        if (!keys.back().insert(k).second) dup = true;
        if (depth == 1) members.push_back(member{k, val{}});
        if (depth == 2) child_key = k;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
};

// ---------------------------------------------------------------------------
// Field rules (PROTOCOL.md §2, §7; envelope.hpp's documented choices)

/// Exact "whole number by value in 0..2^53-1" from the number as nlohmann
/// saw it: unsigned and negative integers exactly, other tokens from their
/// decimal digits.
std::optional<std::uint64_t> whole(const val& v) {
    switch (v.type) {
        case val::unsigned_: return v.u <= k_max_safe ? std::optional<std::uint64_t>(v.u) : std::nullopt;
        case val::negative: return v.i == 0 ? std::optional<std::uint64_t>(0) : std::nullopt;  // "-0" is zero
        case val::floating: break;
        default: return std::nullopt;
    }
    std::string_view t = v.raw;
    bool neg = false;
    if (!t.empty() && t.front() == '-') {
        neg = true;
        t.remove_prefix(1);
    }
    std::int64_t exp = 0;
    const std::size_t epos = t.find_first_of("eE");
    if (epos != std::string_view::npos) {
        std::string_view e = t.substr(epos + 1);
        bool eneg = false;
        if (!e.empty() && (e.front() == '+' || e.front() == '-')) {
            eneg = e.front() == '-';
            e.remove_prefix(1);
        }
        for (char c : e)
            if (exp < 1'000'000'000) exp = exp * 10 + (c - '0');
        if (eneg) exp = -exp;
        t = t.substr(0, epos);
    }
    std::string digits;
    const std::size_t dot = t.find('.');
    digits.append(t.substr(0, dot));
    if (dot != std::string_view::npos) {
        digits.append(t.substr(dot + 1));
        exp -= static_cast<std::int64_t>(t.size() - dot - 1);
    }
    const std::size_t first = digits.find_first_not_of('0');
    if (first == std::string::npos) return 0;  // zero, whatever the sign
    if (neg) return std::nullopt;
    digits.erase(0, first);
    while (digits.back() == '0') {
        digits.pop_back();
        ++exp;
    }
    if (exp < 0) return std::nullopt;  // a fraction remains
    if (static_cast<std::int64_t>(digits.size()) + exp > 16) return std::nullopt;  // >= 10^16 > 2^53
    std::uint64_t x = 0;
    for (char c : digits) x = x * 10 + static_cast<std::uint64_t>(c - '0');
    for (std::int64_t k = 0; k < exp; ++k) x *= 10;
    return x <= k_max_safe ? std::optional<std::uint64_t>(x) : std::nullopt;
}

bool room_id_ok(std::string_view s) {
    if (s.empty() || s.size() > 128) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '-'))
            return false;
    return true;
}

enum class rule { string, kind, room_id, id, correlation_id, integer, boolean, any, object, string_array, heads };

struct field_rule {
    std::string_view name;
    rule r;
    proto::field f;
};

constexpr field_rule k_rules[] = {
    {"kind", rule::kind, proto::field::kind},
    {"protocol_version", rule::integer, proto::field::protocol_version},
    {"session_id", rule::string, proto::field::session_id},
    {"room_id", rule::room_id, proto::field::room_id},
    {"event_id", rule::integer, proto::field::event_id},
    {"epoch", rule::string, proto::field::epoch},
    {"id", rule::id, proto::field::id},
    {"correlation_id", rule::correlation_id, proto::field::correlation_id},
    {"sender", rule::string, proto::field::sender},
    {"payload", rule::any, proto::field::payload},
    {"ts", rule::integer, proto::field::ts},
    {"resumed", rule::boolean, proto::field::resumed},
    {"heartbeat_ms", rule::integer, proto::field::heartbeat_ms},
    {"caps", rule::string_array, proto::field::caps},
    {"limits", rule::object, proto::field::limits},
    {"resume_from", rule::integer, proto::field::resume_from},
    {"resume", rule::string, proto::field::resume},
    {"replay_to", rule::integer, proto::field::replay_to},
    {"head", rule::integer, proto::field::head},
    {"reason", rule::string, proto::field::reason},
    {"members", rule::string_array, proto::field::members},
    {"status", rule::string, proto::field::status},
    {"code", rule::string, proto::field::code},
    {"message", rule::string, proto::field::message},
    {"retry_after_ms", rule::integer, proto::field::retry_after_ms},
    {"heads", rule::heads, proto::field::heads},
    {"user", rule::string, proto::field::user},
};

const field_rule* find_rule(std::string_view name) {
    for (const auto& r : k_rules)
        if (r.name == name) return &r;
    return nullptr;
}

/// nullopt: the value keeps its rule; else the error it earns.
std::optional<proto::error_code> check_rule(const field_rule& fr, const val& v, const proto::reader_config& cfg) {
    using E = proto::error_code;
    switch (fr.r) {
        case rule::string:
            return v.type == val::string ? std::nullopt : std::optional(E::bad_request);
        case rule::kind:
            if (v.type != val::string || v.s.empty() || v.s.size() > cfg.max_kind_bytes) return E::bad_request;
            return std::nullopt;
        case rule::room_id:
            if (v.type != val::string) return E::bad_request;
            return room_id_ok(v.s) ? std::nullopt : std::optional(E::bad_room_id);
        case rule::id:
            if (v.type != val::string || v.s.empty() || v.s.size() > 64) return E::bad_request;
            return std::nullopt;
        case rule::correlation_id:
            if (v.type != val::string || v.s.empty() || v.s.size() > cfg.max_correlation_id_bytes) return E::bad_request;
            return std::nullopt;
        case rule::integer:
            return whole(v) ? std::nullopt : std::optional(E::bad_request);
        case rule::boolean:
            return v.type == val::boolean ? std::nullopt : std::optional(E::bad_request);
        case rule::any:
            return std::nullopt;
        case rule::object:
            return v.type == val::object ? std::nullopt : std::optional(E::bad_request);
        case rule::string_array:
            if (v.type != val::array) return E::bad_request;
            for (const auto& e : v.elems)
                if (e.type != val::string) return E::bad_request;
            return std::nullopt;
        case rule::heads:
            if (v.type != val::object) return E::bad_request;
            // Member by member: the key first (bad_room_id), then the value.
            for (std::size_t i = 0; i < v.children.size(); ++i) {
                if (!room_id_ok(v.child_keys[i])) return E::bad_room_id;
                if (!whole(v.children[i])) return E::bad_request;
            }
            return std::nullopt;
    }
    return E::bad_request;
}

std::string_view get_string(const proto::envelope& e, proto::field f) {
    using F = proto::field;
    switch (f) {
        case F::kind: return e.kind;
        case F::session_id: return e.session_id;
        case F::room_id: return e.room_id;
        case F::epoch: return e.epoch;
        case F::id: return e.id;
        case F::correlation_id: return e.correlation_id;
        case F::sender: return e.sender;
        case F::payload: return e.payload;
        case F::caps: return e.caps;
        case F::limits: return e.limits;
        case F::resume: return e.resume;
        case F::reason: return e.reason;
        case F::members: return e.members;
        case F::status: return e.status;
        case F::code: return e.code;
        case F::message: return e.message;
        case F::heads: return e.heads;
        case F::user: return e.user;
        default: return {};
    }
}

std::optional<std::int64_t> get_integer(const proto::envelope& e, proto::field f) {
    using F = proto::field;
    switch (f) {
        case F::protocol_version: return e.protocol_version;
        case F::event_id: return e.event_id;
        case F::ts: return e.ts;
        case F::heartbeat_ms: return e.heartbeat_ms;
        case F::resume_from: return e.resume_from;
        case F::replay_to: return e.replay_to;
        case F::head: return e.head;
        case F::retry_after_ms: return e.retry_after_ms;
        default: return std::nullopt;
    }
}

const char* code_name(const std::optional<proto::error_code>& c) {
    return c ? proto::to_string(*c).data() : "ok";
}

void check_reader(proto::envelope_reader& reader, std::string_view text, const facts& sax, bool sax_ok,
                  const json& dom) {
    const proto::reader_config& cfg = reader.config();
    proto::envelope env;
    const proto::parse_result r = reader.read(text, env);

    // ---- the expected result ----
    std::optional<proto::error_code> want;
    // nlohmann skips a leading BOM and takes a NUL byte for the end of the
    // input ("{...}\0junk" is accepted); a raw NUL is never valid JSON.
    const bool bom = text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF";
    const bool nul = text.find('\0') != std::string_view::npos;
    const bool ijson = sax_ok && !sax.dup && sax.max_depth <= cfg.max_depth && !bom && !nul;
    if (text.size() > cfg.max_message_bytes) {
        want = proto::error_code::too_large;
    } else if (!ijson || !sax.top_object) {
        want = proto::error_code::bad_request;
    } else {
        for (const auto& m : sax.members) {
            const field_rule* fr = find_rule(m.key);
            if (!fr) continue;
            if (auto e = check_rule(*fr, m.v, cfg)) {
                want = e;
                break;
            }
        }
        if (!want) {
            bool has_kind = false;
            for (const auto& m : sax.members) has_kind = has_kind || m.key == "kind";
            if (!has_kind) want = proto::error_code::bad_request;
        }
    }
    FUZZ_CHECK(r.error == want, std::string("reader says ") + code_name(r.error) + " (" + r.message + "), reference " +
                                    code_name(want) + "; sax_ok=" + std::to_string(sax_ok) +
                                    " dup=" + std::to_string(sax.dup) + " depth=" + std::to_string(sax.max_depth) +
                                    " text=" + printable(text));
    FUZZ_CHECK(r.offset <= text.size(), "error offset past the text");

    // nlohmann rejects => tether rejects (implied above, stated for the record).
    if (!sax_ok) FUZZ_CHECK(!r, "accepted a text nlohmann rejects");
    if (!ijson || text.size() > cfg.max_message_bytes || !sax.top_object) return;

    // Echo fields: the valid id / correlation_id of the document.
    std::string_view want_id, want_corr;
    for (const auto& m : sax.members) {
        if (m.key == "id" && !check_rule(*find_rule("id"), m.v, cfg)) want_id = m.v.s;
        if (m.key == "correlation_id" && !check_rule(*find_rule("correlation_id"), m.v, cfg)) want_corr = m.v.s;
    }
    FUZZ_CHECK(r.id == want_id, "echoed id wrong: " + printable(r.id));
    FUZZ_CHECK(r.correlation_id == want_corr, "echoed correlation_id wrong");
    if (!r) return;

    // ---- success: every field equals nlohmann's ----
    FUZZ_CHECK(dom.is_object(), "accepted but nlohmann's DOM is not an object");
    std::uint32_t present = 0;
    std::string scratch;
    for (const auto& m : sax.members) {
        const field_rule* fr = find_rule(m.key);
        if (!fr) continue;
        present |= proto::field_bit(fr->f);
        const json& dv = dom.at(m.key);
        switch (fr->r) {
            case rule::string:
            case rule::kind:
            case rule::room_id:
            case rule::id:
            case rule::correlation_id:
                FUZZ_CHECK(get_string(env, fr->f) == m.v.s, std::string(fr->name) + " differs from nlohmann's");
                break;
            case rule::integer: {
                const auto got = get_integer(env, fr->f);
                FUZZ_CHECK(got && static_cast<std::uint64_t>(*got) == *whole(m.v), std::string(fr->name) + " value differs");
                break;
            }
            case rule::boolean:
                FUZZ_CHECK(env.resumed && *env.resumed == m.v.b, "resumed differs");
                break;
            case rule::any:
            case rule::object:
            case rule::string_array:
            case rule::heads: {
                const std::string_view slice = get_string(env, fr->f);
                FUZZ_CHECK(!slice.empty() && slice.data() >= text.data() &&
                               slice.data() + slice.size() <= text.data() + text.size(),
                           std::string(fr->name) + " is not a slice of the input");
                const json parsed = json::parse(slice, nullptr, false);
                FUZZ_CHECK(!parsed.is_discarded() && parsed == dv,
                           std::string(fr->name) + " slice parses to another value: " + printable(slice));
                if (fr->r == rule::string_array) {
                    std::vector<std::string> got;
                    FUZZ_CHECK(proto::for_each_string(slice, scratch, [&](std::string_view s) { got.emplace_back(s); }),
                               "for_each_string fails on an accepted array");
                    FUZZ_CHECK(got.size() == m.v.elems.size(), "for_each_string count differs");
                    for (std::size_t i = 0; i < got.size(); ++i)
                        FUZZ_CHECK(got[i] == m.v.elems[i].s, "for_each_string element differs");
                }
                if (fr->r == rule::heads) {
                    std::vector<std::pair<std::string, std::int64_t>> got;
                    FUZZ_CHECK(proto::for_each_head(slice, [&](std::string_view k, std::int64_t v) { got.emplace_back(k, v); }),
                               "for_each_head fails on accepted heads");
                    FUZZ_CHECK(got.size() == m.v.children.size(), "for_each_head count differs");
                    for (std::size_t i = 0; i < got.size(); ++i)
                        FUZZ_CHECK(got[i].first == m.v.child_keys[i] &&
                                       static_cast<std::uint64_t>(got[i].second) == *whole(m.v.children[i]),
                                   "for_each_head entry differs");
                }
                break;
            }
        }
    }
    FUZZ_CHECK(env.present == present, "present bits differ");
    // Fields that were absent are empty.
    for (const auto& fr : k_rules) {
        if (present & proto::field_bit(fr.f)) continue;
        FUZZ_CHECK(get_string(env, fr.f).empty() && !get_integer(env, fr.f), std::string(fr.name) + " set but absent");
    }
    if (!(present & proto::field_bit(proto::field::resumed))) FUZZ_CHECK(!env.resumed, "resumed set but absent");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static proto::envelope_reader reader_default;
    static proto::envelope_reader reader_tight([] {
        proto::reader_config c;
        c.max_message_bytes = 300;
        c.max_depth = 4;
        c.max_kind_bytes = 8;
        c.max_correlation_id_bytes = 8;
        return c;
    }());
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    facts sax;
    const bool sax_ok = json::sax_parse(text, &sax, json::input_format_t::json, true, false);
    const json dom = json::parse(text, nullptr, false);
    FUZZ_CHECK(sax_ok == !dom.is_discarded(), "nlohmann SAX and DOM disagree");

    check_reader(reader_default, text, sax, sax_ok, dom);
    check_reader(reader_tight, text, sax, sax_ok, dom);
    return 0;
}
