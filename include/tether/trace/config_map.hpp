// tether/trace/config_map.hpp — machine configs <-> the `config key=value`
// lines of a trace header.
//
// One visit function per config struct names every field once; a writer
// visitor turns a config into entries, a reader visitor fills a config from
// them and refuses what it does not know (with the entry's line). Keeping a
// single list per struct is what keeps recording and replay in step: a new
// config field must be added here, or traces silently replay it with its
// default. Every field is written, defaults too, so that a trace replays the
// same after a release changes a default.
//
// Nested configs use a dotted prefix (`backoff.cap`, `ws.seed`); lists repeat
// their key (`config subprotocol="a"`, `config subprotocol="b"`). Hooks
// (std::function) are not config: their answers are recorded as records.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tether/client/client.hpp"
#include "tether/client/ws_client.hpp"
#include "tether/server/config.hpp"
#include "tether/trace/format.hpp"
#include "tether/ws/connection.hpp"
#include "tether/ws/http.hpp"

namespace tether::trace {

/// The raw client-role connection's construction arguments.
struct ws_client_setup {
    ws::config ws;
    std::string host = "localhost";
    std::string target = "/";
    std::vector<ws::http_header> headers;
};

/// "Name: value" — how a header travels in one string field.
inline std::string header_line(std::string_view name, std::string_view value) {
    std::string s(name);
    s.append(": ").append(value);
    return s;
}

inline std::optional<ws::http_header> parse_header_line(std::string_view line) {
    const std::size_t c = line.find(": ");
    if (c == std::string_view::npos || c == 0) return std::nullopt;
    return ws::http_header{std::string(line.substr(0, c)), std::string(line.substr(c + 2))};
}

/// Several headers in one field: lines joined with CRLF.
inline std::string join_headers(std::span<const ws::http_header> hs) {
    std::string s;
    for (const auto& h : hs) {
        if (!s.empty()) s.append("\r\n");
        s.append(header_line(h.name, h.value));
    }
    return s;
}

inline std::optional<std::vector<ws::http_header>> split_headers(std::string_view s) {
    std::vector<ws::http_header> out;
    while (!s.empty()) {
        const std::size_t e = s.find("\r\n");
        const auto h = parse_header_line(s.substr(0, e));
        if (!h) return std::nullopt;
        out.push_back(*h);
        s = e == std::string_view::npos ? std::string_view{} : s.substr(e + 2);
    }
    return out;
}

// ---------------------------------------------------------------------------
// The field lists

template <class V, class C>
void visit_config(V& v, C& c) requires std::is_same_v<std::remove_const_t<C>, ws::config> {
    v.number("max_message_bytes", c.max_message_bytes);
    v.number("max_frame_buffer", c.max_frame_buffer);
    v.number("max_header_bytes", c.max_header_bytes);
    v.number("max_output_bytes", c.max_output_bytes);
    v.dur("close_timeout", c.close_timeout);
    v.dur("handshake_timeout", c.handshake_timeout);
    v.flag("auto_pong", c.auto_pong);
    v.flag("validate_outgoing_utf8", c.validate_outgoing_utf8);
    v.number("seed", c.seed);
    v.list("subprotocol", c.subprotocols);
}

template <class V, class C>
void visit_config(V& v, C& c) requires std::is_same_v<std::remove_const_t<C>, client::config> {
    v.number("seed", c.seed);
    v.dur("ack_timeout", c.ack_timeout);
    v.dur("heartbeat_grace", c.heartbeat_grace);
    v.dur("connect_timeout", c.connect_timeout);
    v.dur("backoff.initial", c.backoff.initial);
    v.dur("backoff.cap", c.backoff.cap);
    v.number("backoff.jitter_percent", c.backoff.jitter_percent);
    v.number("backoff.max_attempts", c.backoff.max_attempts);
    v.dur("backoff.max_server_delay", c.backoff.max_server_delay);
    v.number("outbox.max_messages", c.outbox.max_messages);
    v.number("outbox.max_bytes", c.outbox.max_bytes);
    v.number("max_message_bytes", c.max_message_bytes);
    v.number("max_rooms", c.max_rooms);
    if constexpr (requires { c.max_in_flight; }) v.number("max_in_flight", c.max_in_flight);
    v.str("path", c.path);
    v.flag("token_in_query", c.token_in_query);
    v.str("token", c.token);
}

template <class V, class C>
void visit_config(V& v, C& c) requires std::is_same_v<std::remove_const_t<C>, client::ws_client_config> {
    visit_config(v, c.client);
    v.str("host", c.host);
    const std::string saved = v.prefix;
    v.prefix = "ws.";
    visit_config(v, c.ws);
    v.prefix = saved;
}

template <class V, class C>
void visit_config(V& v, C& c) requires std::is_same_v<std::remove_const_t<C>, ws_client_setup> {
    visit_config(v, c.ws);
    v.str("host", c.host);
    v.str("target", c.target);
    v.headers("header", c.headers);
}

template <class V, class C>
void visit_config(V& v, C& c) requires std::is_same_v<std::remove_const_t<C>, server::config> {
    v.number("seed", c.seed);
    v.number("unix_ms_at_origin", c.unix_ms_at_origin);
    v.dur("heartbeat", c.heartbeat);
    v.dur("grace", c.grace);
    v.number("max_sessions", c.max_sessions);
    v.number("replay_window", c.replay_window);
    v.dur("replay_max_age", c.replay_max_age);
    v.dur("dedup_window", c.dedup_window);
    v.number("dedup_min_ids", c.dedup_min_ids);
    v.number("dedup_max_ids", c.dedup_max_ids);
    v.number("max_rooms_per_session", c.max_rooms_per_session);
    v.number("max_rooms", c.max_rooms);
    v.number("rate_per_s", c.rate_per_s);
    v.number("rate_burst", c.rate_burst);
    v.number("rate_abuse_strikes", c.rate_abuse_strikes);
    v.dur("rate_abuse_window", c.rate_abuse_window);
    v.number("max_bad_requests", c.max_bad_requests);
    v.dur("bad_request_window", c.bad_request_window);
    v.number("max_message_bytes", c.max_message_bytes);
    v.number("send_high_water", c.send_high_water);
    v.dur("slow_reader_retry_after", c.slow_reader_retry_after);
    v.dur("handshake_timeout", c.handshake_timeout);
    v.dur("close_timeout", c.close_timeout);
    v.number("max_header_bytes", c.max_header_bytes);
    v.number("max_principal_bytes", c.max_principal_bytes);
    v.list("allowed_origin", c.allowed_origins);
}

// ---------------------------------------------------------------------------
// Visitors

class config_writer {
public:
    explicit config_writer(std::vector<config_entry>& out) : out_(out) {}
    std::string prefix;

