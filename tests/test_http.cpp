// Tests for tether/ws/http.hpp: the incremental, bounded HTTP/1.1 head parsers.
//
// Every vector is parsed in one call, then again at every split point and
// byte by byte; status, http_status, the total `consumed` and the parsed
// message must be identical, and the bytes after the head must be left to
// the caller untouched.
#include <doctest/doctest.h>

#include <tether/core/random.hpp>
#include <tether/ws/http.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

using namespace tether::ws;
using namespace std::string_literals;

namespace {

bool same_headers(const std::vector<http_header>& a, const std::vector<http_header>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
    return true;
}

bool same(const http_request& a, const http_request& b) {
    return a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query &&
           a.version_minor == b.version_minor && same_headers(a.headers, b.headers);
}

bool same(const http_response& a, const http_response& b) {
    return a.version_minor == b.version_minor && a.status == b.status && a.reason == b.reason &&
           same_headers(a.headers, b.headers);
}

template <class Parser>
auto& message_of(Parser& p) {
    if constexpr (std::is_same_v<Parser, http_request_parser>)
        return p.request();
    else
        return p.response();
}

/// Feeds `chunks` in order the way a socket loop would: stops at done/error
/// and returns the final result with `consumed` summed over all calls, plus
/// the bytes that were not consumed (the caller's).
struct run_outcome {
    http_parse_status status;
    std::size_t consumed;
    int http_status;
    std::string leftover;
};

template <class Parser>
run_outcome run(Parser& p, const std::vector<std::string_view>& chunks) {
    run_outcome o{http_parse_status::need_more, 0, 0, {}};
    std::size_t i = 0;
    for (; i < chunks.size(); ++i) {
        const auto r = p.feed(chunks[i]);
        REQUIRE(r.consumed <= chunks[i].size());
        o.consumed += r.consumed;
        o.status = r.status;
        o.http_status = r.http_status;
        if (r.status == http_parse_status::need_more) {
            REQUIRE(r.consumed == chunks[i].size());
            REQUIRE(r.http_status == 0);
            continue;
        }
        o.leftover = std::string(chunks[i].substr(r.consumed));
        ++i;
        break;
    }
    for (; i < chunks.size(); ++i) {
        o.leftover += chunks[i];
        // Inert after the end: nothing more is taken, the verdict repeats.
        const auto again = p.feed(chunks[i]);
        REQUIRE(again.status == o.status);
        REQUIRE(again.consumed == 0);
        REQUIRE(again.http_status == o.http_status);
    }
    return o;
}

/// Parses `wire` whole, then at every split point and byte by byte, and
/// checks all agree. Returns the whole-input outcome; `whole` is the parser
/// used for it.
template <class Parser>
run_outcome parse_everywhere(std::string_view wire, Parser& whole, std::size_t max_bytes = 8192,
                             std::size_t max_headers = 64) {
    const run_outcome ref = run(whole, {wire});
    for (std::size_t k = 0; k <= wire.size(); ++k) {
        Parser p(max_bytes, max_headers);
        const run_outcome o = run(p, {wire.substr(0, k), wire.substr(k)});
        CAPTURE(k);
        REQUIRE(o.status == ref.status);
        REQUIRE(o.consumed == ref.consumed);
        REQUIRE(o.http_status == ref.http_status);
        REQUIRE(o.leftover == ref.leftover);
        REQUIRE(p.error_reason() == whole.error_reason());
        if (ref.status == http_parse_status::done) REQUIRE(same(message_of(p), message_of(whole)));
    }
    // Three pieces, a coarse sweep of (a, b) pairs (coarser for big inputs).
    const std::size_t step_a = std::max<std::size_t>(7, wire.size() / 50);
    const std::size_t step_b = std::max<std::size_t>(5, wire.size() / 50);
    for (std::size_t a = 0; a <= wire.size(); a += step_a) {
        for (std::size_t b = a; b <= wire.size(); b += step_b) {
            Parser p(max_bytes, max_headers);
            const run_outcome o =
                run(p, {wire.substr(0, a), wire.substr(a, b - a), wire.substr(b)});
            CAPTURE(a);
            CAPTURE(b);
            REQUIRE(o.status == ref.status);
            REQUIRE(o.consumed == ref.consumed);
            REQUIRE(o.leftover == ref.leftover);
        }
    }
    {
        Parser p(max_bytes, max_headers);
        std::vector<std::string_view> bytes;
        for (std::size_t k = 0; k < wire.size(); ++k) bytes.push_back(wire.substr(k, 1));
        const run_outcome o = run(p, bytes);
        REQUIRE(o.status == ref.status);
        REQUIRE(o.consumed == ref.consumed);
        REQUIRE(o.http_status == ref.http_status);
        REQUIRE(o.leftover == ref.leftover);
        if (ref.status == http_parse_status::done) REQUIRE(same(message_of(p), message_of(whole)));
    }
    return ref;
}

struct request_error_vector {
    const char* name;
    std::string wire;
    int status;
};

}  // namespace

