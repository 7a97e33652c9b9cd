// Tests for tether/proto/json.hpp: JSONTestSuite-style accept (y_) and
// reject (n_) tables with the expected error, I-JSON rules (duplicates by
// decoded name at any depth and in large objects, lone surrogates, double
// range checked against strtod), the depth bound, the member walk, and the
// string helpers checked against reference implementations written here.
#include <doctest/doctest.h>

#include <tether/core/random.hpp>
#include <tether/proto/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using tether::proto::json_config;
using tether::proto::json_error;
using tether::proto::json_member;
using tether::proto::json_scanner;
using tether::proto::json_type;

namespace {

struct reject_case {
    std::string doc;
    json_error expect;
};

std::string nest(std::size_t depth, const std::string& open, const std::string& close,
                 const std::string& inner = "1") {
    std::string s;
    for (std::size_t i = 0; i < depth; ++i) s += open;
    s += inner;
    for (std::size_t i = 0; i < depth; ++i) s += close;
    return s;
}

std::string digits(std::size_t n, char d = '1') { return std::string(n, d); }

// Reference UTF-8 decoder (RFC 3629 by value), sharing nothing with the
// library: decode, then check shortest form, range and surrogates.
bool ref_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp, min;
        if ((b & 0xE0) == 0xC0) len = 2, cp = b & 0x1Fu, min = 0x80;
        else if ((b & 0xF0) == 0xE0) len = 3, cp = b & 0x0Fu, min = 0x800;
        else if ((b & 0xF8) == 0xF0) len = 4, cp = b & 0x07u, min = 0x10000;
        else return false;
        if (i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

std::string utf8_of(std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

std::string hex4(std::uint32_t v) {
    static const char* h = "0123456789abcdef";
    std::string s = "\\u";
    for (int sh = 12; sh >= 0; sh -= 4) s += h[(v >> sh) & 15];
    return s;
}

// A random code point (no surrogates), biased towards the interesting ranges.
std::uint32_t random_cp(tether::rng& r) {
    switch (r.below(5)) {
        case 0: return static_cast<std::uint32_t>(r.below(0x80));
        case 1: return 0x80 + static_cast<std::uint32_t>(r.below(0x800 - 0x80));
        case 2: {
            std::uint32_t c = 0x800 + static_cast<std::uint32_t>(r.below(0x10000 - 0x800));
            return (c >= 0xD800 && c <= 0xDFFF) ? c - 0x800 : c;
        }
        case 3: return 0x10000 + static_cast<std::uint32_t>(r.below(0x110000 - 0x10000));
        default: return static_cast<std::uint32_t>(r.below(0x20));  // controls
    }
}

}  // namespace

TEST_CASE("json: y_ documents are accepted") {
    const std::vector<std::string> accept = {
        "{}", "[]", "0", "-0", "1", "-1", "123456789", "0.5", "-0.0", "1.5e+10", "1E-2",
        "1e0", "12.34E+56", "true", "false", "null", "\"\"", "\"abc\"",
        " \t\n\r{ \"a\" : [ 1 , 2 ] } \n\r\t ",
        "\"\\u0000\"", "\"\\ud83d\\ude00\"", "\"\\uDBFF\\uDFFF\"", "\"\\/\\\\\\\"\\b\\f\\n\\r\\t\"",
        "\"\xC3\xA9\"", "\"\xF0\x9F\x98\x80\"", "\"\xE2\x82\xAC\"", "\"\xF4\x8F\xBF\xBF\"",
        "\"\x7F\"",  // DEL is not a control in RFC 8259's sense
        "{\"a\":1,\"b\":{\"a\":1}}",   // same name in different objects
        "[{\"a\":1},{\"a\":1}]",
        "{\"a\":1,\"A\":1}", "{\"\":1}", "{\"a\":{},\"b\":[]}", "{\"ab\":1,\"a\":1,\"b\":1}",
        "{\"\\u00e9\":1,\"e\":2}",
        "[[[[[[[[[[]]]]]]]]]]",
        // numbers within double range (RFC 7493 §2.2); underflow is fine
        "1e308", "1.7976931348623157e308", "-1.7976931348623157e308", "1.7976931348623158e308",
        "1e-400", "-1e-400", "0e999999999999999999999", "0.0000000001e317", "1e-99999999999999999999",
        digits(308, '9'), "-" + digits(308, '9') + ".9999",
        "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000",
        "0." + digits(1000, '0') + "1e1300",
        nest(64, "[", "]"), nest(63, "{\"k\":", "}"),
    };
    json_scanner s;
    for (const std::string& d : accept) {
        CAPTURE(d);
        CHECK(s.validate(d) == json_error::ok);
    }
}

TEST_CASE("json: n_ documents are rejected with the right error") {
    using E = json_error;
    const std::vector<reject_case> reject = {
        {"", E::unexpected_end},
        {"   ", E::unexpected_end},
        {"[1,]", E::unexpected_char},
        {"{\"a\":1,}", E::unexpected_char},
        {"[,1]", E::unexpected_char},
        {"[1,,2]", E::unexpected_char},
        {"{,}", E::unexpected_char},
        {"{\"a\" 1}", E::unexpected_char},
        {"{\"a\":1 \"b\":2}", E::unexpected_char},
        {"{a:1}", E::unexpected_char},
        {"{'a':1}", E::unexpected_char},
        {"['a']", E::unexpected_char},
        {"[1 2]", E::unexpected_char},
        {"{\"a\":1]", E::unexpected_char},
        {"[1}", E::unexpected_char},
        {"NaN", E::unexpected_char},
        {"Infinity", E::unexpected_char},
        {"-Infinity", E::bad_number},
        {"[nul]", E::unexpected_char},
        {"True", E::unexpected_char},
        {"01", E::bad_number},
        {"-01", E::bad_number},
        {"00", E::bad_number},
        {"1.", E::unexpected_end},
        {"[1.]", E::bad_number},
        {"1.e5", E::bad_number},
        {".5", E::unexpected_char},
        {"-", E::unexpected_end},
        {"[-]", E::bad_number},
        {"- 1", E::bad_number},
        {"+1", E::unexpected_char},
        {"1e", E::unexpected_end},
        {"[1e]", E::bad_number},
        {"1e+", E::unexpected_end},
        {"[1E-]", E::bad_number},
        {"0x10", E::trailing_data},
        {"1.5.3", E::bad_number},
        {"\"\x01\"", E::control_char},
        {"\"a\tb\"", E::control_char},
        {"\"a\nb\"", E::control_char},
        {"\"\x1F\"", E::control_char},
        {"\"\\x41\"", E::bad_escape},
        {"\"\\U0041\"", E::bad_escape},
        {"\"\\'\"", E::bad_escape},
        {"\"\\u12\"", E::bad_escape},
        {"\"\\u12G4\"", E::bad_escape},
        {"\"\\ud800\"", E::lone_surrogate},
        {"\"\\udc00\"", E::lone_surrogate},
        {"\"\\uDFFF\\uD800\"", E::lone_surrogate},
        {"\"\\ud800\\u0041\"", E::lone_surrogate},
        {"\"\\ud800\\ud800\"", E::lone_surrogate},
        {"\"\\ud800\\ue000\"", E::lone_surrogate},
        {"\"\\udbff\\udbff\"", E::lone_surrogate},
        {"\"\\ud800\\udbff\"", E::lone_surrogate},
        {"\"\\udbff\\ue000\"", E::lone_surrogate},
        {"\"\\ud800x\"", E::lone_surrogate},
        {"\"\\ud800\\n\"", E::lone_surrogate},
        {"[\"a\\ud83d\"]", E::lone_surrogate},
        {"{\"\\udead\":1}", E::lone_surrogate},
        // truncated documents
        {"{", E::unexpected_end},
        {"{\"a\"", E::unexpected_end},
        {"{\"a\":", E::unexpected_end},
        {"{\"a\":1", E::unexpected_end},
        {"{\"a\":1,", E::unexpected_end},
        {"[1,2", E::unexpected_end},
        {"\"abc", E::unexpected_end},
        {"\"abc\\", E::unexpected_end},
        {"\"\\u00", E::unexpected_end},
        {"\"\\ud83d", E::unexpected_end},
        {"\"\\ud83d\\", E::unexpected_end},
        {"\"\\ud83d\\ude0", E::unexpected_end},
        {"tru", E::unexpected_end},
        {"[fals", E::unexpected_end},
        {"n", E::unexpected_end},
        // depth
        {nest(65, "[", "]"), E::too_deep},
        {nest(65, "{\"k\":", "}"), E::too_deep},
        {nest(40, "[", "]", nest(25, "{\"k\":", "}")), E::too_deep},
        // duplicates (RFC 7493 §2.3), by decoded value, at any depth
        {"{\"a\":1,\"a\":2}", E::duplicate_key},
        {"{\"a\":1,\"b\":2,\"a\":3}", E::duplicate_key},
        {"{\"x\":{\"a\":1,\"a\":2}}", E::duplicate_key},
        {"[{\"a\":1,\"\\u0061\":2}]", E::duplicate_key},
        {"{\"\\u0061\":1,\"a\":2}", E::duplicate_key},
        {"{\"\\u0061b\":1,\"a\\u0062\":2}", E::duplicate_key},
        {"{\"\\u00e9\":1,\"\xC3\xA9\":2}", E::duplicate_key},
        {"{\"\\ud83d\\ude00\":1,\"\xF0\x9F\x98\x80\":2}", E::duplicate_key},
        {"{\"\\n\":1,\"\\u000a\":2}", E::duplicate_key},
        {"{\"\\/\":1,\"/\":2}", E::duplicate_key},
        {"{\"\":1,\"\":2}", E::duplicate_key},
        {"{\"a\":{\"b\":[{\"c\":1,\"c\":1}]}}", E::duplicate_key},
        // invalid UTF-8 (RFC 3629)
        {"\"\xC3\"", E::invalid_utf8},
        {"\"\xC3", E::invalid_utf8},
        {"\"\xC0\x80\"", E::invalid_utf8},
        {"\"\xC1\xBF\"", E::invalid_utf8},
        {"\"\xE0\x80\xAF\"", E::invalid_utf8},
        {"\"\xED\xA0\x80\"", E::invalid_utf8},
        {"\"\xF0\x80\x80\xAF\"", E::invalid_utf8},
        {"\"\xF4\x90\x80\x80\"", E::invalid_utf8},
        {"\"\xF5\x80\x80\x80\"", E::invalid_utf8},
        {"\"\xFF\"", E::invalid_utf8},
        {"\"\x80\"", E::invalid_utf8},
        {"\"abcdefghij\xE2\x82\"", E::invalid_utf8},
        {"{\"k\xFE\":1}", E::invalid_utf8},
        // outside strings, non-ASCII is just a wrong character
        {"\xEF\xBB\xBF{}", E::unexpected_char},  // BOM (RFC 8259 §8.1)
        {"[\xC2\xA0 1]", E::unexpected_char},    // NBSP is not whitespace
        {"\f1", E::unexpected_char},
        {"[1\v]", E::unexpected_char},
        {"1\x00"s, E::trailing_data},
        {"/* c */ 1", E::unexpected_char},
        {"[1] // c", E::trailing_data},
        {"1 2", E::trailing_data},
        {"{} x", E::trailing_data},
        {"truex", E::trailing_data},
        {"\"a\" \"b\"", E::trailing_data},
        // range (RFC 7493 §2.2)
        {"1e400", E::number_out_of_range},
        {"-1e400", E::number_out_of_range},
        {"1e309", E::number_out_of_range},
        {"1.7976931348623159e308", E::number_out_of_range},
        {"[1e99999999999999999999999999]", E::number_out_of_range},
        {digits(309, '9'), E::number_out_of_range},
        {"0.0000000001e319", E::number_out_of_range},
        {"179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977"
         "587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845"
         "817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559"
         "699508093042880177904174497792",
         E::number_out_of_range},
    };
    json_scanner s;
    for (const reject_case& c : reject) {
        CAPTURE(c.doc);
        CHECK(s.validate(c.doc) == c.expect);
        CHECK(s.error_offset() <= c.doc.size());
    }
}

TEST_CASE("json: error offsets point at the problem") {
    json_scanner s;
    CHECK(s.validate("{\"a\":1,\"a\":2}") == json_error::duplicate_key);
    CHECK(s.error_offset() == 7);
    CHECK(s.validate("[1, 2, x]") == json_error::unexpected_char);
    CHECK(s.error_offset() == 7);
    CHECK(s.validate("[\"ab\x01\"]") == json_error::control_char);
    CHECK(s.error_offset() == 4);
    CHECK(s.validate("[1] 2") == json_error::trailing_data);
    CHECK(s.error_offset() == 4);
}

TEST_CASE("json: exactly the boundary of double range, against strtod") {
    // The finite/infinite boundary is 2^1024 - 2^970. Generate numbers on
    // both sides of it in many spellings and compare with strtod, whose
    // rounding (to nearest, ties to even) is the definition of "overflows".
    const std::string boundary =
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977"
        "587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845"
        "817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559"
        "699508093042880177904174497792";
    REQUIRE(boundary.size() == 309);
    tether::rng r(1234);
    json_scanner s;
    int inf_seen = 0, fin_seen = 0;
    for (int iter = 0; iter < 4000; ++iter) {
        // Start from the boundary's digits, perturb one digit near a random
        // position, maybe truncate, maybe append digits; then spell it with a
        // moved decimal point and a compensating exponent.
        std::string d = boundary;
        const std::size_t pos = r.below(iter % 3 == 0 ? 20 : d.size());
        d[pos] = static_cast<char>('0' + r.below(10));
        if (d[0] == '0') d[0] = '1';
        if (r.below(3) == 0) d.resize(1 + r.below(d.size()));
        if (r.below(3) == 0) d += digits(1 + r.below(5), static_cast<char>('0' + r.below(10)));
        const long total_exp = 308 - static_cast<long>(d.size()) + 1 + static_cast<long>(r.below(3)) - 1;
        // value = d * 10^total_exp, written as int.frac e exp
        const std::size_t int_len = 1 + r.below(d.size());
        std::string text = (r.below(2) ? "-" : "") + d.substr(0, int_len);
        if (int_len < d.size()) text += "." + d.substr(int_len);
        const long exp = total_exp + static_cast<long>(d.size() - int_len);
        text += "e" + std::to_string(exp);
        const double v = std::strtod(text.c_str(), nullptr);
        const bool finite = std::isfinite(v);
        finite ? ++fin_seen : ++inf_seen;
        CAPTURE(text);
        CHECK((s.validate(text) == json_error::ok) == finite);
        if (!finite) CHECK(s.validate(text) == json_error::number_out_of_range);
    }
    CHECK(inf_seen > 100);
    CHECK(fin_seen > 100);
}

TEST_CASE("json: depth bound is configurable and the scanner is iterative") {
    json_scanner small(json_config{3});
    CHECK(small.validate("[[[1]]]") == json_error::ok);
    CHECK(small.validate("[{\"a\":[1]}]") == json_error::ok);
    CHECK(small.validate("[[[[1]]]]") == json_error::too_deep);
    CHECK(small.validate("[{\"a\":[{}]}]") == json_error::too_deep);
    CHECK(small.validate("[[[]],[[]]]") == json_error::ok);
    json_scanner none(json_config{0});
    CHECK(none.validate("1") == json_error::ok);
    CHECK(none.validate("[]") == json_error::too_deep);
    CHECK(none.begin_object("{}") == json_error::too_deep);
    // 200 000 levels: no recursion, so no stack overflow.
    json_scanner huge(json_config{1'000'000});
    CHECK(huge.validate(nest(200'000, "[", "]")) == json_error::ok);
    CHECK(huge.validate(nest(200'000, "{\"a\":", "}")) == json_error::ok);
    CHECK(huge.validate(nest(200'000, "[", "]").substr(0, 399'999)) == json_error::unexpected_end);
}

TEST_CASE("json: duplicate names in large objects (sorted check)") {
    auto key = [](int i) { return "k" + std::to_string(i); };
    auto object = [&](int n, int dup_a, int dup_b, bool escape_b) {
        std::string s = "{";
        for (int i = 0; i < n; ++i) {
            if (i) s += ",";
            std::string k = key(i);
            if (i == dup_b) {
                k = key(dup_a);
                if (escape_b) k = hex4(static_cast<unsigned char>(k[0])) + k.substr(1);
            }
            s += "\"" + k + "\":" + std::to_string(i);
        }
        return s + "}";
    };
    json_scanner s;
    for (const int n : {2, 15, 16, 17, 18, 40, 300}) {
        CAPTURE(n);
        CHECK(s.validate(object(n, -1, -1, false)) == json_error::ok);
        for (const auto& ab : std::vector<std::pair<int, int>>{
                 {0, 1}, {0, n - 1}, {n / 2, n - 1}, {n - 2, n - 1}, {1, n / 2 + 1}}) {
            const int a = ab.first, b = ab.second;
            if (a >= b || b >= n) continue;
            CAPTURE(a);
            CAPTURE(b);
            CHECK(s.validate(object(n, a, b, false)) == json_error::duplicate_key);
            CHECK(s.validate(object(n, a, b, true)) == json_error::duplicate_key);
            // nested one level down, and in an array, too
            CHECK(s.validate("{\"x\":" + object(n, a, b, true) + "}") == json_error::duplicate_key);
            CHECK(s.validate("[1," + object(n, a, b, false) + "]") == json_error::duplicate_key);
        }
    }
    // Large objects nested in large objects with the same names: fine.
    std::string outer = "{";
    for (int i = 0; i < 30; ++i)
        outer += (i ? "," : "") + ("\"" + key(i) + "\":") + object(30, -1, -1, false);
    outer += "}";
    CHECK(s.validate(outer) == json_error::ok);
    // Many names with the same length and a shared prefix, unique: fine.
    std::string same = "{";
    for (int i = 0; i < 1000; ++i) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "name%04d", i);
        same += (i ? ",\"" : "\"") + std::string(buf) + "\":null";
    }
    CHECK(s.validate(same + "}") == json_error::ok);
    CHECK(s.validate(same + ",\"name0500\":1}") == json_error::duplicate_key);
    CHECK(s.validate(same + ",\"name05\\u0030\\u0030\":1}") == json_error::duplicate_key);
}

TEST_CASE("json: random strings, keys and escapes against a reference") {
    // Build objects whose names are random code points, each spelled raw or
    // escaped at random; the reference decides duplicates on the decoded
    // names. Exercises the streaming comparison of escaped names.
    tether::rng r(77);
    json_scanner s;
    int dups = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        const int n = 1 + static_cast<int>(r.below(iter % 4 == 0 ? 40 : 6));
        std::vector<std::string> decoded;
        std::string doc = "{";
        for (int i = 0; i < n; ++i) {
            std::string name, spelled;
            const int len = static_cast<int>(r.below(3));
            for (int c = 0; c < len; ++c) {
                // a tiny alphabet makes collisions likely
                static const std::uint32_t alphabet[] = {'a', 'b', '"', '\\', '\n', 0xE9, 0x20AC, 0x1F600};
                const std::uint32_t cp = alphabet[r.below(8)];
                name += utf8_of(cp);
                const bool must_escape = cp == '"' || cp == '\\' || cp < 0x20;
                if (must_escape || r.below(2)) {
                    if (cp >= 0x10000) {
                        const std::uint32_t v = cp - 0x10000;
                        spelled += hex4(0xD800 + (v >> 10)) + hex4(0xDC00 + (v & 0x3FF));
                    } else if (cp == '"' && r.below(2)) {
                        spelled += "\\\"";
                    } else if (cp == '\n' && r.below(2)) {
                        spelled += "\\n";
                    } else {
                        spelled += hex4(cp);
                    }
                } else {
                    spelled += utf8_of(cp);
                }
            }
            decoded.push_back(name);
            doc += (i ? ",\"" : "\"") + spelled + "\":" + std::to_string(i);
        }
        doc += "}";
        bool dup = false;
        for (std::size_t i = 0; i < decoded.size(); ++i)
            for (std::size_t j = i + 1; j < decoded.size(); ++j) dup |= decoded[i] == decoded[j];
        dups += dup;
        CAPTURE(doc);
        CHECK(s.validate(doc) == (dup ? json_error::duplicate_key : json_error::ok));
    }
    CHECK(dups > 300);
}

TEST_CASE("json: member walk over the top-level object") {
    json_scanner s;
    const std::string doc =
        " { \"kind\" : \"chat\" , \"\\u006Bey\":[1, {\"a\":null}] ,\"n\":-1.5e3,\"t\":true,"
        "\"s\":\"a\\nb\",\"z\":null,\"o\":{ } } ";
    REQUIRE(s.begin_object(doc) == json_error::ok);
    json_member m;
    struct want {
        std::string key, raw_key;
        json_type type;
        std::string value;
        bool escaped;
    };
    const std::vector<want> expect = {
        {"kind", "kind", json_type::string, "\"chat\"", false},
        {"key", "\\u006Bey", json_type::array, "[1, {\"a\":null}]", false},
        {"n", "n", json_type::number, "-1.5e3", false},
        {"t", "t", json_type::boolean, "true", false},
        {"s", "s", json_type::string, "\"a\\nb\"", true},
        {"z", "z", json_type::null, "null", false},
        {"o", "o", json_type::object, "{ }", false},
    };
    for (const want& w : expect) {
        REQUIRE(s.next_member(m));
        CHECK(m.key == w.key);
        CHECK(m.raw_key == w.raw_key);
        CHECK(m.type == w.type);
        CHECK(m.value == w.value);
        CHECK(m.value_escaped == w.escaped);
        // the value is a slice of the input, not a copy
        CHECK(m.value.data() >= doc.data());
        CHECK(m.value.data() + m.value.size() <= doc.data() + doc.size());
    }
    CHECK_FALSE(s.next_member(m));
    CHECK(s.error() == json_error::ok);
    CHECK_FALSE(s.next_member(m));  // stays at the end

    CHECK(s.begin_object(" {} ") == json_error::ok);
    CHECK_FALSE(s.next_member(m));
    CHECK(s.error() == json_error::ok);

    CHECK(s.begin_object("[1]") == json_error::not_an_object);
    CHECK_FALSE(s.next_member(m));
    CHECK(s.begin_object("\"x\"") == json_error::not_an_object);
    CHECK(s.begin_object("[1,]") == json_error::unexpected_char);
    CHECK(s.begin_object("") == json_error::unexpected_end);
    CHECK(s.begin_object("{} 1") == json_error::trailing_data);
    CHECK(s.begin_object("\xEF\xBB\xBF{}") == json_error::unexpected_char);

    // Errors inside nested values and after the last member are reported.
    auto walk = [&](std::string_view d) {
        if (const json_error e = s.begin_object(d); e != json_error::ok) return e;
        while (s.next_member(m)) {
        }
        return s.error();
    };
    CHECK(walk("{\"a\":{\"b\":1,\"b\":2}}") == json_error::duplicate_key);
    CHECK(walk("{\"a\":1,\"a\":2}") == json_error::duplicate_key);
    CHECK(walk("{\"a\":1,\"\\u0061\":2}") == json_error::duplicate_key);
    CHECK(walk("{\"a\":[1,2}") == json_error::unexpected_char);
    CHECK(walk("{\"a\":1") == json_error::unexpected_end);
    CHECK(walk("{\"a\":1,}") == json_error::unexpected_char);
    CHECK(walk("{\"a\":1} x") == json_error::trailing_data);
    CHECK(walk("{\"a\":\"\\ud800\"}") == json_error::lone_surrogate);
    CHECK(walk("{\"a\":1e999}") == json_error::number_out_of_range);
    CHECK(walk("{\"a\":01}") == json_error::bad_number);
    CHECK(walk("{\"a\" 1}") == json_error::unexpected_char);
    // A top-level object with many members: duplicates found when it closes.
    std::string big = "{";
    for (int i = 0; i < 40; ++i) big += "\"f" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    CHECK(walk(big + "\"f7\":0}") == json_error::duplicate_key);
    CHECK(walk(big + "\"g\":0}") == json_error::ok);
    // The walk agrees with validate() on many documents (depth counted the same).
    json_scanner deep(json_config{3});
    CHECK(deep.begin_object("{\"a\":[[1]]}") == json_error::ok);
    while (deep.next_member(m)) {
    }
    CHECK(deep.error() == json_error::ok);
    CHECK(deep.begin_object("{\"a\":[[[1]]]}") == json_error::ok);
    while (deep.next_member(m)) {
    }
    CHECK(deep.error() == json_error::too_deep);
}

TEST_CASE("json: decode_json_string") {
    using tether::proto::decode_json_string;
    std::string out;
    struct dcase {
        std::string body, decoded;
    };
    const std::vector<dcase> ok = {
        {"", ""},
        {"abc", "abc"},
        {"\\\"\\\\\\/\\b\\f\\n\\r\\t", "\"\\/\b\f\n\r\t"},
        {"\\u0041\\u00e9\\u20AC", "A\xC3\xA9\xE2\x82\xAC"},
        {"\\u0000", "\0"s},
        {"x\\ud83d\\ude00y", "x\xF0\x9F\x98\x80y"},
        {"\\uDBFF\\uDFFF", "\xF4\x8F\xBF\xBF"},
        {"\xC3\xA9 raw", "\xC3\xA9 raw"},
        {"long run without escapes then \\n", "long run without escapes then \n"},
    };
    for (const dcase& c : ok) {
        CAPTURE(c.body);
        REQUIRE(decode_json_string(c.body, out));
        CHECK(out == c.decoded);
        std::vector<char> buf(c.body.size());
        std::size_t n = 99;
        REQUIRE(decode_json_string(c.body, std::span<char>(buf), n));
        CHECK(std::string(buf.data(), n) == c.decoded);
        if (!c.decoded.empty()) {
            std::vector<char> small(c.decoded.size() - 1);
            CHECK_FALSE(decode_json_string(c.body, std::span<char>(small), n));
        }
    }
    for (const std::string bad : {"a\"b", "\\", "abc\\", "\\x", "\\u12", "\\ud800", "\\udc00",
                                  "\\ud800\\u0041", "\x01", "\xC3", "\xED\xA0\x80"}) {
        CAPTURE(bad);
        CHECK_FALSE(decode_json_string(bad, out));
    }
}

TEST_CASE("json: append_json_string escapes and round-trips") {
    using tether::proto::append_json_string;
    using tether::proto::decode_json_string;
    std::string out;
    append_json_string(out, "plain");
    CHECK(out == "\"plain\"");
    out.clear();
    append_json_string(out, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\xC3\xA9");
    CHECK(out == "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xC3\xA9\"");
    out.clear();
    append_json_string(out, "\0"s);
    CHECK(out == "\"\\u0000\"");
    // invalid UTF-8 becomes U+FFFD per byte: the output is always I-JSON
    out.clear();
    append_json_string(out, "a\xFF" "b\xC3");
    CHECK(out == "\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\"");
    out.clear();
    append_json_string(out, "\xED\xA0\x80");
    CHECK(out == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");

    // Every control character, and random valid UTF-8, round-trips.
    json_scanner s;
    std::string back;
    for (int c = 0; c < 0x20; ++c) {
        const std::string one(1, static_cast<char>(c));
        out.clear();
        append_json_string(out, one);
        REQUIRE(s.validate(out) == json_error::ok);
        REQUIRE(decode_json_string(std::string_view(out).substr(1, out.size() - 2), back));
        CHECK(back == one);
    }
    tether::rng r(5);
    for (int iter = 0; iter < 2000; ++iter) {
        std::string str;
        const int n = static_cast<int>(r.below(40));
        for (int i = 0; i < n; ++i) str += utf8_of(random_cp(r));
        if (r.below(4) == 0) str += std::string(r.below(30), 'x');  // long ASCII runs
        out.clear();
        append_json_string(out, str);
        CAPTURE(str);
        REQUIRE(s.validate(out) == json_error::ok);
        REQUIRE(decode_json_string(std::string_view(out).substr(1, out.size() - 2), back));
        CHECK(back == str);
    }
    // Random bytes: output always valid, and valid input is preserved.
    for (int iter = 0; iter < 2000; ++iter) {
        std::string str;
        const int n = static_cast<int>(r.below(24));
        for (int i = 0; i < n; ++i) str += static_cast<char>(r.below(256));
        out.clear();
        append_json_string(out, str);
        CAPTURE(str);
        REQUIRE(s.validate(out) == json_error::ok);
        REQUIRE(decode_json_string(std::string_view(out).substr(1, out.size() - 2), back));
        if (ref_utf8(str)) CHECK(back == str);
        else CHECK(back != str);
    }
}

TEST_CASE("json: strings with random bytes agree with a reference validator") {
    // Strings of random bytes (high bytes, controls, quotes removed): the
    // scanner must accept exactly when the reference UTF-8 decoder does and
    // no control is present, at every alignment of the SWAR fast path.
    tether::rng r(99);
    json_scanner s;
    int accepted = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        std::string body(r.below(4), 'a');  // shift the alignment
        const int n = 1 + static_cast<int>(r.below(20));
        for (int i = 0; i < n; ++i) {
            const auto pick = r.below(10);
            if (pick < 2) body += static_cast<char>(0x80 + r.below(0x80));
            else if (pick < 3) body += static_cast<char>(0xC2 + r.below(0x33));
            else if (pick < 4 && r.below(4) == 0) body += static_cast<char>(r.below(0x20));
            else if (pick < 6) body += utf8_of(0x80 + static_cast<std::uint32_t>(r.below(0xD800 - 0x80)));
            else if (pick < 7) body += utf8_of(0x10000 + static_cast<std::uint32_t>(r.below(0x100000)));
            else body += static_cast<char>('a' + r.below(26));
        }
        body += std::string(r.below(10), 'z');
        bool ctl = false;
        for (const char c : body) ctl |= static_cast<unsigned char>(c) < 0x20;
        const bool want = !ctl && ref_utf8(body);
        accepted += want;
        CAPTURE(body);
        CHECK((s.validate("\"" + body + "\"") == json_error::ok) == want);
        CHECK(tether::proto::detail::is_valid_utf8(body) == ref_utf8(body));
    }
    CHECK(accepted > 2000);
    CHECK(accepted < 18000);
}

TEST_CASE("json: parse_whole_number") {
    using tether::proto::detail::parse_whole_number;
    struct wcase {
        std::string text;
        std::optional<std::uint64_t> v;
    };
    const std::vector<wcase> cases = {
        {"0", 0}, {"-0", 0}, {"-0.0e5", 0}, {"7", 7}, {"42", 42}, {"42.0", 42}, {"4.2e1", 42},
        {"4200e-2", 42}, {"0.42e2", 42}, {"1e2", 100}, {"1E+2", 100}, {"100e-2", 1},
        {"9007199254740991", 9007199254740991ULL}, {"9007199254740991.000", 9007199254740991ULL},
        {"9.007199254740991e15", 9007199254740991ULL}, {"0e999999999999", 0},
        {"9007199254740992", std::nullopt}, {"9007199254740991.5", std::nullopt},
        {"9007199254740990.5", std::nullopt}, {"1e16", std::nullopt}, {"1e300", std::nullopt},
        {"42.5", std::nullopt}, {"1e-1", std::nullopt}, {"-1", std::nullopt}, {"-1e0", std::nullopt},
        {"-0.5", std::nullopt}, {"99999999999999999999", std::nullopt}, {"", std::nullopt},
        {"01", std::nullopt}, {"1.", std::nullopt}, {"abc", std::nullopt}, {"\"1\"", std::nullopt},
        {"1 ", std::nullopt}, {"0000000000000001", std::nullopt},
    };
    for (const wcase& c : cases) {
        CAPTURE(c.text);
        CHECK(parse_whole_number(c.text) == c.v);
    }
    // Exhaustive-ish against a reference on small spellings m * 10^e.
    tether::rng r(3);
    for (int iter = 0; iter < 20000; ++iter) {
        const std::uint64_t m = r.below(2) ? r.below(1000) : r.below(9007199254740992ULL);
        const int e = static_cast<int>(r.below(40)) - 20;
        // reference: value = m * 10^e, whole iff m divisible by 10^-e
        std::optional<std::uint64_t> want;
        {
            std::uint64_t v = m;
            bool whole = true;
            for (int i = 0; i < -e; ++i) {
                if (v % 10 != 0) whole = false;
                v /= 10;
            }
            for (int i = 0; i < e && v <= 9007199254740991ULL; ++i) v *= 10;
            if (whole && v <= 9007199254740991ULL) want = static_cast<std::uint64_t>(v);
        }
        const std::string text = std::to_string(m) + "e" + std::to_string(e);
        CAPTURE(text);
        CHECK(parse_whole_number(text) == want);
    }
}

namespace {

// Where a reference decoder first fails in `s` (s.size() if it never does):
// each code point's length comes from its lead byte, and ref_utf8 judges
// that slice alone.
std::size_t ref_first_invalid(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c >= 0x80 && (i + len > s.size() || !ref_utf8(s.substr(i, len)))) return i;
        i += len;
    }
    return s.size();
}

}  // namespace

TEST_CASE("json: string scanning across 16-byte blocks and the UTF-8 windows") {
    // The scanner skips plain ASCII 16 bytes at a time, checks runs with
    // non-ASCII once (through the vector kernel from 16 bytes on, with a
    // 64-byte window when the text allows) and restarts after each escape.
    // Every run length, every offset of the odd byte, and every offset of the
    // string in the text, with the text ending right after it or later.
    json_scanner s;
    const std::vector<std::string> odd_valid = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x9A\x80",
                                                "\\n", "\\\"", "\\\\", "\\u00e9",
                                                "\\ud83d\\ude00", "\xC3\xA9\\t\xE2\x82\xAC"};
    const std::vector<std::string> odd_invalid = {"\x80", "\xC3", "\xE2\x82", "\xC0\x80",
                                                  "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF"};
    for (const std::size_t len : {0u, 1u, 7u, 15u, 16u, 17u, 31u, 32u, 33u, 47u, 63u, 64u, 65u, 80u}) {
        for (std::size_t lead = 0; lead <= 16; ++lead) {
            const std::string pad(lead, ' ');
            for (const std::size_t tail : {0u, 70u}) {
                const std::string after = "}" + std::string(tail, ' ');
                // Plain ASCII.
                const std::string ascii(len, 'a');
                CHECK(s.validate(pad + "{\"k\":\"" + ascii + "\"" + after) == json_error::ok);
                // One odd sequence at every offset, in a run of multi-byte
                // text too (so that the run is non-ASCII well before it).
                for (std::size_t at = 0; at <= len; ++at) {
                    for (const std::string& base : {ascii, [&] {
                             std::string t;
                             while (t.size() < len) t += "\xCE\xBA";  // κ
                             t.resize(len - len % 2);
                             return t;
                         }()}) {
                        if (at > base.size() || (at % 2 != 0 && base[0] != 'a')) continue;
                        for (const std::string& v : odd_valid) {
                            std::string body = base;
                            body.insert(at, v);
                            const std::string doc = pad + "{\"k\":\"" + body + "\"" + after;
                            CAPTURE(doc);
                            REQUIRE(s.validate(doc) == json_error::ok);
                            json_scanner w;
                            REQUIRE(w.begin_object(doc) == json_error::ok);
                            json_member m;
                            REQUIRE(w.next_member(m));
                            std::string dec;
                            REQUIRE(tether::proto::decode_json_string(m.string_body(), dec));
                            std::string want = base;
                            std::string vd;
                            REQUIRE(tether::proto::decode_json_string(v, vd));
                            want.insert(at, vd);
                            CHECK(dec == want);
                        }
                        for (const std::string& v : odd_invalid) {
                            std::string body = base;
                            body.insert(at, v);
                            for (const bool closed : {true, false}) {
                                const std::string doc = pad + "{\"k\":\"" + body +
                                                        (closed ? "\"" + after : std::string());
                                CAPTURE(doc);
                                CHECK(s.validate(doc) == json_error::invalid_utf8);
                                const std::size_t body_at = pad.size() + 6;
                                CHECK(s.error_offset() == body_at + ref_first_invalid(body));
                            }
                        }
                    }
                }
            }
        }
    }
}

TEST_CASE("json: plain-digit numbers at every length and distance from the end") {
    // Up to 16 plain digits are read eight at a time when 17 bytes are left,
    // one at a time otherwise; the member walk hands out their value.
    tether::rng r(11);
    for (int iter = 0; iter < 20000; ++iter) {
        const std::size_t ndig = 1 + r.below(20);
        std::string num;
        for (std::size_t i = 0; i < ndig; ++i) num += static_cast<char>('0' + r.below(10));
        if (r.below(4) == 0) num[0] = '0';
        static const char* const tails[] = {"", ".5", "e2", "x", " ", "-", "E+1"};
        const std::string tail = tails[r.below(7)];
        const std::string doc = "{\"n\":" + num + tail + "}" + std::string(r.below(20), ' ');
        CAPTURE(doc);
        const bool lead_zero = num.size() > 1 && num[0] == '0';
        json_scanner s;
        REQUIRE(s.begin_object(doc) == json_error::ok);
        json_member m;
        const bool got = s.next_member(m);
        if (lead_zero || tail == "-") {
            // "01" and "1-" are malformed numbers.
            CHECK_FALSE(got);
            CHECK(s.error() == json_error::bad_number);
            continue;
        }
        REQUIRE(got);
        const bool plain = (tail == "" || tail == " " || tail == "x") && num.size() <= 16;
        CHECK(m.is_uint == plain);
        if (plain) CHECK(m.uint_value == std::stoull(num));
        const bool in_token = tail == ".5" || tail == "e2" || tail == "E+1";
        CHECK(m.value == num + (in_token ? tail : ""));
        CHECK(s.next_member(m) == false);
        CHECK(s.error() == (tail == "x" ? json_error::unexpected_char : json_error::ok));
    }
}
