// tether v1 server: heartbeat and liveness, presence across disconnects,
// grace, intentional close, rate limiting, bad-request escalation, binary
// frames, message size, slow readers, loop events (PROTOCOL.md §3-§5, §7).
#include <doctest/doctest.h>

#include "test_server_util.hpp"

using namespace st;

namespace {

client& ready(harness& h, const std::string& who) {
    client& c = h.connect(who);
    REQUIRE(c.open);
    REQUIRE(c.next().kind() == "server.hello");
    return c;
}

const server::event* last_event(const harness& h, server::event_type t) {
    for (auto it = h.events.rbegin(); it != h.events.rend(); ++it)
        if (it->type == t) return &*it;
    return nullptr;
}

}  // namespace

TEST_CASE("server.ping every heartbeat, with heads for the session's rooms") {
    harness h;
    client& a = ready(h, "alice");
    a.auto_pong = true;
    h.join(a, "core");
    h.join(a, "side");
    h.publish(a, "core", "m1");
    h.publish(a, "core", "m2");
    a.clear();
    h.advance(25s - 1ns);
    CHECK(a.inbox.empty());
    h.advance(1ns);
    REQUIRE(a.inbox.size() == 1);
    msg p = a.next();
    CHECK(p.kind() == "server.ping");
    CHECK(p.e.ts == 1'700'000'000'000 + 25'000);
    CHECK(p.heads() == std::map<std::string, std::int64_t>{{"core", 2}, {"side", 0}});
    // Answered pongs keep the connection alive indefinitely.
    h.advance(200s);
    CHECK(a.count("server.ping") == 8);
    CHECK_FALSE(a.close_code);
    CHECK(h.ep.state(a.id) == ws::state::open);
}

TEST_CASE("a ping without rooms carries no heads") {
    harness h;
    client& a = ready(h, "alice");
    h.advance(25s);
    msg p = a.next();
    CHECK(p.kind() == "server.ping");
    CHECK_FALSE(p.e.has(proto::field::heads));
}

TEST_CASE("silence across two ping intervals closes with 4008; the session goes away") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    b.auto_pong = true;
    h.join(a, "core");
    h.join(b, "core");
    b.clear();
    h.advance(50s - 1ns);
    CHECK_FALSE(a.close_code);
    h.advance(1ns);
    REQUIRE(a.closed_with(4008));
    CHECK(parse_close_reason(a.close_reason_text).reason == "heartbeat_timeout");
    CHECK(a.transport_closed);
    msg away = *b.take("presence.away");
    CHECK(away.e.user == "alice");
    CHECK(away.e.room_id == "core");
    CHECK(h.ep.session_count() == 2);  // resumable
    CHECK(last_event(h, server::event_type::closed)->code == 4008);
}

TEST_CASE("any frame counts as liveness: WebSocket pings without client.pong") {
    harness h;
    client& a = ready(h, "alice");
    for (int i = 0; i < 10; ++i) {
        h.advance(20s);
        REQUIRE(!a.ws.ping());
        h.pump();
    }
    CHECK_FALSE(a.close_code);
    CHECK(a.count("server.ping") == 8);
}

TEST_CASE("client.pong: ts must be an integer") {
    auto cfg = harness::default_cfg();
    cfg.max_bad_requests = 100;
    harness h(cfg);
    client& a = ready(h, "alice");
    h.send(a, R"({"kind":"client.pong","ts":1700000000000})");
    CHECK(a.inbox.empty());
    for (const char* bad : {R"({"kind":"client.pong","ts":"1"})", R"({"kind":"client.pong","ts":1.5})",
                            R"({"kind":"client.pong","ts":-1})", R"({"kind":"client.pong"})"}) {
        CAPTURE(bad);
        h.send(a, bad);
        REQUIRE(a.inbox.size() == 1);
        CHECK(a.next().e.code == "bad_request");
    }
}

TEST_CASE("abnormal close: away, then reconnected within grace") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    b.auto_pong = true;
    h.join(a, "core");
    h.join(b, "core");
    b.clear();
    const std::string sid = a.session_id;
    h.drop(a);
    msg away = b.next();
    CHECK(away.kind() == "presence.away");
    CHECK(away.e.user == "alice");
    h.advance(20s);
    b.clear();
    client& a2 = h.connect_resume("alice", sid);
    CHECK(a2.next().e.resumed == true);
    msg back = b.next();
    CHECK(back.kind() == "presence.reconnected");
    CHECK(back.e.user == "alice");
    CHECK(back.e.room_id == "core");
    // The grace timer was cancelled.
    a2.auto_pong = true;
    h.advance(60s);
    CHECK(b.count("presence.left") == 0);
    CHECK(h.ep.room("core")->members == 2);
}

