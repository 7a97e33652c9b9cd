// The connection object: handshake paths, both roles talking to each other,
// closing from either side, timeouts, local misuse, bounds, shared frames.
#include <doctest/doctest.h>

#include "ws_test_util.hpp"

using namespace tt;

namespace {
const std::string good_request =
    "GET /room/1?session_id=abc&token=s%20x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, tether.v1\r\n\r\n";

std::string replace(std::string s, std::string_view from, std::string_view to) {
    const auto pos = s.find(from);
    REQUIRE(pos != std::string::npos);
    s.replace(pos, from.size(), to);
    return s;
}

std::string as_string(const bytes& v) { return std::string(v.begin(), v.end()); }

transcript handshake_only(const std::string& req) {
    transcript t;
    auto c = ws::connection::server(t0, {});
    c.handle_bytes(t0, req);
    drain_events(c, t, false);
    t.output = drain_output(c);
    return t;
}
}  // namespace

TEST_CASE("server handshake: the application sees the request, then accepts") {
    auto c = ws::connection::server(t0, {});
    c.handle_bytes(t0, good_request + "\x81");  // a frame byte right behind the request stays buffered
    auto e = c.poll_event();
    REQUIRE(e);
    CHECK(e->type == ws::event_type::upgrade_request);
    CHECK(c.request().path == "/room/1");
    CHECK(c.request().query_param("token") == std::optional<std::string>("s x"));
    CHECK(c.request().query_param("session_id") == std::optional<std::string>("abc"));
    REQUIRE(c.request().find("origin"));
    CHECK(*c.request().find("Origin") == "http://example.com");
    REQUIRE(c.offered_subprotocols().size() == 2);
    CHECK(c.send_text("early") == ws::error::not_open);
    CHECK(!c.poll_event());  // nothing happens until the decision
    CHECK(c.accept("nope") == ws::error::bad_argument);
    CHECK(!c.accept("tether.v1"));
    CHECK(c.subprotocol() == "tether.v1");
    const std::string resp = as_string(drain_output(c));
    CHECK(resp.rfind("HTTP/1.1 101 ", 0) == 0);
    CHECK(resp.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    CHECK(resp.find("Sec-WebSocket-Protocol: tether.v1\r\n") != std::string::npos);
    e = c.poll_event();
    REQUIRE(e);
    CHECK(e->type == ws::event_type::open);
    // The pipelined byte plus the rest of the frame make a message.
    c.handle_bytes(t0, bytes{0x81, 0x41, 0x41, 0x41, 0x41, 0x41 ^ 0x41});
    e = c.poll_event();
    REQUIRE(e);
    CHECK(e->text() == "A");
}

TEST_CASE("server handshake failures answer with the right HTTP status") {
    struct c_ { const char* name; std::string req; int status; const char* must_contain; };
    const std::vector<c_> cases{
        {"POST", replace(good_request, "GET ", "POST "), 405, "Allow: GET"},
        {"version 8", replace(good_request, "Version: 13", "Version: 8"), 426, "Sec-WebSocket-Version: 13"},
        {"no key", replace(good_request, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400, ""},
        {"short key", replace(good_request, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="), 400, ""},
        {"no upgrade token", replace(good_request, "Upgrade: websocket", "Upgrade: h2c"), 400, ""},
        {"no connection token", replace(good_request, "keep-alive, Upgrade", "keep-alive"), 400, ""},
        {"garbage", "HELLO\r\n\r\n", 400, ""},
    };
    for (const auto& k : cases) {
        INFO(k.name);
        const transcript t = handshake_only(k.req);
        REQUIRE(t.events.size() == 2);
        CHECK(t.events[0] == "failed:1006:" + std::to_string(k.status));
        CHECK(t.events[1] == "closed:1006");
        const std::string out = as_string(t.output);
        CHECK(out.rfind("HTTP/1.1 " + std::to_string(k.status), 0) == 0);
        CHECK(out.find(k.must_contain) != std::string::npos);
    }
    SUBCASE("headers past the bound") {
        ws::config cfg;
        cfg.max_header_bytes = 256;
        auto c = ws::connection::server(t0, cfg);
        c.handle_bytes(t0, replace(good_request, "Origin: ", "X-Pad: " + std::string(400, 'p') + "\r\nOrigin: "));
        transcript t;
        drain_events(c, t);
        REQUIRE(!t.events.empty());
        CHECK((t.events[0] == "failed:1006:431" || t.events[0] == "failed:1006:400"));
    }
}

TEST_CASE("the application can refuse the upgrade") {
    auto c = ws::connection::server(t0, {});
    c.handle_bytes(t0, good_request);
    REQUIRE(c.poll_event()->type == ws::event_type::upgrade_request);
    CHECK(c.reject(200) == ws::error::bad_argument);
    CHECK(!c.reject(401, "bad token"));
    CHECK(as_string(drain_output(c)).rfind("HTTP/1.1 401", 0) == 0);
    auto e = c.poll_event();
    REQUIRE(e);
    CHECK(describe(*e) == "closed:1006");
    CHECK(e->http_status == 401);
    CHECK(c.accept() == ws::error::wrong_state);
}

TEST_CASE("opening handshake timeout") {
    auto c = ws::connection::server(t0, {});
    c.handle_bytes(t0, std::string_view("GET / HTTP/1.1\r\n"));
    CHECK(!c.poll_event());
    CHECK(c.next_deadline() == t0 + std::chrono::seconds(10));
    c.handle_timeout(t0 + std::chrono::seconds(9));
    CHECK(!c.poll_event());
    c.handle_timeout(t0 + std::chrono::seconds(10));
    CHECK(describe(*c.poll_event()) == "closed:1006");
}

TEST_CASE("client and server talk to each other") {
    ws::config ccfg;
    ccfg.subprotocols = {"tether.v1"};
    auto p = open_pair(ccfg);
    CHECK(p.client.subprotocol() == "");  // the server chose none
    REQUIRE(!p.client.send_text("from client"));
    REQUIRE(!p.client.send_binary(bytes{0, 1, 2}));
    REQUIRE(!p.server.send_text("from server"));
    // Application-level fragmentation, with a ping in between.
    REQUIRE(!p.client.send_frame(ws::opcode::text, b("frag"), false));
    REQUIRE(!p.client.ping(b("pp")));
    CHECK(p.client.send_frame(ws::opcode::text, b("x"), true) == ws::error::wrong_state);
    REQUIRE(!p.client.send_frame(ws::opcode::continuation, b("ment"), true));
    CHECK(p.client.send_frame(ws::opcode::continuation, b("x"), true) == ws::error::wrong_state);
    transcript tc, ts;
    pump(p.client, p.server, &tc, &ts);
    CHECK(ts.events == std::vector<std::string>{"text:from client", std::string("binary:\0\1\2", 10), "ping:pp",
                                                "text:fragment"});
    CHECK(tc.events == std::vector<std::string>{"text:from server", "pong:pp"});
}

TEST_CASE("client frames are masked with keys from the seeded rng, deterministically") {
    auto make = [] {
        ws::config cfg;
        cfg.seed = 7;
        return ws::connection::client(t0, cfg, "h", "/");
    };
    auto a = make();
    auto b2 = make();
    CHECK(drain_output(a) == drain_output(b2));  // same Sec-WebSocket-Key
    auto p = open_pair();
    REQUIRE(!p.client.send_text("Hello"));
    const bytes f = drain_output(p.client);
    REQUIRE(f.size() == 11);
    CHECK(f[0] == 0x81);
    CHECK(f[1] == 0x85);
    for (std::size_t i = 0; i < 5; ++i) CHECK((f[6 + i] ^ f[2 + i % 4]) == "Hello"[i]);
}

TEST_CASE("client handshake validation") {
    auto client_with_response = [](const std::string& resp) {
        auto c = ws::connection::client(t0, {}, "h", "/");
        (void)drain_output(c);
        c.handle_bytes(t0, resp);
        transcript t;
        drain_events(c, t);
        return t.events;
    };
    CHECK(client_with_response("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n") ==
          std::vector<std::string>{"failed:1006:401", "closed:1006"});
    CHECK(client_with_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n") ==
          std::vector<std::string>{"failed:1006:101", "closed:1006"});  // wrong accept for our key
}

TEST_CASE("closing handshake initiated locally, from either side") {
    for (const bool client_first : {true, false}) {
        INFO("client first: " << client_first);
        auto p = open_pair();
        ws::connection& a = client_first ? p.client : p.server;
        ws::connection& o = client_first ? p.server : p.client;
        CHECK(a.close(t0, static_cast<ws::close_code>(1005)) == ws::error::bad_close_code);
        CHECK(a.close(t0, static_cast<ws::close_code>(999)) == ws::error::bad_close_code);
        CHECK(a.close(t0, ws::close_code::normal, std::string(124, 'r')) == ws::error::reason_too_long);
        CHECK(a.close(t0, ws::close_code::normal, "\xff") == ws::error::invalid_utf8);
        REQUIRE(!a.close(t0, ws::close_code::going_away, "bye"));
        CHECK(a.state() == ws::state::closing);
        CHECK(a.next_deadline() == t0 + std::chrono::seconds(5));
        CHECK(a.send_text("late") == ws::error::closing);
        CHECK(a.close(t0) == ws::error::closing);
        transcript ta, to;
        if (client_first) pump(p.client, p.server, &ta, &to); else pump(p.client, p.server, &to, &ta);
        CHECK(to.events == std::vector<std::string>{"close_received:1001:bye", "closed:1001"});
        CHECK(ta.events == std::vector<std::string>{"close_received:1001:", "closed:1001"});
        CHECK(a.state() == ws::state::closed);
        CHECK(o.state() == ws::state::closed);
        CHECK(o.send_text("late") == ws::error::closing);
        CHECK(a.next_deadline() == tether::never);
    }
}

TEST_CASE("close timeout when the peer never answers") {
    auto c = open_server();
    REQUIRE(!c.close(t0, ws::close_code::normal));
    c.handle_timeout(t0 + std::chrono::milliseconds(4999));
    CHECK(!c.poll_event());
    c.handle_timeout(t0 + std::chrono::seconds(5));
    CHECK(describe(*c.poll_event()) == "closed:1006");
    CHECK(!c.poll_event());
}

TEST_CASE("transport closed without a close frame is 1006, once") {
    auto c = open_server();
    c.handle_transport_closed(t0);
    CHECK(describe(*c.poll_event()) == "closed:1006");
    c.handle_transport_closed(t0);
    CHECK(!c.poll_event());
    CHECK(c.send_text("x") == ws::error::closed);
}

TEST_CASE("local misuse is an error code with the tether.ws category") {
    auto c = open_server();
    const std::error_code ec = c.ping(bytes(126, 'x'));
    CHECK(ec == ws::error::control_too_big);
    CHECK(std::string(ec.category().name()) == "tether.ws");
    CHECK(!ec.message().empty());
    CHECK(c.send_text("\xc3\x28") == ws::error::invalid_utf8);
    CHECK(c.send_frame(ws::opcode::ping, {}, true) == ws::error::bad_argument);
}

TEST_CASE("output bound: sends past it are refused, nothing is dropped silently") {
    ws::config cfg;
    cfg.max_output_bytes = 100;
    auto c = open_server(cfg);
    CHECK(!c.send_binary(bytes(90, 1)));
    CHECK(c.send_binary(bytes(20, 1)) == ws::error::output_full);
    CHECK(c.buffered_output() == 92);
    c.consume_output(92);
    CHECK(!c.send_binary(bytes(20, 1)));
}

TEST_CASE("partial writes and gathered output produce the same byte stream") {
    auto p = open_pair();
    auto& s = p.server;
    REQUIRE(!s.send_text("one"));
    const auto shared = ws::connection::make_shared_frame("shared");
    REQUIRE(!s.send_shared(shared));
    REQUIRE(!s.send_text("two"));
    CHECK(shared.use_count() == 2);
    std::array<std::span<const std::uint8_t>, 8> runs;
    const std::size_t n = s.gather_output(runs);
    REQUIRE(n == 3);  // own bytes, the shared frame, own bytes
    CHECK(runs[1].data() == shared.data());
    bytes gathered;
    for (std::size_t i = 0; i < n; ++i) gathered.insert(gathered.end(), runs[i].begin(), runs[i].end());
    const bytes one_by_one = drain_output(s, 1);
    CHECK(gathered == one_by_one);
    CHECK(shared.use_count() == 1);  // released once written
    auto& c = p.client;
    c.handle_bytes(t0, one_by_one);
    transcript t;
    drain_events(c, t);
    CHECK(t.events == std::vector<std::string>{"text:one", "text:shared", "text:two"});
}

TEST_CASE("a broadcast frame is shared by many connections, not copied") {
    std::vector<ws::connection> conns;
    for (int i = 0; i < 10; ++i) conns.push_back(open_server());
    const auto f = ws::connection::make_shared_frame("to everyone");
    for (auto& c : conns) REQUIRE(!c.send_shared(f));
    CHECK(f.use_count() == 11);
    for (auto& c : conns) CHECK(c.pending_output().data() == f.data());
    conns.clear();
    CHECK(f.use_count() == 1);
}

TEST_CASE("an open connection keeps no handshake state and can give its buffers back") {
    auto c = open_server();
    CHECK(c.request().headers.empty());  // freed at accept()
    CHECK(c.offered_subprotocols().empty());
    c.handle_bytes(t0, masked_frame(0x81, b("before")));
    CHECK(c.poll_event()->text() == "before");
    c.shrink_buffers();
    // A frame split around the shrink still decodes: a partial frame is kept.
    const bytes wire = masked_frame(0x81, b("after shrink"));
    c.handle_bytes(t0, std::span<const std::uint8_t>(wire.data(), 5));
    CHECK(!c.poll_event());
    c.shrink_buffers();
    c.handle_bytes(t0, std::span<const std::uint8_t>(wire.data() + 5, wire.size() - 5));
    auto e = c.poll_event();
    REQUIRE(e);
    CHECK(e->text() == "after shrink");
}

TEST_CASE("an idle connection is small; cfg() reports the settings it runs with") {
    // Issue 5: 100,000 idle sessions. The config is not kept whole, a server
    // holds no random source, and no event ring.
    CHECK(sizeof(ws::connection) <= 300);
    ws::config cfg;
    cfg.max_message_bytes = 1234;
    cfg.max_frame_buffer = 999;
    cfg.max_output_bytes = 5555;
    cfg.close_timeout = std::chrono::seconds(7);
    cfg.auto_pong = false;
    cfg.validate_outgoing_utf8 = false;
    cfg.subprotocols = {"a", "b"};
    const auto c = ws::connection::server(t0, cfg);
    const ws::config got = c.cfg();
    CHECK(got.max_message_bytes == 1234);
    CHECK(got.max_frame_buffer == 999);
    CHECK(got.max_output_bytes == 5555);
    CHECK(got.close_timeout == std::chrono::seconds(7));
    CHECK(!got.auto_pong);
    CHECK(!got.validate_outgoing_utf8);
    // One config, many connections: it is only read while constructing.
    std::vector<ws::connection> many;
    for (int i = 0; i < 3; ++i) many.push_back(ws::connection::server(t0, cfg));
    for (const auto& m : many) CHECK(m.cfg().max_message_bytes == 1234);
}

TEST_CASE("subprotocols longer than the inline 15 bytes survive accept, moves and the client side") {
    const std::string longer = "a.much.longer.subprotocol.name";
    const std::string req = replace(good_request, "chat, tether.v1", "chat, " + longer);
    auto c = ws::connection::server(t0, {});
    c.handle_bytes(t0, req);
    auto e = c.poll_event();
    REQUIRE(e);
    REQUIRE(e->type == ws::event_type::upgrade_request);
    CHECK(!c.accept(longer));
    ws::connection moved = std::move(c);
    CHECK(moved.subprotocol() == longer);
    ws::connection again = ws::connection::server(t0, {});
    again = std::move(moved);
    CHECK(again.subprotocol() == longer);
    // The storage itself at the inline limit and one past it, moved both ways.
    for (const std::string name : {"", "fifteen.chars.x", "sixteen.chars.xx"}) {
        tether::small_string a(name);
        CHECK(a.view() == name);
        tether::small_string b(std::move(a));
        CHECK(b.view() == name);
        CHECK(a.view().empty());
        a = std::move(b);
        CHECK(a.view() == name);
        a.assign("x");
        CHECK(a.view() == "x");
    }
}
