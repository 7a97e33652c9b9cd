// tether v1 server: upgrade, authentication, Origin, server.hello, session
// resume and takeover, drain (PROTOCOL.md §1, §3, §5, §7).
#include <doctest/doctest.h>

#include "test_server_util.hpp"

using namespace st;

namespace {

bool is_lower_hex32(std::string_view s) {
    if (s.size() != 32) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

const server::event* last_event(const harness& h, server::event_type t) {
    for (auto it = h.events.rbegin(); it != h.events.rend(); ++it)
        if (it->type == t) return &*it;
    return nullptr;
}

}  // namespace

TEST_CASE("server.hello is the first frame, with the advertised limits") {
    harness h;
    h.now = at_ms(1234);
    client& c = h.connect("alice");
    REQUIRE(c.open);
    CHECK(c.ws.subprotocol() == "tether.v1");
    REQUIRE(c.inbox.size() == 1);
    msg m = c.next();
    CHECK(m.kind() == "server.hello");
    CHECK(m.e.protocol_version == 1);
    CHECK(is_lower_hex32(m.e.session_id));
    CHECK(m.e.resumed == false);
    CHECK(m.e.heartbeat_ms == 25000);
    CHECK(m.e.ts == 1'700'000'000'000 + 1234);
    CHECK(m.caps() == std::vector<std::string>{"replay", "ack", "presence"});
    CHECK(m.e.limits.find(R"("max_message_bytes":65536)") != std::string_view::npos);
    CHECK(m.e.limits.find(R"("replay_window":1024)") != std::string_view::npos);
    CHECK(m.e.limits.find(R"("dedup_window_ms":300000)") != std::string_view::npos);
    CHECK(m.e.limits.find(R"("grace_ms":30000)") != std::string_view::npos);
    const server::event* ev = last_event(h, server::event_type::connected);
    REQUIRE(ev);
    CHECK(ev->principal == "alice");
    CHECK(ev->session_id == m.e.session_id);
    CHECK_FALSE(ev->resumed);
    CHECK(ev->conn == c.id);
    CHECK(h.ep.session_count() == 1);
    CHECK(h.ep.connection_count() == 1);
    CHECK(h.ep.principal(c.id) == "alice");
}

TEST_CASE("hello reflects the configuration") {
    auto cfg = harness::default_cfg();
    cfg.heartbeat = 10s;
    cfg.grace = 5s;
    cfg.replay_window = 7;
    cfg.dedup_window = 60s;
    cfg.max_message_bytes = 3000;
    harness h(cfg);
    client& c = h.connect("alice");
    msg m = c.next();
    CHECK(m.e.heartbeat_ms == 10000);
    CHECK(m.e.limits == R"({"max_message_bytes":3000,"replay_window":7,"dedup_window_ms":60000,"grace_ms":5000,"rate_per_s":50,"rate_burst":100})");
}

TEST_CASE("a max_message_bytes below the floor is raised: the server's own frames always fit") {
    auto cfg = harness::default_cfg();
    cfg.max_message_bytes = 250;  // fuzz_server: the hello was dropped at this size
    harness h(cfg);
    CHECK(h.ep.cfg().max_message_bytes == server::config::min_message_bytes);
    client& c = h.connect("alice");
    msg m = c.next();
    CHECK(m.kind() == "server.hello");
    CHECK(m.e.limits.find("\"max_message_bytes\":2048,") != std::string_view::npos);
}

TEST_CASE("a client that offers no subprotocol is accepted and speaks v1") {
    harness h;
    client& c = h.connect("alice", "/", {}, false);
    REQUIRE(c.open);
    CHECK(c.ws.subprotocol().empty());
    CHECK(c.next().kind() == "server.hello");
}

TEST_CASE("authentication: the hook decides; 401 and 403 refuse the upgrade") {
    harness h;
    SUBCASE("no credentials: 401") {
        client& c = h.connect("");
        CHECK_FALSE(c.open);
        CHECK(c.http_status == 401);
    }
    SUBCASE("bad token: 401") {
        client& c = h.connect("bad");
        CHECK_FALSE(c.open);
        CHECK(c.http_status == 401);
    }
    SUBCASE("forbidden principal: 403") {
        client& c = h.connect("banned");
        CHECK_FALSE(c.open);
        CHECK(c.http_status == 403);
    }
    SUBCASE("?token= works as well as the header") {
        client& c = h.connect("", "/chat?token=bob");
        REQUIRE(c.open);
        CHECK(h.ep.principal(c.id) == "bob");
        CHECK(c.next().kind() == "server.hello");
    }
    if (h.count_events(server::event_type::connected) == 0) {
        // Refused: no session, the loop was told to close, the log says why.
        CHECK(h.ep.session_count() == 0);
        CHECK(h.ep.connection_count() == 0);  // the harness closed the transport
        const server::event* ev = last_event(h, server::event_type::closed);
        REQUIRE(ev);
        CHECK(ev->http_status == h.clients[0]->http_status);
        CHECK(h.count_events(server::event_type::close_transport) == 1);
    }
}

TEST_CASE("authentication: a hook answering nonsense is a server error (500)") {
    auto cfg = harness::default_cfg();
    SUBCASE("empty principal") {
        cfg.authenticate = [](const ws::http_request&) { return server::auth_result{}; };
    }
    SUBCASE("status out of range") {
        cfg.authenticate = [](const ws::http_request&) { return server::auth_result{200, "x"}; };
    }
    SUBCASE("principal over the bound") {
        cfg.max_principal_bytes = 4;
        cfg.authenticate = [](const ws::http_request&) { return server::auth_result{0, "alice"}; };
    }
    harness h(cfg);
    client& c = h.connect("alice");
    CHECK_FALSE(c.open);
    CHECK(c.http_status == 500);
}

TEST_CASE("without an authenticate hook everyone is 'anonymous'") {
    server::config cfg;
    harness h(cfg);
    client& c = h.connect("");
    REQUIRE(c.open);
    CHECK(h.ep.principal(c.id) == "anonymous");
}

TEST_CASE("Origin allow-list") {
    auto cfg = harness::default_cfg();
    cfg.allowed_origins = {"https://app.example"};
    harness h(cfg);
    SUBCASE("listed origin") {
        client& c = h.connect("alice", "/", {{"Origin", "https://app.example"}});
        CHECK(c.open);
    }
    SUBCASE("other origin: 403, before authentication") {
        client& c = h.connect("bad", "/", {{"Origin", "https://evil.example"}});
        CHECK_FALSE(c.open);
        CHECK(c.http_status == 403);
    }
    SUBCASE("no Origin (not a browser): accepted") {
        client& c = h.connect("alice");
        CHECK(c.open);
    }
    SUBCASE("no allow-list: any origin") {
        harness any;
        client& c = any.connect("alice", "/", {{"Origin", "https://evil.example"}});
        CHECK(c.open);
    }
}

TEST_CASE("resume: same principal within grace restores the session") {
    harness h;
    client& a = h.connect("alice");
    const std::string sid = a.session_id;
    REQUIRE(is_lower_hex32(sid));
    h.join(a, "core");
    h.drop(a);
    CHECK(h.ep.session_count() == 1);  // away, not gone
    h.advance(29s);
    client& b = h.connect_resume("alice", sid);
    msg hello = b.next();
    CHECK(hello.e.resumed == true);
    CHECK(hello.e.session_id == sid);
    CHECK(h.ep.session_count() == 1);
    CHECK(h.ep.room("core")->members == 1);  // memberships kept
    CHECK(last_event(h, server::event_type::connected)->resumed);
}

TEST_CASE("resume refused: new session when expired, unknown, malformed or another principal's") {
    harness h;
    client& a = h.connect("alice");
    const std::string sid = a.session_id;
    h.join(a, "core");
    h.drop(a);
    std::string target_sid = sid;
    std::string who = "alice";
    SUBCASE("another principal") { who = "mallory"; }
    SUBCASE("after the grace period") { h.advance(30s); }
    SUBCASE("grace over but the timer not yet run") { h.now += 31s; }
    SUBCASE("unknown id") { target_sid = std::string(32, 'a'); }
    SUBCASE("malformed id") { target_sid = "XYZ"; }
    client& b = h.connect_resume(who, target_sid);
    REQUIRE(b.open);
    msg hello = b.next();
    CHECK(hello.e.resumed == false);
    CHECK(hello.e.session_id != sid);
}

TEST_CASE("takeover: a second connection with a connected session_id closes the first with 4003") {
    harness h;
    client& a = h.connect("alice");
    h.join(a, "core");
    client& peer = h.connect("bob");
    h.join(peer, "core");
    peer.clear();
    client& b = h.connect_resume("alice", a.session_id);
    CHECK(b.next().e.resumed == true);
    CHECK(a.closed_with(4003));
    CHECK(a.transport_closed);
    CHECK(h.ep.session_count() == 2);
    // No presence noise: the session never went away.
    CHECK(peer.inbox.empty());
    // The session's memberships moved to the new connection.
    a.clear();
    h.publish(peer, "core", "m1");
    CHECK(b.count("chat.message") == 1);
    CHECK(b.session_id == a.session_id);
}

TEST_CASE("drain: 1012 with retry_after_ms spread over the window, then 503") {
    harness h;
    std::vector<client*> cs;
    for (int i = 0; i < 4; ++i) cs.push_back(&h.connect("u" + std::to_string(i)));
    h.ep.drain(h.now, 10s);
    h.pump();
    for (int i = 0; i < 4; ++i) {
        REQUIRE(cs[i]->closed_with(1012));
        CHECK(cs[i]->close_reason_text.size() <= 123);
        const close_reason r = parse_close_reason(cs[i]->close_reason_text);
        CHECK(r.json_ok);
        CHECK(r.reason == "restart");
        CHECK(r.retry_after_ms == 10000 * i / 4);
    }
    CHECK(h.ep.draining());
    client& late = h.connect("zed");
    CHECK_FALSE(late.open);
    CHECK(late.http_status == 503);
    // Drained sessions are away (resumable elsewhere), not ended.
    CHECK(h.ep.session_count() == 4);
}

TEST_CASE("max_sessions: past the bound new sessions get 503") {
    auto cfg = harness::default_cfg();
    cfg.max_sessions = 2;
    harness h(cfg);
    client& a = h.connect("a");
    h.connect("b");
    CHECK(h.connect("c").http_status == 503);
    // Resuming an existing session is still possible.
    CHECK(h.connect_resume("a", a.session_id).open);
}

TEST_CASE("opening handshake timeout and malformed upgrades close the connection") {
    harness h;
    SUBCASE("silent connection") {
        const auto id = h.ep.open_connection(h.now);
        CHECK(h.ep.next_deadline() == h.now + 10s);
        h.now += 10s - 1ns;
        h.ep.handle_timeout(h.now);
        CHECK(h.ep.state(id) == ws::state::handshake);
        h.now += 1ns;
        h.ep.handle_timeout(h.now);
        CHECK(h.ep.state(id) == ws::state::closed);
        bool saw = false;
        while (auto e = h.ep.poll_event()) saw = saw || (e->type == server::event_type::close_transport && e->conn == id);
        CHECK(saw);
        CHECK(h.ep.next_deadline() == tether::never);
        h.ep.handle_transport_closed(h.now, id);
        CHECK(h.ep.connection_count() == 0);
        CHECK_FALSE(h.ep.is_live(id));
    }
    SUBCASE("not HTTP") {
        const auto id = h.ep.open_connection(h.now);
        h.ep.handle_bytes(h.now, id, std::string_view("hello\r\n\r\n"));
        const auto out = h.ep.pending_output(id);
        CHECK(std::string(out.begin(), out.end()).rfind("HTTP/1.1 400", 0) == 0);
        bool saw = false;
        while (auto e = h.ep.poll_event()) saw = saw || e->type == server::event_type::close_transport;
        CHECK(saw);
    }
}

TEST_CASE("stale connection ids are ignored") {
    harness h;
    client& a = h.connect("alice");
    const auto old = a.id;
    h.drop(a);
    CHECK_FALSE(h.ep.is_live(old));
    CHECK(h.ep.read_buffer(old).empty());
    CHECK(h.ep.handle_bytes(h.now, old, std::string_view("xx")) == 2);
    h.ep.consume_output(old, 5);
    h.ep.handle_transport_closed(h.now, old);
    // The slot is reused with a new generation.
    client& b = h.connect("bob");
    CHECK(b.id.index == old.index);
    CHECK(b.id.generation != old.generation);
    CHECK_FALSE(h.ep.is_live(old));
}

TEST_CASE("zero-copy input and gathered output, one byte at a time") {
    server::endpoint ep(harness::default_cfg());
    ws::config cc;
    cc.seed = 3;
    cc.subprotocols = {"tether.v1"};
    const std::vector<ws::http_header> auth{{"Authorization", "Bearer alice"}};
    ws::connection cl = ws::connection::client(at_ms(0), cc, "localhost", "/", auth);
    const auto id = ep.open_connection(at_ms(0));
    auto client_to_server = [&] {
        while (cl.buffered_output() > 0) {
            const auto run = cl.pending_output();
            for (std::uint8_t byte : run) {
                auto buf = ep.read_buffer(id, 1);
                REQUIRE(!buf.empty());
                buf[0] = byte;
                ep.handle_read(at_ms(0), id, 1);
            }
            cl.consume_output(run.size());
        }
    };
    std::vector<std::string> texts;
    auto server_to_client = [&] {
        std::array<std::span<const std::uint8_t>, 4> runs;
        while (ep.buffered_output(id) > 0) {
            const std::size_t n = ep.gather_output(id, runs);
            REQUIRE(n > 0);
            std::size_t total = 0;
            for (std::size_t k = 0; k < n; ++k) {
                cl.handle_bytes(at_ms(0), runs[k]);
                total += runs[k].size();
            }
            ep.consume_output(id, total);
            while (auto e = cl.poll_event())
                if (e->type == ws::event_type::message) texts.emplace_back(e->text());
        }
    };
    client_to_server();
    server_to_client();
    REQUIRE(cl.state() == ws::state::open);
    REQUIRE(texts.size() == 1);
    CHECK(msg(texts[0]).kind() == "server.hello");
    REQUIRE(!cl.send_text(R"({"kind":"client.join","room_id":"core","correlation_id":"z"})"));
    REQUIRE(!cl.send_text(R"({"kind":"chat.message","room_id":"core","id":"1","payload":[1,2,3]})"));
    client_to_server();
    server_to_client();
    REQUIRE(texts.size() == 4);
    CHECK(msg(texts[1]).e.correlation_id == "z");
    CHECK(msg(texts[2]).e.payload == "[1,2,3]");
    CHECK(msg(texts[3]).e.status == "accepted");
}