    template <class T>
    void number(std::string_view key, const T& v) {
        if constexpr (std::is_signed_v<T>)
            add(key, value::make_int(static_cast<std::int64_t>(v)));
        else
            add(key, value::make_uint(static_cast<std::uint64_t>(v)));
    }
    void flag(std::string_view key, bool v) { add(key, value::make_int(v ? 1 : 0)); }
    void dur(std::string_view key, duration d) { add(key, value::make_duration(d)); }
    void str(std::string_view key, const std::string& s) { add(key, value::make_string(s)); }
    void list(std::string_view key, const std::vector<std::string>& xs) {
        for (const auto& x : xs) str(key, x);
    }
    void headers(std::string_view key, const std::vector<ws::http_header>& hs) {
        for (const auto& h : hs) add(key, value::make_string(header_line(h.name, h.value)));
    }

private:
    void add(std::string_view key, value v) {
        std::string k = prefix;
        k.append(key);
        out_.push_back({std::move(k), std::move(v), 0});
    }
    std::vector<config_entry>& out_;
};

class config_reader {
public:
    explicit config_reader(const std::vector<config_entry>& in) : in_(in), used_(in.size(), false) {}
    std::string prefix;

    template <class T>
    void number(std::string_view key, T& v) {
        const config_entry* e = one(key, value_kind::integer);
        if (!e) return;
        if constexpr (std::is_signed_v<T>) {
            const auto x = e->val.as_i64();
            if (!x || *x < std::numeric_limits<T>::min() || *x > std::numeric_limits<T>::max())
                return bad(*e, "out of range");
            v = static_cast<T>(*x);
        } else {
            const auto x = e->val.as_u64();
            if (!x || *x > std::numeric_limits<T>::max()) return bad(*e, "out of range");
            v = static_cast<T>(*x);
        }
    }
    void flag(std::string_view key, bool& v) {
        const config_entry* e = one(key, value_kind::integer);
        if (!e) return;
        if (e->val.negative || e->val.magnitude > 1) return bad(*e, "is 0 or 1");
        v = e->val.magnitude == 1;
    }
    void dur(std::string_view key, duration& d) {
        if (const config_entry* e = one(key, value_kind::duration)) d = e->val.as_duration();
    }
    void str(std::string_view key, std::string& s) {
        if (const config_entry* e = one(key, value_kind::string)) s = e->val.bytes;
    }
    void list(std::string_view key, std::vector<std::string>& xs) {
        bool first = true;
        for_each(key, [&](const config_entry& e) {
            if (first) xs.clear();
            first = false;
            xs.push_back(e.val.bytes);
        });
    }
    void headers(std::string_view key, std::vector<ws::http_header>& hs) {
        bool first = true;
        for_each(key, [&](const config_entry& e) {
            if (first) hs.clear();
            first = false;
            if (auto h = parse_header_line(e.val.bytes)) hs.push_back(*h);
            else bad(e, "is \"Name: value\"");
        });
    }

