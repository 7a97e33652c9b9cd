// tether/trace/recorder.hpp — record everything a machine consumes.
//
// Theory of operation
// -------------------
// recorded<Machine> owns the machine and has the same methods a loop calls
// (inputs, commands, polls, output). Each input or command is written to
// the sink as one trace record *before* it is passed on — so a crash inside
// the machine leaves the input that caused it in the trace, and in-place
// work on the input (unmasking) cannot alter what is recorded. With an empty
// sink the wrapper only forwards: a loop can always use it and switch
// recording on with a flag (examples/chat_server.cpp, chat_client.cpp).
//
// Besides inputs, three things a replay needs are recorded:
//   - the config, seeds included, as the header (config_map.hpp);
//   - the loop's output pace: consume_output(n) becomes `written n=` (the
//     endpoint's flush events and slow-reader closes depend on it);
//   - partial drains: ws::connection and ws_client decode input lazily,
//     inside poll_event(), and client::client marks messages sent inside
//     poll_action(); when the loop makes its next call before polling until
//     empty, a `poll events=K actions=J` record says how far it got (the
//     endpoint decodes eagerly, so its polls are not recorded);
//   - the endpoint's hooks (config::authenticate, authorize_*) are wrapped:
//     their answers are recorded after the call that made them, so a replay
//     needs neither the hooks nor their secrets.
// Getters that change nothing go through machine().
//
// The sink is a FILE* (written with fwrite; set it line-buffered to have
// every record on disk at once) or a std::string. Traces hold everything
// the machine saw: tokens, payloads. Treat them as secrets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "tether/client/client.hpp"
#include "tether/client/ws_client.hpp"
#include "tether/core/time.hpp"
#include "tether/server/endpoint.hpp"
#include "tether/trace/config_map.hpp"
#include "tether/trace/format.hpp"
#include "tether/ws/connection.hpp"

namespace tether::trace {

/// Where records go. Default-constructed: nowhere (recording off).
class sink {
public:
    sink() noexcept = default;
    explicit sink(std::FILE* f) noexcept : file_(f) {}
    explicit sink(std::string* s) noexcept : str_(s) {}
    explicit operator bool() const noexcept { return file_ != nullptr || str_ != nullptr; }
    void write(std::string_view text) const {
        if (str_) str_->append(text);
        else if (file_) (void)std::fwrite(text.data(), 1, text.size(), file_);
    }

private:
    std::FILE* file_ = nullptr;
    std::string* str_ = nullptr;
};

/// The writing half every recorded<> shares.
class recorder {
public:
    recorder() = default;
    /// `lazy`: the machine's polls have effects worth a `poll` record;
    /// `actions`: it also has poll_action().
    recorder(sink s, bool lazy, bool actions) : sink_(s), lazy_(lazy), actions_(actions) {}

    bool on() const noexcept { return static_cast<bool>(sink_); }
    time_point last() const noexcept { return last_; }

    void write_header(const header& h) {
        if (!on()) return;
        buf_.clear();
        tether::trace::write_header(buf_, h);
        sink_.write(buf_);
    }

    /// A call into the machine at `r.time`.
    void call(const record& r) {
        if (!on()) return;
        if (lazy_ && any_call_ && !(events_done_ && (!actions_ || actions_done_))) {
            record p(last_, record_type::poll);
            p.set_int(field::events, static_cast<std::int64_t>(events_));
            if (actions_) p.set_int(field::actions, static_cast<std::int64_t>(actions_n_));
            emit(p);
        }
        events_ = actions_n_ = 0;
        events_done_ = actions_done_ = false;
        any_call_ = true;
        if (r.at() > last_) last_ = r.at();
        emit(r);
    }
    /// Bookkeeping (written, hook answers), stamped with the last call's time.
    void note(record r) {
        if (!on()) return;
        r.time = last_.time_since_epoch().count();
        emit(r);
    }
    void polled_event(bool got) noexcept {
        if (got) ++events_;
        events_done_ = !got;
    }
    void polled_action(bool got) noexcept {
        if (got) ++actions_n_;
        actions_done_ = !got;
    }

private:
    void emit(const record& r) {
        buf_.clear();
        write_record(buf_, r);
        sink_.write(buf_);
    }

