// Test harness for the tether v1 server: a server::endpoint driven with real
// bytes by fake clients, each a ws::connection in CLIENT role. Frames the
// clients receive are parsed with the library's envelope reader. Virtual
// clock only: `h.now` moves when a test says so (advance()).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tether/proto/envelope.hpp"
#include "tether/server/endpoint.hpp"
#include "tether/ws/connection.hpp"

namespace st {

namespace ws = tether::ws;
namespace server = tether::server;
namespace proto = tether::proto;
using tether::at_ms;
using tether::duration;
using tether::time_point;
using namespace std::chrono_literals;

/// One received frame, parsed. Owns its text and reader so the envelope's
/// views stay valid for the object's lifetime.
struct msg {
    std::unique_ptr<std::string> text;
    std::unique_ptr<proto::envelope_reader> reader;
    proto::envelope e;
    bool ok = false;

    explicit msg(std::string t)
        : text(std::make_unique<std::string>(std::move(t))), reader(std::make_unique<proto::envelope_reader>()) {
        ok = static_cast<bool>(reader->read(*text, e));
    }
    std::string_view kind() const { return e.kind; }
    std::vector<std::string> members() const {
        std::vector<std::string> out;
        std::string scratch;
        proto::for_each_string(e.members, scratch, [&](std::string_view s) { out.emplace_back(s); });
        return out;
    }
    std::vector<std::string> caps() const {
        std::vector<std::string> out;
        std::string scratch;
        proto::for_each_string(e.caps, scratch, [&](std::string_view s) { out.emplace_back(s); });
        return out;
    }
    std::map<std::string, std::int64_t> heads() const {
        std::map<std::string, std::int64_t> out;
        proto::for_each_head(e.heads, [&](std::string_view r, std::int64_t v) { out[std::string(r)] = v; });
        return out;
    }
};

/// A close reason `{"reason":…,"retry_after_ms":…}` read with the envelope
/// reader (which reports the missing `kind` but fills the fields it saw).
struct close_reason {
    std::string reason;
    std::optional<std::int64_t> retry_after_ms;
    bool json_ok = false;
};
inline close_reason parse_close_reason(const std::string& text) {
    proto::envelope_reader r;
    proto::envelope e;
    const auto res = r.read(text, e);
    close_reason out;
    out.json_ok = res || (res.error == proto::error_code::bad_request && std::string(res.message) == "kind: missing");
    out.reason = std::string(e.reason);
    out.retry_after_ms = e.retry_after_ms;
    return out;
}

struct client {
    ws::connection ws;
    server::conn_id id;
    std::deque<std::string> inbox;
    bool open = false;
    int http_status = 0;                     ///< the upgrade was refused with this
    std::optional<std::uint16_t> close_code;  ///< from the server's close frame
    std::string close_reason_text;
    bool transport_closed = false;
    bool auto_pong = false;  ///< answer server.ping with client.pong
    bool reading = true;     ///< false: a slow reader, server output stays queued
    std::string session_id;  ///< from server.hello

    explicit client(ws::connection c) : ws(std::move(c)) {}

    msg next() {
        REQUIRE_MESSAGE(!inbox.empty(), "no frame received");
        msg m(std::move(inbox.front()));
        inbox.pop_front();
        REQUIRE_MESSAGE(m.ok, "unparsable frame: " << *m.text);
        return m;
    }
    /// Remove and return the first frame of `kind` (frames before it stay).
    std::optional<msg> take(std::string_view kind) {
        for (auto it = inbox.begin(); it != inbox.end(); ++it) {
            msg m(*it);
            if (m.ok && m.kind() == kind) {
                inbox.erase(it);
                return m;
            }
        }
        return std::nullopt;
    }
    std::size_t count(std::string_view kind) const {
        std::size_t n = 0;
        for (const auto& t : inbox) {
            msg m(t);
            if (m.ok && m.kind() == kind) ++n;
        }
        return n;
    }
    std::vector<std::string> kinds() const {
        std::vector<std::string> out;
        for (const auto& t : inbox) out.emplace_back(msg(t).kind());
        return out;
    }
    void clear() { inbox.clear(); }
    bool closed_with(std::uint16_t code) const { return close_code && *close_code == code; }
};

struct harness {
    server::endpoint ep;
    time_point now = at_ms(0);
    std::vector<server::event> events;  ///< everything poll_event() returned, in order
    std::vector<std::unique_ptr<client>> clients;
    std::set<std::uint64_t> close_pending;

