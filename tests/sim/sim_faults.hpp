// tests/sim/sim_faults.hpp — the randomized fault simulator: one seed gives
// one world (tests/sim/sim_world.hpp), one fault mix, one run, and a verdict
// on the invariants tether promises (issue 4, "Deterministic simulation").
//
// Theory of operation
// -------------------
// Everything a run does is drawn from one tether::rng seeded by the run's
// seed: the world (2-8 clients, 1-3 rooms, latency and jitter, the server's
// heartbeat, grace, replay and dedup windows, rate limit and buffers; every
// machine's seed), then, for 2-5 virtual minutes, a stream of actions drawn
// from the seed's fault mix:
//   application  send (a small or big payload), a duplicate send (the same
//                payload twice: two messages, two ids), a burst (rate-limit
//                and outbox pressure), join, leave; snapshot_required is
//                answered at once or after a "fetch" delay, at the advertised
//                head or at the head the server has when the fetch runs;
//   network      delay spikes (loss: TCP retransmits, so what is lost is
//                time), connection resets, half-open links, clients offline
//                shorter or longer than the grace period, paused clients
//                (slow readers);
//   server       restart with history kept (world::restart_server_durable),
//                restart with history lost (a new endpoint, a new seed), drain
//                then restart. The endpoint cannot leave drain mode, so a
//                drained process is always replaced by a new endpoint:
//                drains lose history.
// Mixes (calm, lossy, resets, restarts, drains, slow, chaos) weight these
// differently; seed N runs mix N % 7 unless one is forced.
//
// Then quiescence: every fault is lifted, stopped clients are reconnected
// (as an application would after gave_up), and the world runs until every
// client is live with an empty outbox, the server holds exactly one session
// and one connection per client, and two more heartbeats have passed (so
// that a lost tail is noticed from `heads`). The invariants are then checked
// against an oracle built while running:
//   1. delivery: every event a client is owed is delivered exactly once, in
//      event_id order, or covered by a snapshot the app loaded. A client is
//      owed the events of epoch E after the cursor it first synced at (the
//      room.joined head, its replay cursor, or the snapshot cursor), for as
//      long as the app does not leave the room; up to the room's head at the
//      end, or, for an epoch the server lost (restart without history, room
//      forgotten), up to the head that epoch had: such events are accounted
//      for only by a snapshot of a later epoch, which the client must have
//      loaded. Every delivered (room, epoch, event_id) carries the same
//      sender, id and payload at every client, and matches the sender's ack.
//   2. no loss at send: each send() that returned an id is acked once, or
//      refused by a server.error carrying its id for a reason the app caused
//      (not_member after it left the room), or still pending when the client
//      is not live; a send refused with outbox_full had a full outbox.
//   3. presence: each client's view of a room (room.joined members plus the
//      presence events since) equals the server's members (tracked from the
//      endpoint's joined/left log events), which equal the clients that are
//      in the room.
//   4. bounds, checked after every step: outbox within max_messages and
//      max_bytes, replay log within replay_window, dedup within max ids,
//      every connection's buffered output within send_high_water plus one
//      message (and a close frame).
// Also checked as they happen: deliveries leave no hole (the next event is
// the one after the last delivered or covered), a room.joined never moves a
// synced client's cursor away from what the app has, the server's epochs
// never come back and its heads never go back.
//
// Library bugs the simulator found (each fixed, each with a minimised
// regression case in tests/test_sim_faults.cpp) keep their signature
// classification in known_bug(): by default (options::strict) a hit is a
// violation; sim_seeds --lenient lists such hits apart instead, which helps
// tell a new bug from a regression of an old one:
//   - snapshot_loaded during a fresh join: room.joined resume=none moved the
//     cursor off the app's snapshot (events skipped, or delivered twice);
//   - presence with two sessions of one principal: views did not converge;
//   - a stale room.left completed a later leave(): the server kept the
//     session in the room;
//   - a message overtook its room's rate-limited join: refused not_member.
//
// A run with tracing off is cheap; a failing seed is run again with the
// world's trace on (the same seed gives the same run) to print it.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sim_world.hpp"

