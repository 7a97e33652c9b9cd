// tether v1 server: joins, resume modes and replay, presence, application
// events, acks, deduplication, errors (PROTOCOL.md §3, §7).
#include <doctest/doctest.h>

#include "test_server_util.hpp"

using namespace st;

namespace {

/// A client past server.hello, its inbox empty.
client& ready(harness& h, const std::string& who) {
    client& c = h.connect(who);
    REQUIRE(c.open);
    REQUIRE(c.next().kind() == "server.hello");
    return c;
}

std::string event_ids(client& c) {
    std::string out;
    while (auto m = c.take("chat.message")) out += std::to_string(*m->e.event_id) + ",";
    return out;
}

}  // namespace

TEST_CASE("fresh join: room.joined with resume none, head, epoch, members; echoes") {
    harness h;
    client& a = ready(h, "alice");
    h.send(a, R"({"kind":"client.join","room_id":"core","correlation_id":"j1"})");
    msg m = a.next();
    CHECK(m.kind() == "room.joined");
    CHECK(m.e.room_id == "core");
    CHECK(m.e.resume == "none");
    CHECK(m.e.head == 0);
    CHECK(m.e.epoch.size() == 18);
    CHECK(m.e.epoch.substr(0, 2) == "e-");
    CHECK(m.members() == std::vector<std::string>{"alice"});
    CHECK(m.e.correlation_id == "j1");
    CHECK_FALSE(m.e.has(proto::field::replay_to));
    CHECK(a.inbox.empty());  // no presence about oneself
    const auto info = h.ep.room("core");
    REQUIRE(info);
    CHECK(info->members == 1);
    CHECK(info->epoch == m.e.epoch);
    const auto& ev = h.events.back();
    CHECK(ev.type == server::event_type::joined);
    CHECK(ev.room_id == "core");
    CHECK(ev.principal == "alice");
}

TEST_CASE("join is idempotent: same answer, no second presence.joined") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    msg first = h.join(a, "core");
    h.join(b, "core");
    msg pj = a.next();
    CHECK(pj.kind() == "presence.joined");
    CHECK(pj.e.room_id == "core");
    CHECK(pj.e.user == "bob");
    CHECK(b.inbox.empty());
    const auto joined_events = h.count_events(server::event_type::joined);
    msg again = h.join(b, "core", R"(,"correlation_id":"again")");
    CHECK(again.e.resume == "none");
    CHECK(again.e.epoch == first.e.epoch);
    CHECK(again.e.correlation_id == "again");
    CHECK(again.members() == std::vector<std::string>{"alice", "bob"});
    CHECK(a.inbox.empty());  // no second presence.joined
    CHECK(h.count_events(server::event_type::joined) == joined_events);
    CHECK(h.ep.room("core")->members == 2);
}

TEST_CASE("members: each principal once, sorted, away sessions included") {
    harness h;
    client& z = ready(h, "zoe");
    client& a1 = ready(h, "alice");
    client& a2 = ready(h, "alice");  // a second session of the same principal
    client& m = ready(h, "mike");
    h.join(z, "core");
    h.join(a1, "core");
    h.join(a2, "core");
    h.join(m, "core");
    h.drop(m);  // away, still a member
    client& b = ready(h, "bob");
    msg j = h.join(b, "core");
    CHECK(j.members() == std::vector<std::string>{"alice", "bob", "mike", "zoe"});
    // Presence is per principal: alice's sessions hear of mike and bob, not of
    // each other; zoe heard of alice once.
    CHECK(a1.count("presence.joined") == 2);  // mike, bob
    CHECK(a2.count("presence.joined") == 2);
    CHECK(z.count("presence.joined") == 3);   // alice, mike, bob
}

TEST_CASE("presence is per principal: away, reconnected and left follow the principal over its sessions") {
    harness h;
    client& z = ready(h, "zoe");
    z.auto_pong = true;
    client& a1 = ready(h, "alice");
    h.join(z, "core");
    h.join(a1, "core");
    client& a2 = ready(h, "alice");
    h.join(a2, "core");
    CHECK(z.count("presence.joined") == 1);
    z.clear();
    // One of alice's sessions goes away: she is still present through the other.
    h.drop(a1);
    CHECK(z.count("presence.away") == 0);
    // Her last connected session goes away: now she is away.
    h.drop(a2);
    CHECK(z.count("presence.away") == 1);
    z.clear();
    // A third session joins while both are away: she is back, not new.
    client& a3 = ready(h, "alice");
    a3.auto_pong = true;
    h.join(a3, "core");
    CHECK(z.count("presence.reconnected") == 1);
    CHECK(z.count("presence.joined") == 0);
    z.clear();
    // The away sessions expire: she is still in the room, nobody hears `left`.
    h.advance(std::chrono::seconds(60));
    CHECK(z.count("presence.left") == 0);
    CHECK(h.ep.room("core")->members == 2);  // zoe and alice's live session
    // Her last session leaves: now she has left.
    h.send(a3, R"({"kind":"client.leave","room_id":"core"})");
    CHECK(z.count("presence.left") == 1);
}

