// Tests for tether/proto/envelope.hpp, envelope_writer.hpp, error_code.hpp:
// field typing, every rule's boundary, which error code wins, echoing of
// correlation_id and id, zero-copy payload slices, the raw-field helpers, and
// every writer's output read back through the reader.
#include <doctest/doctest.h>

#include <tether/core/random.hpp>
#include <tether/proto/envelope.hpp>
#include <tether/proto/envelope_writer.hpp>
#include <tether/proto/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace tether::proto;
using namespace std::string_literals;

namespace {

// Keeps its own copy of the text alive (on the heap, so moving `parsed`
// does not move it), because the envelope's views point into it.
struct parsed {
    std::unique_ptr<std::string> text;
    parse_result r;
    envelope e;
};

parsed read_one(envelope_reader& rd, std::string_view text) {
    parsed p;
    p.text = std::make_unique<std::string>(text);
    p.r = rd.read(*p.text, p.e);
    return p;
}

std::string q(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::vector<std::string> strings_of(std::string_view raw) {
    std::vector<std::string> v;
    std::string scratch;
    const bool ok = for_each_string(raw, scratch, [&](std::string_view s) { v.emplace_back(s); });
    REQUIRE(ok);
    return v;
}

std::vector<std::pair<std::string, std::int64_t>> heads_of(std::string_view raw) {
    std::vector<std::pair<std::string, std::int64_t>> v;
    const bool ok = for_each_head(raw, [&](std::string_view room, std::int64_t h) {
        v.emplace_back(std::string(room), h);
    });
    REQUIRE(ok);
    return v;
}

}  // namespace

TEST_CASE("envelope: error codes have their wire names") {
    const std::vector<std::pair<error_code, std::string_view>> names = {
        {error_code::bad_request, "bad_request"},     {error_code::unknown_kind, "unknown_kind"},
        {error_code::not_member, "not_member"},       {error_code::forbidden, "forbidden"},
        {error_code::rate_limited, "rate_limited"},   {error_code::too_many_rooms, "too_many_rooms"},
        {error_code::bad_room_id, "bad_room_id"},     {error_code::too_large, "too_large"},
    };
    for (const auto& [c, n] : names) {
        CHECK(to_string(c) == n);
        CHECK(parse_error_code(n) == c);
    }
    CHECK_FALSE(parse_error_code("nope").has_value());
    CHECK_FALSE(parse_error_code("").has_value());
}

TEST_CASE("envelope: reserved kinds") {
    for (const char* k : {"server.hello", "client.join", "room.joined", "presence.away", "server.",
                          "client.x.y"})
        CHECK(is_reserved_kind(k));
    for (const char* k : {"chat.message", "server", "serverx.a", "rooms.x", "Server.hello", "",
                          "presence", "x.server.y"})
        CHECK_FALSE(is_reserved_kind(k));
}

TEST_CASE("envelope: every field, typed") {
    envelope_reader rd;
    const std::string text =
        R"({"kind":"server.hello","protocol_version":1,"session_id":"s-1","room_id":"core",)"
        R"("event_id":42,"epoch":"e-7f3a","id":"c9f2-17","correlation_id":"j1","sender":"neo",)"
        R"("payload":{"text":"hi","n":[1,2]},"ts":1712345678901,"resumed":false,"heartbeat_ms":25000,)"
        R"("caps":["replay","ack","presence"],"limits":{"max_message_bytes":65536,"grace_ms":30000},)"
        R"("resume_from":41,"resume":"replay","replay_to":45,"head":45,"reason":"truncated",)"
        R"("members":["neo","trinity"],"status":"accepted","code":"not_member","message":"m",)"
        R"("retry_after_ms":1830,"heads":{"core":45,"b":0},"user":"morpheus"})";
    const parsed p = read_one(rd, text);
    REQUIRE(p.r);
    const envelope& e = p.e;
    CHECK(e.present == (1u << field_count) - 1);
    for (std::size_t i = 0; i < field_count; ++i) CHECK(e.has(static_cast<field>(i)));
    CHECK(e.kind == "server.hello");
    CHECK(e.protocol_version == 1);
    CHECK(e.session_id == "s-1");
    CHECK(e.room_id == "core");
    CHECK(e.event_id == 42);
    CHECK(e.epoch == "e-7f3a");
    CHECK(e.id == "c9f2-17");
    CHECK(e.correlation_id == "j1");
    CHECK(e.sender == "neo");
    CHECK(e.payload == R"({"text":"hi","n":[1,2]})");
    CHECK(e.ts == 1712345678901);
    CHECK(e.resumed == false);
    CHECK(e.heartbeat_ms == 25000);
    CHECK(e.caps == R"(["replay","ack","presence"])");
    CHECK(e.limits == R"({"max_message_bytes":65536,"grace_ms":30000})");
    CHECK(e.resume_from == 41);
    CHECK(e.resume == "replay");
    CHECK(parse_resume_mode(e.resume) == resume_mode::replay);
    CHECK(e.replay_to == 45);
    CHECK(e.head == 45);
    CHECK(e.reason == "truncated");
    CHECK(parse_resume_reason(e.reason) == resume_reason::truncated);
    CHECK(e.members == R"(["neo","trinity"])");
    CHECK(e.status == "accepted");
    CHECK(e.code == "not_member");
    CHECK(e.message == "m");
    CHECK(e.retry_after_ms == 1830);
    CHECK(e.heads == R"({"core":45,"b":0})");
    CHECK(e.user == "morpheus");
    CHECK(p.r.correlation_id == "j1");
    CHECK(p.r.id == "c9f2-17");
    CHECK(strings_of(e.members) == std::vector<std::string>{"neo", "trinity"});
    CHECK(strings_of(e.caps) == std::vector<std::string>{"replay", "ack", "presence"});
    CHECK(heads_of(e.heads) ==
          std::vector<std::pair<std::string, std::int64_t>>{{"core", 45}, {"b", 0}});
    for (std::size_t i = 0; i < field_count; ++i) {
        const field f = static_cast<field>(i);
        CHECK(detail::lookup_field(to_string(f)) == static_cast<int>(i));
    }
    CHECK(detail::lookup_field("kinds") == -1);
    CHECK(detail::lookup_field("Kind") == -1);
    CHECK(detail::lookup_field("") == -1);

    // Minimal: only kind. Everything else absent.
    const parsed m = read_one(rd, R"({"kind":"client.pong"})");
    REQUIRE(m.r);
    CHECK(m.e.present == field_bit(field::kind));
    CHECK_FALSE(m.e.ts.has_value());
    CHECK(m.e.payload.empty());
    CHECK(m.r.correlation_id.empty());
}

TEST_CASE("envelope: wrong JSON types are bad_request, naming the field") {
    envelope_reader rd;
    struct tcase {
        field f;
        std::vector<std::string> bad;
    };
    const std::vector<std::string> non_string = {"1", "true", "null", "[]", "{}", "[\"a\"]"};
    const std::vector<std::string> non_int = {"\"1\"", "true", "null", "[1]", "{}", "1.5", "-1",
                                              "9007199254740992", "1e-1", "-0.5"};
    std::vector<tcase> cases;
    for (field f : {field::kind, field::session_id, field::room_id, field::epoch, field::id,
                    field::correlation_id, field::sender, field::resume, field::reason,
                    field::status, field::code, field::message, field::user})
        cases.push_back({f, non_string});
    for (field f : {field::protocol_version, field::event_id, field::ts, field::heartbeat_ms,
                    field::resume_from, field::replay_to, field::head, field::retry_after_ms})
        cases.push_back({f, non_int});
    cases.push_back({field::resumed, {"0", "1", "\"true\"", "null", "[]", "{}"}});
    cases.push_back({field::limits, {"[]", "1", "\"x\"", "null", "true"}});
    for (field f : {field::caps, field::members})
        cases.push_back({f, {"{}", "\"a\"", "null", "[1]", "[\"a\",1]", "[[\"a\"]]", "[null]", "1"}});
    cases.push_back({field::heads, {"[]", "null", "{\"a\":\"1\"}", "{\"a\":-1}", "{\"a\":1.5}",
                                    "{\"a\":null}", "{\"a\":9007199254740992}", "{\"a\":{}}"}});
    for (const tcase& c : cases) {
        const std::string name(to_string(c.f));
        for (const std::string& v : c.bad) {
            // kind is put first unless kind is the field under test
            const std::string text = c.f == field::kind
                                         ? "{\"kind\":" + v + "}"
                                         : "{\"kind\":\"x\",\"" + name + "\":" + v + "}";
            CAPTURE(text);
            const parsed p = read_one(rd, text);
            REQUIRE_FALSE(p.r);
            CHECK(p.r.error == error_code::bad_request);
            CHECK(std::string_view(p.r.message).starts_with(name + ":"));
            CHECK_FALSE(p.e.has(c.f));
            CHECK(p.r.offset == text.find(v, text.find(name) + name.size()));
        }
    }
    // payload takes anything, null included
    for (const std::string v : {"null", "1", "\"s\"", "[]", "{}", "true", "-1.5e300"}) {
        const std::string text = "{\"kind\":\"x\",\"payload\":" + v + "}";
        const parsed p = read_one(rd, text);
        REQUIRE(p.r);
        CHECK(p.e.payload == v);
        CHECK(p.e.has(field::payload));
    }
}

TEST_CASE("envelope: integers are whole numbers in 0..2^53-1") {
    envelope_reader rd;
    auto ev = [&](std::string_view v) {
        return read_one(rd, "{\"kind\":\"x\",\"event_id\":" + std::string(v) + "}");
    };
    CHECK(ev("9007199254740991").e.event_id == 9007199254740991LL);
    CHECK(ev("9007199254740992").r.error == error_code::bad_request);
    CHECK(ev("18446744073709551616").r.error == error_code::bad_request);
    CHECK(ev("0").e.event_id == 0);
    CHECK(ev("-0").e.event_id == 0);
    CHECK(ev("-1").r.error == error_code::bad_request);
    CHECK(ev("1.5").r.error == error_code::bad_request);
    // documented choice: whole by value
    CHECK(ev("42.0").e.event_id == 42);
    CHECK(ev("1e2").e.event_id == 100);
    CHECK(ev("4200E-2").e.event_id == 42);
    CHECK(ev("9.007199254740991e15").e.event_id == 9007199254740991LL);
    CHECK(ev("1e16").r.error == error_code::bad_request);
    // JSON-level errors are bad_request too, with a JSON message
    CHECK(ev("01").r.error == error_code::bad_request);
    CHECK(ev("1e400").r.error == error_code::bad_request);
    CHECK(std::string_view(ev("1e400").r.message).starts_with("invalid JSON"));
    // ts (client.pong echo rule) the same way
    const parsed p = read_one(rd, R"({"kind":"client.pong","ts":"123"})");
    CHECK(p.r.error == error_code::bad_request);
    CHECK(std::string_view(p.r.message).starts_with("ts:"));
}

TEST_CASE("envelope: room_id rule") {
    envelope_reader rd;
    auto room = [&](std::string_view json_string) {
        return read_one(rd, "{\"kind\":\"x\",\"room_id\":" + std::string(json_string) + "}");
    };
    const std::string all = "abcxyzABCXYZ0189._:-";
    CHECK(room(q(all)).e.room_id == all);
    CHECK(room(q(std::string(128, 'r'))).r);
    CHECK(room(q(std::string(128, 'r'))).e.room_id.size() == 128);
    CHECK(room(q(std::string(129, 'r'))).r.error == error_code::bad_room_id);
    CHECK(room("\"\"").r.error == error_code::bad_room_id);
    for (const std::string bad : {"a b", "a/b", "a\\\\b", "caf\xC3\xA9", "a\\u0000", "a\\tb", "#",
                                  "a,b", "@x", "a+b"}) {
        CAPTURE(bad);
        const parsed p = room("\"" + bad + "\"");
        CHECK(p.r.error == error_code::bad_room_id);
        CHECK(std::string_view(p.r.message).starts_with("room_id:"));
        CHECK_FALSE(p.e.has(field::room_id));
    }
    // the rule applies to the decoded value: an escaped letter is a letter
    CHECK(room("\"\\u0041b\"").e.room_id == "Ab");
    CHECK(room("\"" + std::string(127, 'r') + "\\u0072\"").r);
    CHECK(room("\"" + std::string(128, 'r') + "\\u0072\"").r.error == error_code::bad_room_id);
    // wrong type is bad_request, not bad_room_id
    CHECK(room("5").r.error == error_code::bad_request);
    // heads keys follow the same rule
    const parsed h = read_one(rd, R"({"kind":"server.ping","ts":1,"heads":{"ok":1,"b d":2}})");
    CHECK(h.r.error == error_code::bad_room_id);
    CHECK(std::string_view(h.r.message).starts_with("heads:"));
    CHECK(read_one(rd, R"({"kind":"server.ping","heads":{"\u0061":1}})").r);
    CHECK(read_one(rd, R"({"kind":"server.ping","heads":{"":1}})").r.error ==
          error_code::bad_room_id);
}

TEST_CASE("envelope: room_id rule at every length, bad byte at every offset") {
    // The reader checks a room_id 16 bytes at a time when the frame has the
    // bytes to read past it, byte by byte otherwise; both must agree with
    // the rule for every byte value at every position.
    envelope_reader rd;
    const auto allowed = [](unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == ':' || c == '-';
    };
    tether::rng r(5);
    for (std::size_t len = 1; len <= 129; ++len) {
        for (std::size_t at = 0; at <= len; ++at) {  // at == len: no bad byte
            std::string id(len, 'a');
            for (char& c : id) c = "aZ09._:-"[r.below(8)];
            unsigned char bad = 0;
            if (at < len) {
                do bad = static_cast<unsigned char>(0x20 + r.below(0x60)); while (allowed(bad) || bad == '"' || bad == '\\');
                id[at] = static_cast<char>(bad);
            }
            const bool want = at == len && len <= 128;
            CHECK(is_valid_room_id(id) == want);
            for (const std::size_t after : {0u, 40u}) {
                // room_id last, so that `after` is all there is past it
                const std::string text =
                    "{\"kind\":\"x\",\"room_id\":\"" + id + "\"}" + std::string(after, ' ');
                CAPTURE(text);
                const parsed p = read_one(rd, text);
                CHECK(bool(p.r) == want);
                if (!want) CHECK(p.r.error == error_code::bad_room_id);
                else CHECK(p.e.room_id == id);
            }
        }
    }
    // non-ASCII bytes (negative as signed char) are outside every range
    for (const std::string& s : {"ab\xC3\xA9" "cdefghijklmnopqrstu"s, "\xE2\x82\xAC"s}) {
        CHECK_FALSE(is_valid_room_id(s));
        CHECK(read_one(rd, "{\"kind\":\"x\",\"room_id\":\"" + s + "\"}").r.error ==
              error_code::bad_room_id);
    }
}

TEST_CASE("envelope: id, correlation_id and kind bounds") {
    envelope_reader rd;
    auto with = [&](std::string_view name, const std::string& value_json) {
        return read_one(rd, "{\"kind\":\"x\",\"" + std::string(name) + "\":" + value_json + "}");
    };
    CHECK(with("id", q(std::string(64, 'i'))).e.id.size() == 64);
    CHECK(with("id", q(std::string(65, 'i'))).r.error == error_code::bad_request);
    CHECK(with("id", "\"\"").r.error == error_code::bad_request);
    CHECK(with("id", q("x")).e.id == "x");
    // bytes of the decoded value: 32 x U+00E9 = 64 bytes, spelled 192 bytes
    std::string e32;
    for (int i = 0; i < 32; ++i) e32 += "\\u00e9";
    CHECK(with("id", "\"" + e32 + "\"").e.id.size() == 64);
    CHECK(with("id", "\"" + e32 + "x\"").r.error == error_code::bad_request);

    CHECK(with("correlation_id", q(std::string(128, 'c'))).r);
    CHECK(with("correlation_id", q(std::string(129, 'c'))).r.error == error_code::bad_request);
    CHECK(with("correlation_id", "\"\"").r.error == error_code::bad_request);
    reader_config cfg;
    cfg.max_correlation_id_bytes = 8;
    envelope_reader small(cfg);
    CHECK(read_one(small, R"({"kind":"x","correlation_id":"12345678"})").r);
    CHECK(read_one(small, R"({"kind":"x","correlation_id":"123456789"})").r.error ==
          error_code::bad_request);

    CHECK(read_one(rd, R"({"kind":""})").r.error == error_code::bad_request);
    CHECK(read_one(rd, "{\"kind\":" + q(std::string(128, 'k')) + "}").r);
    CHECK(read_one(rd, "{\"kind\":" + q(std::string(129, 'k')) + "}").r.error ==
          error_code::bad_request);
    const parsed missing = read_one(rd, R"({"room_id":"a","id":"x"})");
    CHECK(missing.r.error == error_code::bad_request);
    CHECK(std::string_view(missing.r.message) == "kind: missing");
}

TEST_CASE("envelope: JSON-level failures are bad_request") {
    envelope_reader rd;
    for (const std::string bad :
         {"", "[]", "\"kind\"", "null", "{\"kind\":\"x\",}", "{\"kind\":\"x\"", "{\"kind\":\"x\"} {}",
          "\xEF\xBB\xBF{\"kind\":\"x\"}", "{\"kind\":\"x\",\"kind\":\"y\"}",
          "{\"kind\":\"x\",\"\\u006bind\":\"x\"}", "{\"kind\":\"x\",\"extra\":{\"a\":1,\"a\":2}}",
          "{\"kind\":\"x\",\"payload\":[{\"a\":{\"b\":1,\"\\u0062\":2}}]}",
          "{\"kind\":\"x\",\"payload\":\"\\ud800\"}", "{\"kind\":\"x\",\"payload\":1e999}",
          "{\"kind\":\"x\",\"payload\":\"\xC0\x80\"}", "{\"kind\":\"x\",\"payload\":NaN}",
          "{\"kind\":\"\x01\"}"}) {
        CAPTURE(bad);
        const parsed p = read_one(rd, bad);
        CHECK(p.r.error == error_code::bad_request);
        CHECK((std::string_view(p.r.message).starts_with("invalid JSON") ||
               std::string_view(p.r.message).starts_with("envelope is not")));
    }
    // unknown fields are ignored once they are valid JSON
    const parsed ok = read_one(rd, R"({"kind":"x","extra":{"a":[1,{"b":null}]},"Kind":5})");
    CHECK(ok.r);
    CHECK(ok.e.present == field_bit(field::kind));
    // escaped names are the same fields
    const parsed esc = read_one(rd, R"({"\u006bind":"chat.m","room\u005fid":"r1"})");
    REQUIRE(esc.r);
    CHECK(esc.e.kind == "chat.m");
    CHECK(esc.e.room_id == "r1");
    // A wide envelope (more than 16 members) still catches duplicates.
    std::string wide = "{\"kind\":\"x\"";
    for (int i = 0; i < 30; ++i) wide += ",\"u" + std::to_string(i) + "\":" + std::to_string(i);
    CHECK(read_one(rd, wide + "}").r);
    CHECK(read_one(rd, wide + ",\"kind\":\"y\"}").r.error == error_code::bad_request);
    CHECK(read_one(rd, wide + ",\"u3\":1}").r.error == error_code::bad_request);
    // The protocol's own names are checked for repeats by field number, the
    // others by name: every field, written plainly or escaped, repeated
    // right away or after unknown names, is a duplicate where it repeats.
    for (std::size_t f = 0; f < field_count; ++f) {
        const std::string name(to_string(static_cast<field>(f)));
        std::string escaped = "\\u00" + std::string(1, "0123456789abcdef"[name[0] >> 4]) +
                              std::string(1, "0123456789abcdef"[name[0] & 15]) + name.substr(1);
        for (const std::string& second : {name, escaped}) {
            for (const std::string& between : {""s, ",\"zz\":1,\"Kind\":2"s}) {
                const std::string head = "{\"kind\":\"x\",\"" + name + "\":null" + between + ",";
                const std::string text = head + "\"" + second + "\":null}";
                CAPTURE(text);
                const parsed d = read_one(rd, text);
                CHECK(d.r.error == error_code::bad_request);
                if (name != "kind") CHECK(d.r.offset == head.size());
                CHECK(std::string_view(d.r.message) == "invalid JSON: duplicate key");
            }
        }
    }
    // unknown names repeated, plainly or escaped, next to known ones
    CHECK(read_one(rd, R"({"kind":"x","zz":1,"id":"a","\u007az":2})").r.error ==
          error_code::bad_request);
    CHECK(read_one(rd, R"({"kind":"x","zz":1,"id":"a","zZ":2})").r);
}

TEST_CASE("envelope: which error wins, and echoing correlation_id and id") {
    envelope_reader rd;
    // field error: the reader walks on to find the echo fields after it
    parsed p = read_one(rd, R"({"kind":"chat","room_id":"bad id","id":"x1","correlation_id":"c1"})");
    CHECK(p.r.error == error_code::bad_room_id);
    CHECK(p.r.id == "x1");
    CHECK(p.r.correlation_id == "c1");
    // first field error in document order wins
    p = read_one(rd, R"({"kind":"chat","event_id":"7","room_id":"bad id"})");
    CHECK(p.r.error == error_code::bad_request);
    p = read_one(rd, R"({"kind":"chat","room_id":"bad id","event_id":"7"})");
    CHECK(p.r.error == error_code::bad_room_id);
    // a field error beats "kind missing"
    p = read_one(rd, R"({"room_id":"bad id"})");
    CHECK(p.r.error == error_code::bad_room_id);
    // a JSON error beats a field error (the document has no fields at all)
    p = read_one(rd, R"({"correlation_id":"c2","room_id":"bad id","id":"x2","p":[1,]})");
    CHECK(p.r.error == error_code::bad_request);
    CHECK(std::string_view(p.r.message).starts_with("invalid JSON"));
    CHECK(p.r.correlation_id == "c2");  // seen before the failure
    CHECK(p.r.id == "x2");
    p = read_one(rd, R"({"kind":"x","p":[1,],"correlation_id":"c3"})");
    CHECK(p.r.error == error_code::bad_request);
    CHECK(p.r.correlation_id.empty());  // after the failure: never seen
    // invalid echo fields are not echoed
    p = read_one(rd, "{\"kind\":\"x\",\"room_id\":\"?\",\"id\":" + q(std::string(65, 'i')) +
                         ",\"correlation_id\":7}");
    CHECK(p.r.error == error_code::bad_room_id);
    CHECK(p.r.id.empty());
    CHECK(p.r.correlation_id.empty());
    // escaped echo fields are decoded
    p = read_one(rd, R"({"kind":"x","id":"a\"b","correlation_id":"\u00e9","event_id":-3})");
    CHECK(p.r.error == error_code::bad_request);
    CHECK(p.r.id == "a\"b");
    CHECK(p.r.correlation_id == "\xC3\xA9");
    // and success carries them too
    p = read_one(rd, R"({"kind":"x","id":"i","correlation_id":"c"})");
    CHECK(p.r);
    CHECK(p.r.id == "i");
    CHECK(p.r.correlation_id == "c");
}