    sink sink_;
    bool lazy_ = false;
    bool actions_ = false;
    bool any_call_ = false;
    std::uint64_t events_ = 0, actions_n_ = 0;
    bool events_done_ = false, actions_done_ = false;
    time_point last_{};
    std::string buf_;
};

namespace detail {
inline std::string_view as_chars(std::span<const std::uint8_t> b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}
}  // namespace detail

template <class Machine>
class recorded;

// ---------------------------------------------------------------------------
// ws::connection (machine ws_server / ws_client)

template <>
class recorded<ws::connection> {
public:
    static recorded server(time_point now, ws::config cfg, sink s = {}) {
        header h;
        h.machine = machine_kind::ws_server;
        h.output = output_mode::recorded;
        write_config(h.config, cfg);
        recorded r(s, ws::connection::server(now, std::move(cfg)));
        r.rec_.write_header(h);
        r.rec_.call(record(now, record_type::start));
        return r;
    }

    static recorded client(time_point now, ws::config cfg, std::string_view host, std::string_view target,
                           std::span<const ws::http_header> extra_headers = {}, sink s = {}) {
        header h;
        h.machine = machine_kind::ws_client;
        h.output = output_mode::recorded;
        ws_client_setup setup{cfg, std::string(host), std::string(target), {extra_headers.begin(), extra_headers.end()}};
        write_config(h.config, setup);
        recorded r(s, ws::connection::client(now, std::move(cfg), host, target, extra_headers));
        r.rec_.write_header(h);
        r.rec_.call(record(now, record_type::start));
        return r;
    }

    const ws::connection& machine() const noexcept { return c_; }
    ws::state state() const noexcept { return c_.state(); }
    const ws::http_request& request() const noexcept { return c_.request(); }
    std::span<const std::string> offered_subprotocols() const noexcept { return c_.offered_subprotocols(); }
    time_point next_deadline() const noexcept { return c_.next_deadline(); }
    std::size_t buffered_output() const noexcept { return c_.buffered_output(); }