    /// Test policy: the token is the principal; "bad" -> 401, "banned" -> 403;
    /// missing -> 401. Bearer header or ?token=.
    static server::config default_cfg() {
        server::config c;
        c.seed = 7;
        c.unix_ms_at_origin = 1'700'000'000'000;
        c.authenticate = [](const ws::http_request& req) {
            server::auth_result r;
            std::string token;
            if (const std::string* a = req.find("Authorization"); a && a->rfind("Bearer ", 0) == 0)
                token = a->substr(7);
            else if (auto q = req.query_param("token"))
                token = *q;
            if (token.empty() || token == "bad") {
                r.status = 401;
            } else if (token == "banned") {
                r.status = 403;
            } else {
                r.principal = token;
            }
            return r;
        };
        return c;
    }

    explicit harness(server::config cfg = default_cfg()) : ep(std::move(cfg)) {}

    /// Open a connection and run the handshake. `token` empty: no credentials.
    client& connect(const std::string& token = "alice", const std::string& target = "/",
                    std::vector<ws::http_header> extra = {}, bool offer_subprotocol = true) {
        ws::config cc;
        cc.seed = 1000 + clients.size();
        cc.max_message_bytes = 64u << 20;
        if (offer_subprotocol) cc.subprotocols = {"tether.v1"};
        if (!token.empty()) extra.push_back({"Authorization", "Bearer " + token});
        auto c = std::make_unique<client>(ws::connection::client(now, cc, "localhost:9000", target, extra));
        c->id = ep.open_connection(now);
        clients.push_back(std::move(c));
        client& ref = *clients.back();
        pump();
        if (ref.open && !ref.inbox.empty()) {
            msg hello(ref.inbox.front());
            if (hello.ok && hello.kind() == "server.hello") ref.session_id = std::string(hello.e.session_id);
        }
        return ref;
    }

    client& connect_resume(const std::string& token, const std::string& session_id) {
        return connect(token, "/?session_id=" + session_id);
    }

    client* by_conn(server::conn_id id) {
        for (auto& c : clients)
            if (c->id == id && !c->transport_closed) return c.get();
        return nullptr;
    }

    void on_client_events(client& c) {
        while (auto e = c.ws.poll_event()) {
            switch (e->type) {
                case ws::event_type::open: c.open = true; break;
                case ws::event_type::message: {
                    std::string text(e->text());
                    if (c.auto_pong) {
                        msg m(text);
                        if (m.ok && m.kind() == "server.ping")
                            (void)c.ws.send_text(R"({"kind":"client.pong","ts":)" + std::to_string(*m.e.ts) + "}");
                    }
                    c.inbox.push_back(std::move(text));
                    break;
                }
                case ws::event_type::close_received:
                    c.close_code = ws::to_int(e->code);
                    c.close_reason_text = std::string(e->reason);
                    break;
                case ws::event_type::failed:
                    if (e->http_status) c.http_status = e->http_status;
                    break;
                default: break;
            }
        }
    }