TEST_CASE("http: RFC 6455 §1.3 request, frame bytes left to the caller") {
    const std::string head =
        "GET /chat HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: http://example.com\r\n"
        "Sec-WebSocket-Protocol: chat, superchat\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n";
    const std::string frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"s;  // RFC 6455 §5.7
    const std::string wire = head + frame;

    http_request_parser p;
    const auto o = parse_everywhere(wire, p);
    REQUIRE(o.status == http_parse_status::done);
    CHECK(o.consumed == head.size());
    CHECK(o.leftover == frame);
    CHECK(p.bytes_consumed() == head.size());

    const http_request& r = p.request();
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat");
    CHECK(r.path == "/chat");
    CHECK(r.query.empty());
    CHECK(r.version_minor == 1);
    REQUIRE(r.headers.size() == 7);
    CHECK(r.headers[0].name == "Host");
    CHECK(r.headers[0].value == "server.example.com");
    CHECK(r.headers[5].name == "Sec-WebSocket-Protocol");
    CHECK(r.headers[5].value == "chat, superchat");
    REQUIRE(r.find("sec-websocket-key") != nullptr);
    CHECK(*r.find("SEC-WEBSOCKET-KEY") == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(r.find("Cookie") == nullptr);
    CHECK(r.count("host") == 1);
}

TEST_CASE("http: field values are OWS-trimmed, names keep their case") {
    const std::string wire =
        "GET / HTTP/1.1\r\n"
        "host:example.com\r\n"
        "X-Empty:\r\n"
        "X-Pad: \t a b \t \r\n"
        "X-Obs: caf\xc3\xa9\r\n"
        "\r\n";
    http_request_parser p;
    const auto o = parse_everywhere(wire, p);
    REQUIRE(o.status == http_parse_status::done);
    CHECK(o.leftover.empty());
    const auto& h = p.request().headers;
    REQUIRE(h.size() == 4);
    CHECK(h[0].name == "host");
    CHECK(h[0].value == "example.com");
    CHECK(h[1].value.empty());
    CHECK(h[2].value == "a b");
    CHECK(h[3].value == "caf\xc3\xa9");
}

TEST_CASE("http: leading empty lines are skipped (RFC 9112 §2.2)") {
    const std::string wire = "\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\nrest";
    http_request_parser p;
    const auto o = parse_everywhere(wire, p);
    REQUIRE(o.status == http_parse_status::done);
    CHECK(o.consumed == wire.size() - 4);
    CHECK(o.leftover == "rest");
    CHECK(p.request().path == "/x");
}

TEST_CASE("http: request-target forms") {
    struct v {
        std::string target;
        std::string path;
        std::string query;
    };
    const std::vector<v> ok = {
        {"/", "/", ""},
        {"/chat?session_id=abc&token=s%20x", "/chat", "session_id=abc&token=s%20x"},
        {"/a/b;c=d/e@f:g", "/a/b;c=d/e@f:g", ""},
        {"/?", "/", ""},
        {"/p?q?r/s", "/p", "q?r/s"},
        {"http://example.com", "/", ""},
        {"ws://example.com:8080/chat?x=1", "/chat", "x=1"},
        {"WSS://[::1]:443?y", "/", "y"},
        {"https://example.com/", "/", ""},
    };
    for (const auto& t : ok) {
        CAPTURE(t.target);
        const std::string wire = "GET " + t.target + " HTTP/1.1\r\nHost: example.com\r\n\r\n";
        http_request_parser p;
        const auto o = parse_everywhere(wire, p);
        REQUIRE(o.status == http_parse_status::done);
        CHECK(p.request().target == t.target);
        CHECK(p.request().path == t.path);
        CHECK(p.request().query == t.query);
    }
    const std::vector<std::string> bad = {
        "/chat#frag", "/a%2", "/a%zz", "/a\"b", "/a<b>", "/{x}", "/a\\b", "/a|b", "/caf\xc3\xa9",
        "example.com:443", "ftp://example.com/", "http:///x", "http://user@host/", "chat",
    };
    for (const auto& t : bad) {
        CAPTURE(t);
        const std::string wire = "GET " + t + " HTTP/1.1\r\nHost: example.com\r\n\r\n";
        http_request_parser p;
        const auto o = parse_everywhere(wire, p);
        CHECK(o.status == http_parse_status::error);
        CHECK(o.http_status == 400);
        CHECK(o.consumed == wire.size());  // detected when the head was complete
    }
    // "*" (asterisk-form) parses; check_upgrade is what refuses it.
    http_request_parser p;
    REQUIRE(p.feed("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").status == http_parse_status::done);
    CHECK(p.request().path == "*");
}

TEST_CASE("http: request rejections with their status, at every split point") {
    const std::string big(9000, 'x');
    std::string many;
    for (int i = 0; i < 65; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    std::string crlfs;
    for (int i = 0; i < 5000; ++i) crlfs += "\r\n";
    const std::vector<request_error_vector> vectors = {
        {"bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
        {"bare LF ends head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
        {"bare CR", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
        {"tab fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400},
        {"space before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
        {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        {"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n", 400},
        {"bad name char", "GET / HTTP/1.1\r\nHost: a\r\nX(Y): z\r\n\r\n", 400},
        {"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n", 400},
        {"no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
        {"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, 400},
        {"ESC in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b b\r\n\r\n", 400},
        {"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400},
        {"control in target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"missing Host", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 400},
        {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
        {"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
        {"Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
        {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
        {"lowercase http", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
        {"HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
        {"HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400},
        {"no version", "GET /\r\nHost: a\r\n\r\n", 400},
        {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
        {"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"bad method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"Transfer-Encoding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"Content-Length list", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", 400},
        {"Content-Length sign", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400},
        {"Content-Length differs",
         "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + big + "\r\n\r\n", 431},
        {"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + many + "\r\n", 431},
        {"endless CRLF", crlfs, 431},
    };
    for (const auto& v : vectors) {
        CAPTURE(v.name);
        http_request_parser p;
        const auto o = parse_everywhere(v.wire, p);
        CHECK(o.status == http_parse_status::error);
        CHECK(o.http_status == v.status);
        CHECK(p.failed());
        CHECK(p.error_status() == v.status);
        CHECK(!p.error_reason().empty());
    }
}

TEST_CASE("http: errors are detected as soon as the offending byte arrives") {
    http_request_parser p;
    auto r = p.feed("GET / HTTP/1.1\r\nHost: a\r\n");
    CHECK(r.status == http_parse_status::need_more);
    r = p.feed("X: \x01 and more bytes");
    CHECK(r.status == http_parse_status::error);
    CHECK(r.consumed == 4);
    CHECK(r.http_status == 400);

    http_request_parser q;
    r = q.feed("GET /\n");
    CHECK(r.status == http_parse_status::error);
    CHECK(r.consumed == 6);
}

TEST_CASE("http: the header bound is exact") {
    const std::string head = "GET / HTTP/1.1\r\nHost: example.com\r\nX: yz\r\n\r\n";
    {
        http_request_parser p(head.size());
        const auto o = parse_everywhere(head + "tail", p, head.size());
        CHECK(o.status == http_parse_status::done);
        CHECK(o.leftover == "tail");
    }
    {
        http_request_parser p(head.size() - 1);
        const auto o = parse_everywhere(head, p, head.size() - 1);
        CHECK(o.status == http_parse_status::error);
        CHECK(o.http_status == 431);
        CHECK(o.consumed == head.size() - 1);  // the byte over the bound is not taken
    }
    {
        // Header-count bound: 2 fields allowed, 3 refused.
        http_request_parser p(8192, 2);
        CHECK(parse_everywhere(head, p, 8192, 2).status == http_parse_status::done);
        const std::string three = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n";
        http_request_parser q(8192, 2);
        const auto o = parse_everywhere(three, q, 8192, 2);
        CHECK(o.status == http_parse_status::error);
        CHECK(o.http_status == 431);
    }
}

TEST_CASE("http: byte-by-byte feeding is linear (1 MiB head)") {
    // A quadratic rescan would take ~10^12 steps here and time out.
    std::string wire = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; wire.size() < (1u << 20) - 64; ++i) wire += "X-F: " + std::string(100, 'v') + "\r\n";
    wire += "\r\n";
    http_request_parser p(1u << 20, 100000);
    std::size_t consumed = 0;
    http_parse_result r;
    for (std::size_t i = 0; i < wire.size(); ++i) {
        r = p.feed(std::string_view(wire).substr(i, 1));
        consumed += r.consumed;
        if (r.status != http_parse_status::need_more) break;
    }
    CHECK(r.status == http_parse_status::done);
    CHECK(consumed == wire.size());
    CHECK(p.request().headers.size() > 9000);
}

TEST_CASE("http: HTTP/1.0 without Host parses; reset() reuses the parser") {
    http_request_parser p;
    auto r = p.feed("GET /old HTTP/1.0\r\n\r\n");
    REQUIRE(r.status == http_parse_status::done);
    CHECK(p.request().version_minor == 0);
    CHECK(p.request().find("Host") == nullptr);
    CHECK(p.feed("more").consumed == 0);

    p.reset();
    CHECK(p.status() == http_parse_status::need_more);
    r = p.feed("GET /new HTTP/1.1\r\nHost: b\r\n\r\n");
    REQUIRE(r.status == http_parse_status::done);
    CHECK(p.request().path == "/new");
    CHECK(p.request().headers.size() == 1);
}

TEST_CASE("http: query parameters are percent-decoded per RFC 3986") {
    http_request r;
    r.query = "session_id=abc&token=s%20x&user=neo";
    CHECK(r.query_param("session_id") == "abc");
    CHECK(r.query_param("token") == "s x");
    CHECK(r.query_param("user") == "neo");
    CHECK(!r.query_param("missing"));
    CHECK(!r.query_param("Token"));  // names are case-sensitive
    auto all = r.query_params();
    REQUIRE(all);
    REQUIRE(all->size() == 3);
    CHECK((*all)[1].name == "token");
    CHECK((*all)[1].value == "s x");

    r.query = "a+b=c+d&flag&&e=&%74oken=%2B%2f%41&x=1=2&a+b=second";
    CHECK(r.query_param("a+b") == "c+d");  // '+' is not a space; first one wins
    CHECK(r.query_param("flag") == "");
    CHECK(r.query_param("e") == "");
    CHECK(r.query_param("token") == "+/A");
    CHECK(r.query_param("x") == "1=2");
    all = r.query_params();
    REQUIRE(all);
    CHECK(all->size() == 6);

    r.query = "bad=%zz&good=1&worse=%4";
    CHECK(!r.query_param("bad"));
    CHECK(r.query_param("good") == "1");
    CHECK(!r.query_param("worse"));
    CHECK(!r.query_params());

    r.query = "%00=%ff";
    CHECK(r.query_param(std::string_view("\0", 1)) == "\xff");

    // End to end, straight from the wire.
    http_request_parser p;
    REQUIRE(p.feed("GET /chat?session_id=abc&token=s%20x&user=neo HTTP/1.1\r\nHost: h\r\n\r\n").status ==
            http_parse_status::done);
    CHECK(p.request().path == "/chat");
    CHECK(p.request().query_param("token") == "s x");

    std::string out;
    CHECK(percent_decode("%41%42c", out));
    CHECK(out == "ABc");
    out.clear();
    CHECK(!percent_decode("%", out));
    CHECK(!percent_decode("%1", out));
    CHECK(!percent_decode("%g1", out));
}

TEST_CASE("http: 101 response, frame bytes left to the caller") {
    const std::string head =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "\r\n";
    const std::string frame = "\x81\x05Hello";
    http_response_parser p;
    const auto o = parse_everywhere(head + frame, p);
    REQUIRE(o.status == http_parse_status::done);
    CHECK(o.consumed == head.size());
    CHECK(o.leftover == frame);
    const auto& r = p.response();
    CHECK(r.status == 101);
    CHECK(r.reason == "Switching Protocols");
    CHECK(r.version_minor == 1);
    REQUIRE(r.headers.size() == 4);
    CHECK(*r.find("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("http: response status lines") {
    struct v {
        std::string line;
        bool ok;
        int status;
        std::string reason;
    };
    const std::vector<v> vectors = {
        {"HTTP/1.1 401 Unauthorized", true, 401, "Unauthorized"},
        {"HTTP/1.1 101", true, 101, ""},
        {"HTTP/1.1 101 ", true, 101, ""},
        {"HTTP/1.0 503 Service  Unavailable\t!", true, 503, "Service  Unavailable\t!"},
        {"HTTP/1.1 200 d\xc3\xa9j\xc3\xa0", true, 200, "d\xc3\xa9j\xc3\xa0"},
        {"HTTP/1.1 99 Low", false, 0, ""},
        {"HTTP/1.1 600 High", false, 0, ""},
        {"HTTP/1.1 1010 Long", false, 0, ""},
        {"HTTP/1.1 10x Bad", false, 0, ""},
        {"HTTP/1.1  101 Bad", false, 0, ""},
        {"HTTP/1.1", false, 0, ""},
        {"HTTP/2 101 Bad", false, 0, ""},
        {"HTTP/3.0 101 Bad", false, 0, ""},
        {"ICY 200 OK", false, 0, ""},
    };
    for (const auto& t : vectors) {
        CAPTURE(t.line);
        const std::string wire = t.line + "\r\nX: y\r\n\r\n";
        http_response_parser p;
        const auto o = parse_everywhere(wire, p);
        if (t.ok) {
            REQUIRE(o.status == http_parse_status::done);
            CHECK(p.response().status == t.status);
            CHECK(p.response().reason == t.reason);
            CHECK(p.response().headers.size() == 1);
        } else {
            CHECK(o.status == http_parse_status::error);
        }
    }
    // Field-line rules are shared with requests.
    http_response_parser p;
    CHECK(parse_everywhere("HTTP/1.1 101 OK\r\nX: a\r\n b\r\n\r\n"s, p).status == http_parse_status::error);
    http_response_parser q;
    CHECK(parse_everywhere("HTTP/1.1 101 OK\nX: a\r\n\r\n"s, q).status == http_parse_status::error);
}

TEST_CASE("http: mutated requests agree whole vs byte by byte, and never crash") {
    const std::string base =
        "GET /chat?x=1 HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
        "\x81\x00";
    const char alphabet[] = {'\r', '\n', ' ', '\t', ':', '\0', '\x7f', '\x80', 'a', '%', '/', '?', '#'};
    tether::rng rng(20240601);
    int done = 0, failed = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string wire = base;
        const int edits = 1 + static_cast<int>(rng.below(3));
        for (int e = 0; e < edits; ++e) {
            const std::size_t pos = rng.below(wire.size());
            switch (rng.below(3)) {
                case 0: wire[pos] = alphabet[rng.below(sizeof alphabet)]; break;
                case 1: wire.erase(pos, 1); break;
                default: wire.insert(pos, 1, alphabet[rng.below(sizeof alphabet)]); break;
            }
        }
        const std::size_t limit = 64 + rng.below(200);
        http_request_parser whole(limit, 4 + rng.below(4));
        const auto ref = run(whole, {wire});
        http_request_parser bytewise(limit, whole.max_headers());
        std::vector<std::string_view> bytes;
        for (std::size_t k = 0; k < wire.size(); ++k) bytes.push_back(std::string_view(wire).substr(k, 1));
        const auto o = run(bytewise, bytes);
        REQUIRE(o.status == ref.status);
        REQUIRE(o.consumed == ref.consumed);
        REQUIRE(o.http_status == ref.http_status);
        REQUIRE(o.leftover == ref.leftover);
        REQUIRE(ref.consumed <= limit);
        if (ref.status == http_parse_status::done) {
            REQUIRE(same(whole.request(), bytewise.request()));
            ++done;
        } else if (ref.status == http_parse_status::error) {
            REQUIRE((ref.http_status == 400 || ref.http_status == 431 || ref.http_status == 501 ||
                     ref.http_status == 505));
            ++failed;
        }
    }
    CHECK(done > 0);
    CHECK(failed > 0);
}
