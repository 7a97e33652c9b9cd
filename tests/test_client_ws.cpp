// The bytes-mode stack (client::ws_client = client machine + ws::connection
// in the client role) against a tether::ws::connection in the server role,
// with this test acting as a tiny tether server.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "test_client_util.hpp"
#include "tether/client/ws_client.hpp"
#include "tether/ws/connection.hpp"

using namespace ct;
namespace ws = tether::ws;

namespace {

std::vector<std::uint8_t> take_output(tc::ws_client& c) {
    std::vector<std::uint8_t> out;
    for (;;) {
        auto run = c.pending_output();
        if (run.empty()) break;
        out.insert(out.end(), run.begin(), run.end());
        c.consume_output(run.size());
    }
    return out;
}

std::vector<std::uint8_t> take_output(ws::connection& c) {
    std::vector<std::uint8_t> out;
    while (c.buffered_output() > 0) {
        auto run = c.pending_output();
        out.insert(out.end(), run.begin(), run.end());
        c.consume_output(run.size());
    }
    return out;
}

/// The client stack, one server connection at a time, and the "network".
struct net {
    tc::ws_client wc;
    std::optional<ws::connection> srv;
    time_point now = at_ms(0);
    int reject_status = 0;  ///< answer the next upgrade with this status

    std::vector<std::string> ev;      ///< client events
    std::vector<std::string> tcp;     ///< tcp actions
    std::vector<std::string> srv_rx;  ///< texts the server received
    std::vector<std::string> srv_ev;  ///< other server-side events
    std::vector<std::string> targets, auths, protos;

    explicit net(tc::ws_client_config cfg) : wc(std::move(cfg)) {}

    void clear() {
        ev.clear();
        tcp.clear();
        srv_rx.clear();
        srv_ev.clear();
    }

    void close_link() {
        if (!srv) return;
        const auto out = take_output(wc);
        if (!out.empty()) srv->handle_bytes(now, std::span<const std::uint8_t>(out));
        srv->handle_transport_closed(now);
        server_events();
        srv.reset();
    }

    bool server_events() {
        bool progress = false;
        while (auto e = srv->poll_event()) {
            progress = true;
            switch (e->type) {
                case ws::event_type::upgrade_request: {
                    const auto& req = srv->request();
                    targets.push_back(req.target);
                    auths.push_back(req.find("Authorization") ? *req.find("Authorization") : "");
                    protos.push_back(req.find("Sec-WebSocket-Protocol") ? *req.find("Sec-WebSocket-Protocol") : "");
                    if (reject_status != 0) {
                        CHECK(!srv->reject(reject_status));
                        reject_status = 0;
                    } else {
                        CHECK(!srv->accept("tether.v1"));
                    }
                    break;
                }
                case ws::event_type::message:
                    if (e->is_text) srv_rx.emplace_back(e->text());
                    break;
                case ws::event_type::close_received:
                    srv_ev.push_back("close_received " + std::to_string(ws::to_int(e->code)) + " " +
                                     std::string(e->reason));
                    break;
                case ws::event_type::closed: srv_ev.push_back("closed " + std::to_string(ws::to_int(e->code))); break;
                default: break;
            }
        }
        return progress;
    }

    void run() {
        for (int guard = 0; guard < 1000; ++guard) {
            bool progress = false;
            while (auto e = wc.poll_event()) {
                ev.push_back(describe(*e));
                progress = true;
            }
            while (auto a = wc.poll_action()) {
                progress = true;
                if (a->type == tc::tcp_action_type::connect_tcp) {
                    tcp.push_back("connect");
                    srv.emplace(ws::connection::server(now, {}));
                    wc.handle_tcp_connected(now);
                } else {
                    tcp.push_back("close");
                    close_link();
                }
            }
            if (srv) {
                const auto up = take_output(wc);
                if (!up.empty()) {
                    srv->handle_bytes(now, std::span<const std::uint8_t>(up));
                    progress = true;
                }
                progress = server_events() || progress;
                const auto down = take_output(*srv);
                if (!down.empty()) {
                    // Feed in two pieces to cross a boundary somewhere.
                    const std::size_t half = down.size() / 2;
                    wc.handle_bytes(now, std::span<const std::uint8_t>(down.data(), half));
                    wc.handle_bytes(now, std::span<const std::uint8_t>(down.data() + half, down.size() - half));
                    progress = true;
                }
            }
            if (!progress) return;
        }
        FAIL("the network did not settle");
    }