    /// Move bytes both ways until nothing moves.
    void pump() {
        for (int guard = 0; guard < 100000; ++guard) {
            bool progress = false;
            for (auto& cp : clients) {
                client& c = *cp;
                if (c.transport_closed) continue;
                while (c.ws.buffered_output() > 0) {
                    const auto run = c.ws.pending_output();
                    const std::vector<std::uint8_t> bytes(run.begin(), run.end());
                    c.ws.consume_output(bytes.size());
                    const std::size_t took = ep.handle_bytes(now, c.id, bytes);
                    CHECK(took == bytes.size());
                    progress = true;
                }
            }
            while (auto e = ep.poll_event()) {
                if (e->type == server::event_type::close_transport) close_pending.insert(e->conn.value());
                events.push_back(std::move(*e));
            }
            for (auto& cp : clients) {
                client& c = *cp;
                if (c.transport_closed || !c.reading) continue;
                while (ep.buffered_output(c.id) > 0) {
                    const auto run = ep.pending_output(c.id);
                    const std::vector<std::uint8_t> bytes(run.begin(), run.end());
                    ep.consume_output(c.id, bytes.size());
                    std::size_t pos = 0;
                    while (pos < bytes.size()) {
                        pos += c.ws.handle_bytes(now, std::span<const std::uint8_t>(bytes.data() + pos, bytes.size() - pos));
                        on_client_events(c);
                    }
                    on_client_events(c);
                    progress = true;
                }
            }
            for (auto it = close_pending.begin(); it != close_pending.end();) {
                const auto id = server::conn_id::from_value(*it);
                client* c = by_conn(id);
                if (c && c->reading && ep.buffered_output(id) > 0) {
                    ++it;
                    continue;
                }
                if (c) {
                    c->ws.handle_transport_closed(now);
                    on_client_events(*c);
                    c->transport_closed = true;
                }
                ep.handle_transport_closed(now, id);
                it = close_pending.erase(it);
                progress = true;
            }
            if (!progress) return;
        }
        FAIL("pump did not settle");
    }

    void send(client& c, std::string_view json) {
        REQUIRE(!c.ws.send_text(json));
        pump();
    }

    /// Move the clock to now + d, firing every deadline on the way.
    void advance(duration d) {
        const time_point target = now + d;
        for (int guard = 0; guard < 1000000; ++guard) {
            time_point next = ep.next_deadline();
            for (auto& c : clients)
                if (!c->transport_closed) next = std::min(next, c->ws.next_deadline());
            if (next > target) break;
            if (next > now) now = next;
            ep.handle_timeout(now);
            for (auto& c : clients)
                if (!c->transport_closed) {
                    c->ws.handle_timeout(now);
                    on_client_events(*c);
                }
            pump();
        }
        now = target;
        pump();
    }

    /// The client's transport dies without a close frame (1006).
    void drop(client& c) {
        c.ws.handle_transport_closed(now);
        on_client_events(c);
        c.transport_closed = true;
        ep.handle_transport_closed(now, c.id);
        pump();
    }

    /// The client starts a close handshake.
    void close(client& c, ws::close_code code) {
        REQUIRE(!c.ws.close(now, code));
        pump();
    }

    // -- protocol shortcuts ------------------------------------------------------------

    msg join(client& c, const std::string& room, const std::string& extra = "") {
        send(c, R"({"kind":"client.join","room_id":")" + room + "\"" + extra + "}");
        auto m = c.take("room.joined");
        if (!m) {
            auto err = c.take("server.error");
            FAIL("no room.joined; error: " << (err ? std::string(err->e.code) : std::string("none")));
        }
        return std::move(*m);
    }

    void publish(client& c, const std::string& room, const std::string& id, const std::string& payload = "{}",
                 const std::string& kind = "chat.message") {
        send(c, R"({"kind":")" + kind + R"(","room_id":")" + room + R"(","id":")" + id + R"(","payload":)" +
                    payload + "}");
    }

    std::size_t count_events(server::event_type t) const {
        return static_cast<std::size_t>(
            std::count_if(events.begin(), events.end(), [t](const server::event& e) { return e.type == t; }));
    }
};

}  // namespace st
