// detail::fast_walker (the envelope reader's fast path) against the exact
// json_scanner::walk_object: whenever the fast walk says "valid", the scanner
// must accept the same text and hand out the very same members. Inputs are
// seed envelopes and every single-byte deletion, duplication, replacement
// (by a set of troublesome bytes) and truncation of them, plus pseudo-random
// multi-byte mutations.
#include <doctest/doctest.h>

#include "tether/core/random.hpp"
#include "tether/proto/detail/fast_walk.hpp"
#include "tether/proto/envelope.hpp"

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace tether::proto;

struct seen_member {
    int id;
    std::string key, raw_key, value;
    json_type type;
    bool escaped, is_uint;
    std::uint64_t uint_value;
    bool operator==(const seen_member&) const = default;
};

struct classify_fields {
    int operator()(std::string_view k) const noexcept { return detail::lookup_field(k); }
};

struct collect {
    std::vector<seen_member>* out;
    void operator()(int id, const json_member& m) const {
        out->push_back({id, std::string(m.key), std::string(m.raw_key), std::string(m.value), m.type,
                        m.value_escaped, m.is_uint, m.is_uint ? m.uint_value : 0});
    }
};

/// Returns whether the fast walk accepted `text`; checks it against the scanner.
/// The fast walk reads a copy in a heap block of exactly the text's size, so
/// that a read past the end is a heap overflow for the sanitizers (a
/// std::string has spare capacity and a terminating NUL after its text).
bool check_one(std::string_view text, std::size_t max_depth = 64) {
    std::vector<seen_member> fast_members, exact_members;
    const std::unique_ptr<char[]> exact(new char[text.size()]);
    if (!text.empty()) std::memcpy(exact.get(), text.data(), text.size());
    detail::fast_walker fast(exact.get(), exact.get() + text.size(), max_depth);
    const bool fast_ok = fast.walk_object(classify_fields{}, collect{&fast_members});
    json_scanner scanner(json_config{max_depth});
    const json_error e = scanner.walk_object(text, classify_fields{}, collect{&exact_members});
    if (fast_ok) {
        INFO("text: " << std::string(text));
        CHECK(e == json_error::ok);
        // Views into the copy; the scanner's are into `text`: compared as values.
        CHECK(fast_members == exact_members);
    }
    return fast_ok;
}

const std::vector<std::string>& seeds() {
    static const std::vector<std::string> v = {
        R"({"kind":"chat.message","room_id":"team-1.general","event_id":1234567,"sender":"user-1","id":"c1-2","ts":1732270000000,"payload":{"text":"ship it \"today\" caf\u00e9 κόσμε 日本語 🚀 line\none","mentions":["user-9"],"reply_to":1000001,"attachments":[{"type":"image","w":640,"h":480,"ratio":1.333}]}})",
        R"({"kind":"chat.reaction","room_id":"r","id":"x","payload":{"target":1000002,"emoji":"\ud83d\udc4d","note":"tabs\tand \\ backslashes"}})",
        R"( { "kind" : "a" , "payload" : [ 1 , -2.5e3 , true , false , null , { } , [ ] , "" ] , "x" : { "y" : { "z" : [ [ [ 0 ] ] ] } } } )",
        R"({"kind":"a","unknown":1,"unknown2":{"a":1,"b":2,"a2":3,"bb":[{"a":1},{"a":2}]},"resumed":true,"caps":["a","b"]})",
        R"({"kind":"a","payload":{"a":1,"a":2}})",
        R"({"kind":"a","kind":"b"})",
        R"({"x":1,"x":2})",
        R"({"kind":"\u006bind","k\u0069nd":1})",
        R"({"kind":"a","payload":"\ud800"})",
        R"({"kind":"a","payload":"\udc00\ud800"})",
        R"({"kind":"a","payload":[1e400,1e-400,-0,0.0,01]})",
        R"({"kind":"a","payload":"é\u00e9\xff"})",
        R"({"kind":"a","payload":"long text long text long text long text long text long text é"})",
        R"({})",
        R"([])",
        R"({"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})",
    };
    return v;
}

}  // namespace

