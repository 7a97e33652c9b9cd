// tests/sim/sim_world.hpp — a Sans-IO network emulator: one tether server
// endpoint and any number of tether clients (the full stack, over bytes:
// client::ws_client ⇄ simulated TCP ⇄ server::endpoint), on a virtual clock.
//
// Theory of operation
// -------------------
// Nothing here sleeps or reads a clock. step() finds the earliest thing that
// can happen — a segment arriving, a machine's next_deadline(), a scheduled
// fault — moves `now` there and delivers it. Everything the machines emit is
// moved into pipes at once (the event loop of a real program, in a few lines).
//
// A pipe models one direction of a TCP connection: ordered and lossless
// while up (TCP never loses bytes; what the network loses is time, modelled
// as latency plus per-segment jitter that never reorders), with a receive
// window: a client marked `paused` reads nothing, so the server's output
// piles up in the endpoint exactly as it would in a real socket buffer
// (that is how slow readers are produced). Faults:
//   reset(i)      both ends see the transport close (after in-flight data)
//   half_open(i)  the link silently eats everything; nobody is told
//   set_offline(i) new TCP connects fail until back online (combine with
//                 reset(i) to also drop the current connection)
//   restart_server(seed)
//                 the server process dies (every link resets) and a new
//                 endpoint starts with a new seed: history is lost
//   restart_server_durable()
//                 the server process restarts with durable history. The
//                 endpoint has no storage API, so this is modelled by keeping
//                 the endpoint object (rooms: epoch, head, replay log, dedup
//                 window) and resetting every link: bytes in flight toward the
//                 server are lost, every connection is reported closed to the
//                 endpoint (abnormally: sessions go away), and clients see the
//                 reset after `latency`. Sessions survive too (as if they were
//                 persisted with the history), so clients resume them.
//   node::extra_delay
//                 a loss burst on one link: TCP retransmits, so what the
//                 network loses is time; segments sent while it is set arrive
//                 that much later (and everything after them waits: in order)
//
// Each segment is tagged with the connection it belongs to: bytes toward
// the server go to the server connection they were written on (a client's
// new connection never receives its old connection's bytes), and bytes
// toward a client are dropped once that client has opened another TCP
// connection (its old socket is closed).
//
// Every delivered input and every output is appended to `trace`, a text
// transcript: two runs with the same seeds and the same script produce the
// same trace byte for byte (tests/test_sim_determinism.cpp checks it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <unordered_map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tether/client/ws_client.hpp"
#include "tether/core/random.hpp"
#include "tether/core/time.hpp"
#include "tether/proto/envelope.hpp"
#include "tether/server/endpoint.hpp"

namespace tsim {

using namespace std::chrono_literals;
using tether::duration;
using tether::time_point;

struct segment {
    time_point at;
    std::vector<std::uint8_t> bytes;
    std::uint64_t tag = 0;  ///< toward the server: the server connection (world::key); toward a client: its tcp_serial
};

/// One direction of a simulated TCP connection.
struct pipe {
    std::deque<segment> q;
    time_point last_at{};
    std::size_t in_flight = 0;

    void push(time_point at, std::span<const std::uint8_t> b, std::uint64_t tag = 0) {
        if (at < last_at) at = last_at;  // TCP delivers in order
        last_at = at;
        q.push_back({at, {b.begin(), b.end()}, tag});
        in_flight += b.size();
    }
    time_point next() const { return q.empty() ? tether::never : q.front().at; }
};

/// A client's view of what happened, for assertions.
struct client_log {
    std::vector<std::string> lines;  ///< every event, rendered
    /// (room, event_id, id, payload) of every application message delivered, in order.
    struct msg {
        std::string room;
        std::int64_t event_id;
        std::string sender, id, payload;
    };
    std::vector<msg> messages;
    std::vector<std::string> acked;  ///< ids acked (accepted or duplicate)
    std::vector<std::string> presence;  ///< "room user kind"
    std::vector<std::uint16_t> close_codes;  ///< codes seen in reconnecting/stopped events
    int connects = 0;                 ///< TCP connect attempts
    int hellos = 0;                   ///< connected events
    bool snapshot_pending = false;

