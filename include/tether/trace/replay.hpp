// tether/trace/replay.hpp — feed a trace to a fresh machine and print
// every output.
//
// Theory of operation
// -------------------
// The replayer builds the machine the header names, with the recorded
// config (seeds included), and then plays the records in order. A record
// is either a call (an input or a command) or bookkeeping that belongs to
// the call before it: the hook answers the call needs, the `written`
// records (how much output the loop took) and a `poll` record (how far the
// loop drained before the next call). So for every call the replayer
//   1. queues the hook answers that follow it and echoes the call (`> …`);
//   2. makes the call; a refused command prints `result …`;
//   3. polls events (and actions) — as many as the `poll` record says, or
//      until empty — printing each as one line (printer.hpp);
//   4. takes output: `out …` lines for each `written` record, or all of it
//      when the header says `output auto`.
// Machines are deterministic (rng seeded from the config, time only from
// the records), so a trace always prints the same text, and the bytes in
// the `out` lines are the bytes the recorded machine gave its transport.
//
// Inconsistent traces (a connection number never opened, a record before
// `start`) stop the replay with a parse_error naming the line; divergence
// the replay can observe but not prevent (a hook called without a recorded
// answer, output shorter than `written` says) prints a `!! …` line and goes on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tether/client/client.hpp"
#include "tether/client/ws_client.hpp"
#include "tether/server/endpoint.hpp"
#include "tether/trace/config_map.hpp"
#include "tether/trace/format.hpp"
#include "tether/trace/printer.hpp"
#include "tether/ws/connection.hpp"