TEST_CASE("envelope: too_large") {
    reader_config cfg;
    cfg.max_message_bytes = 40;
    envelope_reader rd(cfg);
    std::string text = R"({"kind":"x","payload":")";
    text += std::string(40 - text.size() - 2, 'p') + "\"}";
    REQUIRE(text.size() == 40);
    CHECK(read_one(rd, text).r);
    text.insert(text.size() - 2, "p");
    const parsed p = read_one(rd, text);
    CHECK(p.r.error == error_code::too_large);
}

TEST_CASE("envelope: payload is the exact input bytes; null is relayed") {
    envelope_reader rd;
    const std::string payload =
        "{ \"t\" : \"caf\\u00e9 \\\"q\\\" \xF0\x9F\x98\x80\" ,\n \"n\":[1.5e3 , -0, {}],\"z\":null }";
    const std::string text = "{\"kind\":\"chat.message\",\"payload\":  " + payload + "  ,\"id\":\"a\"}";
    envelope e;
    REQUIRE(rd.read(text, e));
    CHECK(e.payload == payload);
    CHECK(e.payload.data() == text.data() + text.find(payload));  // zero copy

    const parsed n = read_one(rd, R"({"kind":"chat.message","room_id":"r","id":"1","payload":null})");
    REQUIRE(n.r);
    CHECK(n.e.has(field::payload));
    CHECK(n.e.payload == "null");
    std::string out;
    write_envelope(out, room_event{.kind = n.e.kind, .room_id = n.e.room_id, .event_id = 9,
                                   .sender = "neo", .id = n.e.id, .payload = n.e.payload, .ts = 5});
    CHECK(out ==
          R"({"kind":"chat.message","room_id":"r","event_id":9,"sender":"neo","id":"1","payload":null,"ts":5})");
}