    void server_send(const std::string& text) {
        REQUIRE(srv);
        CHECK(!srv->send_text(text));
        run();
    }
};

tc::ws_client_config stack_config() {
    tc::ws_client_config c;
    c.client = test_config(5);
    c.client.backoff.jitter_percent = 0;
    c.client.token = "tok";
    c.host = "example.com:8080";
    c.ws.seed = 99;
    return c;
}

}  // namespace

TEST_CASE("ws_client: the whole session over bytes against a ws server connection") {
    net n(stack_config());
    CHECK(!n.wc.join(n.now, "core"));
    CHECK(!n.wc.connect(n.now));
    n.run();
    CHECK(n.tcp == std::vector<std::string>{"connect"});
    REQUIRE(n.targets.size() == 1);
    CHECK(n.targets[0] == "/?token=tok");
    CHECK(n.auths[0] == "Bearer tok");
    CHECK(n.protos[0] == "tether.v1");
    REQUIRE(n.wc.websocket());
    CHECK(n.wc.websocket()->state() == ws::state::open);
    CHECK(n.wc.machine().state() == tc::state::connecting);

    n.clear();
    n.server_send(hello("s1"));
    CHECK(n.ev == std::vector<std::string>{"connected sid=s1 resumed=0"});
    CHECK(n.srv_rx == std::vector<std::string>{join_frame("core", "c1")});

    n.clear();
    n.server_send(joined_none("core", 0));
    CHECK(n.wc.machine().state() == tc::state::live);
    const auto m = n.wc.send(n.now, "core", "chat.message", R"({"a":1})");
    REQUIRE(m);
    n.run();
    REQUIRE(n.srv_rx.size() == 1);
    CHECK(n.srv_rx[0].find(std::string(m.id.view())) != std::string::npos);

    n.clear();
    n.server_send(ack(m.id.view(), "core", 1));
    n.server_send(room_event("core", 1, m.id.view(), R"({"a":1})", "neo"));
    CHECK(n.ev == std::vector<std::string>{
                      "ack id=" + std::string(m.id.view()) + " room=core eid=1 status=accepted",
                      "message room=core eid=1 kind=chat.message sender=neo id=" + std::string(m.id.view()) +
                          R"( payload={"a":1})"});
    CHECK(n.wc.machine().pending() == 0);

    n.clear();
    n.server_send(ping(77));
    CHECK(n.srv_rx == std::vector<std::string>{pong_frame(77)});

    // A restart: 1012 with retry_after_ms; the client echoes the close, the
    // wrapper asks for the socket to be closed, then reconnects on time.
    n.clear();
    CHECK(!n.srv->close(n.now, ws::close_code::service_restart, R"({"reason":"restart","retry_after_ms":1830})"));
    n.run();
    CHECK(n.ev == std::vector<std::string>{"reconnecting delay_ns=1830000000 attempt=1 code=1012 http=0"});
    CHECK(n.tcp == std::vector<std::string>{"close"});
    CHECK(n.wc.next_deadline() == at_ms(1830));
    n.clear();
    n.now = at_ms(1830);
    n.wc.handle_timeout(n.now);
    n.run();
    CHECK(n.tcp == std::vector<std::string>{"connect"});
    REQUIRE(n.targets.size() == 2);
    CHECK(n.targets[1] == "/?session_id=s1&token=tok");
    n.server_send(hello("s1", true));
    CHECK(n.srv_rx == std::vector<std::string>{join_frame("core", "c2", 1, "e1")});
}

