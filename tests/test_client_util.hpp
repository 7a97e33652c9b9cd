// Test helpers for the tether v1 client machine: server frames written with
// the envelope writer, a harness with a virtual clock that drains events and
// actions into comparable strings after every input.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tether/client/client.hpp"
#include "tether/proto/envelope_writer.hpp"

namespace ct {

namespace tc = tether::client;
namespace proto = tether::proto;
using tether::at_ms;
using tether::time_point;

// ---- server frames ------------------------------------------------------------

inline std::string hello(std::string_view sid = "s1", bool resumed = false, std::int64_t heartbeat_ms = 25000,
                         std::int64_t version = 1, std::int64_t max_message_bytes = 65536) {
    std::string out;
    static constexpr std::string_view caps[] = {"replay", "ack", "presence"};
    proto::server_hello h;
    h.protocol_version = version;
    h.session_id = sid;
    h.resumed = resumed;
    h.heartbeat_ms = heartbeat_ms;
    h.ts = 1700000000000;
    h.caps = caps;
    h.limits.max_message_bytes = max_message_bytes;
    proto::write_envelope(out, h);
    return out;
}

inline std::string joined(std::string_view room, proto::resume_mode mode, std::int64_t head,
                          std::string_view epoch = "e1", std::int64_t replay_to = 0,
                          proto::resume_reason reason = proto::resume_reason::truncated,
                          std::string_view corr = {}) {
    static constexpr std::string_view members[] = {"alice", "bob"};
    std::string out;
    proto::room_joined j;
    j.room_id = room;
    j.resume = mode;
    j.head = head;
    j.epoch = epoch;
    j.replay_to = replay_to;
    j.reason = reason;
    j.members = members;
    j.correlation_id = corr;
    proto::write_envelope(out, j);
    return out;
}

inline std::string joined_none(std::string_view room, std::int64_t head, std::string_view epoch = "e1") {
    return joined(room, proto::resume_mode::none, head, epoch);
}

inline std::string joined_replay(std::string_view room, std::int64_t replay_to, std::string_view epoch = "e1") {
    return joined(room, proto::resume_mode::replay, replay_to, epoch, replay_to);
}

inline std::string room_event(std::string_view room, std::int64_t event_id, std::string_view id = "p-1",
                              std::string_view payload = R"({"t":"hi"})", std::string_view sender = "bob",
                              std::string_view kind = "chat.message") {
    std::string out;
    proto::room_event e;
    e.kind = kind;
    e.room_id = room;
    e.event_id = event_id;
    e.sender = sender;
    e.id = id;
    e.payload = payload;
    e.ts = 1700000000001;
    proto::write_envelope(out, e);
    return out;
}

inline std::string ack(std::string_view id, std::string_view room, std::int64_t event_id,
                       proto::ack_status status = proto::ack_status::accepted) {
    std::string out;
    proto::server_ack a;
    a.id = id;
    a.room_id = room;
    a.event_id = event_id;
    a.status = status;
    proto::write_envelope(out, a);
    return out;
}

inline std::string ping(std::int64_t ts, std::initializer_list<proto::room_head> heads = {}) {
    std::string out;
    std::vector<proto::room_head> hv(heads);
    proto::server_ping p;
    p.ts = ts;
    p.heads = hv;
    proto::write_envelope(out, p);
    return out;
}

inline std::string error(proto::error_code code, std::string_view id = {}, std::string_view corr = {},
                         std::optional<std::int64_t> retry_after_ms = std::nullopt) {
    std::string out;
    proto::server_error e;
    e.code = code;
    e.message = "refused";
    e.id = id;
    e.correlation_id = corr;
    e.retry_after_ms = retry_after_ms;
    proto::write_envelope(out, e);
    return out;
}

inline std::string left(std::string_view room) {
    std::string out;
    proto::room_left l;
    l.room_id = room;
    proto::write_envelope(out, l);
    return out;
}

inline std::string presence(proto::presence_kind k, std::string_view room, std::string_view user) {
    std::string out;
    proto::presence_event p;
    p.kind = k;
    p.room_id = room;
    p.user = user;
    proto::write_envelope(out, p);
    return out;
}

// ---- client frames (what the client must send) --------------------------------------

inline std::string join_frame(std::string_view room, std::string_view corr, std::optional<std::int64_t> resume_from = {},
                              std::string_view epoch = {}) {
    std::string out;
    proto::client_join j;
    j.room_id = room;
    j.resume_from = resume_from;
    j.epoch = epoch;
    j.correlation_id = corr;
    proto::write_envelope(out, j);
    return out;
}

inline std::string leave_frame(std::string_view room, std::string_view corr) {
    std::string out;
    proto::client_leave l;
    l.room_id = room;
    l.correlation_id = corr;
    proto::write_envelope(out, l);
    return out;
}

inline std::string pong_frame(std::int64_t ts) {
    std::string out;
    proto::write_envelope(out, proto::client_pong{ts});
    return out;
}

// ---- describing outputs -------------------------------------------------------------

inline std::string describe(const tc::event& e) {
    std::string s(tc::to_string(e.type));
    auto add = [&s](std::string_view k, auto v) {
        s += ' ';
        s += k;
        s += '=';
        if constexpr (std::is_convertible_v<decltype(v), std::string_view>)
            s += std::string_view(v);
        else
            s += std::to_string(v);
    };
    switch (e.type) {
        case tc::event_type::connected:
            add("sid", e.session_id);
            add("resumed", int(e.resumed));
            break;
        case tc::event_type::joined:
            add("room", e.room);
            add("resume", proto::to_string(e.resume));
            add("head", e.head);
            add("epoch", e.epoch);
            add("members", e.members);
            break;
        case tc::event_type::message:
            add("room", e.room);
            add("eid", e.event_id);
            add("kind", e.kind);
            add("sender", e.sender);
            add("id", e.id);
            add("payload", e.payload);
            break;
        case tc::event_type::presence:
            add("room", e.room);
            add("user", e.user);
            add("kind", proto::to_string(e.presence));
            break;
        case tc::event_type::ack:
            add("id", e.id);
            add("room", e.room);
            add("eid", e.event_id);
            add("status", proto::to_string(e.status));
            break;
        case tc::event_type::server_error:
            add("code", e.code);
            add("id", e.id);
            add("corr", e.correlation_id);
            add("room", e.room);
            if (e.retry_after_ms) add("retry", *e.retry_after_ms);
            break;
        case tc::event_type::snapshot_required:
            add("room", e.room);
            add("reason", proto::to_string(e.reason));
            add("head", e.head);
            add("epoch", e.epoch);
            break;
        case tc::event_type::left: add("room", e.room); break;
        case tc::event_type::reconnecting:
            add("delay_ns", e.delay.count());
            add("attempt", e.attempt);
            add("code", e.close_code);
            add("http", e.http_status);
            break;
        case tc::event_type::token_required:
            add("code", e.close_code);
            add("http", e.http_status);
            break;
        case tc::event_type::upgrade_required: break;
        case tc::event_type::gave_up:
            add("attempt", e.attempt);
            add("code", e.close_code);
            break;
        case tc::event_type::stopped:
            add("reason", tc::to_string(e.stop));
            add("code", e.close_code);
            add("http", e.http_status);
            break;
    }
    return s;
}

inline std::string describe(const tc::action& a) {
    switch (a.type) {
        case tc::action_type::open: {
            std::string s = "open " + std::string(a.target) + " sub=" + std::string(a.subprotocol);
            for (const auto& h : a.headers) s += " " + std::string(h.name) + ": " + std::string(h.value);
            return s;
        }
        case tc::action_type::send_text: return "send " + std::string(a.text);
        case tc::action_type::close: return "close " + std::to_string(a.code) + " " + std::string(a.reason);
    }
    return "?";
}

// ---- the harness ------------------------------------------------------------------

inline tc::config test_config(std::uint64_t seed = 42) {
    tc::config c;
    c.seed = seed;
    return c;
}

struct harness {
    tc::client c;
    time_point now = at_ms(0);
    std::vector<std::string> events;   ///< of the last drain
    std::vector<std::string> actions;  ///< of the last drain
    std::vector<std::string> sent;     ///< send_text texts of the last drain
    std::vector<std::string> log;      ///< everything, in order, with times