    /// After the visit: the first error, or an entry nobody asked for.
    std::optional<parse_error> finish() const {
        if (err_) return err_;
        for (std::size_t i = 0; i < in_.size(); ++i)
            if (!used_[i]) return parse_error{in_[i].line, "unknown config key `" + in_[i].key + "`"};
        return std::nullopt;
    }

private:
    template <class F>
    void for_each(std::string_view key, F&& f) {
        const std::string k = prefix + std::string(key);
        for (std::size_t i = 0; i < in_.size(); ++i) {
            if (in_[i].key != k) continue;
            used_[i] = true;
            if (in_[i].val.kind != value_kind::string) {
                bad(in_[i], "is a \"string\"");
                continue;
            }
            f(in_[i]);
        }
    }
    const config_entry* one(std::string_view key, value_kind kind) {
        const std::string k = prefix + std::string(key);
        const config_entry* found = nullptr;
        for (std::size_t i = 0; i < in_.size(); ++i) {
            if (in_[i].key != k) continue;
            used_[i] = true;
            if (found) {
                bad(in_[i], "given twice");
                return nullptr;
            }
            found = &in_[i];
        }
        if (found && found->val.kind != kind) {
            bad(*found, kind == value_kind::duration ? "is a duration (e.g. 5s, 250ms)"
                        : kind == value_kind::integer ? "is an integer"
                                                      : "is a \"string\"");
            return nullptr;
        }
        return found;
    }
    void bad(const config_entry& e, std::string_view why) {
        if (!err_) err_ = parse_error{e.line, "config " + e.key + " " + std::string(why)};
    }

    const std::vector<config_entry>& in_;
    std::vector<bool> used_;
    std::optional<parse_error> err_;
};

/// Config -> header entries (appended).
template <class C>
void write_config(std::vector<config_entry>& out, const C& c) {
    config_writer w(out);
    visit_config(w, c);
}

/// Header entries -> config (missing keys keep the config's values).
template <class C>
std::optional<parse_error> read_config(const std::vector<config_entry>& in, C& c) {
    config_reader r(in);
    visit_config(r, c);
    return r.finish();
}

}  // namespace tether::trace