TEST_CASE("ws_client: 401 at the upgrade -> token_required; set_token reconnects") {
    net n(stack_config());
    n.reject_status = 401;
    CHECK(!n.wc.connect(n.now));
    n.run();
    CHECK(n.ev == std::vector<std::string>{"token_required code=1006 http=401"});
    CHECK(n.tcp == std::vector<std::string>{"connect", "close"});
    CHECK(n.wc.machine().state() == tc::state::waiting_for_token);
    n.clear();
    CHECK(!n.wc.set_token(n.now, "fresh"));
    n.run();
    CHECK(n.tcp == std::vector<std::string>{"connect"});
    REQUIRE(n.auths.size() == 2);
    CHECK(n.auths[1] == "Bearer fresh");
    n.server_send(hello("s2"));
    CHECK(n.wc.machine().state() == tc::state::live);
}

TEST_CASE("ws_client: a binary message closes with 1003; heartbeat timeout closes with 4008") {
    net n(stack_config());
    CHECK(!n.wc.connect(n.now));
    n.run();
    n.server_send(hello("s1", false, 1000));
    REQUIRE(n.wc.machine().state() == tc::state::live);

    SUBCASE("binary") {
        const std::uint8_t b[] = {1, 2, 3};
        CHECK(!n.srv->send_binary(b));
        n.clear();
        n.run();
        CHECK(n.srv_ev.size() >= 1);
        CHECK(n.srv_ev[0] == R"(close_received 1003 {"reason":"binary_not_negotiated"})");
        CHECK(n.ev == std::vector<std::string>{"stopped reason=protocol_error code=1003 http=0"});
    }
    SUBCASE("heartbeat") {
        CHECK(n.wc.next_deadline() == at_ms(11000));
        n.clear();
        n.now = at_ms(11000);
        n.wc.handle_timeout(n.now);
        n.run();
        REQUIRE(!n.srv_ev.empty());
        CHECK(n.srv_ev[0] == R"(close_received 4008 {"reason":"heartbeat_timeout"})");
        CHECK(n.ev == std::vector<std::string>{"reconnecting delay_ns=1000000000 attempt=1 code=4008 http=0"});
        CHECK(n.tcp == std::vector<std::string>{"close"});
    }
}

TEST_CASE("ws_client: a dead TCP connection is a 1006 loss; a failed TCP connect too") {
    net n(stack_config());
    CHECK(!n.wc.connect(n.now));
    n.run();
    n.server_send(hello("s1"));
    n.clear();
    n.srv.reset();  // the peer vanished
    n.wc.handle_tcp_closed(n.now);
    n.run();
    CHECK(n.ev == std::vector<std::string>{"reconnecting delay_ns=1000000000 attempt=1 code=1006 http=0"});
    CHECK(n.tcp == std::vector<std::string>{"close"});

    tc::ws_client w(stack_config());
    CHECK(!w.connect(at_ms(0)));
    auto a = w.poll_action();
    REQUIRE(a);
    CHECK(a->type == tc::tcp_action_type::connect_tcp);
    w.handle_tcp_closed(at_ms(5));  // connect refused
    auto e = w.poll_event();
    REQUIRE(e);
    CHECK(describe(*e) == "reconnecting delay_ns=1000000000 attempt=1 code=1006 http=0");
    CHECK(w.next_deadline() == at_ms(1005));
}

TEST_CASE("ws_client: an upgrade request the ws layer refuses to build stops the client") {
    auto cfg = stack_config();
    cfg.client.path = "no-slash";
    tc::ws_client w(cfg);
    CHECK(!w.connect(at_ms(0)));
    auto a = w.poll_action();
    REQUIRE(a);
    CHECK(a->type == tc::tcp_action_type::connect_tcp);
    w.handle_tcp_connected(at_ms(1));
    auto e = w.poll_event();
    REQUIRE(e);
    CHECK(describe(*e) == "stopped reason=protocol_error code=1002 http=0");
    a = w.poll_action();
    REQUIRE(a);
    CHECK(a->type == tc::tcp_action_type::close_tcp);
    CHECK(w.buffered_output() == 0);
}