namespace tsim::faults {

using namespace std::chrono_literals;
using tether::duration;
using tether::time_point;

enum class mix : std::uint8_t { calm, lossy, resets, restarts, drains, slow, chaos };
inline constexpr std::size_t mix_count = 7;
inline constexpr std::array<std::string_view, mix_count> mix_names{"calm",   "lossy", "resets", "restarts",
                                                                   "drains", "slow",  "chaos"};

constexpr std::string_view to_string(mix m) noexcept { return mix_names[static_cast<std::size_t>(m)]; }

inline std::optional<mix> parse_mix(std::string_view s) noexcept {
    for (std::size_t i = 0; i < mix_count; ++i)
        if (mix_names[i] == s) return static_cast<mix>(i);
    return std::nullopt;
}

/// Round robin: any range of seeds covers every mix evenly.
constexpr mix mix_for_seed(std::uint64_t seed) noexcept { return static_cast<mix>(seed % mix_count); }

/// Deliberate damage to what the checker observes, to prove it can fail.
enum class tamper : std::uint8_t {
    none,
    drop_delivery,       ///< forget one delivered message (a loss)
    duplicate_delivery,  ///< record one delivered message twice
    forget_ack,          ///< forget one ack (a message never acked)
    skew_presence,       ///< add a ghost to one client's presence view
};

struct options {
    std::uint64_t seed = 1;
    std::optional<mix> forced;  ///< run this mix instead of mix_for_seed(seed)
    bool tracing = false;       ///< keep the world's transcript (slower)
    /// Report the known library bugs (see known_bug) as violations (the
    /// default: every bug it knew is fixed; sim_seeds --lenient turns it off).
    bool strict = true;
    tamper inject = tamper::none;
};

struct stats {
    std::uint64_t sends = 0, send_refused = 0, acks = 0, refusals = 0, deliveries = 0, snapshots = 0;
    std::uint64_t resets = 0, half_opens = 0, offlines = 0, long_offlines = 0, pauses = 0, spikes = 0;
    std::uint64_t restarts_durable = 0, restarts_lost = 0, drains = 0, bursts = 0, joins = 0, leaves = 0;
    std::uint64_t steps = 0;
    // What the clients saw: closes by code, snapshot reasons.
    std::uint64_t close_1012 = 0, close_1013 = 0, close_4008 = 0, close_4029 = 0, close_1006 = 0;
    std::uint64_t snap_truncated = 0, snap_epoch_changed = 0, resumed = 0, new_sessions = 0, gave_up = 0;
    std::int64_t fault_ms = 0, total_ms = 0;
};

struct result {
    std::uint64_t seed = 0;
    mix m = mix::calm;
    std::string world;                    ///< the drawn world, one line
    std::vector<std::string> violations;  ///< empty: every invariant held
    /// Hits of known library bugs (violations too when options::strict).
    std::vector<std::string> known;
    std::string trace;                    ///< the world's transcript (when tracing)
    stats st;
    bool strict = false;                  ///< options::strict
    bool ok() const noexcept { return violations.empty(); }
};

namespace detail {

struct profile {
    // Relative weights of the actions.
    unsigned send = 0, dup = 0, burst = 0, join = 0, leave = 0, spike = 0, long_spike = 0, reset = 0,
             half_open = 0, offline_short = 0, offline_long = 0, pause = 0, restart_durable = 0, restart_lost = 0,
             drain = 0;
    std::int64_t mean_gap_ms = 300;
    std::int64_t max_latency_ms = 20, max_jitter_ms = 5;
    unsigned big_pct = 2;               ///< sends with a 1-2 KB payload
    unsigned small_buffers_pct = 0;     ///< worlds with a small high-water mark and receive window
    unsigned rate_pressure_pct = 0;     ///< worlds with a low server rate limit
    unsigned small_outbox_pct = 0;      ///< clients with a small outbox
    unsigned delayed_snapshot_pct = 20; ///< clients whose snapshot fetch takes time
};

inline profile profile_for(mix m) {
    profile p;
    switch (m) {
        case mix::calm:
            p.send = 80, p.dup = 4, p.burst = 1, p.join = 6, p.leave = 4, p.reset = 1;
            break;
        case mix::lossy:
            p.send = 60, p.dup = 4, p.burst = 1, p.join = 4, p.leave = 3, p.spike = 12, p.long_spike = 1, p.reset = 3,
            p.half_open = 1, p.offline_short = 2;
            p.max_latency_ms = 100, p.max_jitter_ms = 60;
            break;
        case mix::resets:
            p.send = 60, p.dup = 4, p.burst = 1, p.join = 4, p.leave = 3, p.spike = 2, p.reset = 10, p.half_open = 3,
            p.offline_short = 5, p.offline_long = 3, p.pause = 1;
            break;
        case mix::restarts:
            p.send = 70, p.dup = 4, p.burst = 1, p.join = 4, p.leave = 3, p.reset = 2, p.offline_short = 2,
            p.offline_long = 1, p.restart_durable = 2, p.restart_lost = 1;
            p.delayed_snapshot_pct = 50;
            break;
        case mix::drains:
            p.send = 70, p.dup = 4, p.burst = 1, p.join = 4, p.leave = 3, p.reset = 2, p.offline_short = 2,
            p.restart_durable = 1, p.drain = 2;
            break;
        case mix::slow:
            p.send = 60, p.dup = 4, p.burst = 6, p.join = 4, p.leave = 3, p.spike = 2, p.reset = 1,
            p.offline_short = 1, p.pause = 10;
            p.big_pct = 30, p.small_buffers_pct = 100, p.rate_pressure_pct = 100, p.small_outbox_pct = 50;
            p.delayed_snapshot_pct = 50;
            break;
        case mix::chaos:
            p.send = 50, p.dup = 4, p.burst = 3, p.join = 5, p.leave = 4, p.spike = 5, p.long_spike = 1, p.reset = 5,
            p.half_open = 2, p.offline_short = 3, p.offline_long = 2, p.pause = 4, p.restart_durable = 1,
            p.restart_lost = 1, p.drain = 1;
            p.max_latency_ms = 60, p.max_jitter_ms = 30;
            p.big_pct = 10, p.small_buffers_pct = 50, p.rate_pressure_pct = 50, p.small_outbox_pct = 30;
            p.delayed_snapshot_pct = 50;
            break;
    }
    return p;
}

enum class action : std::uint8_t {
    send, dup, burst, join, leave, spike, long_spike, reset, half_open, offline_short, offline_long, pause,
    restart_durable, restart_lost, drain
};

/// Something due at a virtual time: the end of a fault, an application step.
enum class due_kind : std::uint8_t { connect, offline_end, pause_end, spike_end, drain_restart, snapshot_load };

struct due {
    time_point at;
    std::uint64_t order = 0;  ///< insertion order: ties run in the order scheduled
    due_kind kind = due_kind::connect;
    std::size_t client = 0;
    std::string room;
    std::uint64_t gen = 0;  ///< stale unless it matches the client's current one
};

/// One epoch of one room, as the checker tracks it for one client.
struct epoch_track {
    std::int64_t last = 0;                ///< highest event_id delivered
    std::vector<std::int64_t> delivered;  ///< strictly increasing
    std::optional<std::int64_t> owed_from;  ///< events above it are owed (while in the room)
    std::int64_t covered = 0;             ///< loaded snapshot cursor: events at or below are accounted for
    bool discharged = false;              ///< a later epoch's snapshot accounts for the rest (epoch lost)
};

struct room_track {
    bool active = false;   ///< the app joined and has not left since
    bool pending = false;  ///< active, but not synced yet: the owed range starts when it is
    std::string epoch;     ///< of the last room.joined (the app's view)
    std::map<std::string, epoch_track> epochs;
    std::map<std::string, int> view;  ///< presence: members list plus presence events
    bool has_view = false;
    std::uint64_t snap_gen = 0;  ///< the latest snapshot_required
    std::int64_t snap_head = 0;
    std::string snap_epoch;
    /// A snapshot was loaded while a fresh client.join (sent while waiting
    /// for it) was in flight: the cursor it was loaded at.
    std::optional<std::int64_t> snap_during_join;
    /// The app's join() cancelled a leave already on the wire (the answer to
    /// that leave can then be taken for a later one's).
    bool cancelled_sent_leave = false;
    /// A client.join of this room was refused rate_limited and not yet answered.
    bool join_held = false;
};

enum class msg_status : std::uint8_t { pending, acked, refused };

struct sent_msg {
    std::string id, room;
    msg_status status = msg_status::pending;
    bool left_room = false;  ///< the app left the room (or was refused it) after sending
    std::int64_t acked_event = 0;
    std::string acked_epoch;
};

struct client_track {
    std::string name;
    std::map<std::string, room_track> rooms;
    std::vector<sent_msg> sent;
    std::unordered_map<std::string, std::size_t> by_id;
    std::string last_payload, last_room;
    bool delayed_snapshots = false;
    bool fetch_current = false;  ///< a snapshot fetch returns the server's head then, not the advertised one
    std::uint64_t offline_gen = 0, pause_gen = 0, spike_gen = 0;
    std::uint64_t counter = 0;
};

struct epoch_info {
    std::int64_t head = 0;
    bool dead = false;
};

struct event_rec {
    std::string sender, id, payload;
};

class runner {
public:
    explicit runner(const options& o)
        : opt_(o), m_(o.forced ? *o.forced : mix_for_seed(o.seed)), p_(profile_for(m_)),
          rng_(o.seed * 0x9e3779b97f4a7c15ULL ^ 0x73696d2d6661756cULL) {
        res_.seed = o.seed;
        res_.m = m_;
        res_.strict = o.strict;
    }

    result run() {
        setup();
        drive();
        quiesce();
        if (!converged_) {
            describe_stuck();
        } else {
            final_checks();
        }
        res_.st.total_ms = tether::to_ms(w_->now());
        if (opt_.tracing) res_.trace = std::move(w_->trace);
        return std::move(res_);
    }

private:
    // ---- drawing ------------------------------------------------------------------------

    std::uint64_t below(std::uint64_t n) { return rng_.below(n); }
    std::int64_t between(std::int64_t lo, std::int64_t hi) {  // inclusive
        return lo + static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(hi - lo + 1)));
    }
    bool pct(unsigned p) { return rng_.below(100) < p; }
    template <class T, std::size_t N>
    T pick(const std::array<T, N>& a) {
        return a[rng_.below(N)];
    }
    static duration ms(std::int64_t v) { return std::chrono::milliseconds(v); }

    // ---- the world ----------------------------------------------------------------------