TEST_CASE("fast_walker: accepts the usual envelopes, and agrees with the scanner") {
    CHECK(check_one(seeds()[0]));
    CHECK(check_one(seeds()[1]));
    CHECK(check_one(seeds()[2]));
    CHECK(check_one(seeds()[3]));
    CHECK(check_one(seeds()[12]));
    CHECK(check_one(seeds()[13]));
    // Not sure: duplicates, escaped names, lone surrogates, bad numbers,
    // bad UTF-8, not an object; each is left to the scanner.
    for (std::size_t i = 4; i <= 11; ++i) CHECK_FALSE(check_one(seeds()[i]));
    CHECK_FALSE(check_one(seeds()[14]));
    // Deeper than the limit: not sure (the scanner reports too_deep).
    CHECK_FALSE(check_one(seeds()[15]));
    CHECK_FALSE(check_one(seeds()[15], 100));  // beyond k_fast_max_depth: the scanner's
    const std::string deep20 = "{\"a\":" + std::string(19, '[') + "1" + std::string(19, ']') + "}";
    CHECK(check_one(deep20, 20));
    CHECK_FALSE(check_one(deep20, 19));
    CHECK_FALSE(check_one(seeds()[2], 3));
    CHECK_FALSE(check_one(seeds()[0], 0));
}

TEST_CASE("fast_walker: every single-byte edit of the seeds") {
    static constexpr char bytes[] = {'"', '\\', '{', '}', '[', ']', ':', ',', ' ', '\n', '\x01', '\x7f',
                                     '\x80', '\xc3', '\xff', '0', '1', '-', '.', 'e', 'u', 'n', 't', 'a'};
    std::size_t accepted = 0;
    for (const std::string& s : seeds()) {
        for (std::size_t i = 0; i <= s.size(); ++i) {
            accepted += check_one(std::string_view(s).substr(0, i));  // truncation
            if (i == s.size()) break;
            std::string t = s;
            t.erase(i, 1);
            accepted += check_one(t);
            t = s;
            t.insert(i, 1, s[i]);
            accepted += check_one(t);
            for (const char c : bytes) {
                t = s;
                t[i] = c;
                accepted += check_one(t);
            }
        }
    }
    CHECK(accepted > 100);  // the fast path is exercised, not only refused
}

TEST_CASE("fast_walker: random multi-byte mutations") {
    tether::rng r(7);
    static constexpr char bytes[] = "\"\\{}[]:, \n0123456789-.eEutrfalsn\x80\xbf\xc2\xe0\xed\xf0\xf4";
    for (int n = 0; n < 20000; ++n) {
        std::string t = seeds()[r.below(seeds().size())];
        const auto edits = 1 + r.below(4);
        for (std::uint64_t k = 0; k < edits && !t.empty(); ++k) {
            const auto at = static_cast<std::size_t>(r.below(t.size()));
            const char c = bytes[r.below(sizeof bytes - 1)];
            switch (r.below(3)) {
                case 0: t[at] = c; break;
                case 1: t.insert(at, 1, c); break;
                default: t.erase(at, 1); break;
            }
        }
        check_one(t);
    }
}