    bool saw(std::string_view needle) const {
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
    std::size_t count(std::string_view needle) const {
        std::size_t n = 0;
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) ++n;
        return n;
    }
};

class world {
public:
    struct node {
        node(std::string n, tether::client::ws_client cl) : name(std::move(n)), c(std::move(cl)) {}
        std::string name;
        tether::client::ws_client c;
        bool tcp_up = false;       ///< a TCP connection exists (or is being opened)
        std::uint64_t link = 0;    ///< link generation: stale segments are dropped
        tether::server::conn_id conn{};
        pipe to_server, to_client;
        time_point connect_at = tether::never;  ///< pending handle_tcp_connected
        time_point closed_at = tether::never;   ///< pending handle_tcp_closed
        bool offline = false;
        bool half_open = false;
        bool paused = false;       ///< reads nothing (slow reader)
        /// Extra one-way delay on this link, both directions (a loss burst:
        /// TCP retransmits, so what is lost is time). Zero: none.
        duration extra_delay{};
        std::uint64_t tcp_serial = 0;  ///< counts connect_tcp: tags bytes toward the client
        client_log log;
        /// Called for every client event, after it is logged and before
        /// on_snapshot (views in the event are valid during the call).
        std::function<void(node&, const tether::client::event&)> on_event;
        /// Called for snapshot_required: default loads a snapshot at `head`.
        std::function<void(node&, std::string_view room, std::int64_t head)> on_snapshot;
    };

    explicit world(tether::server::config scfg, std::uint64_t seed = 1)
        : scfg_(std::move(scfg)), rng_(seed) {
        server_ = std::make_unique<tether::server::endpoint>(scfg_);
    }

    // ---- setup --------------------------------------------------------------------

    duration latency = 5ms;
    duration jitter = 0ms;                 ///< extra per-segment delay, uniform in [0, jitter]
    std::size_t recv_window = 256u << 10;  ///< bytes a client has in flight toward it
    std::string trace;                     ///< transcript of everything, for determinism checks
    bool tracing = true;
    /// False (with tracing off): client events are not rendered into
    /// node::log, whose hellos counter alone is kept. For long randomized
    /// runs that observe events through node::on_event.
    bool keep_logs = true;
    /// Called for every log event of the server (connected, joined, left, closed).
    std::function<void(const tether::server::event&)> on_server_event;

    time_point now() const { return now_; }
    tether::server::endpoint& server() { return *server_; }
    node& client(std::size_t i) { return *nodes_[i]; }
    std::size_t client_count() const { return nodes_.size(); }

    std::size_t add_client(std::string name, tether::client::ws_client_config cfg = {}) {
        if (cfg.client.seed == 0) cfg.client.seed = 1000 + nodes_.size();
        if (cfg.ws.seed == 0) cfg.ws.seed = 2000 + nodes_.size();
        if (cfg.client.path == "/") cfg.client.path = "/ws?user=" + name;
        nodes_.push_back(std::make_unique<node>(std::move(name), tether::client::ws_client(std::move(cfg))));
        return nodes_.size() - 1;
    }

    // ---- faults -------------------------------------------------------------------------

    /// TCP reset: both ends learn of it once in-flight bytes have arrived.
    void reset(std::size_t i) {
        node& n = *nodes_[i];
        if (!n.tcp_up) return;
        note("fault reset " + n.name);
        close_link(n, /*notify_server=*/true);
    }

    /// The link goes silent in both directions; nobody is told.
    void half_open(std::size_t i, bool on = true) {
        note(std::string("fault half_open ") + (on ? "on " : "off ") + nodes_[i]->name);
        nodes_[i]->half_open = on;
    }

    void set_offline(std::size_t i, bool on) {
        note(std::string("fault offline ") + (on ? "on " : "off ") + nodes_[i]->name);
        nodes_[i]->offline = on;
    }

    void set_paused(std::size_t i, bool on) {
        note(std::string("fault paused ") + (on ? "on " : "off ") + nodes_[i]->name);
        nodes_[i]->paused = on;
    }