    void setup() {
        using namespace std::chrono;
        const std::size_t n_clients = 2 + below(7);
        const std::size_t n_rooms = 1 + below(3);
        tether::server::config c;
        c.seed = rng_.next();
        c.unix_ms_at_origin = 1'700'000'000'000;
        c.authenticate = [](const tether::ws::http_request& r) {
            tether::server::auth_result a;
            a.principal = r.query_param("user").value_or("anonymous");
            return a;
        };
        c.heartbeat = seconds(pick(std::array<int, 4>{5, 10, 15, 25}));
        c.grace = seconds(between(5, 30));
        c.replay_window = pick(std::array<std::size_t, 5>{8, 16, 64, 256, 1024});
        c.dedup_window = seconds(pick(std::array<int, 3>{30, 60, 300}));
        small_buffers_ = pct(p_.small_buffers_pct);
        if (pct(p_.rate_pressure_pct)) {
            c.rate_per_s = static_cast<std::uint32_t>(between(5, 30));
            c.rate_burst = static_cast<std::uint32_t>(between(8, 40));
        }
        if (small_buffers_) {
            c.replay_window = pick(std::array<std::size_t, 3>{8, 16, 32});
            // docs/protocol.md: size the high-water mark above a full replay.
            const std::size_t floor = c.replay_window * 2300;
            c.send_high_water = std::max<std::size_t>(floor, static_cast<std::size_t>(between(16, 64)) << 10);
        }
        scfg_ = c;
        w_ = std::make_unique<world>(c, rng_.next());
        world& w = *w_;
        w.tracing = opt_.tracing;
        w.keep_logs = false;  // the checker observes through on_event
        w.latency = ms(between(1, p_.max_latency_ms));
        w.jitter = ms(between(0, p_.max_jitter_ms));
        if (small_buffers_) w.recv_window = static_cast<std::size_t>(between(4, 32)) << 10;
        end_ = tether::at_ms(between(120'000, 300'000));
        for (std::size_t r = 0; r < n_rooms; ++r) rooms_.push_back("r" + std::to_string(r));
        watch_.resize(n_rooms);
        w.on_server_event = [this](const tether::server::event& e) { on_server_event(e); };

        res_.world = std::string(to_string(m_)) + " clients=" + std::to_string(n_clients) +
                     " rooms=" + std::to_string(n_rooms) + " latency_ms=" + std::to_string(tether::to_ms(time_point{w.latency})) +
                     " jitter_ms=" + std::to_string(tether::to_ms(time_point{w.jitter})) +
                     " heartbeat_s=" + std::to_string(duration_cast<seconds>(c.heartbeat).count()) +
                     " grace_s=" + std::to_string(duration_cast<seconds>(c.grace).count()) +
                     " replay_window=" + std::to_string(c.replay_window) +
                     " dedup_s=" + std::to_string(duration_cast<seconds>(c.dedup_window).count()) +
                     " rate=" + std::to_string(c.rate_per_s) + "/" + std::to_string(c.rate_burst) +
                     " high_water=" + std::to_string(c.send_high_water) + " recv_window=" + std::to_string(w.recv_window) +
                     " run_s=" + std::to_string(tether::to_ms(end_) / 1000);

        for (std::size_t i = 0; i < n_clients; ++i) {
            tether::client::ws_client_config cc;
            cc.client.seed = rng_.next() | 1;
            cc.ws.seed = rng_.next() | 1;
            if (pct(p_.small_outbox_pct)) {
                cc.client.outbox.max_messages = static_cast<std::size_t>(between(10, 60));
                cc.client.outbox.max_bytes = static_cast<std::size_t>(between(16, 128)) << 10;
            }
            const std::string name = "u" + std::to_string(i);
            const std::size_t k = w.add_client(name, cc);
            client_track t;
            t.name = name;
            t.delayed_snapshots = pct(p_.delayed_snapshot_pct);
            t.fetch_current = pct(50);
            tracks_.push_back(std::move(t));
            world::node& n = w.client(k);
            n.on_event = [this, k](world::node&, const tether::client::event& e) { on_event(k, e); };
            n.on_snapshot = [this, k](world::node&, std::string_view room, std::int64_t) { on_snapshot(k, room); };
            res_.world += " " + name + (cc.client.outbox.max_messages < 1000 ? "(outbox=" + std::to_string(cc.client.outbox.max_messages) + ")" : "");
        }
        for (std::size_t i = 0; i < n_clients; ++i) {
            // Join a non-empty subset of the rooms, then connect soon.
            bool any = false;
            for (const auto& r : rooms_)
                if (pct(60)) any |= app_join(i, r);
            if (!any) app_join(i, rooms_[below(rooms_.size())]);
            schedule(tether::at_ms(between(0, 2000)), due_kind::connect, i);
        }
        w.note("sim world " + res_.world);
    }

    // ---- scheduling ---------------------------------------------------------------------

    void schedule(time_point at, due_kind k, std::size_t client, std::string room = {}, std::uint64_t gen = 0) {
        dues_.push_back({at, next_order_++, k, client, std::move(room), gen});
    }

    std::optional<std::size_t> next_due() const {
        std::optional<std::size_t> best;
        for (std::size_t i = 0; i < dues_.size(); ++i) {
            if (!best || dues_[i].at < dues_[*best].at ||
                (dues_[i].at == dues_[*best].at && dues_[i].order < dues_[*best].order))
                best = i;
        }
        return best;
    }

    /// Runs the world to `t`, observing after every step, and runs every due
    /// item at its time (items scheduled meanwhile included).
    void advance_to(time_point t) {
        w_->settle();
        observe();
        for (;;) {
            const auto d = next_due();
            const time_point lim = d && dues_[*d].at < t ? dues_[*d].at : t;
            if (w_->step(lim)) {
                ++res_.st.steps;
                observe();
                continue;
            }
            if (d && dues_[*d].at <= w_->now() && dues_[*d].at <= t) {
                const due item = dues_[*d];
                dues_.erase(dues_.begin() + static_cast<std::ptrdiff_t>(*d));
                run_due(item);
                observe();
                continue;
            }
            return;
        }
    }

    void run_due(const due& d) {
        world& w = *w_;
        switch (d.kind) {
            case due_kind::connect:
                w.with(d.client, [](auto& c, auto now) { (void)c.connect(now); });
                break;
            case due_kind::offline_end:
                if (d.gen == tracks_[d.client].offline_gen) w.set_offline(d.client, false);
                break;
            case due_kind::pause_end:
                if (d.gen == tracks_[d.client].pause_gen) w.set_paused(d.client, false);
                break;
            case due_kind::spike_end:
                if (d.gen == tracks_[d.client].spike_gen) set_spike(d.client, duration::zero());
                break;
            case due_kind::drain_restart:
                restart_lost();
                drain_pending_ = false;
                break;
            case due_kind::snapshot_load: {
                room_track& rt = tracks_[d.client].rooms[d.room];
                if (d.gen != rt.snap_gen) break;
                load_snapshot(d.client, d.room);
                w.settle();
                break;
            }
        }
    }

    // ---- the fault stream -------------------------------------------------------------

    void drive() {
        time_point next = w_->now() + gap();
        while (w_->now() < end_) {
            advance_to(std::min(next, end_));
            if (w_->now() >= end_) break;
            if (w_->now() >= next) {
                act();
                next = w_->now() + gap();
            }
        }
        res_.st.fault_ms = tether::to_ms(w_->now());
    }

    duration gap() { return ms(between(1, 2 * p_.mean_gap_ms)); }