TEST_CASE("application event: broadcast to every member including the sender, framed once, then ack") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    client& outsider = ready(h, "carol");
    h.join(a, "core");
    h.join(b, "core");
    a.clear();
    h.now = at_ms(5000);
    h.send(a, R"({"kind":"chat.message","room_id":"core","id":"c9f2-17","payload":{"text":"hi","n":[1,2]},"correlation_id":"p1"})");
    // Sender: the event, then the ack.
    REQUIRE(a.kinds() == std::vector<std::string>{"chat.message", "server.ack"});
    const std::string a_bytes = a.inbox.front();
    msg ev = a.next();
    CHECK(ev.e.room_id == "core");
    CHECK(ev.e.event_id == 1);
    CHECK(ev.e.sender == "alice");
    CHECK(ev.e.id == "c9f2-17");
    CHECK(ev.e.payload == R"({"text":"hi","n":[1,2]})");
    CHECK(ev.e.ts == 1'700'000'005'000);
    CHECK_FALSE(ev.e.has(proto::field::correlation_id));  // a request field, not relayed
    msg ack = a.next();
    CHECK(ack.e.id == "c9f2-17");
    CHECK(ack.e.room_id == "core");
    CHECK(ack.e.event_id == 1);
    CHECK(ack.e.status == "accepted");
    CHECK(ack.e.correlation_id == "p1");
    // Peer: exactly the same bytes.
    REQUIRE(b.inbox.size() == 1);
    CHECK(b.inbox.front() == a_bytes);
    CHECK(outsider.inbox.empty());
    CHECK(h.ep.room("core")->head == 1);
    // Contiguous event ids.
    for (int i = 2; i <= 5; ++i) h.publish(a, "core", "m" + std::to_string(i));
    CHECK(event_ids(b) == "1,2,3,4,5,");
}

TEST_CASE("payload null is relayed as null; a missing payload stays missing") {
    harness h;
    client& a = ready(h, "alice");
    h.join(a, "core");
    h.send(a, R"({"kind":"x.y","room_id":"core","id":"1","payload":null})");
    msg e1 = *a.take("x.y");
    CHECK(e1.e.payload == "null");
    h.send(a, R"({"kind":"x.y","room_id":"core","id":"2"})");
    msg e2 = *a.take("x.y");
    CHECK_FALSE(e2.e.has(proto::field::payload));
}

TEST_CASE("dedup: (principal, id) per room, across reconnects and connections") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    h.join(a, "core");
    h.join(b, "core");
    a.clear();
    b.clear();
    h.publish(a, "core", "same");
    CHECK(b.count("chat.message") == 1);
    a.clear();
    b.clear();
    SUBCASE("same connection") {
        h.publish(a, "core", "same");
    }
    SUBCASE("a new session of the same principal") {
        h.close(a, ws::close_code::normal);  // session ended for good
        client& a2 = ready(h, "alice");
        h.join(a2, "core");
        b.clear();
        h.publish(a2, "core", "same");
        REQUIRE(a2.inbox.size() == 1);
        msg ack = a2.next();
        CHECK(ack.e.status == "duplicate");
        CHECK(ack.e.event_id == 1);
        CHECK(b.inbox.empty());
        return;
    }
    SUBCASE("two connections of the same principal") {
        client& a2 = ready(h, "alice");
        h.join(a2, "core");
        a.clear();
        b.clear();
        h.publish(a2, "core", "same");
        REQUIRE(a2.inbox.size() == 1);
        CHECK(a2.next().e.status == "duplicate");
        CHECK(b.inbox.empty());
        return;
    }
    REQUIRE(a.inbox.size() == 1);
    msg ack = a.next();
    CHECK(ack.kind() == "server.ack");
    CHECK(ack.e.status == "duplicate");
    CHECK(ack.e.event_id == 1);
    CHECK(b.inbox.empty());  // not broadcast again
    CHECK(h.ep.room("core")->head == 1);
}