namespace tether::trace {

struct replay_result {
    std::string text;                 ///< everything printed, one line per output
    std::vector<std::string> output;  ///< bytes taken from the machine, per connection (0: the only one)
};

namespace detail {

struct poll_limits {
    std::uint64_t events = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t actions = std::numeric_limits<std::uint64_t>::max();
};

inline parse_error error_at(const record& r, std::string msg) { return parse_error{r.line, std::move(msg)}; }

inline std::string_view as_text(std::span<const std::uint8_t> b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline std::span<const std::uint8_t> as_span(std::string_view s) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// `> TIME NAME key=value…`, with a `bytes` record's data shown as its length.
inline void echo(std::string& out, const record& r) {
    std::string line;
    if (r.type == record_type::bytes) {
        record copy(r.time, r.type);
        if (const value* c = r.find(field::conn)) copy.set(field::conn, *c);
        write_record(line, copy);
        line.pop_back();
        line.append(" n=").append(std::to_string(r.get_str(field::data).size())).push_back('\n');
    } else {
        write_record(line, r);
    }
    out.append("> ").append(line);
}

/// Take up to `n` bytes of output run by run; print them as one `out` line.
template <class Run, class Consume>
void take_output(std::string& out, std::string& sink, stream_annotator& ann, std::int64_t conn, std::size_t n,
                 bool exact, Run run, Consume consume) {
    std::string got;
    while (got.size() < n) {
        const auto r = run();
        if (r.empty()) break;
        const std::size_t k = r.size() < n - got.size() ? r.size() : n - got.size();
        got.append(as_text(r.first(k)));
        consume(k);
    }
    if (exact && got.size() < n) {
        line_builder l(out, "!! written");
        if (conn >= 0) l.num("conn", conn);
        l.num("n", static_cast<std::int64_t>(n)).num("pending", static_cast<std::int64_t>(got.size())).end();
    }
    if (got.empty()) return;
    line_builder l(out, "out");
    if (conn >= 0) l.num("conn", conn);
    l.num("n", static_cast<std::int64_t>(got.size())).bytes("data", got).end();
    ann.feed(got, out);
    sink.append(got);
}

inline constexpr std::size_t all = std::numeric_limits<std::size_t>::max();

// ---------------------------------------------------------------------------

class ws_driver {
public:
    ws_driver(replay_result& r, machine_kind k)
        : r_(r), kind_(k), in_(k == machine_kind::ws_server ? ws::role::client : ws::role::server),
          out_(k == machine_kind::ws_server ? ws::role::server : ws::role::client) {
        r_.output.resize(1);
    }

    std::optional<parse_error> init(const header& h) {
        if (kind_ == machine_kind::ws_server) return read_config(h.config, setup_.ws);
        return read_config(h.config, setup_);
    }

    std::optional<parse_error> apply(const record& rec) {
        const time_point now = rec.at();
        if (rec.type == record_type::start) {
            if (c_) return error_at(rec, "second `start`");
            if (kind_ == machine_kind::ws_server)
                c_.emplace(ws::connection::server(now, setup_.ws));
            else
                c_.emplace(ws::connection::client(now, setup_.ws, setup_.host, setup_.target, setup_.headers));
            return std::nullopt;
        }
        if (!c_) return error_at(rec, "record before `start`");
        ws::connection& c = *c_;
        std::error_code ec;
        switch (rec.type) {
            case record_type::bytes: {
                const std::string_view data = rec.get_str(field::data);
                in_.feed(data, r_.text);
                const std::size_t taken = c.handle_bytes(now, data);
                if (taken < data.size()) line_builder(r_.text, "result").num("taken", static_cast<std::int64_t>(taken)).end();
                break;
            }
            case record_type::transport_closed: c.handle_transport_closed(now); break;
            case record_type::tick: c.handle_timeout(now); break;
            case record_type::accept: {
                const auto hs = split_headers(rec.get_str(field::headers));
                if (!hs) return error_at(rec, "headers are \"Name: value\" lines joined by \\r\\n");
                ec = c.accept(rec.get_str(field::subprotocol), *hs);
                break;
            }
            case record_type::reject: {
                const auto hs = split_headers(rec.get_str(field::headers));
                if (!hs) return error_at(rec, "headers are \"Name: value\" lines joined by \\r\\n");
                const auto st = rec.get_int(field::status);
                if (st < -1000000 || st > 1000000) return error_at(rec, "status out of range");
                ec = c.reject(static_cast<int>(st), rec.get_str(field::body), *hs);
                break;
            }
            case record_type::send_text: ec = c.send_text(rec.get_str(field::text)); break;
            case record_type::send_binary: ec = c.send_binary(as_span(rec.get_str(field::data))); break;
            case record_type::send_frame: {
                const auto op = rec.get_int(field::op);
                if (op > 15) return error_at(rec, "op is a 4-bit opcode");
                ec = c.send_frame(static_cast<ws::opcode>(op), as_span(rec.get_str(field::data)), rec.get_int(field::fin) != 0);
                break;
            }
            case record_type::ping: ec = c.ping(as_span(rec.get_str(field::data))); break;
            case record_type::pong: ec = c.pong(as_span(rec.get_str(field::data))); break;
            case record_type::close: {
                const auto code = rec.get_int(field::code, 1000);
                if (code > 65535) return error_at(rec, "close code out of range");
                ec = c.close(now, static_cast<ws::close_code>(code), rec.get_str(field::reason));
                break;
            }
            default: return error_at(rec, "record not supported by this machine");
        }
        print_error(r_.text, ec);
        return std::nullopt;
    }

    void drain(const poll_limits& lim) {
        if (!c_) return;
        for (std::uint64_t k = 0; k < lim.events; ++k) {
            const auto e = c_->poll_event();
            if (!e) break;
            print_event(r_.text, *e, &*c_);
        }
    }

    void written(const record& rec) { take(static_cast<std::size_t>(rec.get_int(field::n)), true); }
    void flush_all() { take(all, false); }
    void finish() {
        if (c_ && c_->buffered_output() > 0)
            line_builder(r_.text, "pending").num("n", static_cast<std::int64_t>(c_->buffered_output())).end();
    }

private:
    void take(std::size_t n, bool exact) {
        if (!c_) return;
        take_output(r_.text, r_.output[0], out_, -1, n, exact, [&] { return c_->pending_output(); },
                    [&](std::size_t k) { c_->consume_output(k); });
    }

    replay_result& r_;
    machine_kind kind_;
    ws_client_setup setup_;
    std::optional<ws::connection> c_;
    stream_annotator in_, out_;
};

// ---------------------------------------------------------------------------

/// Application commands shared by client and client_bytes.
template <class M>
std::optional<parse_error> client_command(M& m, const record& rec, std::string& text, bool& handled) {
    const time_point now = rec.at();
    std::error_code ec;
    handled = true;
    switch (rec.type) {
        case record_type::connect: ec = m.connect(now); break;
        case record_type::join: ec = m.join(now, rec.get_str(field::room)); break;
        case record_type::leave: ec = m.leave(now, rec.get_str(field::room)); break;
        case record_type::send: {
            const auto r = m.send(now, rec.get_str(field::room), rec.get_str(field::kind), rec.get_str(field::payload));
            if (r) line_builder(text, "result").str("id", r.id.view()).end();
            ec = r.error;
            break;
        }
        case record_type::snapshot_loaded:
            ec = m.snapshot_loaded(now, rec.get_str(field::room), rec.get_int(field::cursor), rec.get_str(field::epoch));
            break;
        case record_type::set_token: ec = m.set_token(now, rec.get_str(field::token)); break;
        case record_type::close: ec = m.close(now); break;
        default: handled = false; return std::nullopt;
    }
    print_error(text, ec);
    return std::nullopt;
}

/// Events, then actions, of either client machine, up to the limits.
template <class M>
void drain_client(M& m, const poll_limits& lim, std::string& text) {
    for (std::uint64_t k = 0; k < lim.events; ++k) {
        const auto e = m.poll_event();
        if (!e) break;
        print_event(text, *e);
    }
    for (std::uint64_t k = 0; k < lim.actions; ++k) {
        const auto a = m.poll_action();
        if (!a) break;
        print_action(text, *a);
    }
}

class client_driver {
public:
    explicit client_driver(replay_result& r) : r_(r) {}

    std::optional<parse_error> init(const header& h) {
        client::config cfg;
        if (auto e = read_config(h.config, cfg)) return e;
        m_.emplace(std::move(cfg));
        return std::nullopt;
    }

    std::optional<parse_error> apply(const record& rec) {
        client::client& m = *m_;
        const time_point now = rec.at();
        bool handled = false;
        if (auto e = client_command(m, rec, r_.text, handled)) return e;
        if (handled) return std::nullopt;
        switch (rec.type) {
            case record_type::transport_open: m.handle_transport_open(now); break;
            case record_type::message: m.handle_message(now, rec.get_str(field::text)); break;
            case record_type::binary: m.handle_binary(now); break;
            case record_type::transport_closed: {
                const auto code = rec.get_int(field::code);
                const auto st = rec.get_int(field::status);
                if (code > 65535) return error_at(rec, "close code out of range");
                if (st < -1000000 || st > 1000000) return error_at(rec, "status out of range");
                m.handle_transport_closed(now, static_cast<std::uint16_t>(code), rec.get_str(field::reason),
                                          static_cast<int>(st));
                break;
            }
            case record_type::tick: m.handle_timeout(now); break;
            default: return error_at(rec, "record not supported by this machine");
        }
        return std::nullopt;
    }

    void drain(const poll_limits& lim) { drain_client(*m_, lim, r_.text); }
    void written(const record&) {}
    void flush_all() {}
    void finish() {}

private:
    replay_result& r_;
    std::optional<client::client> m_;
};

class client_bytes_driver {
public:
    explicit client_bytes_driver(replay_result& r) : r_(r), in_(ws::role::server), out_(ws::role::client) {
        r_.output.resize(1);
    }

    std::optional<parse_error> init(const header& h) {
        client::ws_client_config cfg;
        if (auto e = read_config(h.config, cfg)) return e;
        m_.emplace(std::move(cfg));
        return std::nullopt;
    }

    std::optional<parse_error> apply(const record& rec) {
        client::ws_client& m = *m_;
        const time_point now = rec.at();
        bool handled = false;
        if (auto e = client_command(m, rec, r_.text, handled)) return e;
        if (handled) return std::nullopt;
        switch (rec.type) {
            case record_type::tcp_connected:
                in_.reset();
                out_.reset();
                m.handle_tcp_connected(now);
                break;
            case record_type::tcp_closed: m.handle_tcp_closed(now); break;
            case record_type::bytes: {
                const std::string_view data = rec.get_str(field::data);
                in_.feed(data, r_.text);
                const std::size_t taken = m.handle_bytes(now, data);
                if (taken < data.size()) line_builder(r_.text, "result").num("taken", static_cast<std::int64_t>(taken)).end();
                break;
            }
            case record_type::tick: m.handle_timeout(now); break;
            default: return error_at(rec, "record not supported by this machine");
        }
        return std::nullopt;
    }

    void drain(const poll_limits& lim) { drain_client(*m_, lim, r_.text); }
    void written(const record& rec) { take(static_cast<std::size_t>(rec.get_int(field::n)), true); }
    void flush_all() { take(all, false); }
    void finish() {
        if (m_->buffered_output() > 0)
            line_builder(r_.text, "pending").num("n", static_cast<std::int64_t>(m_->buffered_output())).end();
    }

private:
    void take(std::size_t n, bool exact) {
        take_output(r_.text, r_.output[0], out_, -1, n, exact, [&] { return m_->pending_output(); },
                    [&](std::size_t k) { m_->consume_output(k); });
    }

    replay_result& r_;
    std::optional<client::ws_client> m_;
    stream_annotator in_, out_;
};

// ---------------------------------------------------------------------------

class endpoint_driver {
public:
    explicit endpoint_driver(replay_result& r) : r_(r) {}
    endpoint_driver(const endpoint_driver&) = delete;  // the hooks point here
    endpoint_driver& operator=(const endpoint_driver&) = delete;

    std::optional<parse_error> init(const header& h) {
        server::config cfg;
        if (auto e = read_config(h.config, cfg)) return e;
        for (const auto& name : h.hooks) {
            if (name == "authenticate") {
                cfg.authenticate = [this](const ws::http_request&) {
                    server::auth_result a;
                    const record* r = pop_hook(record_type::hook_authenticate);
                    if (!r) {
                        a.status = 500;
                        return a;
                    }
                    a.status = static_cast<int>(r->get_int(field::status));
                    a.principal.assign(r->get_str(field::principal));
                    return a;
                };
            } else if (name == "authorize_join") {
                cfg.authorize_join = [this](std::string_view, std::string_view) {
                    const record* r = pop_hook(record_type::hook_authorize_join);
                    return r && r->get_int(field::allow) != 0;
                };
            } else if (name == "authorize_publish") {
                cfg.authorize_publish = [this](std::string_view, std::string_view, std::string_view) {
                    const record* r = pop_hook(record_type::hook_authorize_publish);
                    return r && r->get_int(field::allow) != 0;
                };
            }
        }
        m_ = std::make_unique<server::endpoint>(std::move(cfg));
        return std::nullopt;
    }

    void set_hooks(std::vector<const record*> hooks) { hooks_.assign(hooks.begin(), hooks.end()); }

    std::optional<parse_error> apply(const record& rec) {
        server::endpoint& m = *m_;
        const time_point now = rec.at();
        switch (rec.type) {
            case record_type::open_connection: {
                if (rec.get_int(field::conn) != static_cast<std::int64_t>(conns_.size()))
                    return error_at(rec, "connections are numbered 0, 1, 2… in open order: expected conn=" +
                                             std::to_string(conns_.size()));
                const server::conn_id id = m.open_connection(now);
                numbers_[id.value()] = static_cast<std::int64_t>(conns_.size());
                conns_.push_back(id);
                in_.emplace_back(ws::role::client);
                out_.emplace_back(ws::role::server);
                r_.output.emplace_back();
                break;
            }
            case record_type::bytes: {
                const auto k = conn_of(rec);
                if (!k) return error_at(rec, "conn=" + std::to_string(rec.get_int(field::conn)) + " was never opened");
                const std::string_view data = rec.get_str(field::data);
                in_[*k].feed(data, r_.text);
                const std::size_t taken = m.handle_bytes(now, conns_[*k], data);
                if (taken < data.size()) line_builder(r_.text, "result").num("taken", static_cast<std::int64_t>(taken)).end();
                break;
            }
            case record_type::transport_closed: {
                const auto k = conn_of(rec);
                if (!k) return error_at(rec, "conn=" + std::to_string(rec.get_int(field::conn)) + " was never opened");
                m.handle_transport_closed(now, conns_[*k]);
                break;
            }
            case record_type::tick: m.handle_timeout(now); break;
            case record_type::drain: m.drain(now, rec.get_duration(field::window)); break;
            case record_type::set_unix_ms_at_origin: m.set_unix_ms_at_origin(rec.get_int(field::ms)); break;
            default: return error_at(rec, "record not supported by this machine");
        }
        return std::nullopt;
    }

    void drain(const poll_limits&) {
        while (auto e = m_->poll_event()) {
            const auto it = numbers_.find(e->conn.value());
            print_event(r_.text, *e, e->conn.valid() && it != numbers_.end() ? it->second : -1);
        }
    }

    void written(const record& rec) {
        const auto k = conn_of(rec);
        if (!k) {
            line_builder(r_.text, "!! written for a connection never opened").num("conn", rec.get_int(field::conn)).end();
            return;
        }
        take(*k, static_cast<std::size_t>(rec.get_int(field::n)), true);
    }
    void flush_all() {
        for (std::size_t k = 0; k < conns_.size(); ++k)
            if (m_->buffered_output(conns_[k]) > 0) take(k, all, false);
    }
    void after_call() {
        if (hooks_.empty()) return;
        line_builder(r_.text, "!! recorded hook answers not used").num("count", static_cast<std::int64_t>(hooks_.size())).end();
        hooks_.clear();
    }
    void finish() {
        for (std::size_t k = 0; k < conns_.size(); ++k)
            if (const std::size_t n = m_->buffered_output(conns_[k]))
                line_builder(r_.text, "pending").num("conn", static_cast<std::int64_t>(k)).num("n", static_cast<std::int64_t>(n)).end();
    }

private:
    std::optional<std::size_t> conn_of(const record& rec) const {
        const auto c = rec.get_int(field::conn, -1);
        if (c < 0 || static_cast<std::uint64_t>(c) >= conns_.size()) return std::nullopt;
        return static_cast<std::size_t>(c);
    }

    const record* pop_hook(record_type t) {
        if (hooks_.empty() || hooks_.front()->type != t) {
            line_builder(r_.text, "!! hook called without a recorded answer").word("hook", to_string(t)).end();
            return nullptr;
        }
        const record* r = hooks_.front();
        hooks_.pop_front();
        echo(r_.text, *r);
        return r;
    }

    void take(std::size_t k, std::size_t n, bool exact) {
        const server::conn_id id = conns_[k];
        take_output(r_.text, r_.output[k], out_[k], static_cast<std::int64_t>(k), n, exact,
                    [&] { return m_->pending_output(id); }, [&](std::size_t x) { m_->consume_output(id, x); });
    }

    replay_result& r_;
    std::unique_ptr<server::endpoint> m_;
    std::vector<server::conn_id> conns_;
    std::map<std::uint64_t, std::int64_t> numbers_;  ///< conn_id value -> trace number
    std::deque<stream_annotator> in_, out_;
    std::deque<const record*> hooks_;
};

template <class D>
std::optional<parse_error> run(D& d, const trace& t, replay_result& r) {
    const auto& recs = t.records;
    std::size_t i = 0;
    while (i < recs.size()) {
        const record& call = recs[i];
        if (!is_call(call.type))
            return error_at(call, "`" + std::string(to_string(call.type)) + "` before any call it could belong to");
        std::size_t j = i + 1;
        const record* poll = nullptr;
        std::vector<const record*> hooks, written;
        for (; j < recs.size() && !is_call(recs[j].type); ++j) {
            const record& x = recs[j];
            if (x.type == record_type::poll) {
                if (poll) return error_at(x, "two `poll` records after one call");
                poll = &x;
            } else if (x.type == record_type::written) {
                written.push_back(&x);
            } else {
                hooks.push_back(&x);
            }
        }
        if constexpr (requires { d.set_hooks(hooks); }) d.set_hooks(hooks);
        echo(r.text, call);
        if (auto e = d.apply(call)) return e;
        poll_limits lim;
        if (poll) {
            lim.events = static_cast<std::uint64_t>(poll->get_int(field::events));
            lim.actions = static_cast<std::uint64_t>(poll->get_int(field::actions));
        }
        d.drain(lim);
        for (const record* w : written) d.written(*w);
        if (t.head.output == output_mode::automatic) d.flush_all();
        if constexpr (requires { d.after_call(); }) d.after_call();
        i = j;
    }
    d.finish();
    return std::nullopt;
}

}  // namespace detail

/// Replay a parsed trace; `r` receives the printed text and the output bytes.
inline std::optional<parse_error> replay(const trace& t, replay_result& r) {
    r = replay_result{};
    switch (t.head.machine) {
        case machine_kind::ws_server:
        case machine_kind::ws_client: {
            detail::ws_driver d(r, t.head.machine);
            if (auto e = d.init(t.head)) return e;
            return detail::run(d, t, r);
        }
        case machine_kind::client: {
            detail::client_driver d(r);
            if (auto e = d.init(t.head)) return e;
            return detail::run(d, t, r);
        }
        case machine_kind::client_bytes: {
            detail::client_bytes_driver d(r);
            if (auto e = d.init(t.head)) return e;
            return detail::run(d, t, r);
        }
        case machine_kind::endpoint: {
            detail::endpoint_driver d(r);
            if (auto e = d.init(t.head)) return e;
            return detail::run(d, t, r);
        }
    }
    return parse_error{0, "unknown machine"};
}

/// Parse, then replay.
inline std::optional<parse_error> replay_text(std::string_view text, replay_result& r) {
    trace t;
    if (auto e = read_trace(text, t)) return e;
    return replay(t, r);
}

}  // namespace tether::trace