TEST_CASE("grace expiry: presence.left, memberships dropped, session gone") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    b.auto_pong = true;
    h.join(a, "core");
    h.join(a, "side");
    h.join(b, "core");
    b.clear();
    const std::string sid = a.session_id;
    h.drop(a);
    CHECK(b.next().kind() == "presence.away");
    h.advance(30s - 1ns);
    CHECK(b.count("presence.left") == 0);
    h.advance(1ns);
    msg left = *b.take("presence.left");
    CHECK(left.e.user == "alice");
    CHECK(h.ep.session_count() == 1);
    CHECK(h.ep.room("core")->members == 1);
    CHECK(h.ep.room("side")->members == 0);
    const server::event* ev = last_event(h, server::event_type::left);
    REQUIRE(ev);
    CHECK(ev->principal == "alice");
    CHECK_FALSE(ev->conn.valid());  // no connection at expiry
    client& late = h.connect_resume("alice", sid);
    CHECK(late.next().e.resumed == false);
}

TEST_CASE("intentional close 1000/1001: presence.left at once, session not resumable") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    h.join(a, "core");
    h.join(b, "core");
    b.clear();
    const std::string sid = a.session_id;
    ws::close_code code = ws::close_code::normal;
    SUBCASE("1000") { code = ws::close_code::normal; }
    SUBCASE("1001") { code = ws::close_code::going_away; }
    h.close(a, code);
    CHECK(a.transport_closed);
    CHECK(b.kinds() == std::vector<std::string>{"presence.left"});
    CHECK(h.ep.session_count() == 1);
    CHECK(h.ep.room("core")->members == 1);
    CHECK(last_event(h, server::event_type::closed)->code == ws::to_int(code));
    client& again = h.connect_resume("alice", sid);
    CHECK(again.next().e.resumed == false);
}

TEST_CASE("a client close with another code is abnormal: away") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    h.join(a, "core");
    h.join(b, "core");
    b.clear();
    h.close(a, ws::close_code::internal_error);
    CHECK(b.kinds() == std::vector<std::string>{"presence.away"});
    CHECK(h.ep.session_count() == 2);
}

TEST_CASE("rate limit: rate_limited with retry_after_ms, then 4029 on abuse") {
    harness h;
    client& a = ready(h, "alice");
    h.join(a, "core");  // 1 token
    a.clear();
    for (int i = 0; i < 99; ++i) REQUIRE(!a.ws.send_text(R"({"kind":"client.pong","ts":1})"));
    h.pump();
    CHECK(a.inbox.empty());
    h.send(a, R"({"kind":"chat.message","room_id":"core","id":"r1","correlation_id":"rc"})");
    msg m = a.next();
    CHECK(m.e.code == "rate_limited");
    CHECK(m.e.retry_after_ms == 20);
    CHECK(m.e.id == "r1");
    CHECK(m.e.correlation_id == "rc");
    CHECK(h.ep.room("core")->head == 0);  // not processed
    h.now += 20ms;
    h.publish(a, "core", "r1");
    CHECK(a.take("server.ack")->e.status == "accepted");
    a.clear();
    // 20 refusals inside 10 s are tolerated (the one above and 19 more),
    // the 21st closes with 4029.
    for (int i = 0; i < 19; ++i) REQUIRE(!a.ws.send_text(R"({"kind":"client.pong","ts":1})"));
    h.pump();
    CHECK(a.count("server.error") == 19);
    CHECK_FALSE(a.close_code);
    h.send(a, R"({"kind":"client.pong","ts":1})");
    REQUIRE(a.closed_with(4029));
    const close_reason r = parse_close_reason(a.close_reason_text);
    CHECK(r.reason == "rate_limit");
    CHECK(r.retry_after_ms == 10000);
    CHECK(h.ep.session_count() == 1);  // resumable
}

TEST_CASE("repeated bad requests close with 1008; refusals that are not malformed do not count") {
    harness h;
    client& a = ready(h, "alice");
    for (int i = 0; i < 30; ++i)
        REQUIRE(!a.ws.send_text(R"({"kind":"chat.message","room_id":"nowhere","id":"x"})"));  // not_member
    h.pump();
    CHECK_FALSE(a.close_code);
    for (int i = 0; i < 10; ++i) REQUIRE(!a.ws.send_text("not json"));
    h.pump();
    CHECK_FALSE(a.close_code);
    h.send(a, R"({"kind":"server.hello"})");  // the 11th bad request
    REQUIRE(a.closed_with(1008));
    CHECK(parse_close_reason(a.close_reason_text).reason == "bad_requests");
}

TEST_CASE("bad requests spread over time do not escalate") {
    harness h;
    client& a = ready(h, "alice");
    a.auto_pong = true;
    for (int i = 0; i < 30; ++i) {
        h.send(a, "{}");
        h.advance(1s);
    }
    CHECK_FALSE(a.close_code);
}