TEST_CASE("fast_walker: short texts (under 16 bytes) and strings at the very end") {
    for (const char* s : {R"({"kind":"a"})", R"({"a":"b"} )", R"({"a":"é"})", R"({"a":"\n"})",
                          R"({"a":1})", R"({"a":"b)", R"({"a":"\)", R"({"a":"\u12)", "{\"a\":\"\x01\"}"})
        check_one(s);
    CHECK(check_one(R"({"kind":"a"})"));
    CHECK(check_one(R"({"a":"é"})"));
}

TEST_CASE("fast_walker: members of every shape at every offset") {
    // Each member shape, at the top level and in nested objects, placed at
    // every offset against the 16-byte blocks of the string skip and the end
    // of the text, and truncated at every byte near the end: plain shapes
    // must be accepted, and whatever is accepted must be the scanner's.
    struct shape {
        const char* member;
        bool valid;
    };
    static constexpr shape shapes[] = {
        {R"("room_id":"team-1.general")", true},
        {R"("id":"")", true},
        {R"("x":"é")", true},
        {R"("é":"x")", true},
        {R"("a":"日本語のテキスト 🚀")", true},
        {R"("a":"tab\tand \"q\" \u00e9 \ud83d\udc4d")", true},
        {R"("note":"a string that is far longer than the window of thirty-two bytes")", true},
        {R"("a" : "b")", true},
        {R"("a":1234567)", true},
        {R"("a":0)", true},
        {R"("a":12345678)", true},
        {R"("a":-7)", true},
        {R"("a":1.333)", true},
        {R"("a":01)", false},
        {R"("a":1x)", false},
        {R"("a":"b"x)", false},
        {R"("a":"b""c")", false},
        {R"("a":"b)" "\x01" R"(")", false},
        {R"("a":"\x")", false},
        {R"("a":"\ud800")", false},
        {R"("a":")" "\xff" R"(")", false},
        {R"("a":")" "\xc3" R"(")", false},
        {R"("k\u0069nd":"a")", false},
        {R"("a":"b","a":"c")", false},
        {R"("a":"b":"c")", false},
    };
    std::size_t accepted = 0;
    for (const shape& sh : shapes) {
        for (std::size_t pad = 0; pad < 40; ++pad) {
            const std::string padding(pad, 'p');
            const std::string top = R"({"kind":"k","pad":")" + padding + "\"," + sh.member + "}";
            const std::string nested = R"({"kind":"k","payload":{"pad":")" + padding + "\"," +
                                       sh.member + R"(,"z":[{"pad":")" + padding + "\"," +
                                       sh.member + "}]}}";
            const std::string last = R"({"kind":"k","payload":{"pad":")" + padding + "\"," +
                                     sh.member + "}}";
            for (const std::string* t : {&top, &nested, &last}) {
                const bool ok = check_one(*t);
                accepted += ok;
                if (sh.valid) {
                    INFO("text: " << *t);
                    CHECK(ok);
                }
                // Every truncation: never accepted, the scanner decides.
                for (std::size_t i = t->size() - 40 < t->size() ? t->size() - 40 : 0; i < t->size(); ++i)
                    CHECK_FALSE(check_one(std::string_view(*t).substr(0, i)));
            }
        }
    }
    CHECK(accepted > 1000);
}

TEST_CASE("fast_walker: what may follow the final brace, and a nested close at the very end") {
    // The walk reads without comparing with the end of the text, on the
    // strength of the text ending in '}' (plus whitespace): whatever follows
    // the last brace, and texts whose last brace closes a nested container,
    // must neither be read past nor accepted (ASan checks the former).
    static constexpr const char* bodies[] = {
        R"({"a":{}})", R"({"a":[]})", R"({"a":{"b":[1,{"c":"d"}]}})", R"({"a":"}"})", R"({"a":1})",
        R"({"a":true})", R"({"a":"\\"})", R"({"a":"\"}"})", R"({})",
    };
    static constexpr const char* tails[] = {"", " ", "\n", "\t", "\r", " \n\t\r ", "\x01", "x", "}", " }",
                                            "\"", "\\", "]", ",", " \x0b"};
    for (const char* b : bodies) {
        const std::string body = b;
        for (const char* tail : tails) {
            for (const char* head : {"", " ", "\n\t"}) {
                const std::string t = head + body + tail;
                INFO("text: " << t);
                const bool ok = check_one(t);
                const bool ws_tail = std::string_view(tail).find_first_not_of(" \n\t\r") == std::string_view::npos;
                CHECK(ok == ws_tail);  // every body is valid: accepted iff only whitespace follows
                for (std::size_t i = 0; i < t.size(); ++i) check_one(std::string_view(t).substr(0, i));
            }
        }
        // Nested containers closed at the very end, the top level left open.
        for (std::size_t i = 0; i < body.size(); ++i) {
            const std::string open = body.substr(0, i) + "}";
            check_one(open);
            check_one(open + " ");
        }
    }
    CHECK_FALSE(check_one(R"({"a":{})"));
    CHECK_FALSE(check_one(R"({"a":[{}})"));
    CHECK_FALSE(check_one("{\"a\":{} \n"));
    CHECK_FALSE(check_one(R"({"a":"\)"));
    CHECK_FALSE(check_one(R"({"a":"\})"));
}