TEST_CASE("envelope: escaped strings land in the arena and stay valid together") {
    envelope_reader rd;
    std::string text = "{";
    std::vector<std::pair<field, std::string>> want;
    int i = 0;
    for (field f : {field::kind, field::session_id, field::epoch, field::id, field::correlation_id,
                    field::sender, field::reason, field::status, field::code, field::message,
                    field::user}) {
        const std::string v = "v" + std::to_string(i++) + "\n\"\xC3\xA9\t";
        text += std::string(i > 1 ? "," : "") + "\"" + std::string(to_string(f)) + "\":" + q(v);
        want.emplace_back(f, v);
    }
    text += "}";
    for (int round = 0; round < 3; ++round) {
        const parsed p = read_one(rd, text);
        REQUIRE(p.r);
        const envelope& e = p.e;
        const std::string_view got[] = {e.kind, e.session_id, e.epoch, e.id, e.correlation_id,
                                        e.sender, e.reason, e.status, e.code, e.message, e.user};
        for (std::size_t k = 0; k < want.size(); ++k) CHECK(got[k] == want[k].second);
        // a small message in between must not disturb anything
        CHECK(read_one(rd, R"({"kind":"a\nb"})").e.kind == "a\nb");
    }
}

TEST_CASE("envelope: for_each_string and for_each_head") {
    std::string scratch;
    std::vector<std::string> got;
    auto collect = [&](std::string_view raw) {
        got.clear();
        return for_each_string(raw, scratch, [&](std::string_view s) { got.emplace_back(s); });
    };
    CHECK(collect("[]"));
    CHECK(got.empty());
    CHECK(collect(" [ \"a\" , \"b\\u00e9\\n\", \"\" ] "));
    CHECK(got == std::vector<std::string>{"a", "b\xC3\xA9\n", ""});
    for (const char* bad : {"", "[", "[\"a\"", "[\"a\",]", "[1]", "{}", "[\"a\"] x", "[\"\\ud800\"]",
                            "[\"a\" \"b\"]", "\"a\""})
        CHECK_FALSE(collect(bad));

    std::vector<std::pair<std::string, std::int64_t>> hs;
    auto heads = [&](std::string_view raw) {
        hs.clear();
        return for_each_head(raw, [&](std::string_view r, std::int64_t v) {
            hs.emplace_back(std::string(r), v);
        });
    };
    CHECK(heads("{}"));
    CHECK(hs.empty());
    CHECK(heads(R"( { "a" : 1 , "b.c" : 9007199254740991, "\u0078":2.0e0 } )"));
    CHECK(hs == std::vector<std::pair<std::string, std::int64_t>>{
                    {"a", 1}, {"b.c", 9007199254740991LL}, {"x", 2}});
    for (const char* bad : {"", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{\"a b\":1}",
                            "{\"a\":-1}", "{\"a\":1.5}", "{\"a\":\"1\"}", "[]", "{\"a\":1} x",
                            "{\"a\":9007199254740992}", "{\"a\":01}"})
        CHECK_FALSE(heads(bad));
}

TEST_CASE("writer: json_object_writer") {
    std::string out;
    out.reserve(512);
    const char* const buf = out.data();
    const std::size_t cap = out.capacity();
    for (int round = 0; round < 3; ++round) {
        out.clear();
        json_object_writer w(out);
        w.field("kind", "server.ack").field_int("event_id", 42).field_int("neg", -7);
        w.field_bool("t", true).field_bool("f", false).field_null("z").field_raw("payload", "[1,{}]");
        w.begin_array("arr").element("a").element_int(1).element_raw("null").end_array();
        w.begin_object("o").field("k\"ey", "v\n").begin_object("inner").end_object().end_object();
        w.begin_array("empty").end_array();
        w.close();
        w.close();  // idempotent
        CHECK(w.ok());
        CHECK(out ==
              R"({"kind":"server.ack","event_id":42,"neg":-7,"t":true,"f":false,"z":null,"payload":[1,{}],)"
              R"("arr":["a",1,null],"o":{"k\"ey":"v\n","inner":{}},"empty":[]})");
        CHECK(out.data() == buf);  // no reallocation: capacity was enough
        CHECK(out.capacity() == cap);
    }
    // close() closes what is still open
    out.clear();
    {
        json_object_writer w(out);
        w.begin_object("a").begin_array("b").element_int(1);
        w.close();
    }
    CHECK(out == R"({"a":{"b":[1]}})");
    // misuse is refused, not turned into broken JSON
    out.clear();
    {
        json_object_writer w(out);
        w.end_object();
        CHECK_FALSE(w.ok());
        w.close();
    }
    CHECK(out == "{}");
    out.clear();
    {
        json_object_writer w(out);
        w.begin_array("a").end_object();  // mismatched: refused
        CHECK_FALSE(w.ok());
        w.end_array();
        w.close();
    }
    CHECK(out == R"({"a":[]})");
    out.clear();
    {
        json_object_writer w(out);
        for (unsigned i = 0; i < json_object_writer::k_max_depth + 5; ++i) w.begin_object("x");
        CHECK_FALSE(w.ok());
        w.close();
    }
    json_scanner s(json_config{1000});
    CHECK(s.validate(out) == json_error::ok);
    // int64 extremes
    out.clear();
    {
        json_object_writer w(out);
        w.field_int("a", INT64_MIN).field_int("b", INT64_MAX).field_int("c", 0);
        w.close();
    }
    CHECK(out == R"({"a":-9223372036854775808,"b":9223372036854775807,"c":0})");
}