    // inputs
    std::span<std::uint8_t> read_buffer(std::size_t min_size = 4096) {
        read_ = c_.read_buffer(min_size);
        return read_;
    }
    void handle_read(time_point now, std::size_t n) {
        const std::size_t k = n < read_.size() ? n : read_.size();  // the machine clamps the same way
        rec_.call(record(now, record_type::bytes).set_str(field::data, detail::as_chars(read_.first(k))));
        read_ = read_.subspan(k);  // a second handle_read continues there
        c_.handle_read(now, n);
    }
    std::size_t handle_bytes(time_point now, std::span<const std::uint8_t> bytes) {
        rec_.call(record(now, record_type::bytes).set_str(field::data, detail::as_chars(bytes)));
        return c_.handle_bytes(now, bytes);
    }
    std::size_t handle_bytes(time_point now, std::string_view bytes) {
        return handle_bytes(now, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    }
    void handle_transport_closed(time_point now) {
        rec_.call(record(now, record_type::transport_closed));
        c_.handle_transport_closed(now);
    }
    void handle_timeout(time_point now) {
        rec_.call(record(now, record_type::tick));
        c_.handle_timeout(now);
    }

    // commands (those without `now` are stamped with the last call's time)
    std::error_code accept(std::string_view subprotocol = {}, std::span<const ws::http_header> extra_headers = {}) {
        record r(rec_.last(), record_type::accept);
        if (!subprotocol.empty()) r.set_str(field::subprotocol, subprotocol);
        if (!extra_headers.empty()) r.set_str(field::headers, join_headers(extra_headers));
        rec_.call(r);
        return c_.accept(subprotocol, extra_headers);
    }
    std::error_code reject(int status, std::string_view body = {}, std::span<const ws::http_header> extra_headers = {}) {
        record r(rec_.last(), record_type::reject);
        r.set_int(field::status, status);
        if (!body.empty()) r.set_str(field::body, body);
        if (!extra_headers.empty()) r.set_str(field::headers, join_headers(extra_headers));
        rec_.call(r);
        return c_.reject(status, body, extra_headers);
    }
    std::error_code send_text(std::string_view text) {
        rec_.call(record(rec_.last(), record_type::send_text).set_str(field::text, text));
        return c_.send_text(text);
    }
    std::error_code send_binary(std::span<const std::uint8_t> bytes) {
        rec_.call(record(rec_.last(), record_type::send_binary).set_str(field::data, detail::as_chars(bytes)));
        return c_.send_binary(bytes);
    }
    std::error_code send_frame(ws::opcode op, std::span<const std::uint8_t> payload, bool fin) {
        rec_.call(record(rec_.last(), record_type::send_frame)
                      .set_int(field::op, static_cast<int>(op))
                      .set_int(field::fin, fin ? 1 : 0)
                      .set_str(field::data, detail::as_chars(payload)));
        return c_.send_frame(op, payload, fin);
    }
    std::error_code ping(std::span<const std::uint8_t> payload = {}) {
        rec_.call(record(rec_.last(), record_type::ping).set_str(field::data, detail::as_chars(payload)));
        return c_.ping(payload);
    }
    std::error_code pong(std::span<const std::uint8_t> payload = {}) {
        rec_.call(record(rec_.last(), record_type::pong).set_str(field::data, detail::as_chars(payload)));
        return c_.pong(payload);
    }
    std::error_code close(time_point now, ws::close_code code = ws::close_code::normal, std::string_view reason = {}) {
        record r(now, record_type::close);
        r.set_int(field::code, ws::to_int(code));
        if (!reason.empty()) r.set_str(field::reason, reason);
        rec_.call(r);
        return c_.close(now, code, reason);
    }

    // outputs
    std::optional<ws::event> poll_event() {
        auto e = c_.poll_event();
        rec_.polled_event(e.has_value());
        return e;
    }
    std::span<const std::uint8_t> pending_output() const noexcept { return c_.pending_output(); }
    std::size_t gather_output(std::span<std::span<const std::uint8_t>> runs) const noexcept {
        return c_.gather_output(runs);
    }
    void consume_output(std::size_t n) {
        rec_.note(record(0, record_type::written).set_int(field::n, static_cast<std::int64_t>(n)));
        c_.consume_output(n);
    }

private:
    recorded(sink s, ws::connection c) : rec_(s, true, false), c_(std::move(c)) {}

    recorder rec_;
    ws::connection c_;
    std::span<std::uint8_t> read_;
};

// ---------------------------------------------------------------------------
// The application commands of both client machines (client and
// client_bytes), recorded the same way. Derived gives access to its
// recorder (rec_) and machine (m_).

namespace detail {

template <class Derived>
class client_commands {
public:
    std::error_code connect(time_point now) {
        self().rec_.call(record(now, record_type::connect));
        return self().m_.connect(now);
    }
    std::error_code join(time_point now, std::string_view room) {
        self().rec_.call(record(now, record_type::join).set_str(field::room, room));
        return self().m_.join(now, room);
    }
    std::error_code leave(time_point now, std::string_view room) {
        self().rec_.call(record(now, record_type::leave).set_str(field::room, room));
        return self().m_.leave(now, room);
    }
    client::send_result send(time_point now, std::string_view room, std::string_view kind, std::string_view payload) {
        self().rec_.call(send_record(now, room, kind, payload));
        return self().m_.send(now, room, kind, payload);
    }
    std::error_code snapshot_loaded(time_point now, std::string_view room, std::int64_t cursor,
                                    std::string_view epoch = {}) {
        self().rec_.call(snapshot_record(now, room, cursor, epoch));
        return self().m_.snapshot_loaded(now, room, cursor, epoch);
    }
    std::error_code set_token(time_point now, std::string_view token) {
        self().rec_.call(record(now, record_type::set_token).set_str(field::token, token));
        return self().m_.set_token(now, token);
    }
    std::error_code close(time_point now) {
        self().rec_.call(record(now, record_type::close));
        return self().m_.close(now);
    }

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }

    static record send_record(time_point now, std::string_view room, std::string_view kind, std::string_view payload) {
        record r(now, record_type::send);
        r.set_str(field::room, room).set_str(field::kind, kind);
        if (!payload.empty()) r.set_str(field::payload, payload);
        return r;
    }
    static record snapshot_record(time_point now, std::string_view room, std::int64_t cursor, std::string_view epoch) {
        record r(now, record_type::snapshot_loaded);
        r.set_str(field::room, room).set_int(field::cursor, cursor);
        if (!epoch.empty()) r.set_str(field::epoch, epoch);
        return r;
    }
};

}  // namespace detail

// ---------------------------------------------------------------------------
// client::client (machine client)

template <>
class recorded<client::client> : public detail::client_commands<recorded<client::client>> {
    friend class detail::client_commands<recorded>;

public:
    explicit recorded(client::config cfg, sink s = {}) : rec_(s, true, true), m_(header_then(cfg)) {}

    const client::client& machine() const noexcept { return m_; }
    time_point next_deadline() const noexcept { return m_.next_deadline(); }

    void handle_transport_open(time_point now) {
        rec_.call(record(now, record_type::transport_open));
        m_.handle_transport_open(now);
    }
    void handle_message(time_point now, std::string_view text) {
        rec_.call(record(now, record_type::message).set_str(field::text, text));
        m_.handle_message(now, text);
    }
    void handle_binary(time_point now) {
        rec_.call(record(now, record_type::binary));
        m_.handle_binary(now);
    }
    void handle_transport_closed(time_point now, std::uint16_t code, std::string_view reason, int http_status = 0) {
        record r(now, record_type::transport_closed);
        r.set_int(field::code, code);
        if (!reason.empty()) r.set_str(field::reason, reason);
        if (http_status != 0) r.set_int(field::status, http_status);
        rec_.call(r);
        m_.handle_transport_closed(now, code, reason, http_status);
    }
    void handle_timeout(time_point now) {
        rec_.call(record(now, record_type::tick));
        m_.handle_timeout(now);
    }

    std::optional<client::event> poll_event() {
        auto e = m_.poll_event();
        rec_.polled_event(e.has_value());
        return e;
    }
    std::optional<client::action> poll_action() {
        auto a = m_.poll_action();
        rec_.polled_action(a.has_value());
        return a;
    }

private:
    client::config header_then(client::config& cfg) {
        header h;
        h.machine = machine_kind::client;
        write_config(h.config, cfg);
        rec_.write_header(h);
        return std::move(cfg);
    }

    recorder rec_;
    client::client m_;
};

// ---------------------------------------------------------------------------
// client::ws_client (machine client_bytes)

template <>
class recorded<client::ws_client> : public detail::client_commands<recorded<client::ws_client>> {
    friend class detail::client_commands<recorded>;

public:
    explicit recorded(client::ws_client_config cfg, sink s = {}) : rec_(s, true, true), m_(header_then(cfg)) {}

    const client::client& machine() const noexcept { return m_.machine(); }
    const ws::connection* websocket() const noexcept { return m_.websocket(); }
    time_point next_deadline() const noexcept { return m_.next_deadline(); }
    std::size_t buffered_output() const noexcept { return m_.buffered_output(); }

