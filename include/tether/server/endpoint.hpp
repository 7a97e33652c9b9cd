// tether/server/endpoint.hpp — the tether v1 server, Sans-IO.
//
// Theory of operation
// -------------------
// One endpoint owns three kinds of object, each in a slot array with a free
// list (indices are stable; handles carry a generation where the outside
// world holds them):
//   - connections: one RFC 6455 machine each (ws::connection, server role),
//     created by open_connection() for every accepted TCP connection and
//     released when the loop reports the transport closed;
//   - sessions: the logical client (principal, room memberships) that
//     survives a connection for the grace period and is resumed with
//     ?session_id (server/session.hpp);
//   - rooms: history (epoch, head, replay log, dedup window) and members
//     (server/room.hpp).
//
// The loop moves bytes, exactly as for a single ws::connection but keyed by
// conn_id: read_buffer()/handle_read() or handle_bytes() in;
// pending_output()/gather_output()/consume_output() out; poll_event() after
// every call for `flush` (write this connection), `close_transport` (flush,
// then close the socket and call handle_transport_closed()) and log events;
// a timer for next_deadline() and handle_timeout(now) then.
// Events come out in the order they happened; a connection is reported by
// one `flush` until its output has been drained by consume_output(). A
// broadcast to a room of 10,000 reports 10,000 of them, so a flush is queued
// as a 16-byte entry (type and id), and only log events carry strings.
//
// Broadcasts are serialised and framed once (ws::connection::
// make_shared_frame) and queued by reference on every member connection, so
// a message to a room of 10,000 costs one JSON write, one allocation and
// 10,000 queue entries. The same frame is kept in the room's replay log, so
// replays send the exact bytes live members got. A recipient costs one cache
// line: each member_ref carries its connection slot, and while the
// connection's WebSocket queue is empty the frame waits in the slot itself
// (server/pending_frames.hpp); the output getters read the WebSocket queue
// and then those frames, and anything else queued on the connection first
// moves them into the WebSocket queue (spill), so the bytes are the same.
//
// Timers: three indexed heaps (core/timer_heap.hpp) — connections
// (handshake/close timeouts, server.ping, liveness), away sessions (grace),
// empty rooms (linger). A connection's heap key is no later than its
// earliest timer; a received frame only writes `last_rx` (lazy re-arm), so
// the per-frame cost is one comparison and next_deadline() is O(1).
//
// Re-entrancy: closing a slow reader sends presence to its peers, which can
// make another connection slow. Such closes are deferred to the end of the
// public call (settle()) and run iteratively, never recursively, and no
// code path modifies a member list while iterating it.
//
// Hooks (config.hpp) are called synchronously and must not call back into
// the endpoint. The endpoint is single-threaded, like every Sans-IO machine.
//
// Rules are PROTOCOL.md's; where it is silent, docs/protocol.md's "Server"
// section decides, and comments below cite it.
#pragma once

#include <algorithm>
#include <cassert>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tether/core/prefetch.hpp"
#include "tether/core/probe_table.hpp"
#include "tether/core/random.hpp"
#include "tether/core/ring_buffer.hpp"
#include "tether/core/siphash.hpp"
#include "tether/core/slot_array.hpp"
#include "tether/core/time.hpp"
#include "tether/core/timer_heap.hpp"
#include "tether/proto/envelope.hpp"
#include "tether/proto/envelope_writer.hpp"
#include "tether/proto/error_code.hpp"
#include "tether/server/config.hpp"
#include "tether/server/conn_id.hpp"
#include "tether/server/connection_state.hpp"
#include "tether/server/detail/close_reason.hpp"
#include "tether/server/directory.hpp"
#include "tether/server/events.hpp"
#include "tether/server/room.hpp"
#include "tether/server/session.hpp"
#include "tether/ws/close_code.hpp"
#include "tether/ws/connection.hpp"
#include "tether/ws/utf8.hpp"

namespace tether::server {

/// Byte counts the endpoint can see (ws::connection's own heap buffers are
/// not visible from outside it; see connection_inline_bytes).
struct memory_figures {
    std::size_t connections = 0;
    std::size_t sessions = 0;
    std::size_t rooms = 0;
    std::size_t connection_slot_bytes = 0;    ///< slot array capacity x sizeof(connection_state)
    std::size_t connection_inline_bytes = 0;  ///< live connections x sizeof(ws::connection)
    std::size_t output_bytes = 0;             ///< output queued on all connections (shared frames counted per queue)
    std::size_t session_slot_bytes = 0;       ///< slot array capacity x sizeof(session)
    std::size_t session_heap_bytes = 0;       ///< principals past SSO + membership arrays
    std::size_t room_bytes = 0;               ///< rooms: structs, ids, member arrays, logs, dedup
    std::size_t replay_frame_bytes = 0;       ///< frames referenced by replay logs (part of room_bytes)
    std::size_t index_bytes = 0;              ///< session and room hash indexes
    std::size_t timer_bytes = 0;              ///< the three timer heaps
    std::size_t total() const noexcept {
        return connection_slot_bytes + connection_inline_bytes + output_bytes + session_slot_bytes +
               session_heap_bytes + room_bytes + index_bytes + timer_bytes;
    }
};

class endpoint {
public:
    /// The caps server.hello announces.
    static constexpr std::array<std::string_view, 3> caps{"replay", "ack", "presence"};
    /// PROTOCOL.md §2: event ids are at most 2^53-1.
    static constexpr std::int64_t max_event_id = (std::int64_t{1} << 53) - 1;

    explicit endpoint(config cfg)
        : cfg_(effective(std::move(cfg))), rng_(cfg_.seed), reader_(reader_config_for(cfg_)) {
        ws_cfg_.max_message_bytes = cfg_.max_message_bytes;
        ws_cfg_.max_header_bytes = cfg_.max_header_bytes;
        ws_cfg_.handshake_timeout = cfg_.handshake_timeout;
        ws_cfg_.close_timeout = cfg_.close_timeout;
        // Room for the one send that crosses the high-water mark; past it we
        // close 1013 ourselves instead of meeting output_full.
        ws_cfg_.max_output_bytes = cfg_.send_high_water + cfg_.max_message_bytes + (64u << 10);
        dedup_.window = cfg_.dedup_window;
        dedup_.min_ids = cfg_.dedup_min_ids;
        dedup_.max_ids = cfg_.dedup_max_ids;
    }