TEST_CASE("binary frames are answered with close 1003") {
    harness h;
    client& a = ready(h, "alice");
    const std::uint8_t bytes[] = {1, 2, 3};
    REQUIRE(!a.ws.send_binary(bytes));
    h.pump();
    CHECK(a.closed_with(1003));
    CHECK(h.ep.session_count() == 1);  // abnormal: away
}

TEST_CASE("message size: exactly max_message_bytes is accepted, one more closes 1009") {
    harness h;
    client& a = ready(h, "alice");
    auto pong_of_size = [](std::size_t n) {
        const std::string head = R"({"kind":"client.pong","ts":1,"pad":")";
        return head + std::string(n - head.size() - 2, 'x') + "\"}";
    };
    const std::string exact = pong_of_size(65536);
    REQUIRE(exact.size() == 65536);
    h.send(a, exact);
    CHECK_FALSE(a.close_code);
    CHECK(a.inbox.empty());
    h.send(a, pong_of_size(65537));
    CHECK(a.closed_with(1009));
}

TEST_CASE("slow reader: output over send_high_water closes 1013, the session stays resumable") {
    auto cfg = harness::default_cfg();
    cfg.send_high_water = 4096;
    cfg.rate_per_s = 0;
    harness h(cfg);
    client& slow = ready(h, "slow");
    client& fast = ready(h, "fast");
    h.join(slow, "core");
    h.join(fast, "core");
    slow.clear();
    fast.clear();
    slow.reading = false;
    const std::string payload = "\"" + std::string(500, 'p') + "\"";
    int sent = 0;
    while (h.ep.state(slow.id) == ws::state::open && sent < 100) {
        h.publish(fast, "core", "m" + std::to_string(sent++), payload);
    }
    REQUIRE(h.ep.state(slow.id) == ws::state::closing);
    // Closed by the first event that took the queue past 4096 bytes.
    const std::size_t frame = fast.take("chat.message")->text->size() + 4;  // + 4-byte frame header
    CHECK(sent == static_cast<int>(4096 / frame + 1));
    CHECK(fast.count("presence.away") == 1);
    // Nothing more is queued for it past the mark.
    const std::size_t queued = h.ep.buffered_output(slow.id);
    h.publish(fast, "core", "after", payload);
    CHECK(h.ep.buffered_output(slow.id) == queued);
    CHECK(queued < 4096 + 1024);
    slow.reading = true;
    h.pump();
    REQUIRE(slow.closed_with(1013));
    const close_reason r = parse_close_reason(slow.close_reason_text);
    CHECK(r.reason == "slow_reader");
    CHECK(r.retry_after_ms == 5000);
    CHECK(h.ep.session_count() == 2);
    client& back = h.connect_resume("slow", slow.session_id);
    CHECK(back.next().e.resumed == true);
}

TEST_CASE("flush events: one per empty-to-non-empty transition") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    h.join(a, "core");
    h.join(b, "core");
    h.events.clear();
    // Bypass the harness so that output stays queued.
    REQUIRE(!a.ws.send_text(R"({"kind":"chat.message","room_id":"core","id":"f1"})"));
    REQUIRE(!a.ws.send_text(R"({"kind":"chat.message","room_id":"core","id":"f2"})"));
    const auto out = a.ws.pending_output();
    const std::vector<std::uint8_t> bytes(out.begin(), out.end());
    a.ws.consume_output(bytes.size());
    h.ep.handle_bytes(h.now, a.id, bytes);
    std::vector<server::conn_id> flushed;
    while (auto e = h.ep.poll_event())
        if (e->type == server::event_type::flush) flushed.push_back(e->conn);
    // Two broadcasts and two acks, but one flush per connection.
    REQUIRE(flushed.size() == 2);
    CHECK(std::count(flushed.begin(), flushed.end(), a.id) == 1);
    CHECK(std::count(flushed.begin(), flushed.end(), b.id) == 1);
    // Drained, then more output: a new flush.
    h.ep.consume_output(b.id, h.ep.buffered_output(b.id));
    h.publish(a, "core", "f3");
    bool again = false;
    for (const auto& e : h.events) again = again || (e.type == server::event_type::flush && e.conn == b.id);
    CHECK(again);
}

TEST_CASE("log events: connected, joined, left, closed, one each") {
    harness h;
    client& a = ready(h, "alice");
    h.join(a, "core");
    h.send(a, R"({"kind":"client.leave","room_id":"core"})");
    h.close(a, ws::close_code::normal);
    std::vector<std::string> log;
    for (const auto& e : h.events)
        if (e.type != server::event_type::flush) log.emplace_back(server::to_string(e.type));
    CHECK(log == std::vector<std::string>{"connected", "joined", "left", "closed", "close_transport"});
    CHECK(h.ep.connection_count() == 0);
    CHECK(h.ep.session_count() == 0);
}