TEST_CASE("fast_walker: every escape character, at every offset and against the end") {
    // The two-character escapes are taken inline, the rest through
    // scan_escape: every byte after a backslash, in strings whose escape
    // falls at every position of the 16-byte blocks and near the end.
    std::size_t accepted = 0;
    for (int c = 0; c < 256; ++c) {
        const std::string esc = std::string("\\") + static_cast<char>(c);
        const bool valid = std::string_view("\"\\/bfnrt").find(static_cast<char>(c)) != std::string_view::npos;
        for (std::size_t pad = 0; pad < 20; ++pad) {
            const std::string padding(pad, 'p');
            for (const std::string& t :
                 {"{\"a\":\"" + padding + esc + "\"}", "{\"a\":\"" + padding + esc + "x\",\"b\":1}",
                  "{\"a\":[\"" + padding + esc + "\"]}", "{\"" + padding + "\":\"" + esc + padding + "\"}"}) {
                INFO("text: " << t);
                const bool ok = check_one(t);
                accepted += ok;
                CHECK(ok == valid);
            }
        }
    }
    CHECK(accepted == 8 * 20 * 4);
    // \u forms still go through scan_escape.
    CHECK(check_one(R"({"a":"\u00e9\ud83d\udc4d\u0000"})"));
    CHECK_FALSE(check_one(R"({"a":"\u00g9"})"));
    CHECK_FALSE(check_one(R"({"a":"\ud83d"})"));
    CHECK_FALSE(check_one(R"({"a":"\udc4d"})"));
}

TEST_CASE("json_utf8_kernel: find_invalid_utf8 on JSON-sized runs equals the scalar check, at every level") {
    // The JSON scanners use the AVX2 kernel at the avx512 level (see
    // detail/utf8.hpp): a run of every length from 0 to 200 bytes, clean
    // or with one bad byte at every position, must get the scalar answer
    // at every level the CPU has.
    namespace simd = tether::ws::detail::utf8_simd;
    const simd::level best = simd::best_supported();
    static constexpr std::string_view text = "ça marche, à demain привет всем κόσμε 日本語のテキスト 🚀 über ";
    std::string buf;
    while (buf.size() < 260) buf += text;
    std::size_t checked = 0;
    for (const simd::level l : {simd::level::none, simd::level::ssse3, simd::level::avx2, simd::level::avx512}) {
        if (static_cast<int>(l) > static_cast<int>(best)) continue;
        REQUIRE(simd::set_max_level(l) == l);
        for (std::size_t n = 0; n <= 200; n += (n < 80 ? 1 : 7)) {
            for (std::size_t bad = 0; bad <= n; bad += (bad < 70 ? 1 : 5)) {
                std::string t = buf.substr(0, 256);
                if (bad < n) t[bad] = bad % 2 ? '\xff' : '\x80';
                t[n] = '"';  // the caller's promise: the byte that ends a run is ASCII
                for (const std::size_t limit : {n, std::size_t{256}}) {
                    const char* const p = t.data();
                    const char* const got = detail::find_invalid_utf8(p, p + n, p + limit);
                    const char* const want = detail::find_invalid_utf8_scalar(p, p + n);
                    INFO("level " << static_cast<int>(l) << " n " << n << " bad " << bad);
                    CHECK(got == want);
                    ++checked;
                }
            }
        }
    }
    simd::set_max_level(simd::level::avx512);
    CHECK(checked > 1000);
}

TEST_CASE("lookup_field: every protocol name, and every one-byte change of it") {
    // lookup_field compares names by two overlapping loads: a name must map
    // to its field, and every name one byte away (changed at any position)
    // must map to no field, unless it is itself a protocol name.
    for (std::size_t f = 0; f < field_count; ++f) {
        const std::string_view name = to_string(static_cast<field>(f));
        CHECK(detail::lookup_field(name) == static_cast<int>(f));
        for (std::size_t i = 0; i < name.size(); ++i) {
            for (const char c : {'_', 'a', 'z', '\0', '\xff', static_cast<char>(name[i] ^ 1)}) {
                std::string t(name);
                if (t[i] == c) continue;
                t[i] = c;
                int want = -1;
                for (std::size_t g = 0; g < field_count; ++g)
                    if (to_string(static_cast<field>(g)) == t) want = static_cast<int>(g);
                INFO("name: " << t);
                CHECK(detail::lookup_field(t) == want);
            }
        }
        // Shorter and longer by one byte.
        CHECK(detail::lookup_field(name.substr(1)) != static_cast<int>(f));
        CHECK(detail::lookup_field(std::string(name) + "s") != static_cast<int>(f));
    }
}