TEST_CASE("writer: every message reads back through the reader") {
    envelope_reader rd;
    std::string out;
    const std::string nasty = "q\"uo\\te\n\t\x01 caf\xC3\xA9 \xF0\x9F\x98\x80 </script>";

    {
        const std::string_view caps[] = {"replay", "ack", "presence"};
        out.clear();
        write_envelope(out, server_hello{.session_id = "sess",
                                         .resumed = true, .heartbeat_ms = 25000, .ts = 1700000000000,
                                         .caps = caps, .limits = {}});
        CHECK(out ==
              R"({"kind":"server.hello","protocol_version":1,"session_id":"sess","resumed":true,)"
              R"("heartbeat_ms":25000,"ts":1700000000000,"caps":["replay","ack","presence"],)"
              R"("limits":{"max_message_bytes":65536,"replay_window":1024,"dedup_window_ms":300000,"grace_ms":30000}})");
        const parsed p = read_one(rd, out);
        REQUIRE(p.r);
        CHECK(p.e.kind == "server.hello");
        CHECK(p.e.protocol_version == 1);
        CHECK(p.e.resumed == true);
        CHECK(strings_of(p.e.caps) == std::vector<std::string>{"replay", "ack", "presence"});
        json_scanner s;
        REQUIRE(s.begin_object(p.e.limits) == json_error::ok);
        json_member m;
        int n = 0;
        while (s.next_member(m)) ++n;
        CHECK(n == 4);
    }
    {
        const std::string_view members[] = {"neo", nasty};
        for (const resume_mode mode :
             {resume_mode::none, resume_mode::replay, resume_mode::snapshot_required}) {
            out.clear();
            write_envelope(out, room_joined{.room_id = "core", .resume = mode, .replay_to = 45,
                                            .reason = resume_reason::epoch_changed, .head = 45,
                                            .epoch = "e-1", .members = members,
                                            .correlation_id = nasty, .id = ""});
            const parsed p = read_one(rd, out);
            REQUIRE(p.r);
            CHECK(p.e.kind == "room.joined");
            CHECK(parse_resume_mode(p.e.resume) == mode);
            CHECK(p.e.has(field::replay_to) == (mode == resume_mode::replay));
            CHECK(p.e.has(field::reason) == (mode == resume_mode::snapshot_required));
            if (mode == resume_mode::snapshot_required)
                CHECK(parse_resume_reason(p.e.reason) == resume_reason::epoch_changed);
            CHECK(p.e.head == 45);
            CHECK(p.e.epoch == "e-1");
            CHECK(strings_of(p.e.members) == std::vector<std::string>{"neo", nasty});
            CHECK(p.e.correlation_id == nasty);
            CHECK_FALSE(p.e.has(field::id));
        }
        out.clear();
        write_envelope(out, room_joined{.room_id = "r", .epoch = "e"});
        CHECK(out ==
              R"({"kind":"room.joined","room_id":"r","resume":"none","head":0,"epoch":"e","members":[]})");
    }
    {
        out.clear();
        write_envelope(out, room_left{.room_id = "core", .correlation_id = "c", .id = "i"});
        CHECK(out == R"({"kind":"room.left","room_id":"core","correlation_id":"c","id":"i"})");
        CHECK(read_one(rd, out).r);
    }
    {
        out.clear();
        write_envelope(out, server_ack{.id = "c9f2-17", .room_id = "core", .event_id = 42});
        CHECK(out ==
              R"({"kind":"server.ack","id":"c9f2-17","room_id":"core","event_id":42,"status":"accepted"})");
        out.clear();
        write_envelope(out, server_ack{.id = "x", .room_id = "core", .event_id = 7,
                                       .status = ack_status::duplicate, .correlation_id = "k"});
        const parsed p = read_one(rd, out);
        REQUIRE(p.r);
        CHECK(parse_ack_status(p.e.status) == ack_status::duplicate);
        CHECK(p.e.event_id == 7);
        CHECK(p.e.correlation_id == "k");
    }
    {
        out.clear();
        write_envelope(out, server_error{.code = error_code::rate_limited, .message = nasty,
                                         .retry_after_ms = 250, .correlation_id = "c", .id = "i"});
        parsed p = read_one(rd, out);
        REQUIRE(p.r);
        CHECK(p.e.kind == "server.error");
        CHECK(parse_error_code(p.e.code) == error_code::rate_limited);
        CHECK(p.e.message == nasty);
        CHECK(p.e.retry_after_ms == 250);
        CHECK(p.e.correlation_id == "c");
        CHECK(p.e.id == "i");
        out.clear();
        write_envelope(out, server_error{.code = error_code::not_member, .message = "m",
                                         .room_id = "core"});
        CHECK(out == R"({"kind":"server.error","code":"not_member","message":"m","room_id":"core"})");
    }
    {
        const room_head heads[] = {{"core", 45}, {"b", 0}};
        out.clear();
        write_envelope(out, server_ping{.ts = 99, .heads = heads});
        CHECK(out == R"({"kind":"server.ping","ts":99,"heads":{"core":45,"b":0}})");
        const parsed p = read_one(rd, out);
        REQUIRE(p.r);
        CHECK(heads_of(p.e.heads) ==
              std::vector<std::pair<std::string, std::int64_t>>{{"core", 45}, {"b", 0}});
        out.clear();
        write_envelope(out, server_ping{.ts = 1});
        CHECK(out == R"({"kind":"server.ping","ts":1})");
    }
    for (const presence_kind k : {presence_kind::joined, presence_kind::away,
                                  presence_kind::reconnected, presence_kind::left}) {
        out.clear();
        write_envelope(out, presence_event{.kind = k, .room_id = "core", .user = nasty});
        const parsed p = read_one(rd, out);
        REQUIRE(p.r);
        CHECK(parse_presence_kind(p.e.kind) == k);
        CHECK(p.e.user == nasty);
        CHECK(is_reserved_kind(p.e.kind));
    }
    {
        out.clear();
        write_envelope(out, room_event{.kind = "chat.message", .room_id = "core", .event_id = 42,
                                       .sender = nasty, .id = "c9f2-17",
                                       .payload = R"({"text":"hi"})", .ts = 3});
        const parsed p = read_one(rd, out);
        REQUIRE(p.r);
        CHECK(p.e.sender == nasty);
        CHECK(p.e.payload == R"({"text":"hi"})");
        CHECK(p.e.event_id == 42);
    }
    {
        out.clear();
        write_envelope(out, client_join{.room_id = "core", .resume_from = 41, .epoch = "e-7f3a",
                                        .correlation_id = "j1"});
        CHECK(out ==
              R"({"kind":"client.join","room_id":"core","resume_from":41,"epoch":"e-7f3a","correlation_id":"j1"})");
        CHECK(read_one(rd, out).r);
        out.clear();
        write_envelope(out, client_join{.room_id = "core"});
        CHECK(out == R"({"kind":"client.join","room_id":"core"})");
        out.clear();
        write_envelope(out, client_leave{.room_id = "core", .correlation_id = "l"});
        CHECK(out == R"({"kind":"client.leave","room_id":"core","correlation_id":"l"})");
        out.clear();
        write_envelope(out, client_pong{.ts = 1712345678901});
        CHECK(out == R"({"kind":"client.pong","ts":1712345678901})");
        CHECK(read_one(rd, out).e.ts == 1712345678901);
        out.clear();
        write_envelope(out, client_event{.kind = "chat.message", .room_id = "core", .id = "c9f2-17",
                                         .payload = "null"});
        CHECK(out == R"({"kind":"chat.message","room_id":"core","id":"c9f2-17","payload":null})");
        const parsed p = read_one(rd, out);
        REQUIRE(p.r);
        CHECK(p.e.payload == "null");
    }
}

TEST_CASE("writer: escaping round-trips through the reader for random strings") {
    tether::rng r(11);
    envelope_reader rd;
    std::string out;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s;
        const int n = 1 + static_cast<int>(r.below(30));
        for (int i = 0; i < n; ++i) {
            switch (r.below(6)) {
                case 0: s += static_cast<char>(r.below(0x20)); break;
                case 1: s += "\"\\/"[r.below(3)]; break;
                case 2: s += "\xC3\xA9"; break;
                case 3: s += "\xF0\x9F\x98\x80"; break;
                default: s += static_cast<char>(0x20 + r.below(0x5F)); break;
            }
        }
        out.clear();
        write_envelope(out, server_error{.code = error_code::forbidden, .message = s,
                                         .correlation_id = s.size() <= 128 ? std::string_view(s) : "c"});
        const parsed p = read_one(rd, out);
        CAPTURE(out);
        REQUIRE(p.r);
        CHECK(p.e.message == s);
    }
}