    void handle_tcp_connected(time_point now) {
        rec_.call(record(now, record_type::tcp_connected));
        m_.handle_tcp_connected(now);
    }
    void handle_tcp_closed(time_point now) {
        rec_.call(record(now, record_type::tcp_closed));
        m_.handle_tcp_closed(now);
    }
    std::span<std::uint8_t> read_buffer(std::size_t min_size = 4096) {
        read_ = m_.read_buffer(min_size);
        return read_;
    }
    void handle_read(time_point now, std::size_t n) {
        const std::size_t k = n < read_.size() ? n : read_.size();
        rec_.call(record(now, record_type::bytes).set_str(field::data, detail::as_chars(read_.first(k))));
        read_ = read_.subspan(k);
        m_.handle_read(now, n);
    }
    std::size_t handle_bytes(time_point now, std::span<const std::uint8_t> bytes) {
        rec_.call(record(now, record_type::bytes).set_str(field::data, detail::as_chars(bytes)));
        return m_.handle_bytes(now, bytes);
    }
    std::size_t handle_bytes(time_point now, std::string_view bytes) {
        return handle_bytes(now, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    }
    void handle_timeout(time_point now) {
        rec_.call(record(now, record_type::tick));
        m_.handle_timeout(now);
    }

    std::optional<client::event> poll_event() {
        auto e = m_.poll_event();
        rec_.polled_event(e.has_value());
        return e;
    }
    std::optional<client::tcp_action> poll_action() {
        auto a = m_.poll_action();
        rec_.polled_action(a.has_value());
        return a;
    }
    std::span<const std::uint8_t> pending_output() { return m_.pending_output(); }
    std::size_t gather_output(std::span<std::span<const std::uint8_t>> runs) { return m_.gather_output(runs); }
    void consume_output(std::size_t n) {
        rec_.note(record(0, record_type::written).set_int(field::n, static_cast<std::int64_t>(n)));
        m_.consume_output(n);
    }

private:
    client::ws_client_config header_then(client::ws_client_config& cfg) {
        header h;
        h.machine = machine_kind::client_bytes;
        h.output = output_mode::recorded;
        write_config(h.config, cfg);
        rec_.write_header(h);
        return std::move(cfg);
    }

    recorder rec_;
    client::ws_client m_;
    std::span<std::uint8_t> read_;
};

// ---------------------------------------------------------------------------
// server::endpoint (machine endpoint)

template <>
class recorded<server::endpoint> {
public:
    /// Connections are numbered in the trace in open_connection() order.
    explicit recorded(server::config cfg, sink s = {}) : rec_(s, false, false), m_(header_then(cfg)) {}

    recorded(const recorded&) = delete;  // the wrapped hooks point here
    recorded& operator=(const recorded&) = delete;

    const server::endpoint& machine() const noexcept { return m_; }
    const server::config& cfg() const noexcept { return m_.cfg(); }
    std::size_t session_count() const noexcept { return m_.session_count(); }
    std::size_t connection_count() const noexcept { return m_.connection_count(); }
    std::size_t room_count() const noexcept { return m_.room_count(); }
    bool is_live(server::conn_id id) const noexcept { return m_.is_live(id); }
    bool draining() const noexcept { return m_.draining(); }
    time_point next_deadline() const noexcept { return m_.next_deadline(); }