TEST_CASE("dedup: another principal's id is another message; so is the same id in another room") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    h.join(a, "core");
    h.join(a, "side");
    h.join(b, "core");
    a.clear();
    b.clear();
    h.publish(a, "core", "x");
    h.publish(b, "core", "x");
    h.publish(a, "side", "x");
    CHECK(h.ep.room("core")->head == 2);
    CHECK(h.ep.room("side")->head == 1);
    CHECK(a.take("server.ack")->e.status == "accepted");
    CHECK(a.take("server.ack")->e.status == "accepted");
    CHECK(b.take("server.ack")->e.status == "accepted");
}

TEST_CASE("dedup window: remembered 5 minutes, or the last dedup_min_ids") {
    auto cfg = harness::default_cfg();
    cfg.dedup_min_ids = 3;
    cfg.rate_per_s = 0;
    harness h(cfg);
    client& a = ready(h, "alice");
    a.auto_pong = true;
    h.join(a, "core");
    h.publish(a, "core", "old");
    for (int i = 0; i < 3; ++i) h.publish(a, "core", "n" + std::to_string(i));
    a.clear();
    h.advance(299s);
    a.clear();
    h.publish(a, "core", "old");  // inside 5 minutes: duplicate
    CHECK(a.take("server.ack")->e.status == "duplicate");
    h.advance(2s);
    a.clear();
    h.publish(a, "core", "n0");  // outside 5 minutes but among the last 3
    CHECK(a.take("server.ack")->e.status == "duplicate");
    h.publish(a, "core", "old");  // outside both: a new event
    msg ack = *a.take("server.ack");
    CHECK(ack.e.status == "accepted");
    CHECK(ack.e.event_id == 5);
}

TEST_CASE("resume modes (PROTOCOL.md §3, §7)") {
    auto cfg = harness::default_cfg();
    cfg.replay_window = 4;
    cfg.rate_per_s = 0;
    harness h(cfg);
    client& a = ready(h, "alice");
    const std::string epoch(h.join(a, "core").e.epoch);
    for (int i = 1; i <= 6; ++i) h.publish(a, "core", "m" + std::to_string(i));  // head 6; log holds 3..6
    a.clear();
    client& b = ready(h, "bob");
    auto join = [&](const std::string& extra) { return h.join(b, "core", extra); };
    const std::string ep = R"(,"epoch":")" + epoch + "\"";

    SUBCASE("no resume_from: none") {
        msg m = join("");
        CHECK(m.e.resume == "none");
        CHECK(m.e.head == 6);
        CHECK(b.inbox.empty());
    }
    SUBCASE("N inside the window: replay N+1..H in order, right after room.joined") {
        msg m = join(R"(,"resume_from":3)" + ep);
        CHECK(m.e.resume == "replay");
        CHECK(m.e.replay_to == 6);
        CHECK(m.e.head == 6);
        CHECK(b.kinds() == std::vector<std::string>{"chat.message", "chat.message", "chat.message"});
        CHECK(event_ids(b) == "4,5,6,");
    }
    SUBCASE("N = head - W: still replays (boundary)") {
        msg m = join(R"(,"resume_from":2)" + ep);
        CHECK(m.e.resume == "replay");
        CHECK(event_ids(b) == "3,4,5,6,");
    }
    SUBCASE("N < head - W: truncated") {
        msg m = join(R"(,"resume_from":1)" + ep);
        CHECK(m.e.resume == "snapshot_required");
        CHECK(m.e.reason == "truncated");
        CHECK(m.e.head == 6);
        CHECK(m.e.epoch == epoch);
        CHECK(b.inbox.empty());
    }
    SUBCASE("N = head: replay with nothing to send") {
        msg m = join(R"(,"resume_from":6)" + ep);
        CHECK(m.e.resume == "replay");
        CHECK(m.e.replay_to == 6);
        CHECK(b.inbox.empty());
    }
    SUBCASE("N > head: ahead") {
        msg m = join(R"(,"resume_from":7)" + ep);
        CHECK(m.e.resume == "snapshot_required");
        CHECK(m.e.reason == "ahead");
    }
    SUBCASE("resume_from without epoch: epoch_changed") {
        msg m = join(R"(,"resume_from":5)");
        CHECK(m.e.resume == "snapshot_required");
        CHECK(m.e.reason == "epoch_changed");
        CHECK(m.e.epoch == epoch);
    }
    SUBCASE("wrong epoch, good cursor: epoch_changed") {
        msg m = join(R"(,"resume_from":5,"epoch":"e-0000000000000000")");
        CHECK(m.e.reason == "epoch_changed");
    }
    SUBCASE("wrong epoch and a cursor ahead: epoch_changed wins") {
        msg m = join(R"(,"resume_from":99,"epoch":"e-0000000000000000")");
        CHECK(m.e.reason == "epoch_changed");
    }
    SUBCASE("replayed frames are the bytes live members got") {
        client& live = ready(h, "carol");
        h.join(live, "core");
        live.clear();
        h.publish(a, "core", "m7");
        const std::string live_bytes = live.inbox.front();
        join(R"(,"resume_from":6)" + ep);
        REQUIRE(b.inbox.size() == 1);
        CHECK(b.inbox.front() == live_bytes);
    }
    SUBCASE("membership is active after snapshot_required") {
        join(R"(,"resume_from":1)" + ep);
        h.publish(a, "core", "m7");
        CHECK(event_ids(b) == "7,");
    }
}