    explicit harness(tc::config cfg = test_config()) : c(std::move(cfg)) {}

    void drain() {
        events.clear();
        actions.clear();
        sent.clear();
        while (auto e = c.poll_event()) {
            events.push_back(describe(*e));
            log.push_back(std::to_string(tether::to_ms(now)) + " ev " + events.back());
        }
        while (auto a = c.poll_action()) {
            actions.push_back(describe(*a));
            if (a->type == tc::action_type::send_text) sent.emplace_back(a->text);
            log.push_back(std::to_string(tether::to_ms(now)) + " act " + actions.back());
        }
        log.push_back(std::to_string(tether::to_ms(now)) + " deadline " +
                      (c.next_deadline() == tether::never ? std::string("never")
                                                          : std::to_string(c.next_deadline().time_since_epoch().count())));
    }

    void at(std::int64_t ms) { now = at_ms(ms); }
    void recv(std::string_view text) {
        c.handle_message(now, text);
        drain();
    }
    void open() {
        c.handle_transport_open(now);
        drain();
    }
    void closed(std::uint16_t code, std::string_view reason = {}, int http = 0) {
        c.handle_transport_closed(now, code, reason, http);
        drain();
    }
    void connect() {
        CHECK(!c.connect(now));
        drain();
    }
    void tick() {
        c.handle_timeout(now);
        drain();
    }
    /// Jump to the next deadline (must exist) and fire it.
    void fire() {
        REQUIRE(c.next_deadline() != tether::never);
        now = c.next_deadline();
        tick();
    }
    tc::send_result send(std::string_view room, std::string_view payload = R"({"t":1})",
                         std::string_view kind = "chat.message") {
        auto r = c.send(now, room, kind, payload);
        drain();
        return r;
    }
    void join(std::string_view room) {
        CHECK(!c.join(now, room));
        drain();
    }

    /// connect + open + hello + a fresh join answered for each room (head 0).
    void go_live(std::initializer_list<std::string_view> rooms, std::string_view sid = "s1") {
        for (auto r : rooms) CHECK(!c.join(now, r));
        connect();
        open();
        recv(hello(sid));
        for (auto r : rooms) recv(joined_none(r, 0));
        REQUIRE(c.state() == tc::state::live);
    }
};

inline bool contains(const std::vector<std::string>& v, std::string_view s) {
    for (const auto& x : v)
        if (x == s) return true;
    return false;
}

inline bool any_starts_with(const std::vector<std::string>& v, std::string_view prefix) {
    for (const auto& x : v)
        if (std::string_view(x).starts_with(prefix)) return true;
    return false;
}

}  // namespace ct