    /// The server dies; a new endpoint starts. Without durable history every
    /// room gets a new epoch (the new seed draws new ones).
    void restart_server(std::uint64_t new_seed) {
        note("fault restart");
        for (auto& n : nodes_) {
            // Bytes toward the dead process are lost (and must not reach the
            // new endpoint, whose connection ids start over).
            n->to_server.q.clear();
            n->to_server.in_flight = 0;
            if (!n->tcp_up) {
                n->conn = {};
                continue;
            }
            n->tcp_up = false;
            ++n->link;
            n->closed_at = now_ + latency;
        }
        scfg_.seed = new_seed;
        server_ = std::make_unique<tether::server::endpoint>(scfg_);
        conn_owner_.clear();
        dirty_.clear();
        pending_server_close_.clear();
    }

    /// The server process restarts with durable history (see the top of the
    /// file for the model): same endpoint, every link reset.
    void restart_server_durable() {
        note("fault restart durable");
        for (auto& n : nodes_) {
            n->to_server.q.clear();
            n->to_server.in_flight = 0;
            if (!n->tcp_up) continue;
            n->tcp_up = false;
            ++n->link;
            n->connect_at = tether::never;
            n->closed_at = now_ + latency;
        }
        // The old process's sockets are gone, half-open ones included; in
        // connection order so that runs are reproducible.
        std::vector<std::uint64_t> keys;
        keys.reserve(conn_owner_.size());
        for (const auto& kv : conn_owner_) keys.push_back(kv.first);
        for (const auto& pc : pending_server_close_) keys.push_back(key(pc.second));
        std::sort(keys.begin(), keys.end());
        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
        conn_owner_.clear();
        dirty_.clear();
        pending_server_close_.clear();
        for (const std::uint64_t k : keys) {
            const tether::server::conn_id id{static_cast<std::uint32_t>(k >> 32), static_cast<std::uint32_t>(k)};
            if (server_->is_live(id)) server_->handle_transport_closed(now_, id);
        }
        // What the endpoint says about those closes concerns nobody's socket.
        while (auto e = server_->poll_event()) {
            if (e->type == tether::server::event_type::flush || e->type == tether::server::event_type::close_transport)
                continue;
            note(std::string("server log ") + tether::server::to_string(e->type) + " p=" + e->principal +
                 " r=" + e->room_id + " code=" + std::to_string(e->code));
            if (on_server_event) on_server_event(*e);
        }
        settle();
    }

    // ---- running ----------------------------------------------------------------------

    /// Advance to the next thing that happens and deliver it. False when
    /// nothing is scheduled before `limit`.
    bool step(time_point limit) {
        time_point t = server_->next_deadline();
        for (auto& n : nodes_) {
            t = std::min({t, n->c.next_deadline(), n->connect_at, n->closed_at});
            if (!n->half_open) {
                t = std::min(t, n->to_server.next());
                if (!n->paused) t = std::min(t, n->to_client.next());
            }
        }
        if (t > limit) {
            now_ = std::max(now_, limit);
            return false;
        }
        now_ = std::max(now_, t);
        for (std::size_t i = 0; i < nodes_.size(); ++i) deliver(*nodes_[i]);
        if (server_->next_deadline() <= now_) server_->handle_timeout(now_);
        for (auto& n : nodes_)
            if (n->c.next_deadline() <= now_) n->c.handle_timeout(now_);
        settle();
        return true;
    }

    void run_for(duration d) {
        const time_point end = now_ + d;
        settle();
        while (step(end)) {
        }
    }

    template <class Pred>
    bool run_until(Pred pred, duration max) {
        const time_point end = now_ + max;
        settle();
        while (!pred()) {
            if (!step(end)) return pred();
        }
        return true;
    }

    /// Move every pending output and event of every machine; call after
    /// issuing commands directly on a client.
    void settle() {
        for (int round = 0; round < 1000; ++round) {
            bool moved = false;
            for (auto& n : nodes_) moved |= drain_client(*n);
            moved |= drain_server();
            if (!moved) return;
        }
    }

    /// Issue an application command on client i, then settle.
    template <class F>
    auto with(std::size_t i, F&& f) {
        if constexpr (std::is_void_v<decltype(f(nodes_[i]->c, now_))>) {
            f(nodes_[i]->c, now_);
            settle();
        } else {
            auto r = f(nodes_[i]->c, now_);
            settle();
            return r;
        }
    }