TEST_CASE("resume: an empty room has head 0; resume_from 0 replays nothing") {
    harness h;
    client& a = ready(h, "alice");
    const std::string epoch(h.join(a, "core").e.epoch);
    client& b = ready(h, "bob");
    msg m = h.join(b, "core", R"(,"resume_from":0,"epoch":")" + epoch + "\"");
    CHECK(m.e.resume == "replay");
    CHECK(m.e.replay_to == 0);
    CHECK(m.e.head == 0);
}

TEST_CASE("replay age bound: events older than replay_max_age are not replayed") {
    auto cfg = harness::default_cfg();
    cfg.replay_max_age = 60s;
    harness h(cfg);
    client& a = ready(h, "alice");
    a.auto_pong = true;
    const std::string epoch(h.join(a, "core").e.epoch);
    h.publish(a, "core", "m1");
    h.advance(30s);
    h.publish(a, "core", "m2");
    h.advance(40s);  // m1 is 70 s old, m2 40 s
    client& b = ready(h, "bob");
    msg fresh = h.join(b, "core", R"(,"resume_from":1,"epoch":")" + epoch + "\"");
    CHECK(fresh.e.resume == "replay");
    CHECK(event_ids(b) == "2,");
    msg old = h.join(b, "core", R"(,"resume_from":0,"epoch":")" + epoch + "\"");
    CHECK(old.e.resume == "snapshot_required");
    CHECK(old.e.reason == "truncated");
    CHECK(h.ep.room("core")->replay_events == 1);
}

TEST_CASE("a resumed session rejoins idempotently and gets its replay") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    const std::string epoch(h.join(a, "core").e.epoch);
    h.join(b, "core");
    h.publish(b, "core", "m1");
    const std::string sid = a.session_id;
    h.drop(a);
    h.publish(b, "core", "m2");
    h.publish(b, "core", "m3");
    client& a2 = h.connect_resume("alice", sid);
    CHECK(a2.next().e.resumed == true);
    b.clear();
    msg j = h.join(a2, "core", R"(,"resume_from":1,"epoch":")" + epoch + "\"");
    CHECK(j.e.resume == "replay");
    CHECK(j.e.replay_to == 3);
    CHECK(event_ids(a2) == "2,3,");
    CHECK(b.count("presence.joined") == 0);  // only presence.reconnected
}

TEST_CASE("leave: room.left, presence.left to peers, idempotent") {
    harness h;
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    h.join(a, "core");
    h.join(b, "core");
    a.clear();
    h.send(b, R"({"kind":"client.leave","room_id":"core","correlation_id":"l1"})");
    msg left = b.next();
    CHECK(left.kind() == "room.left");
    CHECK(left.e.room_id == "core");
    CHECK(left.e.correlation_id == "l1");
    msg pl = a.next();
    CHECK(pl.kind() == "presence.left");
    CHECK(pl.e.user == "bob");
    CHECK(h.ep.room("core")->members == 1);
    CHECK(h.events.back().type == server::event_type::left);
    // Again, and for a room never joined: answered all the same.
    h.send(b, R"({"kind":"client.leave","room_id":"core"})");
    CHECK(b.next().kind() == "room.left");
    h.send(b, R"({"kind":"client.leave","room_id":"nowhere"})");
    CHECK(b.next().e.room_id == "nowhere");
    CHECK(a.inbox.empty());
    // No longer a member.
    h.publish(b, "core", "x");
    CHECK(b.next().e.code == "not_member");
}