    server::conn_id open_connection(time_point now) {
        rec_.call(record(now, record_type::open_connection).set_int(field::conn, next_conn_));
        const server::conn_id id = m_.open_connection(now);
        if (rec_.on()) numbers_[id.value()] = next_conn_;
        ++next_conn_;
        return id;
    }
    std::span<std::uint8_t> read_buffer(server::conn_id id, std::size_t min_size = 4096) {
        read_ = m_.read_buffer(id, min_size);
        read_id_ = id;
        return read_;
    }
    void handle_read(time_point now, server::conn_id id, std::size_t n) {
        if (!(id == read_id_)) read_ = {};
        const std::size_t len = n < read_.size() ? n : read_.size();
        if (const auto k = number(id); k >= 0)
            rec_.call(record(now, record_type::bytes)
                          .set_int(field::conn, k)
                          .set_str(field::data, detail::as_chars(read_.first(len))));
        read_ = {};  // process() ran: read_buffer() again before the next read
        m_.handle_read(now, id, n);
    }
    std::size_t handle_bytes(time_point now, server::conn_id id, std::span<const std::uint8_t> bytes) {
        if (const auto k = number(id); k >= 0)
            rec_.call(record(now, record_type::bytes).set_int(field::conn, k).set_str(field::data, detail::as_chars(bytes)));
        return m_.handle_bytes(now, id, bytes);
    }
    std::size_t handle_bytes(time_point now, server::conn_id id, std::string_view bytes) {
        return handle_bytes(now, id, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    }
    void handle_transport_closed(time_point now, server::conn_id id) {
        if (const auto k = number(id); k >= 0) {
            rec_.call(record(now, record_type::transport_closed).set_int(field::conn, k));
            numbers_.erase(id.value());  // the id is stale from here on
        }
        m_.handle_transport_closed(now, id);
    }
    void handle_timeout(time_point now) {
        rec_.call(record(now, record_type::tick));
        m_.handle_timeout(now);
    }
    void drain(time_point now, duration window) {
        rec_.call(record(now, record_type::drain).set_duration(field::window, window));
        m_.drain(now, window);
    }
    void set_unix_ms_at_origin(std::int64_t ms) {
        rec_.call(record(rec_.last(), record_type::set_unix_ms_at_origin).set_int(field::ms, ms));
        m_.set_unix_ms_at_origin(ms);
    }

    std::optional<server::event> poll_event() { return m_.poll_event(); }
    std::span<const std::uint8_t> pending_output(server::conn_id id) const noexcept { return m_.pending_output(id); }
    std::size_t gather_output(server::conn_id id, std::span<std::span<const std::uint8_t>> runs) const noexcept {
        return m_.gather_output(id, runs);
    }
    void consume_output(server::conn_id id, std::size_t n) {
        if (const auto k = number(id); k >= 0)
            rec_.note(record(0, record_type::written).set_int(field::conn, k).set_int(field::n, static_cast<std::int64_t>(n)));
        m_.consume_output(id, n);
    }
    std::size_t buffered_output(server::conn_id id) const noexcept { return m_.buffered_output(id); }

private:
    server::config header_then(server::config& cfg) {
        header h;
        h.machine = machine_kind::endpoint;
        h.output = output_mode::recorded;
        write_config(h.config, cfg);
        if (!rec_.on()) return std::move(cfg);
        // Wrap the hooks: the answer is recorded after the call that asked.
        if (cfg.authenticate) {
            h.hooks.emplace_back("authenticate");
            cfg.authenticate = [this, f = std::move(cfg.authenticate)](const ws::http_request& req) {
                server::auth_result a = f(req);
                record r(0, record_type::hook_authenticate);
                r.set_int(field::status, a.status);
                if (!a.principal.empty()) r.set_str(field::principal, a.principal);
                rec_.note(std::move(r));
                return a;
            };
        }
        if (cfg.authorize_join) {
            h.hooks.emplace_back("authorize_join");
            cfg.authorize_join = [this, f = std::move(cfg.authorize_join)](std::string_view p, std::string_view room) {
                const bool ok = f(p, room);
                rec_.note(record(0, record_type::hook_authorize_join).set_int(field::allow, ok ? 1 : 0));
                return ok;
            };
        }
        if (cfg.authorize_publish) {
            h.hooks.emplace_back("authorize_publish");
            cfg.authorize_publish = [this, f = std::move(cfg.authorize_publish)](
                                        std::string_view p, std::string_view room, std::string_view kind) {
                const bool ok = f(p, room, kind);
                rec_.note(record(0, record_type::hook_authorize_publish).set_int(field::allow, ok ? 1 : 0));
                return ok;
            };
        }
        rec_.write_header(h);
        return std::move(cfg);
    }

    // Calls with a stale id are no-ops for the endpoint; they are left out.
    std::int64_t number(server::conn_id id) const {
        if (!rec_.on()) return -1;
        const auto it = numbers_.find(id.value());
        return it == numbers_.end() ? -1 : it->second;
    }

    recorder rec_;
    std::int64_t next_conn_ = 0;
    std::unordered_map<std::uint64_t, std::int64_t> numbers_;  ///< conn_id value -> trace number
    server::endpoint m_;
    std::span<std::uint8_t> read_;
    server::conn_id read_id_{};
};

}  // namespace tether::trace