    endpoint(const endpoint&) = delete;
    endpoint& operator=(const endpoint&) = delete;

    // ---- connection lifecycle ---------------------------------------------------

    /// A new transport connection; the upgrade request is expected next.
    conn_id open_connection(time_point now) {
        const std::uint32_t i = alloc_conn();
        connection_state& c = conns_[i];
        ws::config wc = ws_cfg_;
        wc.seed = rng_.next();
        c.ws = std::make_unique<ws::connection>(ws::connection::server(now, std::move(wc)));
        ++live_conns_;
        rearm(i);
        return {i, c.generation};
    }

    /// Zero-copy reads (see ws::connection::read_buffer). Empty for a stale id.
    std::span<std::uint8_t> read_buffer(conn_id id, std::size_t min_size = 4096) {
        connection_state* c = lookup(id);
        if (!c) return {};
        return c->ws->read_buffer(min_size);
    }

    void handle_read(time_point now, conn_id id, std::size_t n) {
        connection_state* c = lookup(id);
        if (!c) return;
        c->ws->handle_read(now, n);
        process(id.index, now);
        settle(now);
    }

    /// Copy bytes in; returns how many were taken (all, unless the id is
    /// stale — then all are discarded — or the connection stops taking input).
    std::size_t handle_bytes(time_point now, conn_id id, std::span<const std::uint8_t> bytes) {
        std::size_t taken = 0;
        while (taken < bytes.size()) {
            connection_state* c = lookup(id);
            if (!c) return bytes.size();
            const std::size_t t = c->ws->handle_bytes(now, bytes.subspan(taken));
            taken += t;
            process(id.index, now);
            if (t == 0) break;
        }
        settle(now);
        return taken;
    }
    std::size_t handle_bytes(time_point now, conn_id id, std::string_view bytes) {
        return handle_bytes(now, id, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    }

    /// The socket is gone (EOF, reset, or the loop closed it after
    /// close_transport). Releases the connection; the id becomes stale.
    void handle_transport_closed(time_point now, conn_id id) {
        connection_state* c = lookup(id);
        if (!c) return;
        c->transport_gone = true;
        if (c->ws->state() != ws::state::closed) {
            spill(id.index);
            c->ws->handle_transport_closed(now);
            process(id.index, now);
        }
        free_conn(id.index, now);
        settle(now);
    }

    // ---- output -----------------------------------------------------------------

    std::span<const std::uint8_t> pending_output(conn_id id) const noexcept {
        const connection_state* c = lookup(id);
        if (!c) return {};
        const auto run = c->ws->pending_output();
        return run.empty() ? c->pending.front() : run;
    }
    std::size_t gather_output(conn_id id, std::span<std::span<const std::uint8_t>> runs) const noexcept {
        const connection_state* c = lookup(id);
        if (!c) return 0;
        const std::size_t n = c->ws->gather_output(runs);
        return n + c->pending.gather(runs.subspan(n));
    }
    void consume_output(conn_id id, std::size_t n) noexcept {
        connection_state* c = lookup(id);
        if (!c) return;
        // The WebSocket queue first, then the pending broadcast frames after it.
        const std::size_t from_ws = std::min(n, c->ws->buffered_output());
        c->ws->consume_output(from_ws);
        c->pending.consume(n - from_ws);
        c->ws_output = c->ws->buffered_output() != 0;
        if (!c->ws_output && c->pending.empty()) {
            c->flush_reported = false;
            // Idle since the last heartbeat tick: give the buffers back, so
            // an idle session holds little (an active one keeps them).
            if (c->quiet) c->ws->shrink_buffers();
        }
    }
    std::size_t buffered_output(conn_id id) const noexcept {
        const connection_state* c = lookup(id);
        return c ? c->ws->buffered_output() + c->pending.bytes() : 0;
    }

    // ---- events and timers -------------------------------------------------------

    std::optional<event> poll_event() {
        if (order_.empty()) return std::nullopt;
        const queued q = order_.take_front();
        if (q.flush) {
            event ev;
            ev.type = event_type::flush;
            ev.conn = q.conn;
            return ev;
        }
        return rich_.take_front();
    }

    /// O(1): the earliest key of three heaps.
    time_point next_deadline() const noexcept {
        return std::min({conn_timers_.next_deadline(), session_timers_.next_deadline(),
                         room_timers_.next_deadline()});
    }

    void handle_timeout(time_point now) {
        while (!(now < conn_timers_.next_deadline())) service_connection(conn_timers_.top(), now);
        while (!(now < session_timers_.next_deadline())) end_session(session_timers_.top(), now);
        while (!(now < room_timers_.next_deadline())) {
            const std::uint32_t r = room_timers_.top();
            room_timers_.remove(r);
            if (dir_.room_live(r) && dir_.rm(r).members.empty()) dir_.erase_room(r);
        }
        settle(now);
    }

    /// docs/protocol.md "drain": close every open connection with 1012 and
    /// retry_after_ms = window * i / n, i-th of n in connection order, and
    /// answer new upgrades with 503 from now on.
    void drain(time_point now, duration window) {
        draining_ = true;
        std::vector<std::uint32_t> open;
        for (std::uint32_t i = 0; i < conns_.size(); ++i)
            if (conns_[i].ws && conns_[i].ws->state() == ws::state::open) open.push_back(i);
        const auto n = static_cast<std::int64_t>(open.size());
        const std::int64_t window_ms = to_ms(time_point{window});
        for (std::int64_t k = 0; k < n; ++k) {
            const std::uint32_t i = open[static_cast<std::size_t>(k)];
            const auto reason = detail::make_close_reason("restart", window_ms * k / n);
            close_connection(i, ws::close_code::service_restart, reason.view(), now);
        }
        settle(now);
    }
    bool draining() const noexcept { return draining_; }

    void set_unix_ms_at_origin(std::int64_t ms) noexcept { cfg_.unix_ms_at_origin = ms; }

    // ---- getters -------------------------------------------------------------------

    const config& cfg() const noexcept { return cfg_; }
    std::size_t session_count() const noexcept { return dir_.session_count(); }
    std::size_t connection_count() const noexcept { return live_conns_; }
    std::size_t room_count() const noexcept { return dir_.room_count(); }
    bool is_live(conn_id id) const noexcept { return lookup(id) != nullptr; }
    /// The WebSocket state of a connection (nullopt: stale id).
    std::optional<ws::state> state(conn_id id) const noexcept {
        const connection_state* c = lookup(id);
        if (!c) return std::nullopt;
        return c->ws->state();
    }
    /// Principal of the session attached to a connection ("" if none).
    std::string_view principal(conn_id id) const noexcept {
        const connection_state* c = lookup(id);
        if (!c || c->session == no_index) return {};
        return dir_.sess(c->session).principal.view();
    }

    std::optional<room_info> room(std::string_view room_id) const {
        const std::uint32_t r = dir_.find_room(room_id);
        if (r == no_index) return std::nullopt;
        const server::room& R = dir_.rm(r);
        room_info info;
        info.head = R.head;
        info.epoch = R.epoch();
        info.members = R.members.size();
        info.replay_events = R.log.size();
        info.replay_first = R.log.first_id();
        info.dedup_ids = R.dedup.size();
        return info;
    }

    /// O(connections + sessions + rooms): a diagnostic, not for hot paths.
    memory_figures memory() const noexcept {
        memory_figures m;
        m.connections = live_conns_;
        m.sessions = dir_.session_count();
        m.rooms = dir_.room_count();
        m.connection_slot_bytes = conns_.memory_bytes() +
                                  free_conns_.capacity() * sizeof(std::uint32_t);
        m.connection_inline_bytes = live_conns_ * sizeof(ws::connection);
        for (const connection_state& c : conns_)
            if (c.ws) m.output_bytes += c.ws->buffered_output() + c.pending.bytes();
        m.session_slot_bytes = dir_.session_slot_bytes();
        m.session_heap_bytes = dir_.session_heap_bytes();
        m.room_bytes = dir_.room_bytes();
        m.replay_frame_bytes = dir_.replay_frame_bytes();
        m.index_bytes = dir_.index_bytes();
        m.timer_bytes = conn_timers_.memory_bytes() + session_timers_.memory_bytes() + room_timers_.memory_bytes();
        return m;
    }

    /// Work done by the connection timer heap, and how many connection
    /// timers were serviced (tests assert costs with these, not with clocks).
    const timer_heap_stats& timer_stats() const noexcept { return conn_timers_.stats(); }
    std::uint64_t timer_wakeups() const noexcept { return wakeups_; }

private:
    // ---- slots -------------------------------------------------------------------

    /// The configuration the endpoint runs with (what cfg() returns).
    static config effective(config c) {
        c.max_message_bytes = std::max(c.max_message_bytes, config::min_message_bytes);
        return c;
    }

    static proto::reader_config reader_config_for(const config& c) noexcept {
        proto::reader_config r;
        r.max_message_bytes = c.max_message_bytes;
        return r;
    }

    connection_state* lookup(conn_id id) noexcept {
        if (id.index >= conns_.size()) return nullptr;
        connection_state& c = conns_[id.index];
        return c.ws && c.generation == id.generation ? &c : nullptr;
    }
    const connection_state* lookup(conn_id id) const noexcept {
        return const_cast<endpoint*>(this)->lookup(id);
    }
    conn_id id_of(std::uint32_t i) const noexcept { return {i, conns_[i].generation}; }

    std::uint32_t alloc_conn() {
        if (!free_conns_.empty()) {
            const std::uint32_t i = free_conns_.back();
            free_conns_.pop_back();
            return i;
        }
        (void)conns_.emplace_back();
        return static_cast<std::uint32_t>(conns_.size() - 1);
    }

    void free_conn(std::uint32_t i, time_point now) {
        connection_state& c = conns_[i];
        detach(i, false, now);
        conn_timers_.remove(i);
        const std::uint32_t gen = c.generation + 1;
        c = connection_state{};
        c.generation = gen;
        free_conns_.push_back(i);
        --live_conns_;
    }

    // ---- the per-connection event pump ----------------------------------------------

    void process(std::uint32_t i, time_point now) {
        while (conns_[i].ws) {
            spill(i);  // decoding may queue a pong or a close frame
            auto e = conns_[i].ws->poll_event();
            if (!e) break;
            connection_state& c = conns_[i];
            switch (e->type) {
                case ws::event_type::upgrade_request:
                    on_upgrade(i, now);
                    break;
                case ws::event_type::open:
                    break;
                case ws::event_type::message:
                    c.last_rx = now;  // PROTOCOL.md §7 "Liveness": any frame counts
                    c.quiet = false;
                    on_message(i, *e, now);
                    break;
                case ws::event_type::ping:
                case ws::event_type::pong:
                    c.last_rx = now;
                    after_send(i);  // the automatic pong
                    break;
                case ws::event_type::close_received:
                    c.last_rx = now;
                    after_send(i);  // the echoed close frame
                    if (c.close_code == 0) {
                        // The peer closed first. PROTOCOL.md §7 "Intentional close":
                        // only 1000/1001 end the session at once.
                        c.close_code = e->code == ws::close_code::none ? 1005 : ws::to_int(e->code);
                        const bool intentional =
                            e->code == ws::close_code::normal || e->code == ws::close_code::going_away;
                        detach(i, intentional, now);
                    }
                    break;
                case ws::event_type::failed:
                    after_send(i);  // the close frame or HTTP refusal
                    if (c.close_code == 0 && e->code != ws::close_code::abnormal) c.close_code = ws::to_int(e->code);
                    detach(i, false, now);
                    break;
                case ws::event_type::closed:
                    on_closed(i, *e, now);
                    break;
            }
        }
        if (conns_[i].ws) rearm(i);
    }

    void on_closed(std::uint32_t i, const ws::event& e, time_point now) {
        connection_state& c = conns_[i];
        detach(i, false, now);
        if (!c.closed_reported) {
            c.closed_reported = true;
            event ev;
            ev.type = event_type::closed;
            ev.conn = id_of(i);
            ev.code = c.close_code ? c.close_code : ws::to_int(e.code);
            ev.http_status = e.http_status;
            push_event(std::move(ev));
        }
        if (!c.transport_gone) {
            event ev;
            ev.type = event_type::close_transport;
            ev.conn = id_of(i);
            push_event(std::move(ev));
        }
        after_send(i);
    }

    // ---- upgrade ---------------------------------------------------------------------

    bool origin_allowed(const ws::http_request& req) const {
        if (cfg_.allowed_origins.empty()) return true;
        const std::string* origin = req.find("Origin");
        // docs/protocol.md: no Origin header = not a browser; the allow-list
        // protects browsers' ambient credentials, so such clients pass.
        if (!origin) return true;
        for (const auto& o : cfg_.allowed_origins)
            if (o == *origin) return true;
        return false;
    }

    void refuse(std::uint32_t i, int status) {
        spill(i);
        (void)conns_[i].ws->reject(status);
        after_send(i);
    }

    void on_upgrade(std::uint32_t i, time_point now) {
        ws::connection& w = *conns_[i].ws;
        const ws::http_request& req = w.request();
        if (draining_) return refuse(i, 503);
        if (!origin_allowed(req)) return refuse(i, 403);
        auth_result auth;
        if (cfg_.authenticate)
            auth = cfg_.authenticate(req);
        else
            auth.principal = "anonymous";
        if (auth.status != 0) return refuse(i, auth.status >= 300 && auth.status <= 599 ? auth.status : 500);
        if (auth.principal.empty() || auth.principal.size() > cfg_.max_principal_bytes ||
            !ws::is_valid_utf8(auth.principal))
            return refuse(i, 500);

        // PROTOCOL.md §1: resume only within grace and for the same principal;
        // anything else silently gets a new session (docs/protocol.md).
        std::uint32_t s = no_index;
        if (const auto q = req.query_param("session_id"))
            if (const auto k = session_key::parse(*q)) s = dir_.find_session(*k);
        if (s != no_index) {
            session& ss = dir_.sess(s);
            if (ss.principal.view() != auth.principal) {
                s = no_index;
            } else if (ss.away() && !(now < ss.grace_deadline)) {
                end_session(s, now);  // expired, the timer just had not run yet
                s = no_index;
            }
        }
        if (s == no_index && dir_.session_count() >= cfg_.max_sessions) return refuse(i, 503);

        std::string_view sub;
        for (const auto& p : w.offered_subprotocols())
            if (p == "tether.v1") sub = "tether.v1";
        (void)w.accept(sub);

        bool resumed = false;
        bool was_away = false;
        if (s != no_index) {
            resumed = true;
            session& ss = dir_.sess(s);
            if (!ss.away()) {
                // PROTOCOL.md §7 "Takeover": the older connection gets 4003;
                // the session moves without presence events.
                const std::uint32_t old = ss.conn;
                conns_[old].session = no_index;
                set_conn(s, no_index);
                close_connection(old, ws::close_code::session_taken_over, R"({"reason":"taken_over"})", now);
            } else {
                was_away = true;
                session_timers_.remove(s);
                ss.grace_deadline = never;
            }
        } else {
            s = dir_.new_session(std::move(auth.principal));
        }
        connection_state& c = conns_[i];
        session& ss = dir_.sess(s);
        set_conn(s, i);
        c.session = s;
        c.last_rx = now;
        c.next_ping = heartbeat_on() ? now + cfg_.heartbeat : never;
        c.bucket = token_bucket(cfg_.rate_per_s, cfg_.rate_burst, now);
        // A state change, not a re-arm: key the heap exactly (the handshake
        // deadline it held would otherwise fire once for nothing).
        conn_timers_.set(i, earliest(i));

        const auto hex = ss.key.hex();
        const std::string_view sid(hex.data(), hex.size());
        proto::server_hello hello;
        hello.session_id = sid;
        hello.resumed = resumed;
        hello.heartbeat_ms = to_ms(time_point{cfg_.heartbeat});
        hello.ts = wall_ms(now);
        hello.caps = caps;
        hello.limits.max_message_bytes = static_cast<std::int64_t>(cfg_.max_message_bytes);
        hello.limits.replay_window = static_cast<std::int64_t>(cfg_.replay_window);
        hello.limits.dedup_window_ms = to_ms(time_point{cfg_.dedup_window});
        hello.limits.grace_ms = to_ms(time_point{cfg_.grace});
        hello.limits.rate_per_s = cfg_.rate_per_s;
        hello.limits.rate_burst = cfg_.rate_burst;
        out_.clear();
        proto::write_envelope(out_, hello);
        send_text(i, out_);

        event ev;
        ev.type = event_type::connected;
        ev.conn = id_of(i);
        ev.principal = ss.principal.view();
        ev.session_id = std::string(sid);
        ev.resumed = resumed;
        push_event(std::move(ev));

        if (was_away)
            for (const membership& m : ss.rooms)
                if (!others_of(m.room, s).connected) send_presence(m.room, proto::presence_kind::reconnected, s);
    }

    // ---- messages --------------------------------------------------------------------

    void on_message(std::uint32_t i, const ws::event& e, time_point now) {
        connection_state& c = conns_[i];
        // Frames that arrive after our close (or after a takeover) are not acted on.
        if (c.ws->state() != ws::state::open || c.session == no_index) return;
        if (!e.is_text) {
            // PROTOCOL.md §1: binary is reserved for a later encoding.
            close_connection(i, ws::close_code::unsupported_data, R"({"reason":"binary_unsupported"})", now);
            return;
        }
        const proto::parse_result res = reader_.read(e.text(), env_);
        if (!res) {
            send_error(i, *res.error, res.message, res.correlation_id, res.id, {}, std::nullopt);
            return bad_request_strike(i, now);
        }
        // docs/protocol.md: the rate limit applies to every message, after
        // parsing (so that the refusal can echo correlation_id and id).
        if (!c.bucket.try_take(now)) {
            const std::int64_t retry = detail::ceil_ms(c.bucket.retry_after(now).count());
            send_error(i, proto::error_code::rate_limited, "rate limit exceeded", env_.correlation_id, env_.id,
                       env_.room_id, retry);
            if (conns_[i].rate_strikes.strike(now, cfg_.rate_abuse_window, cfg_.rate_abuse_strikes)) {
                const auto reason = detail::make_close_reason("rate_limit", to_ms(time_point{cfg_.rate_abuse_window}));
                close_connection(i, ws::close_code::rate_limit_abuse, reason.view(), now);
            }
            return;
        }
        const std::string_view kind = env_.kind;
        if (kind == "client.join") return on_join(i, now);
        if (kind == "client.leave") return on_leave(i, now);
        if (kind == "client.pong") return on_pong(i, now);
        if (proto::is_reserved_kind(kind)) {
            // PROTOCOL.md §7: server.*, room.*, presence.* and unknown client.*.
            send_error(i, proto::error_code::unknown_kind, "kind is reserved for the protocol", env_.correlation_id,
                       env_.id, {}, std::nullopt);
            return bad_request_strike(i, now);
        }
        on_publish(i, now);
    }

    void bad_request(std::uint32_t i, time_point now, const char* message) {
        send_error(i, proto::error_code::bad_request, message, env_.correlation_id, env_.id, {}, std::nullopt);
        bad_request_strike(i, now);
    }

    void bad_request_strike(std::uint32_t i, time_point now) {
        if (conns_[i].bad_requests.strike(now, cfg_.bad_request_window, cfg_.max_bad_requests))
            close_connection(i, ws::close_code::policy_violation, R"({"reason":"bad_requests"})", now);
    }

    void on_pong(std::uint32_t i, time_point now) {
        // Liveness was counted on arrival; PROTOCOL.md §7: ts must be an integer.
        if (!env_.ts) bad_request(i, now, "client.pong: ts missing");
    }

    void on_join(std::uint32_t i, time_point now) {
        if (!env_.has(proto::field::room_id)) return bad_request(i, now, "client.join: room_id missing");
        const std::uint32_t s = conns_[i].session;
        const std::string_view room_id = env_.room_id;
        const std::uint64_t h = dir_.room_hash(room_id);
        std::uint32_t r = dir_.find_room(room_id, h);
        const bool fresh = r == no_index || dir_.find_membership(s, r) == no_index;
        if (fresh) {
            if (dir_.sess(s).rooms.size() >= cfg_.max_rooms_per_session)
                return refuse_request(i, proto::error_code::too_many_rooms, "too many rooms for this session");
            if (cfg_.authorize_join && !cfg_.authorize_join(dir_.sess(s).principal.view(), room_id))
                return refuse_request(i, proto::error_code::forbidden, "join refused");
            if (r == no_index) {
                if (dir_.room_count() >= cfg_.max_rooms)
                    return refuse_request(i, proto::error_code::too_many_rooms, "server room limit reached");
                r = dir_.create_room(room_id, h, cfg_.replay_window, cfg_.replay_max_age);
            }
            dir_.add_membership(s, r);
            room_timers_.remove(r);
        }
        server::room& R = dir_.rm(r);
        R.log.prune(now);

        // PROTOCOL.md §3 and §7 "Replay window", "resume_from without epoch".
        proto::room_joined rj;
        rj.room_id = R.id.view();
        rj.head = R.head;
        rj.epoch = R.epoch();
        rj.correlation_id = env_.correlation_id;
        rj.id = env_.id;
        std::int64_t replay_from = -1;
        if (!env_.resume_from) {
            rj.resume = proto::resume_mode::none;
        } else if (!env_.has(proto::field::epoch) || env_.epoch != R.epoch()) {
            rj.resume = proto::resume_mode::snapshot_required;
            rj.reason = proto::resume_reason::epoch_changed;
        } else if (*env_.resume_from > R.head) {
            rj.resume = proto::resume_mode::snapshot_required;
            rj.reason = proto::resume_reason::ahead;
        } else if (*env_.resume_from == R.head || R.log.covers_after(*env_.resume_from)) {
            rj.resume = proto::resume_mode::replay;
            rj.replay_to = R.head;
            replay_from = *env_.resume_from;
        } else {
            rj.resume = proto::resume_mode::snapshot_required;
            rj.reason = proto::resume_reason::truncated;
        }
        // docs/protocol.md: each principal once, sorted, away sessions included.
        names_.clear();
        for (const member_ref& m : R.members) names_.push_back(dir_.sess(m.session).principal.view());
        std::sort(names_.begin(), names_.end());
        names_.erase(std::unique(names_.begin(), names_.end()), names_.end());
        rj.members = names_;
        out_.clear();
        proto::write_envelope(out_, rj);
        if (out_.size() > cfg_.max_message_bytes) {
            // docs/protocol.md: a members list too long to send undoes the join.
            if (fresh) {
                dir_.remove_membership(s, dir_.find_membership(s, r));
                if (R.members.empty()) room_timers_.set(r, now + room_linger());
            }
            return refuse_request(i, proto::error_code::too_large, "room.joined would exceed max_message_bytes");
        }
        send_text(i, out_);
        if (replay_from >= 0) R.log.for_each_after(replay_from, [&](const ws::shared_frame& f) { send_shared(i, f); });

        if (fresh) {
            const principal_presence o = others_of(r, s);
            if (!o.any)
                send_presence(r, proto::presence_kind::joined, s);
            else if (!o.connected)  // its other sessions are all away: it is back
                send_presence(r, proto::presence_kind::reconnected, s);
            emit_room_event(event_type::joined, s, R.id.view());
        }
    }

    void on_leave(std::uint32_t i, time_point now) {
        if (!env_.has(proto::field::room_id)) return bad_request(i, now, "client.leave: room_id missing");
        const std::uint32_t s = conns_[i].session;
        const std::uint32_t r = dir_.find_room(env_.room_id);
        const std::uint32_t j = r == no_index ? no_index : dir_.find_membership(s, r);
        // Answer first: leave_room() may forget the room (and its id string).
        proto::room_left rl;
        rl.room_id = env_.room_id;
        rl.correlation_id = env_.correlation_id;
        rl.id = env_.id;
        out_.clear();
        proto::write_envelope(out_, rl);
        send_text(i, out_);
        if (j != no_index) leave_room(s, j, true, now);
    }

    void on_publish(std::uint32_t i, time_point now) {
        if (!env_.has(proto::field::room_id)) return bad_request(i, now, "room_id missing");
        // PROTOCOL.md §7: application events require id.
        if (!env_.has(proto::field::id)) return bad_request(i, now, "id missing");
        const std::uint32_t s = conns_[i].session;
        const std::uint32_t r = dir_.find_room(env_.room_id);
        if (r == no_index || dir_.find_membership(s, r) == no_index)
            return refuse_request(i, proto::error_code::not_member, "not a member of this room");
        const std::string_view principal = dir_.sess(s).principal.view();
        if (cfg_.authorize_publish && !cfg_.authorize_publish(principal, env_.room_id, env_.kind))
            return refuse_request(i, proto::error_code::forbidden, "publish refused");
        server::room& R = dir_.rm(r);

        // PROTOCOL.md §7 "Dedup key": (principal, id), state in the room.
        R.dedup.prune(now, dedup_);
        const std::uint64_t key = dir_.dedup_key(principal, env_.id);
        if (const auto original = R.dedup.find(key)) return send_ack(i, *original, proto::ack_status::duplicate);
        if (R.head >= max_event_id)  // 2^53-1 events: unreachable in practice
            return refuse_request(i, proto::error_code::too_large, "room event_id space exhausted");

        proto::room_event ev;
        ev.kind = env_.kind;
        ev.room_id = R.id.view();
        ev.event_id = R.head + 1;
        ev.sender = principal;
        ev.id = env_.id;
        ev.payload = env_.payload;
        ev.ts = wall_ms(now);
        out_.clear();
        proto::write_envelope(out_, ev);
        // docs/protocol.md: no client ever receives a frame over max_message_bytes.
        if (out_.size() > cfg_.max_message_bytes)
            return refuse_request(i, proto::error_code::too_large, "event too large once relayed");
        ws::shared_frame frame = ws::connection::make_shared_frame(out_);
        if (!frame) return refuse_request(i, proto::error_code::too_large, "out of memory");

        ++R.head;
        R.log.append(R.head, now, frame);
        R.log.prune(now);
        R.dedup.insert(key, R.head, now, dedup_);
        // Every member, the sender included (PROTOCOL.md §3); away members
        // catch up by replay.
        broadcast(R, frame);
        send_ack(i, R.head, proto::ack_status::accepted);
    }

    /// Queue `frame` on every connected member of R. In a room of 10,000 the
    /// members' slots are cold cache lines: each member_ref carries its
    /// connection slot (no session lookup), the frame waits in the slot
    /// (queue_shared), the slots are prefetched a few members ahead so
    /// their misses overlap, and the frame's count is raised once.
    void broadcast(const server::room& R, const ws::shared_frame& frame) {
        const member_ref* m = R.members.data();
        const std::size_t n = R.members.size();
        const std::size_t size = frame.size();
        const std::size_t high_water = cfg_.send_high_water;
        std::uint32_t refs = 0;
        // A window of the next `ahead` members' slot addresses: each is
        // computed once (a chunked index costs a few instructions), and
        // prefetched when it enters the window.
        constexpr std::size_t ahead = 16;  // a power of two: k % ahead is a mask (12 and 24 measured 11.2 ns against 8.8)
        static_assert((ahead & (ahead - 1)) == 0);
        connection_state* window[ahead];
        const auto enter = [&](std::size_t k) {
            connection_state* c = m[k].conn == no_index ? nullptr : &conns_[m[k].conn];
            if (c) {
                // The fields a broadcast touches span the slot's first 48
                // bytes; slots are 120 bytes, so those often straddle two lines.
                prefetch_write(c);
                prefetch_write(reinterpret_cast<const char*>(c) + 47);
            }
            window[k % ahead] = c;
        };
        for (std::size_t k = 0; k < ahead && k < n; ++k) enter(k);
        for (std::size_t k = 0; k < n; ++k) {
            connection_state* c = window[k % ahead];
            if (k + ahead < n) enter(k + ahead);
            if (c) queue_shared(*c, m[k].conn, frame, size, high_water, &refs);
        }
        frame.retain(refs);
    }

    void send_ack(std::uint32_t i, std::int64_t event_id, proto::ack_status st) {
        proto::server_ack ack;
        ack.id = env_.id;
        ack.room_id = env_.room_id;
        ack.event_id = event_id;
        ack.status = st;
        ack.correlation_id = env_.correlation_id;
        out_.clear();
        proto::write_envelope(out_, ack);
        send_text(i, out_);
    }

    /// A refusal that is not a malformed request (no strike).
    void refuse_request(std::uint32_t i, proto::error_code code, const char* message) {
        send_error(i, code, message, env_.correlation_id, env_.id, env_.room_id, std::nullopt);
    }

    void send_error(std::uint32_t i, proto::error_code code, std::string_view message, std::string_view corr,
                    std::string_view id, std::string_view room_id, std::optional<std::int64_t> retry_after_ms) {
        proto::server_error e;
        e.code = code;
        e.message = message;
        e.retry_after_ms = retry_after_ms;
        e.correlation_id = corr;
        e.id = id;
        e.room_id = room_id;
        out_.clear();
        proto::write_envelope(out_, e);
        send_text(i, out_);
    }

    // ---- presence and membership --------------------------------------------------------

    // Presence is per principal (docs/protocol.md): peers see the state of a
    // principal in a room over all its sessions there: present while one is
    // connected, away while all are away, gone with the last. Each session
    // change below sends only the transitions of that state.
    struct principal_presence {
        bool any = false;        ///< another session of the principal is a member
        bool connected = false;  ///< ... and one of them is connected
    };
    principal_presence others_of(std::uint32_t r, std::uint32_t s) const {
        principal_presence p;
        const std::string_view who = dir_.sess(s).principal.view();
        for (const member_ref& m : dir_.rm(r).members) {
            if (m.session == s) continue;
            const session& o = dir_.sess(m.session);
            if (o.principal.view() != who) continue;
            p.any = true;
            if (o.conn != no_index) {
                p.connected = true;
                break;
            }
        }
        return p;
    }

    /// Presence about the principal of session `about` to every connected
    /// member of room r that is another principal.
    void send_presence(std::uint32_t r, proto::presence_kind kind, std::uint32_t about) {
        if (draining_) return;  // every connection is closing: nobody to tell
        server::room& R = dir_.rm(r);
        proto::presence_event p;
        p.kind = kind;
        p.room_id = R.id.view();
        p.user = dir_.sess(about).principal.view();
        ws::shared_frame frame;
        for (const member_ref& m : R.members) {
            if (m.session == about) continue;
            const session& peer = dir_.sess(m.session);
            if (peer.principal.view() == p.user) continue;  // its own sessions know
            const std::uint32_t to = peer.conn;
            if (to == no_index || !can_send(to)) continue;
            if (!frame) {  // framed once, and only if someone is listening
                out_.clear();
                proto::write_envelope(out_, p);
                frame = ws::connection::make_shared_frame(out_);
                if (!frame) return;
            }
            queue_shared(conns_[to], to, frame, frame.size(), cfg_.send_high_water);
        }
    }

    /// The session leaves the j-th of its rooms: peers see presence.left
    /// when it was the principal's last session there (presence.away when
    /// it was the last connected one). `was_connected`: the session had a
    /// connection before this change.
    void leave_room(std::uint32_t s, std::uint32_t j, bool was_connected, time_point now) {
        const std::uint32_t r = dir_.sess(s).rooms[j].room;
        const principal_presence o = others_of(r, s);
        if (!o.any)
            send_presence(r, proto::presence_kind::left, s);
        else if (!o.connected && was_connected)
            send_presence(r, proto::presence_kind::away, s);
        dir_.remove_membership(s, j);
        emit_room_event(event_type::left, s, dir_.rm(r).id.view());
        if (dir_.rm(r).members.empty()) room_timers_.set(r, now + room_linger());
    }

    // ---- session lifecycle -------------------------------------------------------------

    /// Attach session s to connection slot i (no_index: away). Each of its
    /// room entries carries the slot too, so a broadcast reads it from the
    /// member list. Invariant: a slot named here is open and attached — every
    /// close path detaches first — so a broadcast needs no state check.
    void set_conn(std::uint32_t s, std::uint32_t i) {
        session& ss = dir_.sess(s);
        ss.conn = i;
        for (const membership& m : ss.rooms) dir_.rm(m.room).members[m.index].conn = i;
    }

    /// Detach the session from connection i. Intentional (client close
    /// 1000/1001): the session ends now. Otherwise it is away for the grace
    /// period (PROTOCOL.md §3 "Presence", §7 "Intentional close").
    void detach(std::uint32_t i, bool intentional, time_point now) {
        connection_state& c = conns_[i];
        const std::uint32_t s = c.session;
        if (s == no_index) return;
        c.session = no_index;
        set_conn(s, no_index);
        session& ss = dir_.sess(s);
        if (intentional) return end_session(s, now, true);
        ss.grace_deadline = now + cfg_.grace;
        session_timers_.set(s, ss.grace_deadline);
        for (const membership& m : ss.rooms)
            if (!others_of(m.room, s).connected) send_presence(m.room, proto::presence_kind::away, s);
    }

    /// End a session: presence.left in every room, then forget it.
    /// `was_connected`: it had a connection until this close (an intentional
    /// close) rather than being away (a grace expiry).
    void end_session(std::uint32_t s, time_point now, bool was_connected = false) {
        session& ss = dir_.sess(s);
        if (ss.conn != no_index) {  // still attached (a grace expiry never is)
            conns_[ss.conn].session = no_index;
            set_conn(s, no_index);
            was_connected = true;
        }
        while (!ss.rooms.empty())
            leave_room(s, static_cast<std::uint32_t>(ss.rooms.size() - 1), was_connected, now);
        session_timers_.remove(s);
        dir_.release_session(s);
    }

    void emit_room_event(event_type t, std::uint32_t s, std::string_view room_id) {
        const session& ss = dir_.sess(s);
        event ev;
        ev.type = t;
        if (ss.conn != no_index) ev.conn = id_of(ss.conn);
        ev.principal = ss.principal.view();
        const auto hex = ss.key.hex();
        ev.session_id.assign(hex.data(), hex.size());
        ev.room_id = std::string(room_id);
        push_event(std::move(ev));
    }

    // ---- rooms --------------------------------------------------------------------------

    /// docs/protocol.md: an empty room is forgotten after max(dedup_window, replay_max_age).
    duration room_linger() const noexcept { return std::max(cfg_.dedup_window, cfg_.replay_max_age); }

    // ---- sending --------------------------------------------------------------------------

    bool can_send(std::uint32_t i) const noexcept {
        const connection_state& c = conns_[i];
        return c.ws && !c.slow && c.ws->state() == ws::state::open;
    }

    void send_text(std::uint32_t i, std::string_view text) {
        if (!can_send(i)) return;
        // Server frames always fit max_message_bytes (the floor in effective()
        // and too_large refusals see to it); output_full is the only refusal.
        spill(i);
        if (conns_[i].ws->send_text(text) == ws::error::output_full) mark_slow(i);
        after_send(i);
    }

    void send_shared(std::uint32_t i, const ws::shared_frame& f) {
        if (!can_send(i)) return;
        spill(i);
        if (conns_[i].ws->send_shared(f) == ws::error::output_full) mark_slow(i);
        after_send(i);
    }

    /// Queue a broadcast frame on connection i: held in the slot while the
    /// WebSocket queue is empty (pending_frames.hpp), else send_shared().
    /// `raw_refs`: when given, the reference is counted there for one
    /// retain() after the loop instead of being taken now. Inlined in the
    /// broadcast loop; the general path stays out of it.
    /// `size` and `high_water` are f.size() and cfg_.send_high_water, read
    /// once by the caller's loop (the stores here could alias them).
    [[gnu::always_inline]] void queue_shared(connection_state& c, std::uint32_t i, const ws::shared_frame& f,
                                             std::size_t size, std::size_t high_water,
                                             std::uint32_t* raw_refs = nullptr) {
        if (c.slow) return;  // can_send(): an attached connection is open (see set_conn)
        if (c.ws_output || c.pending.full() || c.pending.bytes() + size > high_water)
            return send_shared_cold(i, f);
        c.pending.push_raw(f.raw());
        if (raw_refs)
            ++*raw_refs;
        else
            f.retain(1);
        if (!c.flush_reported) {
            c.flush_reported = true;
            order_.push_back(queued{{i, c.generation}, true});
        }
    }
    [[gnu::noinline]] void send_shared_cold(std::uint32_t i, const ws::shared_frame& f) { send_shared(i, f); }

    /// Move connection i's pending broadcast frames into its WebSocket
    /// queue, in order: done before anything else is queued there, so the
    /// byte stream is the one direct sends would have built.
    void spill(std::uint32_t i) {
        connection_state& c = conns_[i];
        if (c.pending.empty()) return;
        c.pending.drain([&](const ws::shared_frame& f, std::size_t off) {
            [[maybe_unused]] const auto ec = c.ws->send_shared(f, off);
            assert(!ec);  // pending only while open and the queue had room
        });
        c.ws_output = c.ws->buffered_output() != 0;
    }

    /// After anything that may have queued output on connection i.
    void after_send(std::uint32_t i) {
        connection_state& c = conns_[i];
        const std::size_t w = c.ws->buffered_output();
        c.ws_output = w != 0;
        const std::size_t n = w + c.pending.bytes();
        if (n > 0 && !c.flush_reported) {
            c.flush_reported = true;
            order_.push_back(queued{id_of(i), true});
        }
        // PROTOCOL.md §5 "Slow readers".
        if (n > cfg_.send_high_water) mark_slow(i);
    }

    void push_event(event&& ev) {
        order_.push_back(queued{ev.conn, false});
        rich_.push_back(std::move(ev));
    }

    void mark_slow(std::uint32_t i) {
        connection_state& c = conns_[i];
        if (c.slow || c.ws->state() != ws::state::open) return;
        c.slow = true;
        slow_.push_back(i);
    }

    /// Deferred work at the end of every public call: close slow readers
    /// (which may make others slow: iterate until none is left).
    void settle(time_point now) {
        while (!slow_.empty()) {
            const std::uint32_t i = slow_.back();
            slow_.pop_back();
            const auto reason =
                detail::make_close_reason("slow_reader", to_ms(time_point{cfg_.slow_reader_retry_after}));
            close_connection(i, ws::close_code::try_again_later, reason.view(), now);
        }
    }

    /// Server-initiated close. Every such close leaves the session away and
    /// resumable (docs/protocol.md); only a client's 1000/1001 ends it.
    void close_connection(std::uint32_t i, ws::close_code code, std::string_view reason, time_point now) {
        connection_state& c = conns_[i];
        if (!c.ws || c.ws->state() != ws::state::open) return;
        spill(i);
        (void)c.ws->close(now, code, reason);
        if (c.close_code == 0) c.close_code = ws::to_int(code);
        after_send(i);
        detach(i, false, now);
        rearm(i);
    }

    // ---- timers ----------------------------------------------------------------------------

    bool heartbeat_on() const noexcept { return cfg_.heartbeat > duration::zero(); }

    std::int64_t wall_ms(time_point now) const noexcept { return cfg_.unix_ms_at_origin + to_ms(now); }

    /// The true earliest deadline of connection i.
    time_point earliest(std::uint32_t i) const noexcept {
        const connection_state& c = conns_[i];
        time_point d = c.ws->next_deadline();
        if (c.ws->state() == ws::state::open && heartbeat_on()) {
            d = std::min(d, c.next_ping);
            d = std::min(d, c.last_rx + 2 * cfg_.heartbeat);
        }
        return d;
    }

    /// The lazy re-arm: touch the heap only if a deadline moved earlier.
    void rearm(std::uint32_t i) {
        const time_point d = earliest(i);
        if (d == never)
            conn_timers_.remove(i);
        else
            conn_timers_.arm_no_later_than(i, d);
    }

    void service_connection(std::uint32_t i, time_point now) {
        ++wakeups_;
        connection_state& c = conns_[i];
        if (!c.ws) {
            conn_timers_.remove(i);
            return;
        }
        if (!(now < c.ws->next_deadline())) {
            spill(i);
            c.ws->handle_timeout(now);
            process(i, now);
        }
        if (c.ws->state() == ws::state::open && heartbeat_on()) {
            if (!(now < c.last_rx + 2 * cfg_.heartbeat)) {
                // docs/protocol.md: nothing received for 2 * heartbeat_ms.
                close_connection(i, ws::close_code::heartbeat_timeout, R"({"reason":"heartbeat_timeout"})", now);
            } else if (!(now < c.next_ping)) {
                // The heartbeat tick. A connection that sent no message since
                // the previous tick is idle: release its buffers now, and its
                // output buffer once the ping is written (consume_output).
                if (c.quiet) c.ws->shrink_buffers();
                c.quiet = true;
                send_ping(i, now);
                c.next_ping = now + cfg_.heartbeat;
            }
        }
        time_point d = earliest(i);
        if (d != never && !(now < d)) d = now + duration{1};  // defensive: always make progress
        conn_timers_.set(i, d);
    }

    void send_ping(std::uint32_t i, time_point now) {
        heads_.clear();
        const std::uint32_t s = conns_[i].session;
        if (s != no_index)
            for (const membership& m : dir_.sess(s).rooms) heads_.push_back({dir_.rm(m.room).id.view(), dir_.rm(m.room).head});
        proto::server_ping p;
        p.ts = wall_ms(now);
        p.heads = heads_;
        out_.clear();
        proto::write_envelope(out_, p);
        send_text(i, out_);
    }

    // ---- state ----------------------------------------------------------------------------

    config cfg_;
    ws::config ws_cfg_;
    dedup_limits dedup_;
    rng rng_;
    directory dir_{rng_};

    slot_array<connection_state> conns_;
    std::vector<std::uint32_t> free_conns_;
    std::size_t live_conns_ = 0;

    timer_heap conn_timers_;
    timer_heap session_timers_;
    timer_heap room_timers_;
    std::uint64_t wakeups_ = 0;

    // The event queue: order_ says what comes next; log events (with their
    // strings) wait in rich_, in the same order.
    struct queued {
        conn_id conn;
        bool flush = false;
    };
    ring_buffer<queued> order_;
    ring_buffer<event> rich_;
    std::vector<std::uint32_t> slow_;
    bool draining_ = false;

    // scratch, reused so that the hot paths do not allocate
    proto::envelope_reader reader_;
    proto::envelope env_;
    std::string out_;
    std::vector<std::string_view> names_;
    std::vector<proto::room_head> heads_;
};

}  // namespace tether::server