    void note(const std::string& s) {
        if (tracing) trace += std::to_string(tether::to_ms(now_)) + " " + s + "\n";
    }

private:
    void close_link(node& n, bool notify_server) {
        n.tcp_up = false;
        ++n.link;
        n.connect_at = tether::never;
        n.to_server.q.clear();
        n.to_server.in_flight = 0;
        n.to_client.q.clear();
        n.to_client.in_flight = 0;
        n.closed_at = now_ + latency;
        if (notify_server && server_->is_live(n.conn)) {
            server_->handle_transport_closed(now_, n.conn);
            conn_owner_.erase(key(n.conn));
        }
    }

    static std::uint64_t key(tether::server::conn_id id) {
        return (std::uint64_t{id.index} << 32) | id.generation;
    }

    time_point arrival(const node& n) {
        duration d = latency + n.extra_delay;
        if (jitter.count() > 0) d += duration(static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(jitter.count()) + 1)));
        return now_ + d;
    }

    void deliver(node& n) {
        if (n.connect_at <= now_) {
            n.connect_at = tether::never;
            note(n.name + " tcp_connected");
            n.c.handle_tcp_connected(now_);
        }
        if (n.half_open) {
            // A half-open link eats everything in both directions.
            n.to_server.q.clear();
            n.to_server.in_flight = 0;
            n.to_client.q.clear();
            n.to_client.in_flight = 0;
        }
        while (!n.to_server.q.empty() && n.to_server.q.front().at <= now_) {
            segment s = std::move(n.to_server.q.front());
            n.to_server.q.pop_front();
            n.to_server.in_flight -= s.bytes.size();
            const tether::server::conn_id to{static_cast<std::uint32_t>(s.tag >> 32), static_cast<std::uint32_t>(s.tag)};
            if (!server_->is_live(to)) continue;
            std::size_t pos = 0;
            while (pos < s.bytes.size()) {
                const std::size_t took = server_->handle_bytes(
                    now_, to, std::span<const std::uint8_t>(s.bytes.data() + pos, s.bytes.size() - pos));
                pos += took;
                drain_server();
                if (took == 0) break;
            }
        }
        while (!n.paused && !n.to_client.q.empty() && n.to_client.q.front().at <= now_) {
            segment s = std::move(n.to_client.q.front());
            n.to_client.q.pop_front();
            n.to_client.in_flight -= s.bytes.size();
            if (s.tag != n.tcp_serial) continue;  // for a socket the client has closed since
            std::size_t pos = 0;
            while (pos < s.bytes.size()) {
                const std::size_t took = n.c.handle_bytes(
                    now_, std::span<const std::uint8_t>(s.bytes.data() + pos, s.bytes.size() - pos));
                pos += took;
                drain_client(n);
                if (took == 0) break;
            }
        }
        // The FIN (or reset) comes after every byte sent before it.
        if (n.closed_at <= now_ && (n.paused || n.to_client.q.empty() || n.to_client.q.front().at > now_)) {
            n.closed_at = tether::never;
            note(n.name + " tcp_closed");
            n.c.handle_tcp_closed(now_);
        }
    }

    bool drain_client(node& n) {
        bool moved = false;
        while (auto e = n.c.poll_event()) {
            moved = true;
            record(n, *e);
        }
        while (auto a = n.c.poll_action()) {
            moved = true;
            if (a->type == tether::client::tcp_action_type::connect_tcp) {
                ++n.log.connects;
                if (n.tcp_up && !n.half_open) close_link(n, true);
                // A new connection is a new path: the old half-open one
                // stays dead on the server side until its heartbeat gives up.
                n.half_open = false;
                n.closed_at = tether::never;
                ++n.tcp_serial;
                note(n.name + " connect_tcp");
                if (n.offline || n.half_open) {
                    n.closed_at = now_ + latency;  // connection refused / timed out quickly
                } else {
                    n.tcp_up = true;
                    n.conn = server_->open_connection(now_);
                    conn_owner_[key(n.conn)] = &n;
                    n.connect_at = now_ + latency;
                }
            } else {
                note(n.name + " close_tcp");
                flush_client(n);
                if (n.tcp_up) {
                    // Our FIN reaches the server after the bytes in flight
                    // (unless the path is dead: then nobody hears it).
                    n.tcp_up = false;
                    ++n.link;
                    if (!n.half_open)
                        pending_server_close_.push_back(
                            {n.to_server.last_at > now_ ? n.to_server.last_at : now_ + latency, n.conn});
                }
            }
        }
        moved |= flush_client(n);
        return moved;
    }

    bool flush_client(node& n) {
        std::array<std::span<const std::uint8_t>, 16> runs;
        bool moved = false;
        for (;;) {
            const std::size_t k = n.c.gather_output(runs);
            if (k == 0) return moved;
            std::size_t total = 0;
            for (std::size_t i = 0; i < k; ++i) {
                if (n.tcp_up && !n.half_open) {
                    n.to_server.push(arrival(n), runs[i], key(n.conn));
                    if (tracing) trace += std::to_string(tether::to_ms(now_)) + " " + n.name + " > " + printable(runs[i]) + "\n";
                }
                total += runs[i].size();
            }
            n.c.consume_output(total);
            moved = true;
        }
    }

    bool drain_server() {
        bool moved = false;
        // FINs from clients whose bytes have all arrived.
        for (std::size_t i = 0; i < pending_server_close_.size();) {
            if (pending_server_close_[i].first <= now_) {
                const auto id = pending_server_close_[i].second;
                pending_server_close_.erase(pending_server_close_.begin() + static_cast<std::ptrdiff_t>(i));
                if (server_->is_live(id)) {
                    server_->handle_transport_closed(now_, id);
                    conn_owner_.erase(key(id));
                    moved = true;
                }
            } else {
                ++i;
            }
        }
        while (auto e = server_->poll_event()) {
            moved = true;
            const auto it = conn_owner_.find(key(e->conn));
            node* n = it == conn_owner_.end() ? nullptr : it->second;
            switch (e->type) {
                case tether::server::event_type::flush:
                    dirty_.push_back(e->conn);
                    break;
                case tether::server::event_type::close_transport:
                    flush_server(e->conn);
                    if (n && n->conn == e->conn && n->tcp_up) {
                        note("server close_transport " + n->name);
                        n->tcp_up = false;
                        ++n->link;
                        if (!n->half_open) n->closed_at = std::max(n->to_client.last_at, now_ + latency);
                    }
                    server_->handle_transport_closed(now_, e->conn);
                    conn_owner_.erase(key(e->conn));
                    break;
                default:
                    note(std::string("server log ") + tether::server::to_string(e->type) + " p=" + e->principal +
                         " r=" + e->room_id + " code=" + std::to_string(e->code));
                    if (on_server_event) on_server_event(*e);
                    break;
            }
        }
        // Write whatever fits in each receiver's window.
        for (std::size_t i = 0; i < dirty_.size();) {
            if (!server_->is_live(dirty_[i])) {
                dirty_.erase(dirty_.begin() + static_cast<std::ptrdiff_t>(i));
                continue;
            }
            moved |= flush_server(dirty_[i]);
            if (server_->buffered_output(dirty_[i]) == 0) {
                dirty_.erase(dirty_.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
        return moved;
    }

    // Move a server connection's output into its client's pipe, as far as
    // the receive window allows. Output of a connection whose path is gone
    // (half-open, or superseded by the client's newer connection) is eaten
    // by the network, as a real socket's would be.
    bool flush_server(tether::server::conn_id id) {
        const auto it = conn_owner_.find(key(id));
        node* n = it == conn_owner_.end() ? nullptr : it->second;
        const bool path_ok = n && n->conn == id && n->tcp_up && !n->half_open;
        bool moved = false;
        std::array<std::span<const std::uint8_t>, 16> runs;
        while (server_->is_live(id)) {
            const std::size_t k = server_->gather_output(id, runs);
            if (k == 0) break;
            std::size_t room = std::numeric_limits<std::size_t>::max();
            if (path_ok) room = recv_window > n->to_client.in_flight ? recv_window - n->to_client.in_flight : 0;
            if (room == 0) break;  // the receiver's window is full: bytes wait in the endpoint
            std::size_t total = 0;
            for (std::size_t i = 0; i < k && total < room; ++i) {
                const std::size_t take = std::min(runs[i].size(), room - total);
                if (path_ok) {
                    n->to_client.push(arrival(*n), runs[i].first(take), n->tcp_serial);
                    if (tracing)
                        trace += std::to_string(tether::to_ms(now_)) + " " + n->name + " < " +
                                 printable(runs[i].first(take)) + "\n";
                }
                total += take;
            }
            server_->consume_output(id, total);
            moved = true;
        }
        return moved;
    }

    static std::string_view presence_word(tether::proto::presence_kind k) {
        std::string_view w = tether::proto::to_string(k);  // "presence.joined"
        if (const auto dot = w.find('.'); dot != std::string_view::npos) w.remove_prefix(dot + 1);
        return w;
    }

    static std::string printable(std::span<const std::uint8_t> b) {
        std::string s;
        s.reserve(b.size());
        for (std::uint8_t c : b) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
        return s;
    }

    void record(node& n, const tether::client::event& e) {
        using tether::client::event_type;
        if (keep_logs || tracing) {
            render(n, e);
        } else if (e.type == event_type::connected) {
            ++n.log.hellos;
        }
        if (n.on_event) n.on_event(n, e);
        if (e.type == event_type::snapshot_required) {
            const std::string room(e.room);
            const std::int64_t head = e.head;
            const std::string epoch(e.epoch);
            if (n.on_snapshot) {
                n.on_snapshot(n, room, head);
            } else {
                // The application "fetches a snapshot" at the advertised head.
                (void)n.c.snapshot_loaded(now_, room, head, epoch);
            }
        }
    }

    // Render one event into node::log and the trace.
    void render(node& n, const tether::client::event& e) {
        using tether::client::event_type;
        std::string line = n.name + " ";
        switch (e.type) {
            case event_type::connected:
                ++n.log.hellos;
                line += "connected resumed=" + std::to_string(e.resumed);
                break;
            case event_type::joined:
                line += "joined " + std::string(e.room) + " resume=" + std::string(tether::proto::to_string(e.resume)) +
                        " head=" + std::to_string(e.head);
                break;
            case event_type::message:
                line += "message " + std::string(e.room) + " " + std::to_string(e.event_id) + " " + std::string(e.id) +
                        " " + std::string(e.payload);
                n.log.messages.push_back({std::string(e.room), e.event_id, std::string(e.sender), std::string(e.id),
                                          std::string(e.payload)});
                break;
            case event_type::presence:
                line += "presence " + std::string(e.room) + " " + std::string(e.user) + " " +
                        std::string(presence_word(e.presence));
                n.log.presence.push_back(std::string(e.room) + " " + std::string(e.user) + " " +
                                         std::string(presence_word(e.presence)));
                break;
            case event_type::ack:
                line += "ack " + std::string(e.id) + " " + std::to_string(e.event_id) + " " +
                        (e.status == tether::proto::ack_status::duplicate ? "duplicate" : "accepted");
                n.log.acked.emplace_back(e.id);
                break;
            case event_type::server_error:
                line += "server_error " + std::string(e.code) + " " + std::string(e.message);
                break;
            case event_type::snapshot_required:
                line += "snapshot_required " + std::string(e.room) + " " + std::string(tether::proto::to_string(e.reason)) +
                        " head=" + std::to_string(e.head);
                break;
            case event_type::left: line += "left " + std::string(e.room); break;
            case event_type::reconnecting:
                line += "reconnecting attempt=" + std::to_string(e.attempt) + " code=" + std::to_string(e.close_code) +
                        " delay_ms=" + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(e.delay).count());
                n.log.close_codes.push_back(e.close_code);
                break;
            case event_type::token_required: line += "token_required"; break;
            case event_type::upgrade_required: line += "upgrade_required"; break;
            case event_type::gave_up: line += "gave_up"; break;
            case event_type::stopped:
                line += "stopped code=" + std::to_string(e.close_code) + " http=" + std::to_string(e.http_status);
                n.log.close_codes.push_back(e.close_code);
                break;
        }
        n.log.lines.push_back(line);
        note(line);
    }

    tether::server::config scfg_;
    tether::rng rng_;
    std::unique_ptr<tether::server::endpoint> server_;
    std::vector<std::unique_ptr<node>> nodes_;
    std::unordered_map<std::uint64_t, node*> conn_owner_;
    std::vector<tether::server::conn_id> dirty_;
    std::vector<std::pair<time_point, tether::server::conn_id>> pending_server_close_;
    time_point now_{};
};

}  // namespace tsim
