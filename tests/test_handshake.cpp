// Tests for the RFC 6455 §4 opening handshake: SHA-1, base64, check_upgrade,
// the response writers and client_handshake.
#include <doctest/doctest.h>

#include <tether/core/random.hpp>
#include <tether/ws/detail/base64.hpp>
#include <tether/ws/detail/sha1.hpp>
#include <tether/ws/handshake.hpp>
#include <tether/ws/http.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>  // doctest prints std::error_code
#include <string>
#include <string_view>
#include <vector>

using namespace tether::ws;
using namespace std::string_literals;
namespace d = tether::ws::detail;

namespace {

std::string hex(std::span<const std::uint8_t> b) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (auto x : b) {
        s.push_back(digits[x >> 4]);
        s.push_back(digits[x & 15]);
    }
    return s;
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// Bit-at-a-time base64 encoder: slow, obviously right, for differential tests.
std::string reference_base64(std::span<const std::uint8_t> in) {
    const std::string_view alpha = d::base64_alphabet;
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (auto b : in) {
        for (int k = 7; k >= 0; --k) {
            acc = (acc << 1) | ((b >> k) & 1u);
            if (++bits == 6) {
                out.push_back(alpha[acc]);
                acc = 0;
                bits = 0;
            }
        }
    }
    if (bits != 0) out.push_back(alpha[acc << (6 - bits)]);
    while (out.size() % 4 != 0) out.push_back('=');
    return out;
}

http_request parse_request(std::string_view wire) {
    http_request_parser p;
    const auto r = p.feed(wire);
    REQUIRE(r.status == http_parse_status::done);
    REQUIRE(r.consumed == wire.size());
    return std::move(p.request());
}

http_response parse_response(std::string_view wire, std::string* leftover = nullptr) {
    http_response_parser p;
    const auto r = p.feed(wire);
    REQUIRE(r.status == http_parse_status::done);
    if (leftover)
        *leftover = std::string(wire.substr(r.consumed));
    else
        REQUIRE(r.consumed == wire.size());
    return std::move(p.response());
}

/// A valid upgrade request built from a field list, to be mutated.
struct request_builder {
    std::string request_line = "GET /chat HTTP/1.1";
    std::vector<std::pair<std::string, std::string>> fields = {
        {"Host", "server.example.com"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Sec-WebSocket-Version", "13"},
    };
    request_builder& remove(std::string_view name) {
        std::erase_if(fields, [&](const auto& f) { return f.first == name; });
        return *this;
    }
    request_builder& set(std::string_view name, std::string value) {
        for (auto& f : fields)
            if (f.first == name) {
                f.second = std::move(value);
                return *this;
            }
        fields.emplace_back(std::string(name), std::move(value));
        return *this;
    }
    request_builder& add(std::string name, std::string value) {
        fields.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    std::string wire() const {
        std::string s = request_line + "\r\n";
        for (const auto& [n, v] : fields) s += n + ": " + v + "\r\n";
        return s + "\r\n";
    }
};

bool response_has(const http_response& r, std::string_view name, std::string_view value) {
    for (const auto& h : r.headers)
        if (d::http_syntax::iequals(h.name, name) && h.value == value) return true;
    return false;
}

}  // namespace

// ---------------------------------------------------------------- SHA-1 ----

TEST_CASE("sha1: FIPS 180-4 / FIPS 180-2 appendix vectors") {
    CHECK(hex(d::sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(hex(d::sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(hex(d::sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    CHECK(hex(d::sha1("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                      "klmnopqrlmnopqrsmnopqrstnopqrstu")) == "a49b2446a02c645bf419f995b67091253a04a259");
    const std::string million(1000000, 'a');
    CHECK(hex(d::sha1(bytes_of(million))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    // The same million fed in odd-sized pieces.
    d::sha1_hasher h;
    for (std::size_t i = 0; i < million.size(); i += 997)
        h.update(std::string_view(million).substr(i, 997));
    CHECK(hex(h.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    // The hasher is reset by finish().
    h.update("abc");
    CHECK(hex(h.finish()) == "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST_CASE("sha1: incremental updates at every split equal one shot (padding edges)") {
    tether::rng rng(7);
    for (std::size_t len : {0u, 1u, 55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 127u, 128u, 129u, 200u}) {
        std::vector<std::uint8_t> msg(len);
        rng.fill(msg);
        const auto one = d::sha1(std::span<const std::uint8_t>(msg));
        for (std::size_t k = 0; k <= len; ++k) {
            d::sha1_hasher h;
            h.update(std::span<const std::uint8_t>(msg).first(k));
            h.update(std::span<const std::uint8_t>(msg).subspan(k));
            CAPTURE(len);
            CAPTURE(k);
            REQUIRE(h.finish() == one);
        }
    }
}

// --------------------------------------------------------------- base64 ----

TEST_CASE("base64: RFC 4648 §10 vectors, both directions") {
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},       {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& vec : vectors) {
        const std::string_view plain = vec.first;
        const std::string_view enc = vec.second;
        CAPTURE(plain);
        CHECK(d::base64_encode(plain) == enc);
        CHECK(d::base64_encoded_size(plain.size()) == enc.size());
        const auto dec = d::base64_decode(enc);
        REQUIRE(dec);
        CHECK(std::string(dec->begin(), dec->end()) == plain);
        // Fixed buffer: too small writes nothing, exact size works.
        std::array<char, 8> buf{};
        if (!plain.empty()) CHECK(d::base64_encode(bytes_of(plain), std::span<char>(buf).first(enc.size() - 1)) == 0);
        CHECK(d::base64_encode(bytes_of(plain), std::span<char>(buf)) == enc.size());
        CHECK(std::string_view(buf.data(), enc.size()) == enc);
    }
    const std::array<std::uint8_t, 3> abc{'a', 'b', 'c'};
    const auto fixed = d::base64_encode_fixed(abc);
    CHECK(std::string_view(fixed.data(), fixed.size()) == "YWJj");
}

TEST_CASE("base64: strict decoding rejects non-canonical input") {
    const std::string_view bad[] = {
        "Zg",   "Zg=",  "Zm9",  "Zm9vY",  "Zh==",  "Zm9=",   "Zg==Zg==", "Z===", "====", "=Zg=",
        "Zg=a", "Zm9v\n", " Zm9v", "Zm9v ", "Zm-v", "Zm_v", "Zm9v\r\n", std::string_view("Zm\0v", 4),
        "Zm8=Zm8=", "Zg== ", "Z@==", "Zm9\xff",
    };
    for (auto s : bad) {
        CAPTURE(s);
        CHECK(!d::base64_decode(s));
    }
    // Output buffer too small is an error, not an overflow.
    std::array<std::uint8_t, 5> small{};
    CHECK(!d::base64_decode("Zm9vYmFy", std::span<std::uint8_t>(small)));
    std::array<std::uint8_t, 6> exact{};
    CHECK(d::base64_decode("Zm9vYmFy", std::span<std::uint8_t>(exact)) == 6u);
}

TEST_CASE("base64: differential against a bit-at-a-time reference, and round trips") {
    tether::rng rng(99);
    for (int iter = 0; iter < 2000; ++iter) {
        std::vector<std::uint8_t> data(rng.below(70));
        rng.fill(data);
        const std::string enc = d::base64_encode(std::span<const std::uint8_t>(data));
        REQUIRE(enc == reference_base64(data));
        const auto dec = d::base64_decode(enc);
        REQUIRE(dec);
        REQUIRE(*dec == data);
        // Any single-character corruption that changes the alphabet class or
        // the canonical bits must not decode back to the same bytes.
        if (!enc.empty()) {
            std::string bad = enc;
            bad[rng.below(bad.size())] = "*-_ =\n"[rng.below(6)];
            const auto r = d::base64_decode(bad);
            REQUIRE((!r || *r != data || bad == enc));
        }
    }
}

// ---------------------------------------------------- compute_accept ----

TEST_CASE("handshake: RFC 6455 §1.3 accept value") {
    const auto a = compute_accept("dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(std::string_view(a.data(), a.size()) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // Differential: same as the definition spelled out with a temporary.
    const std::string key = "x3JJHMbDL1EzLkh9GBhXDw==";
    const auto digest = d::sha1(key + std::string(websocket_guid));
    const auto b = compute_accept(key);
    CHECK(std::string_view(b.data(), b.size()) == d::base64_encode(std::span<const std::uint8_t>(digest)));
    CHECK(std::string_view(b.data(), b.size()) == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");  // RFC 6455 §1.2 example
}

// -------------------------------------------------------- check_upgrade ----

TEST_CASE("handshake: server accepts the RFC 6455 §1.3 request and answers 101") {
    request_builder b;
    b.add("Origin", "http://example.com").add("Sec-WebSocket-Protocol", "chat, superchat");
    const std::string wire = b.wire() + "\x81\x80\x00\x00\x00\x00"s;
    http_request_parser p;
    const auto r = p.feed(wire);
    REQUIRE(r.status == http_parse_status::done);
    CHECK(wire.substr(r.consumed) == "\x81\x80\x00\x00\x00\x00"s);

    const upgrade_check c = check_upgrade(p.request());
    REQUIRE(c.ok());
    CHECK(c.status == 0);
    CHECK(c.key == "dGhlIHNhbXBsZSBub25jZQ==");
    REQUIRE(c.offered_subprotocols.size() == 2);
    CHECK(c.offered_subprotocols[0] == "chat");
    CHECK(c.offered_subprotocols[1] == "superchat");

    const std::string_view chosen = select_subprotocol(c.offered_subprotocols, {"superchat", "chat"});
    CHECK(chosen == "superchat");

    std::string out = "prefix|";
    REQUIRE(write_accept_response(out, c.key, chosen));
    CHECK(out ==
          "prefix|"
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Sec-WebSocket-Protocol: superchat\r\n"
          "\r\n");

    // No subprotocol, one extra field.
    out.clear();
    const std::array<http_header, 1> extra{{{"Set-Cookie", "sid=1"}}};
    REQUIRE(write_accept_response(out, c.key, {}, extra));
    const http_response res = parse_response(out);
    CHECK(res.status == 101);
    CHECK(res.find("Sec-WebSocket-Protocol") == nullptr);
    CHECK(response_has(res, "Set-Cookie", "sid=1"));
    CHECK(response_has(res, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

TEST_CASE("handshake: every rejection path with its status") {
    struct v {
        const char* name;
        request_builder req;
        int status;
    };
    auto with = [](auto f) {
        request_builder b;
        f(b);
        return b;
    };
    const std::vector<v> vectors = {
        {"POST", with([](auto& b) { b.request_line = "POST /chat HTTP/1.1"; }), 405},
        {"lowercase get", with([](auto& b) { b.request_line = "get /chat HTTP/1.1"; }), 405},
        {"HTTP/1.0", with([](auto& b) { b.request_line = "GET /chat HTTP/1.0"; }), 400},
        {"version 8", with([](auto& b) { b.set("Sec-WebSocket-Version", "8"); }), 426},
        {"version 13, 8", with([](auto& b) { b.set("Sec-WebSocket-Version", "13, 8"); }), 426},
        {"no version", with([](auto& b) { b.remove("Sec-WebSocket-Version"); }), 426},
        {"two versions", with([](auto& b) { b.add("Sec-WebSocket-Version", "13"); }), 400},
        {"missing key", with([](auto& b) { b.remove("Sec-WebSocket-Key"); }), 400},
        {"two keys", with([](auto& b) { b.add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="); }), 400},
        {"key 15 bytes", with([](auto& b) { b.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j"); }), 400},
        {"key 17 bytes", with([](auto& b) { b.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZTE="); }), 400},
        {"key unpadded", with([](auto& b) { b.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"); }), 400},
        {"key not base64", with([](auto& b) { b.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ!="); }), 400},
        {"key non-canonical", with([](auto& b) { b.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="); }), 400},
        {"missing Upgrade", with([](auto& b) { b.remove("Upgrade"); }), 400},
        {"Upgrade: h2c", with([](auto& b) { b.set("Upgrade", "h2c"); }), 400},
        {"Upgrade: websocket/13", with([](auto& b) { b.set("Upgrade", "websocket/13"); }), 400},
        {"Connection: keep-alive", with([](auto& b) { b.set("Connection", "keep-alive"); }), 400},
        {"Connection: upgraded", with([](auto& b) { b.set("Connection", "upgraded"); }), 400},
        {"missing Connection", with([](auto& b) { b.remove("Connection"); }), 400},
        {"empty Host", with([](auto& b) { b.set("Host", ""); }), 400},
        {"body", with([](auto& b) { b.add("Content-Length", "5"); }), 400},
        {"bad subprotocol token", with([](auto& b) { b.add("Sec-WebSocket-Protocol", "chat, sup\"er"); }), 400},
        {"asterisk target", with([](auto& b) { b.request_line = "GET * HTTP/1.1"; }), 400},
    };
    for (const auto& t : vectors) {
        CAPTURE(t.name);
        const http_request req = parse_request(t.req.wire());
        const upgrade_check c = check_upgrade(req);
        CHECK(c.status == t.status);
        CHECK(!c.ok());
        CHECK(!c.why.empty());
        CHECK(c.key.empty());
        CHECK(c.offered_subprotocols.empty());
    }

    // Missing Host is caught by the HTTP/1.1 parser (400) and, for a request
    // assembled by hand, by check_upgrade as well.
    http_request_parser p;
    const auto r = p.feed(request_builder{}.remove("Host").wire());
    CHECK(r.status == http_parse_status::error);
    CHECK(r.http_status == 400);
    http_request manual = parse_request(request_builder{}.wire());
    std::erase_if(manual.headers, [](const http_header& h) { return h.name == "Host"; });
    CHECK(check_upgrade(manual).status == 400);

    // Headers over the bound: 431 from the parser.
    http_request_parser small(256);
    const auto big = small.feed(request_builder{}.add("Cookie", std::string(300, 'c')).wire());
    CHECK(big.status == http_parse_status::error);
    CHECK(big.http_status == 431);

    // Content-Length: 0 is harmless.
    CHECK(check_upgrade(parse_request(request_builder{}.add("Content-Length", "0").wire())).ok());
}

TEST_CASE("handshake: Upgrade / Connection token matching") {
    const std::pair<std::string, std::string> ok[] = {
        {"Connection", "keep-alive, Upgrade"},
        {"Connection", "Upgrade,keep-alive"},
        {"Connection", " ,, UPGRADE ,"},
        {"Upgrade", "WebSocket"},
        {"Upgrade", "h2c, websocket"},
    };
    for (const auto& field : ok) {
        const std::string& name = field.first;
        const std::string& value = field.second;
        CAPTURE(value);
        const http_request req = parse_request(request_builder{}.set(name, value).wire());
        CHECK(check_upgrade(req).ok());
    }
    // "upgrade: WebSocket" with a lowercase field name.
    request_builder b;
    b.remove("Upgrade").add("upgrade", "WebSocket");
    CHECK(check_upgrade(parse_request(b.wire())).ok());
    // The list may be split over several field lines.
    request_builder c;
    c.set("Connection", "keep-alive").add("Connection", "Upgrade");
    CHECK(check_upgrade(parse_request(c.wire())).ok());

    const http_request req = parse_request(request_builder{}.set("Connection", "keep-alive, Upgrade").wire());
    CHECK(header_has_token(req, "connection", "upgrade"));
    CHECK(header_has_token(req, "Connection", "KEEP-ALIVE"));
    CHECK(!header_has_token(req, "Connection", "keep"));
    CHECK(!header_has_token(req, "Connection", "alive, Upgrade"));
    CHECK(!header_has_token(req, "X-Missing", "upgrade"));

    http_response res;
    res.headers = {{"Upgrade", "foo"}, {"UPGRADE", " bar ,WebSocket"}};
    CHECK(header_has_token(res, "upgrade", "websocket"));
    CHECK(!header_has_token(res, "upgrade", "baz"));
}

TEST_CASE("handshake: Sec-WebSocket-Protocol lists and selection") {
    request_builder b;
    b.add("Sec-WebSocket-Protocol", " tether.v1 ,, chat").add("sec-websocket-protocol", "x-Custom\t, ,");
    const upgrade_check c = check_upgrade(parse_request(b.wire()));
    REQUIRE(c.ok());
    REQUIRE(c.offered_subprotocols.size() == 3);
    CHECK(c.offered_subprotocols[0] == "tether.v1");
    CHECK(c.offered_subprotocols[1] == "chat");
    CHECK(c.offered_subprotocols[2] == "x-Custom");

    CHECK(select_subprotocol(c.offered_subprotocols, {"tether.v1"}) == "tether.v1");
    CHECK(select_subprotocol(c.offered_subprotocols, {"chat", "tether.v1"}) == "chat");
    CHECK(select_subprotocol(c.offered_subprotocols, {"x-custom"}).empty());  // case-sensitive
    CHECK(select_subprotocol(c.offered_subprotocols, {"mqtt"}).empty());
    const std::vector<std::string> supported{"nope", "x-Custom", "chat"};
    CHECK(select_subprotocol(c.offered_subprotocols, supported) == "x-Custom");
    const std::array<std::string_view, 0> none{};
    CHECK(select_subprotocol(c.offered_subprotocols, none).empty());

    const upgrade_check plain = check_upgrade(parse_request(request_builder{}.wire()));
    REQUIRE(plain.ok());
    CHECK(plain.offered_subprotocols.empty());
    CHECK(select_subprotocol(plain.offered_subprotocols, {"tether.v1"}).empty());
}

// --------------------------------------------------------------- writers ----

TEST_CASE("handshake: reject responses parse back with the right fields") {
    struct v {
        int status;
        std::string_view reason;
    };
    const v vectors[] = {{400, "Bad Request"},       {401, "Unauthorized"},
                         {403, "Forbidden"},         {404, "Not Found"},
                         {405, "Method Not Allowed"}, {426, "Upgrade Required"},
                         {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
                         {500, "Internal Server Error"}, {501, "Not Implemented"},
                         {503, "Service Unavailable"}, {505, "HTTP Version Not Supported"},
                         {307, "Temporary Redirect"}, {499, ""}};
    for (const auto& t : vectors) {
        CAPTURE(t.status);
        const std::string body = "refused: " + std::to_string(t.status);
        std::string out;
        REQUIRE(write_reject_response(out, t.status, body));
        std::string rest;
        const http_response res = parse_response(out, &rest);
        CHECK(rest == body);
        CHECK(res.status == t.status);
        CHECK(res.reason == t.reason);
        CHECK(reason_phrase(t.status) == t.reason);
        CHECK(response_has(res, "Content-Length", std::to_string(body.size())));
        CHECK(response_has(res, "Content-Type", "text/plain; charset=utf-8"));
        CHECK(header_has_token(res, "Connection", "close"));
        CHECK(res.count("Connection") == 1);
        CHECK((res.find("Allow") != nullptr) == (t.status == 405));
        CHECK((res.find("WWW-Authenticate") != nullptr) == (t.status == 401));
        CHECK((res.find("Sec-WebSocket-Version") != nullptr) == (t.status == 426));
        CHECK((res.find("Upgrade") != nullptr) == (t.status == 426));
    }

    std::string out;
    REQUIRE(write_reject_response(out, 426));
    http_response res = parse_response(out);
    CHECK(response_has(res, "Sec-WebSocket-Version", "13"));
    CHECK(header_has_token(res, "Upgrade", "websocket"));
    CHECK(header_has_token(res, "Connection", "upgrade"));
    CHECK(header_has_token(res, "Connection", "close"));
    CHECK(response_has(res, "Content-Length", "0"));
    CHECK(res.find("Content-Type") == nullptr);

    out.clear();
    REQUIRE(write_reject_response(out, 405));
    CHECK(response_has(parse_response(out), "Allow", "GET"));

    out.clear();
    REQUIRE(write_reject_response(out, 401));
    CHECK(response_has(parse_response(out), "WWW-Authenticate", "Bearer"));

    // Extras override the defaults instead of duplicating them.
    out.clear();
    const std::array<http_header, 2> auth{{{"WWW-Authenticate", "Bearer error=\"invalid_token\""},
                                          {"Retry-After", "5"}}};
    REQUIRE(write_reject_response(out, 401, "{}", auth));
    res = parse_response(out.substr(0, out.size() - 2));
    CHECK(res.count("WWW-Authenticate") == 1);
    CHECK(response_has(res, "WWW-Authenticate", "Bearer error=\"invalid_token\""));
    CHECK(response_has(res, "Retry-After", "5"));

    // Bad arguments append nothing.
    out = "keep";
    CHECK(!write_reject_response(out, 101));
    CHECK(!write_reject_response(out, 200));
    CHECK(!write_reject_response(out, 600));
    const std::array<http_header, 1> inject{{{"X-A", "b\r\nSet-Cookie: evil=1"}}};
    CHECK(!write_reject_response(out, 400, {}, inject));
    const std::array<http_header, 1> badname{{{"X A", "b"}}};
    CHECK(!write_reject_response(out, 400, {}, badname));
    const std::array<http_header, 1> owned{{{"content-length", "3"}}};
    CHECK(!write_reject_response(out, 400, {}, owned));
    CHECK(out == "keep");
}

TEST_CASE("handshake: write_accept_response refuses bad arguments") {
    std::string out = "keep";
    CHECK(!write_accept_response(out, "not-a-key"));
    CHECK(!write_accept_response(out, "dGhlIHNhbXBsZSBub25j"));  // 15 bytes
    CHECK(!write_accept_response(out, "dGhlIHNhbXBsZSBub25jZQ==", "two words"));
    CHECK(!write_accept_response(out, "dGhlIHNhbXBsZSBub25jZQ==", "a,b"));
    const std::array<http_header, 1> dup{{{"sec-websocket-accept", "x"}}};
    CHECK(!write_accept_response(out, "dGhlIHNhbXBsZSBub25jZQ==", {}, dup));
    const std::array<http_header, 1> inject{{{"X", "a\nb"}}};
    CHECK(!write_accept_response(out, "dGhlIHNhbXBsZSBub25jZQ==", {}, inject));
    CHECK(out == "keep");
}

// --------------------------------------------------------------- client ----

TEST_CASE("handshake: client request is deterministic and round-trips through the server") {
    const std::vector<std::string> protos{"tether.v1", "chat"};
    const std::array<http_header, 2> extra{{{"Origin", "https://app.example"},
                                           {"Authorization", "Bearer abc.def"}}};
    tether::rng r1(42), r2(42), r3(43);
    client_handshake c1, c2, c3;
    const std::string a = c1.build_request("example.com:8443", "/ws?session_id=s%201&token=t", protos, extra, r1);
    const std::string b = c2.build_request("example.com:8443", "/ws?session_id=s%201&token=t", protos, extra, r2);
    const std::string c = c3.build_request("example.com:8443", "/ws?session_id=s%201&token=t", protos, extra, r3);
    REQUIRE(!a.empty());
    CHECK(a == b);
    CHECK(a != c);
    CHECK(c1.key() == c2.key());
    CHECK(c1.key() != c3.key());

    // The key is base64 of exactly the 16 bytes the rng produced.
    tether::rng again(42);
    std::array<std::uint8_t, 16> nonce{};
    again.fill(nonce);
    CHECK(c1.key() == d::base64_encode(std::span<const std::uint8_t>(nonce)));
    const auto acc = compute_accept(c1.key());
    CHECK(c1.expected_accept() == std::string_view(acc.data(), acc.size()));

    CHECK(a.starts_with("GET /ws?session_id=s%201&token=t HTTP/1.1\r\nHost: example.com:8443\r\n"));
    CHECK(a.ends_with("\r\n\r\n"));

    // Server side.
    const http_request req = parse_request(a);
    CHECK(req.path == "/ws");
    CHECK(req.query_param("session_id") == "s 1");
    CHECK(req.query_param("token") == "t");
    CHECK(*req.find("Origin") == "https://app.example");
    CHECK(*req.find("Authorization") == "Bearer abc.def");
    const upgrade_check chk = check_upgrade(req);
    REQUIRE(chk.ok());
    CHECK(chk.key == c1.key());
    CHECK(chk.offered_subprotocols == protos);

    std::string out;
    REQUIRE(write_accept_response(out, chk.key, select_subprotocol(chk.offered_subprotocols, {"tether.v1"})));
    out += "\x81\x02hi";  // first server frame in the same segment
    std::string rest;
    const http_response res = parse_response(out, &rest);
    CHECK(rest == "\x81\x02hi");
    const std::error_code ec = c1.validate(res);
    CHECK(!ec);
    CHECK(ec == handshake_error::ok);
    CHECK(c1.selected_subprotocol() == "tether.v1");

    // A plain client (no subprotocols, no extras) through the short overload.
    tether::rng r4(1);
    client_handshake plain;
    const std::string p = plain.build_request("h", "/", r4);
    const http_request preq = parse_request(p);  // check_upgrade's views point into it
    const upgrade_check pc = check_upgrade(preq);
    REQUIRE(pc.ok());
    CHECK(pc.offered_subprotocols.empty());
    CHECK(p.find("Sec-WebSocket-Protocol") == std::string::npos);
    out.clear();
    REQUIRE(write_accept_response(out, pc.key));
    CHECK(!plain.validate(parse_response(out)));
    CHECK(plain.selected_subprotocol().empty());
}

TEST_CASE("handshake: client rejects bad responses") {
    tether::rng rng(5);
    client_handshake c;
    CHECK(c.validate(http_response{}) == handshake_error::not_started);
    const std::vector<std::string> protos{"tether.v1"};
    REQUIRE(!c.build_request("server", "/chat", protos, {}, rng).empty());
    const auto accept_arr = compute_accept(c.key());
    const std::string accept(accept_arr.data(), accept_arr.size());

    auto response = [&](std::string status_line, std::vector<http_header> fields) {
        std::string s = status_line + "\r\n";
        for (const auto& f : fields) s += f.name + ": " + f.value + "\r\n";
        return parse_response(s + "\r\n");
    };
    const std::vector<http_header> good{
        {"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", accept}};
    CHECK(!c.validate(response("HTTP/1.1 101 Switching Protocols", good)));
    CHECK(c.selected_subprotocol().empty());

    auto plus = [&](std::vector<http_header> more) {
        auto v = good;
        v.insert(v.end(), more.begin(), more.end());
        return v;
    };
    auto minus = [&](std::string_view name) {
        auto v = good;
        std::erase_if(v, [&](const http_header& h) { return h.name == name; });
        return v;
    };
    auto replace = [&](std::string_view name, std::string value) {
        auto v = good;
        for (auto& h : v)
            if (h.name == name) h.value = value;
        return v;
    };

    CHECK(!c.validate(response("HTTP/1.1 101 Switching Protocols",
                               {{"upgrade", "WebSocket"}, {"connection", "keep-alive, upgrade"},
                                {"sec-websocket-accept", accept}})));

    const http_response unauthorized =
        parse_response("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n");
    CHECK(c.validate(unauthorized) == handshake_error::bad_status);
    CHECK(unauthorized.status == 401);
    CHECK(c.validate(response("HTTP/1.1 200 OK", good)) == handshake_error::bad_status);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", minus("Upgrade"))) ==
          handshake_error::no_upgrade);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", replace("Upgrade", "h2c"))) ==
          handshake_error::no_upgrade);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", minus("Connection"))) ==
          handshake_error::no_connection);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", replace("Connection", "close"))) ==
          handshake_error::no_connection);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", minus("Sec-WebSocket-Accept"))) ==
          handshake_error::no_accept);
    // Wrong accept: the RFC example's value, the key itself, a one-character change.
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols",
                              replace("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))) ==
          handshake_error::bad_accept);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols",
                              replace("Sec-WebSocket-Accept", std::string(c.key())))) ==
          handshake_error::bad_accept);
    std::string off_by_one = accept;
    off_by_one[3] = off_by_one[3] == 'A' ? 'B' : 'A';
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", replace("Sec-WebSocket-Accept", off_by_one))) ==
          handshake_error::bad_accept);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols",
                              plus({{"Sec-WebSocket-Accept", accept}}))) == handshake_error::bad_accept);
    // Subprotocols.
    CHECK(!c.validate(response("HTTP/1.1 101 Switching Protocols", plus({{"Sec-WebSocket-Protocol", "tether.v1"}}))));
    CHECK(c.selected_subprotocol() == "tether.v1");
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", plus({{"Sec-WebSocket-Protocol", "chat"}}))) ==
          handshake_error::bad_subprotocol);
    CHECK(c.selected_subprotocol().empty());
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols", plus({{"Sec-WebSocket-Protocol", "TETHER.V1"}}))) ==
          handshake_error::bad_subprotocol);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols",
                              plus({{"Sec-WebSocket-Protocol", "tether.v1, chat"}}))) ==
          handshake_error::bad_subprotocol);
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols",
                              plus({{"Sec-WebSocket-Protocol", "tether.v1"},
                                    {"Sec-WebSocket-Protocol", "tether.v1"}}))) ==
          handshake_error::bad_subprotocol);
    // Extensions: none offered, so any in use fails; an empty field does not.
    CHECK(c.validate(response("HTTP/1.1 101 Switching Protocols",
                              plus({{"Sec-WebSocket-Extensions", "permessage-deflate"}}))) ==
          handshake_error::unexpected_extension);
    CHECK(!c.validate(response("HTTP/1.1 101 Switching Protocols", plus({{"Sec-WebSocket-Extensions", ""}}))));

    // A client that offered nothing must refuse any subprotocol.
    client_handshake none;
    REQUIRE(!none.build_request("server", "/", rng).empty());
    const auto a2 = compute_accept(none.key());
    CHECK(none.validate(response("HTTP/1.1 101 Switching Protocols",
                                 {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                                  {"Sec-WebSocket-Accept", std::string(a2.data(), a2.size())},
                                  {"Sec-WebSocket-Protocol", "tether.v1"}})) == handshake_error::bad_subprotocol);
}

TEST_CASE("handshake: client build_request refuses bad arguments") {
    tether::rng rng(3);
    client_handshake c;
    const std::vector<std::string> ok{"a"};
    CHECK(c.build_request("", "/", rng).empty());
    CHECK(c.build_request("a b", "/", rng).empty());
    CHECK(c.build_request("h\r\nX: y", "/", rng).empty());
    CHECK(c.build_request("h", "", rng).empty());
    CHECK(c.build_request("h", "chat", rng).empty());
    CHECK(c.build_request("h", "/a b", rng).empty());
    CHECK(c.build_request("h", "/a#frag", rng).empty());
    const std::vector<std::string> bad_token{"a b"};
    CHECK(c.build_request("h", "/", bad_token, {}, rng).empty());
    const std::vector<std::string> dup{"a", "a"};
    CHECK(c.build_request("h", "/", dup, {}, rng).empty());
    const std::array<http_header, 1> owned{{{"Sec-WebSocket-Key", "x"}}};
    CHECK(c.build_request("h", "/", ok, owned, rng).empty());
    const std::array<http_header, 1> inject{{{"X", "1\r\nY: 2"}}};
    CHECK(c.build_request("h", "/", ok, inject, rng).empty());
    CHECK(c.key().empty());  // nothing was remembered
    CHECK(c.validate(http_response{}) == handshake_error::not_started);
    CHECK(!c.build_request("[::1]:80", "/", ok, {}, rng).empty());
}

TEST_CASE("handshake: error category") {
    const std::error_code ec = handshake_error::bad_accept;
    CHECK(ec.category() == handshake_error_category());
    CHECK(std::string(ec.category().name()) == "tether.ws.handshake");
    CHECK(ec.message() == "Sec-WebSocket-Accept does not match the key");
    CHECK(ec != make_error_code(handshake_error::bad_status));
    for (int e = 0; e <= static_cast<int>(handshake_error::unexpected_extension); ++e)
        CHECK(std::error_code(e, handshake_error_category()).message().find("unknown") == std::string::npos);
}
