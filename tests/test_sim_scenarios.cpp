// Client and server machines against each other on the simulated network
// (tests/sim/sim_world.hpp): the recovery scenarios of PROTOCOL.md, each
// asserting no loss and no duplicate where the protocol promises it.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "sim/sim_test_util.hpp"
#include "sim/sim_world.hpp"

using namespace tsim;
using namespace std::chrono_literals;
using namespace tsim::testing;

namespace {

/// The application messages client `n` got for `room`, as (event_id → payload),
/// failing on any duplicate event_id or out-of-order delivery.
std::vector<std::int64_t> event_ids(const world::node& n, std::string_view room) {
    std::vector<std::int64_t> ids;
    for (const auto& m : n.log.messages)
        if (m.room == room) ids.push_back(m.event_id);
    return ids;
}

bool strictly_increasing(const std::vector<std::int64_t>& v) {
    for (std::size_t i = 1; i < v.size(); ++i)
        if (v[i] <= v[i - 1]) return false;
    return true;
}

std::vector<std::string> payloads(const world::node& n, std::string_view room) {
    std::vector<std::string> out;
    for (const auto& m : n.log.messages)
        if (m.room == room) out.push_back(m.payload);
    return out;
}

/// Two clients, both live in room "core".
struct two_clients {
    world w{server_config()};
    std::size_t a = w.add_client("alice");
    std::size_t b = w.add_client("bob");
    two_clients() {
        for (std::size_t i : {a, b}) {
            w.with(i, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
        }
        REQUIRE(w.run_until([&] { return live(a) && live(b); }, 5s));
        w.run_for(100ms);
    }
    bool live(std::size_t i) { return testing::live(w, i); }
};

}  // namespace

TEST_CASE("sim: both clients see each other's messages once, in order, sender included") {
    two_clients t;
    for (int k = 0; k < 10; ++k)
        t.w.with(k % 2 ? t.a : t.b, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    t.w.run_for(1s);
    for (std::size_t i : {t.a, t.b}) {
        const auto ids = event_ids(t.w.client(i), "core");
        CHECK(ids.size() == 10);
        CHECK(strictly_increasing(ids));
        CHECK(t.w.client(i).c.machine().pending() == 0);
    }
    CHECK(t.w.client(t.a).log.acked.size() == 5);
    CHECK(t.w.client(t.a).log.saw("presence core bob joined"));
}

TEST_CASE("sim: reconnect within the grace period resumes the session, replays, no loss, no duplicate") {
    two_clients t;
    t.w.with(t.b, [](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(0))); });
    t.w.run_for(500ms);
    t.w.reset(t.a);  // abnormal: alice is away
    t.w.run_for(50ms);
    // While alice is away, bob talks.
    for (int k = 1; k <= 5; ++k) t.w.with(t.b, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    REQUIRE(t.w.run_until([&] { return t.live(t.a) && t.w.client(t.a).log.hellos == 2; }, 20s));
    t.w.run_for(500ms);
    const auto& alice = t.w.client(t.a);
    CHECK(alice.log.saw("alice connected resumed=1"));
    CHECK(alice.log.saw("resume=replay"));
    CHECK(t.w.client(t.b).log.saw("presence core alice away"));
    CHECK(t.w.client(t.b).log.saw("presence core alice reconnected"));
    CHECK_FALSE(t.w.client(t.b).log.saw("presence core alice left"));
    const auto ids = event_ids(alice, "core");
    CHECK(ids == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("sim: after the grace period a new session starts; a retransmitted message is deduplicated") {
    auto cfg = server_config();
    cfg.grace = 3s;
    world w(cfg);
    const auto a = w.add_client("alice");
    const auto b = w.add_client("bob");
    for (auto i : {a, b}) w.with(i, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
    REQUIRE(w.run_until([&] { return w.client(a).c.machine().state() == tether::client::state::live &&
                                      w.client(b).c.machine().state() == tether::client::state::live; }, 5s));
    // Alice sends; the server gets it and broadcasts, but the path dies
    // before the ack comes back.
    w.with(a, [](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(1))); });
    w.run_for(7ms);  // the message reached the server (5 ms latency) ...
    w.set_offline(a, true);  // ... and the link resets before the ack arrives
    w.reset(a);
    w.run_for(8s);  // past the grace period, connects keep failing
    CHECK(w.client(b).log.saw("presence core alice left"));
    CHECK(w.client(a).c.machine().pending() == 1);
    w.set_offline(a, false);
    REQUIRE(w.run_until([&] { return w.client(a).c.machine().pending() == 0; }, 40s));
    w.run_for(500ms);
    CHECK(w.client(a).log.saw("alice connected resumed=0"));
    CHECK(w.client(a).log.saw("duplicate"));
    // Bob saw the message exactly once.
    CHECK(payloads(w.client(b), "core") == std::vector<std::string>{msg(1)});
}

TEST_CASE("sim: server restart without durable history: epoch_changed, snapshot path, then live") {
    two_clients t;
    for (int k = 0; k < 3; ++k) t.w.with(t.a, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    t.w.run_for(500ms);
    t.w.restart_server(99);
    REQUIRE(t.w.run_until([&] { return t.live(t.a) && t.live(t.b) && t.w.client(t.a).log.hellos == 2 &&
                                        t.w.client(t.b).log.hellos == 2; }, 40s));
    CHECK(t.w.client(t.a).log.saw("snapshot_required core epoch_changed"));
    t.w.with(t.b, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(100))); });
    t.w.run_for(500ms);
    // After the snapshot (at head 0 of the new history), the new event is delivered.
    CHECK(t.w.client(t.a).log.messages.back().payload == msg(100));
    CHECK(t.w.client(t.a).log.messages.back().event_id == 1);
}