    void act() {
        const std::array<std::pair<action, unsigned>, 15> table{{
            {action::send, p_.send},
            {action::dup, p_.dup},
            {action::burst, p_.burst},
            {action::join, p_.join},
            {action::leave, p_.leave},
            {action::spike, p_.spike},
            {action::long_spike, p_.long_spike},
            {action::reset, p_.reset},
            {action::half_open, p_.half_open},
            {action::offline_short, p_.offline_short},
            {action::offline_long, p_.offline_long},
            {action::pause, p_.pause},
            {action::restart_durable, p_.restart_durable},
            {action::restart_lost, p_.restart_lost},
            {action::drain, p_.drain},
        }};
        unsigned total = 0;
        for (const auto& e : table) total += e.second;
        unsigned r = static_cast<unsigned>(below(total));
        action a = action::send;
        for (const auto& e : table) {
            if (r < e.second) {
                a = e.first;
                break;
            }
            r -= e.second;
        }
        const std::size_t i = below(tracks_.size());
        world& w = *w_;
        const auto& g = scfg_.grace;
        switch (a) {
            case action::send: app_send(i, false); break;
            case action::dup: app_send(i, true); break;
            case action::burst: {
                ++res_.st.bursts;
                const auto n = between(10, 40);
                w.note("sim burst " + tracks_[i].name + " " + std::to_string(n));
                for (std::int64_t k = 0; k < n; ++k) app_send(i, false);
                break;
            }
            case action::join: {
                std::vector<std::string> out;
                for (const auto& r2 : rooms_)
                    if (!tracks_[i].rooms[r2].active) out.push_back(r2);
                if (out.empty()) return app_send(i, false);
                app_join(i, out[below(out.size())]);
                break;
            }
            case action::leave: {
                const auto in = active_rooms(i);
                if (in.size() <= 1 && pct(50)) return app_send(i, false);  // mostly keep one room
                if (in.empty()) return;
                app_leave(i, in[below(in.size())]);
                break;
            }
            case action::spike:
            case action::long_spike: {
                ++res_.st.spikes;
                const duration extra = a == action::spike ? ms(between(100, 5000)) : ms(between(15'000, 60'000));
                const duration length = ms(between(500, 20'000));
                set_spike(i, extra);
                schedule(w.now() + length, due_kind::spike_end, i, {}, ++tracks_[i].spike_gen);
                break;
            }
            case action::reset:
                ++res_.st.resets;
                w.reset(i);
                break;
            case action::half_open:
                if (!w.client(i).tcp_up) return;
                ++res_.st.half_opens;
                w.half_open(i);
                break;
            case action::offline_short:
            case action::offline_long: {
                ++res_.st.offlines;
                duration d;
                if (a == action::offline_short) {
                    d = ms(between(200, std::max<std::int64_t>(300, tether::to_ms(time_point{g}) / 2)));
                } else {
                    ++res_.st.long_offlines;
                    d = g + ms(between(1000, 60'000));
                }
                w.set_offline(i, true);
                w.reset(i);
                schedule(w.now() + d, due_kind::offline_end, i, {}, ++tracks_[i].offline_gen);
                break;
            }
            case action::pause: {
                ++res_.st.pauses;
                w.set_paused(i, true);
                schedule(w.now() + ms(between(500, 20'000)), due_kind::pause_end, i, {}, ++tracks_[i].pause_gen);
                break;
            }
            case action::restart_durable:
                if (drain_pending_) return;
                ++res_.st.restarts_durable;
                observe();
                w.restart_server_durable();
                break;
            case action::restart_lost:
                if (drain_pending_) return;
                restart_lost();
                break;
            case action::drain: {
                if (drain_pending_) return;
                ++res_.st.drains;
                const duration window = ms(between(1000, 10'000));
                w.note("sim drain window_ms=" + std::to_string(tether::to_ms(time_point{window})));
                w.server().drain(w.now(), window);
                w.settle();
                drain_pending_ = true;
                schedule(w.now() + ms(between(50, 1000)), due_kind::drain_restart, 0);
                break;
            }
        }
    }

    void set_spike(std::size_t i, duration d) {
        w_->note("sim spike " + tracks_[i].name + " extra_ms=" + std::to_string(tether::to_ms(time_point{d})));
        w_->client(i).extra_delay = d;
    }

    void restart_lost() {
        ++res_.st.restarts_lost;
        observe();
        // Every epoch this endpoint holds dies with it.
        for (room_watch& rw : watch_) {
            if (rw.ei) rw.ei->dead = true;
            rw.ei = nullptr;
        }
        members_.clear();
        two_sessions_.clear();
        w_->restart_server(rng_.next());
    }

    std::vector<std::string> active_rooms(std::size_t i) {
        std::vector<std::string> v;
        for (const auto& r : rooms_)
            if (tracks_[i].rooms[r].active) v.push_back(r);
        return v;
    }

    // ---- application commands (and what the checker learns from them) ---------------

    bool app_join(std::size_t i, const std::string& room) {
        ++res_.st.joins;
        world& w = *w_;
        w.note("sim join " + tracks_[i].name + " " + room);
        const tether::client::room_state* before = w.client(i).c.machine().find_room(room);
        const bool leave_was_sent = before && before->leaving && before->leave_sent;
        const std::error_code ec = w.with(i, [&](auto& c, auto now) { return c.join(now, room); });
        if (ec) {
            violation("join(" + room + ") by " + tracks_[i].name + " refused: " + ec.message());
            return false;
        }
        room_track& rt = tracks_[i].rooms[room];
        if (!rt.active) {
            rt.active = true;
            rt.pending = true;
        }
        if (leave_was_sent) rt.cancelled_sent_leave = true;
        try_establish(i, room);
        return true;
    }

    void app_leave(std::size_t i, const std::string& room) {
        ++res_.st.leaves;
        world& w = *w_;
        w.note("sim leave " + tracks_[i].name + " " + room);
        end_membership(i, room);
        const std::error_code ec = w.with(i, [&](auto& c, auto now) { return c.leave(now, room); });
        if (ec) violation("leave(" + room + ") by " + tracks_[i].name + " refused: " + ec.message());
    }

    /// The app is no longer in the room: it is owed nothing more. What it got
    /// while in the room must have no hole, though (a gap makes the client
    /// rejoin and replay, so events up to the last one delivered are owed).
    void end_membership(std::size_t i, const std::string& room) {
        client_track& t = tracks_[i];
        room_track& rt = t.rooms[room];
        rt.active = false;
        rt.pending = false;
        for (auto& [ep, et] : rt.epochs) {
            if (et.owed_from && !et.discharged) check_owed(t, room, ep, et, et.last, false);
            et.owed_from.reset();
            et.discharged = false;
        }
        for (auto& m : t.sent)
            if (m.room == room && m.status == msg_status::pending) m.left_room = true;
    }

    void app_send(std::size_t i, bool duplicate) {
        client_track& t = tracks_[i];
        const auto in = active_rooms(i);
        if (in.empty()) {
            app_join(i, rooms_[below(rooms_.size())]);
            return;
        }
        std::string room = in[below(in.size())];
        std::string payload;
        if (duplicate && !t.last_payload.empty() && tracks_[i].rooms[t.last_room].active) {
            room = t.last_room;
            payload = t.last_payload;
        } else {
            const std::size_t pad = pct(p_.big_pct) ? static_cast<std::size_t>(between(1000, 2000))
                                                    : static_cast<std::size_t>(between(0, 40));
            payload = "{\"from\":\"" + t.name + "\",\"n\":" + std::to_string(++t.counter) + ",\"pad\":\"" +
                      std::string(pad, 'x') + "\"}";
        }
        const int copies = duplicate ? 2 : 1;
        for (int k = 0; k < copies; ++k) send_one(i, room, payload);
        t.last_payload = payload;
        t.last_room = room;
    }

    void send_one(std::size_t i, const std::string& room, const std::string& payload) {
        client_track& t = tracks_[i];
        world& w = *w_;
        auto& cl = w.client(i).c;
        const std::size_t pending_before = cl.machine().pending();
        const std::size_t bytes_before = cl.machine().outbox().bytes();
        const auto r = w.with(i, [&](auto& c, auto now) { return c.send(now, room, "chat.message", payload); });
        if (!r) {
            ++res_.st.send_refused;
            w.note("sim send " + t.name + " " + room + " refused: " + r.error.message());
            using tether::client::client_error;
            const auto& ocfg = cl.machine().cfg().outbox;
            if (r.error == client_error::outbox_full) {
                // §6: refused only when it really is full.
                if (pending_before < ocfg.max_messages && bytes_before + payload.size() + 256 <= ocfg.max_bytes)
                    violation(t.name + ": send refused outbox_full with " + std::to_string(pending_before) + "/" +
                              std::to_string(ocfg.max_messages) + " messages, " + std::to_string(bytes_before) + "/" +
                              std::to_string(ocfg.max_bytes) + " bytes");
            } else if (r.error == client_error::stopped) {
                if (cl.machine().state() != tether::client::state::stopped)
                    violation(t.name + ": send refused 'stopped' while not stopped");
            } else {
                violation(t.name + ": send to " + room + " refused: " + r.error.message());
            }
            return;
        }
        ++res_.st.sends;
        const std::string id(r.id.view());
        if (t.by_id.count(id)) violation(t.name + ": send() returned id " + id + " twice");
        t.by_id[id] = t.sent.size();
        t.sent.push_back({id, room, msg_status::pending, false, 0, {}});
    }

    // ---- snapshots ---------------------------------------------------------------------

    void on_snapshot(std::size_t i, std::string_view room_sv) {
        const std::string room(room_sv);
        room_track& rt = tracks_[i].rooms[room];
        const std::uint64_t gen = ++rt.snap_gen;
        if (tracks_[i].delayed_snapshots) {
            schedule(w_->now() + ms(between(50, 3000)), due_kind::snapshot_load, i, room, gen);
        } else {
            load_snapshot(i, room);
        }
    }

    /// The app "fetches" a snapshot and hands its cursor to the client.
    void load_snapshot(std::size_t i, const std::string& room) {
        client_track& t = tracks_[i];
        room_track& rt = t.rooms[room];
        auto& cl = w_->client(i).c;
        const tether::client::room_state* mr = cl.machine().find_room(room);
        if (mr && mr->leaving) {
            // A join() may still cancel the leave, and the room would then
            // still wait for this snapshot: keep it until the room is gone.
            schedule(w_->now() + 1s, due_kind::snapshot_load, i, room, rt.snap_gen);
            return;
        }
        if (!mr || !mr->awaiting_snapshot) return;
        std::int64_t cursor = rt.snap_head;
        std::string epoch = rt.snap_epoch;
        if (t.fetch_current) {
            // The snapshot is of the server's state when it is fetched.
            if (const auto info = w_->server().room(room)) {
                cursor = info->head;
                epoch = std::string(info->epoch);
            }
        }
        const bool fresh_join_in_flight = mr->phase == tether::client::room_phase::joining;
        const std::error_code ec = cl.snapshot_loaded(w_->now(), room, cursor, epoch);
        w_->note("sim snapshot_loaded " + t.name + " " + room + " cursor=" + std::to_string(cursor) + " epoch=" + epoch +
                 (ec ? " refused: " + ec.message() : ""));
        if (ec) return;
        ++res_.st.snapshots;
        if (!rt.active) return;
        if (fresh_join_in_flight) rt.snap_during_join = cursor;
        epoch_track& et = rt.epochs[epoch];
        et.covered = std::max(et.covered, cursor);
        if (!et.owed_from) et.owed_from = cursor;
        et.discharged = false;
        rt.pending = false;
        discharge_lost_epochs(rt, room, epoch);
    }

    /// After a room.joined, a client in sync resumes exactly where the app is:
    /// its cursor may neither pass events the app neither got nor loaded
    /// (they would be skipped) nor fall behind what it has (they would come
    /// twice).
    void check_no_skip(std::size_t i, const std::string& room) {
        room_track& rt = tracks_[i].rooms[room];
        if (!rt.active || rt.pending) return;
        const tether::client::room_state* mr = w_->client(i).c.machine().find_room(room);
        if (!mr || mr->leaving || !mr->has_cursor || mr->awaiting_snapshot) return;
        epoch_track& et = rt.epochs[mr->epoch];
        const std::int64_t at = et.owed_from ? std::max({et.last, et.covered, *et.owed_from}) : -1;
        if (et.owed_from && !et.discharged && mr->cursor == at) return;
        std::string what = tracks_[i].name + ": " + room + " cursor set to " + std::to_string(mr->cursor) + " (epoch " +
                           mr->epoch + ") by room.joined, the app has " +
                           (et.owed_from ? "events up to " + std::to_string(at) : std::string("nothing of that epoch")) +
                           (mr->cursor < at ? ": the events between will come twice" : ": the events between are skipped");
        if (!rt.snap_during_join) return violation(what);
        known_bug("snapshot_loaded during a fresh join: " + what + " (snapshot loaded at " +
                  std::to_string(*rt.snap_during_join) + ")");
        // Track the client from where it is now, so that one fault is
        // reported once; a fixed client would have led the app to a
        // snapshot of this epoch, which accounts for lost ones.
        if (mr->cursor < at) {
            et.delivered.erase(std::upper_bound(et.delivered.begin(), et.delivered.end(), mr->cursor),
                               et.delivered.end());
            et.last = std::min(et.last, mr->cursor);
            et.covered = std::min(et.covered, mr->cursor);
        } else {
            et.covered = std::max(et.covered, mr->cursor);
        }
        et.owed_from = std::min(et.owed_from.value_or(mr->cursor), mr->cursor);
        et.discharged = false;
        discharge_lost_epochs(rt, room, mr->epoch);
    }

    /// Events of an epoch the server lost are accounted for by the app's
    /// snapshot of another epoch; an epoch still alive is still owed.
    void discharge_lost_epochs(room_track& rt, const std::string& room, const std::string& current) {
        for (auto& [ep, other] : rt.epochs) {
            if (ep == current || !other.owed_from || other.discharged) continue;
            const auto it = epochs_.find({room, ep});
            if (it != epochs_.end() && it->second.dead) other.discharged = true;
        }
    }

    /// The client synced a room it joined: from here on it is owed every event.
    void try_establish(std::size_t i, const std::string& room) {
        room_track& rt = tracks_[i].rooms[room];
        if (!rt.active || !rt.pending) return;
        const tether::client::room_state* mr = w_->client(i).c.machine().find_room(room);
        if (!mr || mr->leaving || !mr->has_cursor || mr->awaiting_snapshot) return;
        if (mr->phase != tether::client::room_phase::synced && mr->phase != tether::client::room_phase::replaying)
            return;
        epoch_track& et = rt.epochs[mr->epoch];
        if (!et.owed_from || *et.owed_from > mr->cursor) et.owed_from = mr->cursor;
        et.discharged = false;
        rt.pending = false;
    }

    // ---- what the machines say ----------------------------------------------------------

    void on_event(std::size_t i, const tether::client::event& e) {
        using tether::client::event_type;
        client_track& t = tracks_[i];
        switch (e.type) {
            case event_type::joined: {
                const std::string room(e.room);
                room_track& rt = t.rooms[room];
                rt.epoch.assign(e.epoch);
                rt.view.clear();
                std::string scratch;
                (void)tether::proto::for_each_string(e.members, scratch,
                                                     [&](std::string_view u) { rt.view[std::string(u)] = 1; });
                rt.has_view = true;
                rt.join_held = false;
                try_establish(i, room);
                check_no_skip(i, room);
                rt.snap_during_join.reset();
                if (e.resume == tether::proto::resume_mode::replay) ++res_.st.resumed;
                break;
            }
            case event_type::snapshot_required: {
                room_track& rt = t.rooms[std::string(e.room)];
                rt.snap_head = e.head;
                rt.snap_epoch.assign(e.epoch);
                if (e.reason == tether::proto::resume_reason::epoch_changed) ++res_.st.snap_epoch_changed;
                if (e.reason == tether::proto::resume_reason::truncated) ++res_.st.snap_truncated;
                break;
            }
            case event_type::message: on_message(i, e); break;
            case event_type::presence: {
                room_track& rt = t.rooms[std::string(e.room)];
                if (!rt.has_view) break;
                const std::string user(e.user);
                switch (e.presence) {
                    case tether::proto::presence_kind::joined: ++rt.view[user]; break;
                    case tether::proto::presence_kind::reconnected:
                        if (rt.view[user] == 0) rt.view[user] = 1;
                        break;
                    case tether::proto::presence_kind::away: break;
                    case tether::proto::presence_kind::left:
                        if (--rt.view[user] <= 0) rt.view.erase(user);
                        break;
                }
                break;
            }
            case event_type::ack: {
                ++res_.st.acks;
                const std::string id(e.id);
                const auto it = t.by_id.find(id);
                if (it == t.by_id.end()) {
                    violation(t.name + ": ack for an id it never sent: " + id);
                    break;
                }
                sent_msg& m = t.sent[it->second];
                if (m.status == msg_status::acked) violation(t.name + ": second ack for " + id);
                if (m.status == msg_status::refused) violation(t.name + ": ack for " + id + " after it was refused");
                if (opt_.inject == tamper::forget_ack && !tampered_) {
                    tampered_ = true;
                    break;
                }
                m.status = msg_status::acked;
                m.acked_event = e.event_id;
                // The ack names no epoch: it is the room's, as the app knows
                // it, unless the room is being left or rejoined (the app may
                // not have seen the room.joined of this connection).
                if (const auto* mr = w_->client(i).c.machine().find_room(m.room);
                    mr && !mr->leaving && mr->phase != tether::client::room_phase::pending &&
                    mr->phase != tether::client::room_phase::joining && mr->epoch == t.rooms[m.room].epoch)
                    m.acked_epoch = t.rooms[m.room].epoch;
                if (std::string_view(e.room) != m.room)
                    violation(t.name + ": ack for " + id + " names room " + std::string(e.room) + ", sent to " + m.room);
                break;
            }
            case event_type::server_error: {
                if (e.code == "rate_limited" && e.id.empty() && !e.correlation_id.empty() && !e.room.empty())
                    t.rooms[std::string(e.room)].join_held = true;  // a join (or leave) to send again
                if (e.id.empty()) break;
                const auto it = t.by_id.find(std::string(e.id));
                if (it == t.by_id.end()) break;
                sent_msg& m = t.sent[it->second];
                if (e.code == "rate_limited" || m.status != msg_status::pending) break;
                ++res_.st.refusals;
                m.status = msg_status::refused;
                // §6: the only refusal the app causes here is sending to a room it then left.
                if (e.code == "not_member" && !m.left_room && t.rooms[m.room].join_held)
                    known_bug("a message overtakes its room's rate-limited join: " + t.name + ": message " + m.id +
                              " to " + m.room + " refused not_member");
                else if (!(e.code == "not_member" && m.left_room))
                    violation(t.name + ": message " + m.id + " to " + m.room + " refused: " + std::string(e.code) +
                              (m.left_room ? "" : " (the client never left the room)"));
                break;
            }
            case event_type::left: {
                const std::string room(e.room);
                if (t.rooms[room].active) {
                    // Not asked for: a refused join ends the room.
                    violation(t.name + ": room " + room + " ended without leave()");
                    end_membership(i, room);
                }
                break;
            }
            case event_type::connected:
                if (!e.resumed) ++res_.st.new_sessions;
                break;
            case event_type::reconnecting:
                switch (e.close_code) {
                    case 1006: ++res_.st.close_1006; break;
                    case 1012: ++res_.st.close_1012; break;
                    case 1013: ++res_.st.close_1013; break;
                    case 4008: ++res_.st.close_4008; break;
                    case 4029: ++res_.st.close_4029; break;
                    default: break;
                }
                break;
            case event_type::gave_up: ++res_.st.gave_up; break;
            case event_type::stopped:
                if (e.stop != tether::client::stop_reason::gave_up)
                    violation(t.name + ": stopped (" + std::string(tether::client::to_string(e.stop)) +
                              ", code " + std::to_string(e.close_code) + ")");
                break;
            case event_type::token_required:
            case event_type::upgrade_required: violation(t.name + ": unexpected " + std::string(to_string(e.type))); break;
            default: break;
        }
    }

    void on_message(std::size_t i, const tether::client::event& e) {
        ++res_.st.deliveries;
        room_track& rt = tracks_[i].rooms[std::string(e.room)];
        if (opt_.inject == tamper::drop_delivery && !tampered_ && rt.active && e.event_id > 3) {
            tampered_ = true;  // as if the client had lost it
            return;
        }
        deliver(i, e);
        if (opt_.inject == tamper::duplicate_delivery && !tampered_ && e.event_id > 3) {
            tampered_ = true;  // as if the client had delivered it twice
            deliver(i, e);
        }
    }

    void deliver(std::size_t i, const tether::client::event& e) {
        client_track& t = tracks_[i];
        const std::string room(e.room);
        room_track& rt = t.rooms[room];
        epoch_track& et = rt.epochs[rt.epoch];
        const std::int64_t k = e.event_id;
        if (et.owed_from && !et.discharged) {
            // Nothing is skipped: the next event is the one after the last
            // delivered or covered (a gap makes the client rejoin instead).
            const std::int64_t expected = std::max({et.last, et.covered, *et.owed_from}) + 1;
            if (k > expected)
                violation(t.name + ": " + room + " epoch " + rt.epoch + " event " + std::to_string(k) +
                          " delivered, but events " + std::to_string(expected) + ".." + std::to_string(k - 1) +
                          " never were");
        }
        if (k <= et.last)
            violation(t.name + ": " + room + " epoch " + rt.epoch + " event " + std::to_string(k) + " delivered after " +
                      std::to_string(et.last) + " (duplicate or out of order)");
        else if (k <= et.covered)
            violation(t.name + ": " + room + " event " + std::to_string(k) + " delivered although its snapshot covers " +
                      std::to_string(et.covered));
        else
            et.delivered.push_back(k);
        et.last = std::max(et.last, k);
        // The same event is the same message everywhere.
        const auto key = std::make_tuple(room, rt.epoch, k);
        const auto it = events_.find(key);
        if (it == events_.end()) {
            events_.emplace(key, event_rec{std::string(e.sender), std::string(e.id), std::string(e.payload)});
        } else if (it->second.sender != e.sender || it->second.id != e.id || it->second.payload != e.payload) {
            violation(t.name + ": " + room + " epoch " + rt.epoch + " event " + std::to_string(k) + " is " +
                      std::string(e.sender) + "/" + std::string(e.id) + " here but " + it->second.sender + "/" +
                      it->second.id + " elsewhere");
        }
    }

    void on_server_event(const tether::server::event& e) {
        using tether::server::event_type;
        if (e.type == event_type::joined) {
            auto& m = members_[e.room_id];
            if (m.count(e.session_id)) violation("server: session joined " + e.room_id + " twice");
            for (const auto& [sid, principal] : m)
                if (principal == e.principal) two_sessions_[e.room_id].insert(principal);
            m[e.session_id] = e.principal;
        } else if (e.type == event_type::left) {
            auto& m = members_[e.room_id];
            if (!m.erase(e.session_id)) violation("server: a session left " + e.room_id + " without having joined");
        }
    }

    // ---- the oracle and the bounds, after every step -----------------------------------

    void observe() {
        const auto& srv = w_->server();
        for (std::size_t r = 0; r < rooms_.size(); ++r) {
            const std::string& room = rooms_[r];
            room_watch& rw = watch_[r];
            const auto info = srv.room(room);
            if (!info) {
                if (rw.ei) {
                    rw.ei->dead = true;  // forgotten: empty for the linger time
                    rw.ei = nullptr;
                }
                continue;
            }
            if (!rw.ei || info->epoch != rw.epoch) {
                if (rw.ei) rw.ei->dead = true;
                rw.epoch.assign(info->epoch);
                rw.ei = &epochs_[{room, rw.epoch}];  // map nodes are stable
                if (rw.ei->dead) violation("server: epoch " + rw.epoch + " of " + room + " came back");
            }
            epoch_info& ei = *rw.ei;
            if (info->head < ei.head)
                violation("server: head of " + room + " went back from " + std::to_string(ei.head) + " to " +
                          std::to_string(info->head));
            ei.head = info->head;
            if (info->replay_events > scfg_.replay_window)
                bound_violation("server: " + room + " holds " + std::to_string(info->replay_events) +
                                " replay events, window " + std::to_string(scfg_.replay_window));
            if (info->dedup_ids > scfg_.dedup_max_ids) bound_violation("server: " + room + " dedup over its bound");
        }
        const std::size_t out_bound = scfg_.send_high_water + scfg_.max_message_bytes + 256;
        for (std::size_t i = 0; i < tracks_.size(); ++i) {
            world::node& n = w_->client(i);
            const auto& M = n.c.machine();
            const auto& ocfg = M.cfg().outbox;
            if (M.pending() > ocfg.max_messages || M.outbox().bytes() > ocfg.max_bytes)
                bound_violation(tracks_[i].name + ": outbox " + std::to_string(M.pending()) + " messages, " +
                                std::to_string(M.outbox().bytes()) + " bytes, over its bound");
            if (n.conn.valid()) {
                const std::size_t b = srv.buffered_output(n.conn);
                if (b > out_bound)
                    bound_violation("server: " + std::to_string(b) + " bytes buffered for " + tracks_[i].name +
                                    ", bound " + std::to_string(out_bound));
            }
        }
    }

    // ---- quiescence ---------------------------------------------------------------------

    void quiesce() {
        world& w = *w_;
        w.note("sim quiesce");
        if (drain_pending_) {
            restart_lost();
            drain_pending_ = false;
        }
        // Faults end; application steps (connects, snapshot fetches) go on.
        dues_.erase(std::remove_if(dues_.begin(), dues_.end(),
                                   [](const due& d) {
                                       return d.kind != due_kind::connect && d.kind != due_kind::snapshot_load;
                                   }),
                    dues_.end());
        for (std::size_t i = 0; i < tracks_.size(); ++i) {
            world::node& n = w.client(i);
            if (n.offline) w.set_offline(i, false);
            if (n.paused) w.set_paused(i, false);
            if (n.extra_delay != duration::zero()) set_spike(i, duration::zero());
        }
        // Settled, then two more heartbeats (a lost tail shows in `heads`),
        // then settled again.
        converged_ = run_until_settled(15min);
        if (!converged_) return;
        advance_to(w.now() + 2 * scfg_.heartbeat + 5s);
        converged_ = run_until_settled(5min);
    }

    bool run_until_settled(duration max) {
        const time_point limit = w_->now() + max;
        for (;;) {
            reconnect_stopped();
            if (settled()) return true;
            if (w_->now() >= limit) return false;
            advance_to(std::min(limit, w_->now() + 1s));
        }
    }

    void reconnect_stopped() {
        for (std::size_t i = 0; i < tracks_.size(); ++i) {
            if (w_->client(i).c.machine().state() != tether::client::state::stopped) continue;
            w_->note("sim app reconnects " + tracks_[i].name);
            w_->with(i, [](auto& c, auto now) { (void)c.connect(now); });
        }
    }

    bool settled() {
        world& w = *w_;
        for (std::size_t i = 0; i < tracks_.size(); ++i) {
            const world::node& n = w.client(i);
            const auto& M = n.c.machine();
            if (M.state() != tether::client::state::live || M.pending() != 0) return false;
            for (const auto& r : M.rooms())
                if (r.leaving || r.awaiting_snapshot || r.phase != tether::client::room_phase::synced) return false;
            if (!n.to_server.q.empty() || !n.to_client.q.empty()) return false;
        }
        return w.server().session_count() == tracks_.size() && w.server().connection_count() == tracks_.size() &&
               dues_.empty();
    }

    void describe_stuck() {
        world& w = *w_;
        std::string s = "did not converge after the faults ended:";
        for (std::size_t i = 0; i < tracks_.size(); ++i) {
            const auto& M = w.client(i).c.machine();
            s += " " + tracks_[i].name + "=" + std::string(tether::client::to_string(M.state())) +
                 "/pending=" + std::to_string(M.pending());
            for (const auto& r : M.rooms())
                if (r.leaving || r.awaiting_snapshot || r.phase != tether::client::room_phase::synced)
                    s += "/" + r.id + (r.leaving ? ":leaving" : "") + (r.awaiting_snapshot ? ":awaiting_snapshot" : "") +
                         ":phase" + std::to_string(static_cast<int>(r.phase));
        }
        s += " server sessions=" + std::to_string(w.server().session_count()) +
             " connections=" + std::to_string(w.server().connection_count());
        violation(s);
    }

    // ---- the verdict --------------------------------------------------------------------

    void final_checks() {
        world& w = *w_;
        const auto& srv = w.server();
        if (opt_.inject == tamper::skew_presence && !tracks_.empty()) {
            for (auto& [room, rt] : tracks_[0].rooms)
                if (rt.active) {
                    rt.view["ghost"] = 1;
                    break;
                }
        }
        for (std::size_t i = 0; i < tracks_.size(); ++i) {
            client_track& t = tracks_[i];
            const auto& M = w.client(i).c.machine();
            // 2. every send is accounted for.
            std::size_t pending = 0;
            for (const sent_msg& m : t.sent) {
                if (m.status != msg_status::pending) continue;
                ++pending;
                violation(t.name + ": message " + m.id + " to " + m.room + " was never acked nor refused" +
                          (M.state() == tether::client::state::live ? " (client live)" : ""));
            }
            if (pending != M.pending())
                violation(t.name + ": " + std::to_string(M.pending()) + " messages pending in the outbox, " +
                          std::to_string(pending) + " unresolved sends");
            for (const sent_msg& m : t.sent) {
                if (m.status != msg_status::acked || m.acked_epoch.empty()) continue;
                const auto it = events_.find(std::make_tuple(m.room, m.acked_epoch, m.acked_event));
                if (it != events_.end() && (it->second.id != m.id || it->second.sender != t.name))
                    violation(t.name + ": ack of " + m.id + " says " + m.room + " event " + std::to_string(m.acked_event) +
                              ", which is " + it->second.sender + "/" + it->second.id);
            }
            for (const auto& room : rooms_) {
                room_track& rt = t.rooms[room];
                const tether::client::room_state* mr = M.find_room(room);
                if (!rt.active) {
                    if (mr) violation(t.name + ": still holds room " + room + " it left");
                    continue;
                }
                const auto info = srv.room(room);
                if (!mr || !info) {
                    violation(t.name + ": in " + room + " but the " + (mr ? "server" : "client") + " has no such room");
                    continue;
                }
                const std::string epoch(info->epoch);
                if (rt.pending) violation(t.name + ": " + room + " never synced");
                if (mr->epoch != epoch || rt.epoch != epoch)
                    violation(t.name + ": " + room + " at epoch " + mr->epoch + ", the server's is " + epoch);
                if (!mr->has_cursor || mr->cursor != info->head)
                    violation(t.name + ": " + room + " cursor " + std::to_string(mr->cursor) + ", server head " +
                              std::to_string(info->head));
                // 1. delivery.
                for (auto& [ep, et] : rt.epochs) {
                    if (!et.owed_from || et.discharged) continue;
                    std::int64_t upper = 0;
                    if (ep == epoch) {
                        upper = info->head;
                    } else {
                        const auto ei = epochs_.find({room, ep});
                        if (ei == epochs_.end()) {
                            violation(t.name + ": owed events of " + room + " epoch " + ep + ", unknown to the server");
                            continue;
                        }
                        if (!ei->second.dead) {
                            violation(t.name + ": " + room + " epoch " + ep + " is alive but not the current one");
                            continue;
                        }
                        upper = ei->second.head;
                    }
                    check_owed(t, room, ep, et, upper, ep != epoch);
                }
                // 3. presence.
                std::set<std::string> view;
                for (const auto& [u, n] : rt.view)
                    if (n > 0) view.insert(u);
                std::set<std::string> truth;
                for (const auto& [sid, principal] : members_[room]) truth.insert(principal);
                if (view != truth) {
                    // Presence names principals, but is sent per session: a
                    // principal that had two sessions in the room (a client
                    // that stopped and started a new session while its old
                    // one was away) is the known presence bug.
                    bool known = true;
                    for (const auto& u : view) known &= truth.count(u) || two_sessions_[room].count(u);
                    for (const auto& u : truth) known &= view.count(u) || two_sessions_[room].count(u);
                    const std::string what =
                        t.name + ": sees " + join_set(view) + " in " + room + ", server has " + join_set(truth);
                    if (known)
                        known_bug("presence with two sessions of one principal: " + what);
                    else
                        violation(what);
                }
            }
        }
        // 3. the server's members are the clients in the room, one session each.
        for (const auto& room : rooms_) {
            std::set<std::string> expected;
            for (const auto& t : tracks_)
                if (t.rooms.count(room) && t.rooms.at(room).active) expected.insert(t.name);
            std::set<std::string> truth;
            for (const auto& [sid, principal] : members_[room]) truth.insert(principal);
            if (truth != expected) {
                // A member the app left, after it cancelled a leave already
                // on the wire, is the known stale room.left bug.
                bool known = true;
                for (const auto& u : expected) known &= truth.count(u) > 0;
                for (const auto& u : truth) {
                    if (expected.count(u)) continue;
                    bool cancelled = false;
                    for (auto& t : tracks_)
                        if (t.name == u) cancelled = t.rooms[room].cancelled_sent_leave;
                    known &= cancelled;
                }
                const std::string what =
                    "server: " + room + " members " + join_set(truth) + ", clients in it " + join_set(expected);
                if (known)
                    known_bug("a stale room.left completes a later leave(): " + what);
                else
                    violation(what);
            }
            const auto info = srv.room(room);
            const std::size_t sessions = info ? info->members : 0;
            if (sessions != members_[room].size())
                violation("server: " + room + " has " + std::to_string(sessions) + " member sessions, its log says " +
                          std::to_string(members_[room].size()));
        }
        // 4. nothing left behind.
        if (srv.session_count() != tracks_.size())
            violation("server: " + std::to_string(srv.session_count()) + " sessions for " + std::to_string(tracks_.size()) +
                      " clients");
        if (srv.connection_count() != tracks_.size())
            violation("server: " + std::to_string(srv.connection_count()) + " connections for " +
                      std::to_string(tracks_.size()) + " clients");
    }

    /// Every event of (room, epoch) in (owed_from, upper] is delivered or
    /// covered by the loaded snapshot.
    void check_owed(const client_track& t, const std::string& room, const std::string& ep, const epoch_track& et,
                    std::int64_t upper, bool lost) {
        const std::int64_t lower = std::max(*et.owed_from, et.covered);
        std::vector<std::int64_t> missing;
        for (std::int64_t k = lower + 1; k <= upper; ++k)
            if (!std::binary_search(et.delivered.begin(), et.delivered.end(), k)) missing.push_back(k);
        if (missing.empty()) return;
        std::string s = t.name + ": " + room + " epoch " + ep + (lost ? " (lost)" : "") + " owed events " +
                        std::to_string(lower + 1) + ".." + std::to_string(upper) + ", missing " +
                        std::to_string(missing.size()) + ":";
        for (std::size_t k = 0; k < missing.size() && k < 8; ++k) {
            s += " " + std::to_string(missing[k]);
            const auto ev = events_.find(std::make_tuple(room, ep, missing[k]));
            if (ev != events_.end()) s += "(" + ev->second.sender + "/" + ev->second.id + ")";
        }
        if (lost) s += " and no snapshot of a later epoch accounts for them";
        if (missing_reported_++ < 20) violation(s);
    }

    static std::string join_set(const std::set<std::string>& s) {
        std::string out = "{";
        for (const auto& x : s) out += (out.size() > 1 ? "," : "") + x;
        return out + "}";
    }

    void violation(std::string s) {
        if (res_.violations.size() < 200) {
            w_->note("sim VIOLATION " + s);
            res_.violations.push_back("[" + std::to_string(tether::to_ms(w_->now())) + " ms] " + std::move(s));
        }
    }
    /// A known library bug (reported to the lead, see tests/test_sim_faults.cpp).
    void known_bug(std::string s) {
        if (opt_.strict) return violation("KNOWN BUG " + std::move(s));
        w_->note("sim KNOWN BUG " + s);
        if (res_.known.size() < 20) res_.known.push_back("[" + std::to_string(tether::to_ms(w_->now())) + " ms] " + std::move(s));
    }
    void bound_violation(std::string s) {
        if (bound_reported_++ < 5) violation(std::move(s));
    }

    options opt_;
    mix m_;
    profile p_;
    tether::rng rng_;
    result res_;
    tether::server::config scfg_;
    std::unique_ptr<world> w_;
    std::vector<std::string> rooms_;
    std::vector<client_track> tracks_;
    std::vector<due> dues_;
    std::uint64_t next_order_ = 0;
    time_point end_{};
    bool small_buffers_ = false;
    bool drain_pending_ = false;
    bool converged_ = false;
    bool tampered_ = false;
    std::size_t bound_reported_ = 0;
    std::size_t missing_reported_ = 0;
    // oracle
    struct room_watch {
        std::string epoch;          ///< the epoch the server holds
        epoch_info* ei = nullptr;   ///< its entry in epochs_ (null: the server has no such room)
    };
    std::vector<room_watch> watch_;                                        ///< per room, as rooms_
    std::map<std::pair<std::string, std::string>, epoch_info> epochs_;     ///< (room, epoch)
    std::map<std::tuple<std::string, std::string, std::int64_t>, event_rec> events_;  ///< (room, epoch, event_id)
    std::map<std::string, std::map<std::string, std::string>> members_;    ///< room -> session -> principal
    std::map<std::string, std::set<std::string>> two_sessions_;            ///< room -> principals seen with two sessions
};

}  // namespace detail

/// Runs one seed. Deterministic: the same options give the same result.
inline result run(const options& o) { return detail::runner(o).run(); }

/// Runs one seed cheaply; if it fails, runs it again with the trace on (the
/// run is deterministic) so that the result carries the transcript.
inline result run_and_trace_failure(std::uint64_t seed, std::optional<mix> forced = std::nullopt,
                                    bool strict = true) {
    options o;
    o.seed = seed;
    o.forced = forced;
    o.strict = strict;
    result r = run(o);
    if (r.ok()) return r;
    o.tracing = true;
    result traced = run(o);
    if (traced.violations != r.violations)
        traced.violations.insert(traced.violations.begin(),
                                 "NONDETERMINISTIC: the traced rerun reported different violations");
    return traced;
}

/// The last `lines` lines of a transcript (all of it for 0).
inline std::string tail(const std::string& s, std::size_t lines) {
    if (lines == 0) return s;
    std::size_t pos = s.size();
    std::size_t n = 0;
    while (pos > 0) {
        const std::size_t nl = s.rfind('\n', pos - 1);
        if (nl == std::string::npos) return s;
        if (nl + 1 < s.size() && ++n > lines) return s.substr(nl + 1);
        pos = nl;
    }
    return s;
}

/// Seed, mix, world, violations, and the trace (its tail, or all of it).
inline std::string report(const result& r, std::size_t tail_lines = 200) {
    std::string s = "seed " + std::to_string(r.seed) + " mix " + std::string(to_string(r.m)) + ": " +
                    (r.ok() ? std::string(r.known.empty() ? "ok" : "ok, but a known bug was hit")
                            : std::to_string(r.violations.size()) + " violation(s)") +
                    "\n";
    s += "  world: " + r.world + "\n";
    s += "  reproduce: sim_seeds --seed " + std::to_string(r.seed) + " --mix " + std::string(to_string(r.m)) +
         (r.strict ? " --strict" : "") + " --verbose\n";
    for (const auto& v : r.violations) s += "  VIOLATION " + v + "\n";
    for (const auto& v : r.known) s += "  KNOWN BUG " + v + "\n";
    if (!r.trace.empty()) {
        s += "  --- trace" + (tail_lines ? " (last " + std::to_string(tail_lines) + " lines)" : std::string()) + " ---\n";
        s += tail(r.trace, tail_lines);
    }
    return s;
}

}  // namespace tsim::faults