TEST_CASE("errors echo correlation_id and id (PROTOCOL.md §7)") {
    auto cfg = harness::default_cfg();
    cfg.max_bad_requests = 1000;
    harness h(cfg);
    client& a = ready(h, "alice");
    h.join(a, "core");
    auto error_for = [&](std::string_view json) {
        h.send(a, json);
        REQUIRE(a.inbox.size() == 1);
        msg m = a.next();
        REQUIRE(m.kind() == "server.error");
        return m;
    };
    SUBCASE("application event without id") {
        msg m = error_for(R"({"kind":"chat.message","room_id":"core","correlation_id":"c1"})");
        CHECK(m.e.code == "bad_request");
        CHECK(m.e.correlation_id == "c1");
    }
    SUBCASE("application event without room_id") {
        msg m = error_for(R"({"kind":"chat.message","id":"i1"})");
        CHECK(m.e.code == "bad_request");
        CHECK(m.e.id == "i1");
    }
    SUBCASE("room_id breaking the rule") {
        msg m = error_for(R"({"kind":"chat.message","room_id":"bad room","id":"i2","correlation_id":"c2"})");
        CHECK(m.e.code == "bad_room_id");
        CHECK(m.e.id == "i2");
        CHECK(m.e.correlation_id == "c2");
    }
    SUBCASE("a valid room not joined") {
        msg m = error_for(R"({"kind":"chat.message","room_id":"other","id":"i3","correlation_id":"c3"})");
        CHECK(m.e.code == "not_member");
        CHECK(m.e.id == "i3");
        CHECK(m.e.correlation_id == "c3");
        CHECK(m.e.room_id == "other");
    }
    SUBCASE("field of the wrong type") {
        msg m = error_for(R"({"kind":"chat.message","room_id":"core","id":42,"correlation_id":"c4"})");
        CHECK(m.e.code == "bad_request");
        CHECK(m.e.correlation_id == "c4");
    }
    SUBCASE("invalid JSON") {
        CHECK(error_for(R"({"kind":"chat.message",)").e.code == "bad_request");
    }
    SUBCASE("not an object") {
        CHECK(error_for(R"([1,2])").e.code == "bad_request");
    }
    SUBCASE("duplicate keys") {
        CHECK(error_for(R"({"kind":"a.b","kind":"a.b"})").e.code == "bad_request");
    }
    SUBCASE("client.join without room_id") {
        msg m = error_for(R"({"kind":"client.join","correlation_id":"j"})");
        CHECK(m.e.code == "bad_request");
        CHECK(m.e.correlation_id == "j");
    }
    SUBCASE("client.leave without room_id") {
        CHECK(error_for(R"({"kind":"client.leave"})").e.code == "bad_request");
    }
    for (const char* kind : {"server.hello", "room.joined", "presence.away", "client.dance"}) {
        CAPTURE(kind);
        msg m = error_for(std::string(R"({"kind":")") + kind + R"(","room_id":"core","id":"k","correlation_id":"ck"})");
        CHECK(m.e.code == "unknown_kind");
        CHECK(m.e.id == "k");
        CHECK(m.e.correlation_id == "ck");
    }
    CHECK(h.ep.room("core")->head == 0);
}

TEST_CASE("too_many_rooms: per session, and the server's room bound") {
    auto cfg = harness::default_cfg();
    cfg.max_rooms_per_session = 2;
    cfg.max_rooms = 3;
    harness h(cfg);
    client& a = ready(h, "alice");
    h.join(a, "r1");
    h.join(a, "r2");
    h.join(a, "r1");  // rejoining is not a new room
    h.send(a, R"({"kind":"client.join","room_id":"r3","correlation_id":"x"})");
    msg m = a.next();
    CHECK(m.e.code == "too_many_rooms");
    CHECK(m.e.correlation_id == "x");
    CHECK_FALSE(h.ep.room("r3"));
    client& b = ready(h, "bob");
    h.join(b, "r3");  // third room on the server
    h.send(b, R"({"kind":"client.join","room_id":"r4"})");
    CHECK(b.next().e.code == "too_many_rooms");
    CHECK(h.ep.room_count() == 3);
}

TEST_CASE("authorize hooks: forbidden") {
    auto cfg = harness::default_cfg();
    std::vector<std::string> publish_calls;
    cfg.authorize_join = [](std::string_view principal, std::string_view room) {
        return !(principal == "bob" && room == "vip");
    };
    cfg.authorize_publish = [&](std::string_view principal, std::string_view room, std::string_view kind) {
        publish_calls.push_back(std::string(principal) + "|" + std::string(room) + "|" + std::string(kind));
        return kind != "admin.cmd";
    };
    harness h(cfg);
    client& b = ready(h, "bob");
    h.send(b, R"({"kind":"client.join","room_id":"vip","correlation_id":"v"})");
    msg m = b.next();
    CHECK(m.e.code == "forbidden");
    CHECK(m.e.correlation_id == "v");
    CHECK_FALSE(h.ep.room("vip"));
    h.join(b, "core");
    h.publish(b, "core", "ok1");
    CHECK(b.take("server.ack"));
    b.clear();
    h.publish(b, "core", "no1", "{}", "admin.cmd");
    msg f = b.next();
    CHECK(f.e.code == "forbidden");
    CHECK(f.e.id == "no1");
    CHECK(publish_calls == std::vector<std::string>{"bob|core|chat.message", "bob|core|admin.cmd"});
    CHECK(h.ep.room("core")->head == 1);
}

TEST_CASE("too_large: an event that would pass max_message_bytes once relayed") {
    auto cfg = harness::default_cfg();
    cfg.max_message_bytes = 2100;
    harness h(cfg);
    client& a = ready(h, "alice");
    h.join(a, "core");
    // Fits as sent (<= 2100 bytes), not once sender/event_id/ts are added.
    const std::string payload = "\"" + std::string(2020, 'x') + "\"";
    const std::string text = R"({"kind":"chat.message","room_id":"core","id":"big","payload":)" + payload + "}";
    REQUIRE(text.size() <= 2100);
    h.send(a, text);
    msg m = a.next();
    CHECK(m.e.code == "too_large");
    CHECK(m.e.id == "big");
    CHECK(h.ep.room("core")->head == 0);
}

TEST_CASE("too_large: a room.joined whose members list passes max_message_bytes undoes the join") {
    auto cfg = harness::default_cfg();
    cfg.max_message_bytes = 2048;
    harness h(cfg);
    std::vector<client*> cs;
    for (int k = 0; k < 9; ++k) {
        cs.push_back(&ready(h, std::string(200, static_cast<char>('a' + k))));
        REQUIRE(h.join(*cs.back(), "core").kind() == "room.joined");  // 9 x 200-byte principals: ~1,830 bytes
    }
    client& late = ready(h, std::string(200, 'z'));
    for (auto* c : cs) c->clear();
    h.send(late, R"({"kind":"client.join","room_id":"core","correlation_id":"big"})");
    msg m = late.next();
    CHECK(m.e.code == "too_large");
    CHECK(m.e.correlation_id == "big");
    CHECK(h.ep.room("core")->members == 9);
    for (auto* c : cs) CHECK(c->inbox.empty());  // no presence.joined
    h.publish(late, "core", "x");
    CHECK(late.next().e.code == "not_member");
}

TEST_CASE("empty rooms are forgotten after the linger; a later join gets a new epoch") {
    harness h;
    client& a = ready(h, "alice");
    a.auto_pong = true;
    const std::string epoch(h.join(a, "core").e.epoch);
    h.publish(a, "core", "m1");
    h.send(a, R"({"kind":"client.leave","room_id":"core"})");
    h.advance(299s);
    REQUIRE(h.ep.room("core"));
    CHECK(h.ep.room("core")->head == 1);
    h.advance(1s);
    CHECK_FALSE(h.ep.room("core"));
    CHECK(h.ep.room_count() == 0);
    msg j = h.join(a, "core");
    CHECK(j.e.epoch != epoch);
    CHECK(j.e.head == 0);
}

TEST_CASE("a room that gets a member back is not forgotten") {
    harness h;
    client& a = ready(h, "alice");
    a.auto_pong = true;
    const std::string epoch(h.join(a, "core").e.epoch);
    h.send(a, R"({"kind":"client.leave","room_id":"core"})");
    h.advance(100s);
    h.join(a, "core");
    h.advance(400s);
    REQUIRE(h.ep.room("core"));
    CHECK(h.ep.room("core")->epoch == epoch);
}

// Broadcast frames wait in the connection's slot while its WebSocket queue is
// empty (server/pending_frames.hpp). Whatever the write sizes and whatever is
// queued next, the byte stream must be the one a plain queue would give.
namespace {

/// Drain c's output `chunk` bytes at a time (pending_output/consume_output),
/// or with gather_output when chunk is 0, into the client machine.
void read_in_chunks(harness& h, client& c, std::size_t chunk) {
    while (h.ep.buffered_output(c.id) > 0) {
        std::vector<std::uint8_t> bytes;
        if (chunk == 0) {
            std::array<std::span<const std::uint8_t>, 8> runs;
            const std::size_t n = h.ep.gather_output(c.id, runs);
            REQUIRE(n > 0);
            for (std::size_t k = 0; k < n; ++k) bytes.insert(bytes.end(), runs[k].begin(), runs[k].end());
        } else {
            const auto run = h.ep.pending_output(c.id);
            REQUIRE(!run.empty());
            bytes.assign(run.begin(), run.begin() + static_cast<std::ptrdiff_t>(std::min(chunk, run.size())));
        }
        const std::size_t before = h.ep.buffered_output(c.id);
        h.ep.consume_output(c.id, bytes.size());
        CHECK(h.ep.buffered_output(c.id) == before - bytes.size());
        REQUIRE(c.ws.handle_bytes(h.now, bytes) == bytes.size());
        h.on_client_events(c);
    }
}

}  // namespace

TEST_CASE("broadcast frames held in the slot: any write size, in order with direct sends") {
    // before = 1, 2: the events wait in the slot (partly written when the
    // direct send comes); 3: the third finds the slot full, and all go to
    // the WebSocket queue in order.
    for (const int before : {1, 2, 3})
        for (const std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
            CAPTURE(before);
            CAPTURE(chunk);
            harness h;
            client& a = ready(h, "alice");
            client& b = ready(h, "bob");
            h.join(a, "core");
            h.join(b, "core");
            b.clear();
            b.reading = false;  // bob's output stays queued until read below
            for (int i = 1; i <= before; ++i) h.publish(a, "core", "m" + std::to_string(i));
            CHECK(h.ep.buffered_output(b.id) > 0);
            // Write part of the first frame, then queue a direct send (bob's
            // own message gets an ack): the rest of the frames come first.
            const auto first = h.ep.pending_output(b.id);
            const std::size_t part = std::min<std::size_t>(5, first.size() - 1);
            std::vector<std::uint8_t> head(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(part));
            h.ep.consume_output(b.id, part);
            REQUIRE(b.ws.handle_bytes(h.now, head) == part);
            h.publish(b, "core", "b1");  // one more event to both, then bob's ack
            read_in_chunks(h, b, chunk);
            std::vector<std::string> want(static_cast<std::size_t>(before + 1), "chat.message");
            want.emplace_back("server.ack");
            CHECK(b.kinds() == want);
            std::string ids;
            for (int i = 1; i <= before + 1; ++i) ids += std::to_string(i) + ",";
            CHECK(event_ids(b) == ids);
            b.reading = true;
            h.pump();
            CHECK(h.ep.buffered_output(b.id) == 0);
        }
}

TEST_CASE("broadcast frames held in the slot count toward the slow-reader bound") {
    // Frames of ~2.3 KB against a 4 KiB high-water mark: one is held in the
    // slot, the second would make two held frames over the mark, so it must
    // be refused the slot and close bob 1013 at once (not one frame later,
    // when the slot is full).
    auto cfg = harness::default_cfg();
    cfg.send_high_water = 4096;
    cfg.rate_per_s = 0;
    harness h(cfg);
    client& a = ready(h, "alice");
    client& b = ready(h, "bob");
    h.join(a, "core");
    h.join(b, "core");
    b.clear();
    b.reading = false;
    const std::string payload = "\"" + std::string(2200, 'x') + "\"";
    h.publish(a, "core", "m1", payload);
    const std::size_t one = h.ep.buffered_output(b.id);
    CHECK(one > 2200);
    CHECK(one < 4096);
    CHECK(h.ep.state(b.id) == ws::state::open);
    h.publish(a, "core", "m2", payload);
    CHECK(h.ep.state(b.id) != ws::state::open);
    b.reading = true;
    h.pump();
    CHECK(b.closed_with(1013));
    CHECK_FALSE(a.close_code);
}