TEST_CASE("sim: replay window exceeded gives snapshot_required truncated") {
    auto cfg = server_config();
    cfg.replay_window = 4;
    world w(cfg);
    const auto a = w.add_client("alice");
    const auto b = w.add_client("bob");
    for (auto i : {a, b}) w.with(i, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
    w.run_for(1s);
    w.set_offline(a, true);
    w.reset(a);
    for (int k = 0; k < 10; ++k) w.with(b, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    w.run_for(2s);
    w.set_offline(a, false);
    REQUIRE(w.run_until([&] { return w.client(a).log.saw("snapshot_required core truncated"); }, 40s));
    w.with(b, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(42))); });
    w.run_for(1s);
    CHECK(w.client(a).log.messages.back().payload == msg(42));
    CHECK(w.client(a).log.messages.back().event_id == 11);
}

TEST_CASE("sim: drain spreads reconnects evenly over the window") {
    world w(server_config());
    std::vector<std::size_t> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(w.add_client("u" + std::to_string(i)));
    for (auto i : ids) w.with(i, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
    w.run_for(2s);
    const auto t_drain = w.now();
    w.server().drain(w.now(), 10s);
    w.run_for(100ms);  // close handshakes complete
    w.restart_server(5);  // the drained process exits; a new one takes over
    // Record when each client reconnects.
    std::vector<std::int64_t> reconnect_ms;
    std::vector<int> seen(ids.size(), 0);
    w.run_until([&] {
        for (std::size_t k = 0; k < ids.size(); ++k) {
            if (!seen[k] && w.client(ids[k]).log.connects >= 2) {
                seen[k] = 1;
                reconnect_ms.push_back(tether::to_ms(w.now()) - tether::to_ms(t_drain));
            }
        }
        return reconnect_ms.size() == ids.size();
    }, 30s);
    REQUIRE(reconnect_ms.size() == ids.size());
    for (auto i : ids) CHECK(w.client(i).log.saw("code=1012"));
    std::sort(reconnect_ms.begin(), reconnect_ms.end());
    // n = 20 over 10 s: one every 500 ms; no 1-second bucket holds more than 3.
    std::map<std::int64_t, int> per_second;
    for (auto ms : reconnect_ms) ++per_second[ms / 1000];
    for (const auto& [sec, n] : per_second) CHECK(n <= 3);
    CHECK(reconnect_ms.back() >= 9000);
}

TEST_CASE("sim: a slow reader is closed with 1013 and resumes without loss") {
    auto cfg = server_config();
    cfg.send_high_water = 64u << 10;
    cfg.rate_per_s = 0;  // bob floods on purpose
    world w(cfg);
    w.recv_window = 8u << 10;
    const auto a = w.add_client("alice");
    const auto b = w.add_client("bob");
    for (auto i : {a, b}) w.with(i, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
    w.run_for(1s);
    w.set_paused(a, true);
    const std::string big = "{\"text\":\"" + std::string(1000, 'x') + "\"}";
    for (int k = 0; k < 200; ++k) {
        w.with(b, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", big)); });
        w.run_for(5ms);
    }
    w.run_for(1s);
    w.set_paused(a, false);
    REQUIRE(w.run_until([&] { return event_ids(w.client(a), "core").size() >= 200; }, 60s));
    CHECK(w.client(a).log.saw("code=1013"));
    const auto ids = event_ids(w.client(a), "core");
    CHECK(ids.size() == 200);
    CHECK(strictly_increasing(ids));
}

TEST_CASE("sim: rate limited client backs off and loses nothing") {
    auto cfg = server_config();
    cfg.rate_per_s = 10;
    cfg.rate_burst = 5;
    world w(cfg);
    tether::client::ws_client_config cc;
    cc.client.honor_server_rate = false;  // learn the rate the hard way: rate_limited + AIMD
    const auto a = w.add_client("alice", cc);
    w.with(a, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
    w.run_for(1s);
    for (int k = 0; k < 30; ++k) w.with(a, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    REQUIRE(w.run_until([&] { return w.client(a).c.machine().pending() == 0; }, 60s));
    CHECK(w.client(a).log.saw("server_error rate_limited"));
    const auto ids = event_ids(w.client(a), "core");
    CHECK(ids.size() == 30);
    CHECK(strictly_increasing(ids));
    CHECK(payloads(w.client(a), "core").front() == msg(0));
    CHECK(payloads(w.client(a), "core").back() == msg(29));
    CHECK_FALSE(w.client(a).log.saw("code=4029"));
}

TEST_CASE("sim: a client that knows the advertised rate is never refused") {
    auto cfg = server_config();
    cfg.rate_per_s = 10;
    cfg.rate_burst = 5;
    world w(cfg);
    const auto a = w.add_client("alice");
    w.with(a, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
    w.run_for(1s);
    for (int k = 0; k < 30; ++k) w.with(a, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    REQUIRE(w.run_until([&] { return w.client(a).c.machine().pending() == 0; }, 60s));
    CHECK_FALSE(w.client(a).log.saw("rate_limited"));
    CHECK(event_ids(w.client(a), "core").size() == 30);
}

TEST_CASE("sim: outbox full while offline is refused, never dropped") {
    world w(server_config());
    tether::client::ws_client_config cc;
    cc.client.outbox.max_messages = 5;
    const auto a = w.add_client("alice", cc);
    w.with(a, [](auto& c, auto now) { (void)c.join(now, "core"); });
    for (int k = 0; k < 5; ++k) w.with(a, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    const auto r = w.with(a, [&](auto& c, auto now) { return c.send(now, "core", "chat.message", msg(5)); });
    CHECK_FALSE(r);
    CHECK(r.error == tether::client::client_error::outbox_full);
    CHECK(w.client(a).c.machine().pending() == 5);
    w.with(a, [](auto& c, auto now) { (void)c.connect(now); });
    REQUIRE(w.run_until([&] { return w.client(a).c.machine().pending() == 0; }, 10s));
    CHECK(payloads(w.client(a), "core").size() == 5);
}

TEST_CASE("sim: a wrong token is not retried until the application supplies one") {
    world w(server_config());
    tether::client::ws_client_config cc;
    cc.client.token = "wrong";
    cc.client.path = "/ws?user=mallory";
    const auto a = w.add_client("mallory", cc);
    w.with(a, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
    w.run_for(60s);
    CHECK(w.client(a).log.saw("token_required"));
    CHECK(w.client(a).log.connects == 1);
    w.with(a, [](auto& c, auto now) { (void)c.set_token(now, "right"); });
    REQUIRE(w.run_until([&] { return w.client(a).c.machine().state() == tether::client::state::live; }, 10s));
}

TEST_CASE("sim: heartbeat loss on the client side: silence is detected, the session resumes") {
    two_clients t;
    t.w.half_open(t.a);
    // Nothing arrives any more: after heartbeat (25 s) + grace (10 s) the
    // client declares the connection dead (4008 locally) and reconnects;
    // the server hands the session to the new connection and closes the
    // stale one with 4003.
    REQUIRE(t.w.run_until([&] { return t.w.client(t.a).log.hellos >= 2 && t.live(t.a); }, 120s));
    CHECK(t.w.client(t.a).log.saw("code=4008"));
    CHECK(t.w.client(t.a).log.saw("connected resumed=1"));
    t.w.run_for(30s);
    CHECK(t.w.trace.find("server log closed p= r= code=4003") != std::string::npos);
    t.w.with(t.b, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(7))); });
    t.w.run_for(1s);
    CHECK(t.w.client(t.a).log.messages.back().payload == msg(7));
}

TEST_CASE("sim: heartbeat loss on the server side: 4008 after two silent ping intervals, peers see away") {
    two_clients t;
    const auto t_loss = t.w.now();
    t.w.half_open(t.a);
    t.w.set_offline(t.a, true);  // and alice cannot come back
    REQUIRE(t.w.run_until([&] { return t.w.trace.find("code=4008") != std::string::npos &&
                                        t.w.trace.find("server log closed") != std::string::npos &&
                                        t.w.client(t.b).log.saw("presence core alice away"); }, 120s));
    const auto waited = tether::to_ms(t.w.now()) - tether::to_ms(t_loss);
    CHECK(waited >= 25000);
    CHECK(waited <= 55000);
}

TEST_CASE("sim: recorded inputs replay to identical outputs") {
    auto run = [] {
        world w(server_config(), 5);
        w.jitter = 3ms;
        const auto a = w.add_client("alice");
        const auto b = w.add_client("bob");
        for (auto i : {a, b}) w.with(i, [](auto& c, auto now) { (void)c.join(now, "core"); (void)c.connect(now); });
        w.run_for(1s);
        for (int k = 0; k < 20; ++k) {
            w.with(k % 2 ? a : b, [&](auto& c, auto now) { (void)c.send(now, "core", "chat.message", msg(k)); });
            if (k == 7) w.reset(a);
            w.run_for(37ms);
        }
        w.run_for(10s);
        return w.trace;
    };
    const std::string first = run();
    const std::string second = run();
    CHECK(first.size() > 1000);
    CHECK(first == second);
}

TEST_CASE("sim: a full outbox flushed after a reconnect is paced, not a burst that earns 4029") {
    world w(server_config());  // default server rate: 50/s, burst 100, 4029 after 20 refusals in 10 s
    tether::client::ws_client_config cc;
    cc.client.outbox.max_messages = 400;
    const auto a = w.add_client("alice", cc);
    w.with(a, [](auto& c, auto now) { (void)c.join(now, "core"); });
    for (int k = 0; k < 300; ++k) w.with(a, [&](auto& c, auto now) { REQUIRE(c.send(now, "core", "chat.message", msg(k))); });
    w.with(a, [](auto& c, auto now) { (void)c.connect(now); });
    REQUIRE(w.run_until([&] { return w.client(a).c.machine().pending() == 0; }, 60s));
    CHECK_FALSE(w.client(a).log.saw("code=4029"));
    CHECK(w.client(a).log.hellos == 1);
    const auto ids = event_ids(w.client(a), "core");
    CHECK(ids.size() == 300);
    CHECK(strictly_increasing(ids));
}
