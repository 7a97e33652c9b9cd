// tether/trace/format.hpp — the trace format: everything one machine
// consumed, as text (docs/trace.md is the reference).
//
// Theory of operation
// -------------------
// A trace is a header naming the machine and its config (seeds included),
// then one record per line, each stamped with `now` in nanoseconds since
// the caller's origin:
//
//   tether-trace 1
//   machine endpoint
//   output recorded
//   hook authenticate
//   config seed=12345
//   config heartbeat=25s
//   0 open_connection conn=0
//   1200 bytes conn=0 data="GET /?user=alice HTTP/1.1\r\n…"
//   1200 hook_authenticate status=0 principal="alice"
//   1200 written conn=0 n=129
//
// Every record is `TIME NAME key=value…`. A value is an integer (`-12`), a
// duration (`25s`, `1500ms`, `250us`, `7ns`: exact, the writer picks the
// largest unit that divides) or a byte string: a JSON string for UTF-8 text,
// `hex:…` for anything else. Which records and keys a machine accepts is
// the table below; the reader rejects anything else with the line number,
// and the writer always writes keys in table order, so write → read → write
// is the identity and two traces diff line by line.
//
// This header knows the grammar only. Typed configs live in config_map.hpp,
// the recorder in recorder.hpp, the replayer in replay.hpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tether/core/time.hpp"
#include "tether/trace/detail/text.hpp"
#include "tether/ws/utf8.hpp"

namespace tether::trace {

inline constexpr int format_version = 1;

/// The machine a trace feeds.
enum class machine_kind : std::uint8_t {
    ws_server,     ///< ws::connection, server role
    ws_client,     ///< ws::connection, client role
    client,        ///< client::client (message mode: whole text messages)
    client_bytes,  ///< client::ws_client (bytes mode: the client over raw TCP bytes)
    endpoint,      ///< server::endpoint
};

constexpr std::string_view to_string(machine_kind m) noexcept {
    switch (m) {
        case machine_kind::ws_server: return "ws_server";
        case machine_kind::ws_client: return "ws_client";
        case machine_kind::client: return "client";
        case machine_kind::client_bytes: return "client_bytes";
        case machine_kind::endpoint: return "endpoint";
    }
    return "?";
}

constexpr std::optional<machine_kind> parse_machine_kind(std::string_view s) noexcept {
    for (auto m : {machine_kind::ws_server, machine_kind::ws_client, machine_kind::client,
                   machine_kind::client_bytes, machine_kind::endpoint})
        if (to_string(m) == s) return m;
    return std::nullopt;
}

/// How output leaves the machine in a replay: `auto` drains all of it after
/// every input (hand-written traces); `recorded` only at `written` records,
/// exactly as much as the real loop wrote (a slow reader stays slow).
enum class output_mode : std::uint8_t { automatic, recorded };

// ---------------------------------------------------------------------------
// Values

enum class value_kind : std::uint8_t { integer, duration, string };

struct value {
    value_kind kind = value_kind::integer;
    bool negative = false;
    std::uint64_t magnitude = 0;  ///< integer or duration (ns), with `negative`
    std::string bytes;            ///< string

    static value make_int(std::int64_t v) {
        value x;
        x.negative = v < 0;
        x.magnitude = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
        return x;
    }
    static value make_uint(std::uint64_t v) {
        value x;
        x.magnitude = v;
        return x;
    }
    static value make_duration(duration d) {
        value x = make_int(d.count());
        x.kind = value_kind::duration;
        return x;
    }
    static value make_string(std::string_view s) {
        value x;
        x.kind = value_kind::string;
        x.bytes.assign(s);
        return x;
    }

    std::optional<std::int64_t> as_i64() const noexcept {
        constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        if (!negative) {
            if (magnitude > max) return std::nullopt;
            return static_cast<std::int64_t>(magnitude);
        }
        if (magnitude > max + 1) return std::nullopt;
        return magnitude == max + 1 ? std::numeric_limits<std::int64_t>::min()
                                    : -static_cast<std::int64_t>(magnitude);
    }
    std::optional<std::uint64_t> as_u64() const noexcept {
        if (negative && magnitude != 0) return std::nullopt;
        return magnitude;
    }
    duration as_duration() const noexcept { return duration{as_i64().value_or(0)}; }

    bool operator==(const value&) const = default;
};

// ---------------------------------------------------------------------------
// Records

enum class record_type : std::uint8_t {
    // transport inputs
    start,             ///< ws_*: the connection is created (server(now) / client(now))
    bytes,             ///< bytes from the peer (handle_read / handle_bytes)
    transport_open,    ///< client: handle_transport_open
    message,           ///< client: one text message (handle_message)
    binary,            ///< client: a binary message (handle_binary)
    transport_closed,  ///< handle_transport_closed (client: with the close code/reason/status)
    tcp_connected,     ///< client_bytes: handle_tcp_connected
    tcp_closed,        ///< client_bytes: handle_tcp_closed
    tick,              ///< handle_timeout
    // application commands
    connect,
    join,
    leave,
    send,
    snapshot_loaded,
    set_token,
    close,
    accept,
    reject,
    send_text,
    send_binary,
    send_frame,
    ping,
    pong,
    open_connection,
    drain,
    set_unix_ms_at_origin,
    // answers of the endpoint's application hooks, during the call before
    hook_authenticate,
    hook_authorize_join,
    hook_authorize_publish,
    // the loop
    written,  ///< consume_output(n): the transport took n bytes
    poll,     ///< before the next call the loop polled only this many events/actions
};

enum class field : std::uint8_t {
    conn, data, text, room, kind, payload, cursor, epoch, token, code, reason, status, body,
    subprotocol, headers, principal, allow, op, fin, window, ms, n, events, actions,
};

struct field_info {
    field f;
    std::string_view name;
    value_kind kind;
    bool non_negative;  ///< reader rejects negative integers
    bool stream;        ///< written as JSON only when printable text (else hex)
};

inline constexpr std::array<field_info, 24> field_table{{
    {field::conn, "conn", value_kind::integer, true, false},
    {field::data, "data", value_kind::string, false, true},
    {field::text, "text", value_kind::string, false, false},
    {field::room, "room", value_kind::string, false, false},
    {field::kind, "kind", value_kind::string, false, false},
    {field::payload, "payload", value_kind::string, false, false},
    {field::cursor, "cursor", value_kind::integer, false, false},
    {field::epoch, "epoch", value_kind::string, false, false},
    {field::token, "token", value_kind::string, false, false},
    {field::code, "code", value_kind::integer, true, false},
    {field::reason, "reason", value_kind::string, false, false},
    {field::status, "status", value_kind::integer, false, false},
    {field::body, "body", value_kind::string, false, true},
    {field::subprotocol, "subprotocol", value_kind::string, false, false},
    {field::headers, "headers", value_kind::string, false, false},
    {field::principal, "principal", value_kind::string, false, false},
    {field::allow, "allow", value_kind::integer, true, false},
    {field::op, "op", value_kind::integer, true, false},
    {field::fin, "fin", value_kind::integer, true, false},
    {field::window, "window", value_kind::duration, false, false},
    {field::ms, "ms", value_kind::integer, false, false},
    {field::n, "n", value_kind::integer, true, false},
    {field::events, "events", value_kind::integer, true, false},
    {field::actions, "actions", value_kind::integer, true, false},
}};

constexpr const field_info& info(field f) noexcept { return field_table[static_cast<std::size_t>(f)]; }

namespace detail {

// Machines as bits, for the table.
inline constexpr std::uint8_t m_wss = 1, m_wsc = 2, m_cl = 4, m_cb = 8, m_ep = 16;
inline constexpr std::uint8_t m_ws = m_wss | m_wsc, m_clients = m_cl | m_cb, m_all = 31;

constexpr std::uint8_t bit(machine_kind m) noexcept { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(m)); }

struct field_rule {
    field f;
    std::uint8_t allowed;   ///< machines that accept the key
    std::uint8_t required;  ///< machines that need it
};

struct record_rule {
    record_type type;
    std::string_view name;
    std::uint8_t machines;
    std::uint8_t nfields;
    std::array<field_rule, 4> fields;
};

// clang-format off
inline constexpr std::array<record_rule, 31> record_table{{
    {record_type::start, "start", m_ws, 0, {}},
    {record_type::bytes, "bytes", m_ws | m_cb | m_ep, 2, {{{field::conn, m_ep, m_ep}, {field::data, m_all, m_all}}}},
    {record_type::transport_open, "transport_open", m_cl, 0, {}},
    {record_type::message, "message", m_cl, 1, {{{field::text, m_all, m_all}}}},
    {record_type::binary, "binary", m_cl, 0, {}},
    {record_type::transport_closed, "transport_closed", m_ws | m_cl | m_ep, 4,
     {{{field::conn, m_ep, m_ep}, {field::code, m_cl, m_cl}, {field::reason, m_cl, 0}, {field::status, m_cl, 0}}}},
    {record_type::tcp_connected, "tcp_connected", m_cb, 0, {}},
    {record_type::tcp_closed, "tcp_closed", m_cb, 0, {}},
    {record_type::tick, "tick", m_all, 0, {}},
    {record_type::connect, "connect", m_clients, 0, {}},
    {record_type::join, "join", m_clients, 1, {{{field::room, m_all, m_all}}}},
    {record_type::leave, "leave", m_clients, 1, {{{field::room, m_all, m_all}}}},
    {record_type::send, "send", m_clients, 3,
     {{{field::room, m_all, m_all}, {field::kind, m_all, m_all}, {field::payload, m_all, 0}}}},
    {record_type::snapshot_loaded, "snapshot_loaded", m_clients, 3,
     {{{field::room, m_all, m_all}, {field::cursor, m_all, m_all}, {field::epoch, m_all, 0}}}},
    {record_type::set_token, "set_token", m_clients, 1, {{{field::token, m_all, m_all}}}},
    {record_type::close, "close", m_ws | m_clients, 2, {{{field::code, m_ws, 0}, {field::reason, m_ws, 0}}}},
    {record_type::accept, "accept", m_wss, 2, {{{field::subprotocol, m_all, 0}, {field::headers, m_all, 0}}}},
    {record_type::reject, "reject", m_wss, 3,
     {{{field::status, m_all, m_all}, {field::body, m_all, 0}, {field::headers, m_all, 0}}}},
    {record_type::send_text, "send_text", m_ws, 1, {{{field::text, m_all, m_all}}}},
    {record_type::send_binary, "send_binary", m_ws, 1, {{{field::data, m_all, m_all}}}},
    {record_type::send_frame, "send_frame", m_ws, 3,
     {{{field::op, m_all, m_all}, {field::fin, m_all, m_all}, {field::data, m_all, m_all}}}},
    {record_type::ping, "ping", m_ws, 1, {{{field::data, m_all, 0}}}},
    {record_type::pong, "pong", m_ws, 1, {{{field::data, m_all, 0}}}},
    {record_type::open_connection, "open_connection", m_ep, 1, {{{field::conn, m_all, m_all}}}},
    {record_type::drain, "drain", m_ep, 1, {{{field::window, m_all, m_all}}}},
    {record_type::set_unix_ms_at_origin, "set_unix_ms_at_origin", m_ep, 1, {{{field::ms, m_all, m_all}}}},
    {record_type::hook_authenticate, "hook_authenticate", m_ep, 2,
     {{{field::status, m_all, m_all}, {field::principal, m_all, 0}}}},
    {record_type::hook_authorize_join, "hook_authorize_join", m_ep, 1, {{{field::allow, m_all, m_all}}}},
    {record_type::hook_authorize_publish, "hook_authorize_publish", m_ep, 1, {{{field::allow, m_all, m_all}}}},
    {record_type::written, "written", m_ws | m_cb | m_ep, 2, {{{field::conn, m_ep, m_ep}, {field::n, m_all, m_all}}}},
    {record_type::poll, "poll", m_ws | m_clients, 2,
     {{{field::events, m_all, m_all}, {field::actions, m_clients, m_clients}}}},
}};
// clang-format on

constexpr const record_rule& rule(record_type t) noexcept { return record_table[static_cast<std::size_t>(t)]; }

// Both tables are indexed by their enum: keep them in enum order.
constexpr bool tables_in_order() noexcept {
    for (std::size_t i = 0; i < record_table.size(); ++i)
        if (static_cast<std::size_t>(record_table[i].type) != i) return false;
    for (std::size_t i = 0; i < field_table.size(); ++i)
        if (static_cast<std::size_t>(field_table[i].f) != i) return false;
    return true;
}
static_assert(tables_in_order());

}  // namespace detail

constexpr std::string_view to_string(record_type t) noexcept { return detail::rule(t).name; }

/// Records that are calls into the machine (everything but the loop's
/// bookkeeping: hook answers, `written`, `poll`).
constexpr bool is_call(record_type t) noexcept {
    return t != record_type::written && t != record_type::poll && t != record_type::hook_authenticate &&
           t != record_type::hook_authorize_join && t != record_type::hook_authorize_publish;
}

struct record {
    std::int64_t time = 0;  ///< ns since the origin
    record_type type = record_type::tick;
    std::vector<std::pair<field, value>> fields;
    std::size_t line = 0;  ///< where the reader found it (0: built in memory)

    record() = default;
    record(std::int64_t t, record_type ty) : time(t), type(ty) {}
    record(time_point t, record_type ty) : time(t.time_since_epoch().count()), type(ty) {}

    record& set(field f, value v) {
        for (auto& [k, x] : fields)
            if (k == f) {
                x = std::move(v);
                return *this;
            }
        fields.emplace_back(f, std::move(v));
        return *this;
    }
    record& set_int(field f, std::int64_t v) { return set(f, value::make_int(v)); }
    record& set_str(field f, std::string_view s) { return set(f, value::make_string(s)); }
    record& set_duration(field f, duration d) { return set(f, value::make_duration(d)); }

    const value* find(field f) const noexcept {
        for (const auto& [k, x] : fields)
            if (k == f) return &x;
        return nullptr;
    }
    bool has(field f) const noexcept { return find(f) != nullptr; }
    std::int64_t get_int(field f, std::int64_t dflt = 0) const noexcept {
        const value* v = find(f);
        return v ? v->as_i64().value_or(dflt) : dflt;
    }
    std::string_view get_str(field f) const noexcept {
        const value* v = find(f);
        return v ? std::string_view(v->bytes) : std::string_view{};
    }
    duration get_duration(field f) const noexcept {
        const value* v = find(f);
        return v ? v->as_duration() : duration::zero();
    }
    time_point at() const noexcept { return time_point{duration{time}}; }
};

struct config_entry {
    std::string key;
    value val;
    std::size_t line = 0;
};

struct header {
    machine_kind machine = machine_kind::ws_server;
    output_mode output = output_mode::automatic;
    std::vector<std::string> hooks;    ///< endpoint hooks whose answers are recorded
    std::vector<config_entry> config;  ///< in order; a key may repeat (lists)
};

struct trace {
    header head;
    std::vector<record> records;
};

struct parse_error {
    std::size_t line = 0;  ///< 1-based; 0 when not tied to a line
    std::string message;
};

inline constexpr std::array<std::string_view, 3> hook_names{"authenticate", "authorize_join", "authorize_publish"};

// ---------------------------------------------------------------------------
// Writer

inline void write_value(std::string& out, const value& v, bool stream = false) {
    switch (v.kind) {
        case value_kind::string: detail::append_bytes(out, v.bytes, stream); return;
        case value_kind::integer:
            if (v.negative && v.magnitude != 0) out.push_back('-');
            out.append(std::to_string(v.magnitude));
            return;
        case value_kind::duration: {
            if (v.negative && v.magnitude != 0) out.push_back('-');
            std::uint64_t m = v.magnitude;
            const char* unit = "ns";
            if (m == 0) {
                unit = "s";
            } else if (m % 1000000000 == 0) {
                m /= 1000000000;
                unit = "s";
            } else if (m % 1000000 == 0) {
                m /= 1000000;
                unit = "ms";
            } else if (m % 1000 == 0) {
                m /= 1000;
                unit = "us";
            }
            out.append(std::to_string(m)).append(unit);
            return;
        }
    }
}

inline void write_header(std::string& out, const header& h) {
    out.append("tether-trace ").append(std::to_string(format_version)).push_back('\n');
    out.append("machine ").append(to_string(h.machine)).push_back('\n');
    out.append(h.output == output_mode::recorded ? "output recorded\n" : "output auto\n");
    for (const auto& name : h.hooks) out.append("hook ").append(name).push_back('\n');
    for (const auto& e : h.config) {
        out.append("config ").append(e.key).push_back('=');
        write_value(out, e.val);
        out.push_back('\n');
    }
}

/// One line, keys in table order (unknown keys for the type are dropped:
/// build records with the keys the table names).
inline void write_record(std::string& out, const record& r) {
    out.append(std::to_string(r.time)).push_back(' ');
    const auto& rule = detail::rule(r.type);
    out.append(rule.name);
    for (std::size_t i = 0; i < rule.nfields; ++i) {
        const field f = rule.fields[i].f;
        if (const value* v = r.find(f)) {
            out.push_back(' ');
            out.append(info(f).name).push_back('=');
            write_value(out, *v, info(f).stream);
        }
    }
    out.push_back('\n');
}

inline std::string write_trace(const trace& t) {
    std::string out;
    write_header(out, t.head);
    for (const auto& r : t.records) write_record(out, r);
    return out;
}

// ---------------------------------------------------------------------------
// Reader

namespace detail {

inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// An integer or a duration token; nullptr on success, else why not.
inline const char* parse_number(std::string_view tok, value& v) {
    v = value{};
    std::size_t i = 0;
    if (i < tok.size() && tok[i] == '-') {
        v.negative = true;
        ++i;
    }
    const std::size_t digits_at = i;
    std::uint64_t m = 0;
    while (i < tok.size() && is_digit(tok[i])) {
        const auto d = static_cast<std::uint64_t>(tok[i] - '0');
        if (m > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return "number out of range";
        m = m * 10 + d;
        ++i;
    }
    if (i == digits_at) return "expected a number, a duration, a \"string\" or hex:…";
    const std::string_view unit = tok.substr(i);
    if (!unit.empty()) {
        std::uint64_t scale = 0;
        if (unit == "ns") scale = 1;
        else if (unit == "us") scale = 1000;
        else if (unit == "ms") scale = 1000000;
        else if (unit == "s") scale = 1000000000;
        else return "unknown duration unit (ns, us, ms, s)";
        if (m > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / scale)
            return "duration out of range";
        m *= scale;
        v.kind = value_kind::duration;
    }
    v.magnitude = m;
    if (v.negative && v.kind == value_kind::integer &&
        m > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1)
        return "number out of range";
    return nullptr;
}

/// One value at line[pos]; pos ends just after it.
inline const char* parse_value(std::string_view line, std::size_t& pos, value& v) {
    if (pos < line.size() && line[pos] == '"') {
        v = value{};
        v.kind = value_kind::string;
        return parse_json_string(line, pos, v.bytes);
    }
    std::size_t end = pos;
    while (end < line.size() && line[end] != ' ') ++end;
    const std::string_view tok = line.substr(pos, end - pos);
    pos = end;
    if (tok.starts_with("hex:")) {
        v = value{};
        v.kind = value_kind::string;
        return parse_hex(tok.substr(4), v.bytes) ? nullptr : "bad hex: (pairs of hex digits)";
    }
    return parse_number(tok, v);
}

inline bool is_key_char(char c) noexcept { return (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '.'; }

/// `key=value` pairs separated by spaces, from line[pos] to the end.
template <class F>
inline const char* parse_pairs(std::string_view line, std::size_t pos, F&& on_pair) {
    value v;
    while (pos < line.size()) {
        if (line[pos] != ' ') return "expected a space between fields";
        while (pos < line.size() && line[pos] == ' ') ++pos;
        if (pos == line.size()) break;
        const std::size_t k = pos;
        while (pos < line.size() && is_key_char(line[pos])) ++pos;
        if (pos == k || pos == line.size() || line[pos] != '=') return "expected key=value";
        const std::string_view key = line.substr(k, pos - k);
        ++pos;
        if (const char* e = parse_value(line, pos, v)) return e;
        if (const char* e = on_pair(key, v)) return e;
    }
    return nullptr;
}

inline std::string_view kind_name(value_kind k) noexcept {
    switch (k) {
        case value_kind::integer: return "an integer";
        case value_kind::duration: return "a duration (e.g. 5s, 250ms)";
        case value_kind::string: return "a \"string\" or hex:…";
    }
    return "?";
}

}  // namespace detail

/// Parse a whole trace. Strict: the first error stops, with its line.
inline std::optional<parse_error> read_trace(std::string_view text, trace& out) {
    out = trace{};
    bool have_version = false, have_machine = false, have_output = false;
    std::int64_t last_time = 0;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    auto fail = [&](std::string msg) { return std::optional<parse_error>(parse_error{line_no, std::move(msg)}); };

    while (pos < text.size()) {
        ++line_no;
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        if (!ws::is_valid_utf8(line)) return fail("not valid UTF-8");

        const std::size_t sp = line.find(' ');
        const std::string_view word = line.substr(0, sp);
        const std::string_view rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);

        if (!have_version) {
            if (word != "tether-trace") return fail("a trace starts with `tether-trace 1`");
            if (rest != "1") return fail("unsupported trace version (this reader knows 1)");
            have_version = true;
            continue;
        }
        if (!detail::is_digit(word.empty() ? ' ' : word.front())) {
            // A header line.
            if (!out.records.empty()) return fail("header line after the first record");
            if (word == "machine") {
                if (have_machine) return fail("second `machine` line");
                const auto m = parse_machine_kind(rest);
                if (!m) return fail("unknown machine (ws_server, ws_client, client, client_bytes, endpoint)");
                out.head.machine = *m;
                have_machine = true;
            } else if (word == "output") {
                if (have_output) return fail("second `output` line");
                if (rest == "auto") out.head.output = output_mode::automatic;
                else if (rest == "recorded") out.head.output = output_mode::recorded;
                else return fail("output is `auto` or `recorded`");
                have_output = true;
            } else if (word == "hook") {
                if (!have_machine || out.head.machine != machine_kind::endpoint)
                    return fail("`hook` lines follow `machine endpoint` (only the endpoint has hooks)");
                bool known = false;
                for (auto h : hook_names) known = known || h == rest;
                if (!known) return fail("unknown hook (authenticate, authorize_join, authorize_publish)");
                for (const auto& h : out.head.hooks)
                    if (h == rest) return fail("hook listed twice");
                out.head.hooks.emplace_back(rest);
            } else if (word == "config") {
                const std::size_t n0 = out.head.config.size();
                const char* e = detail::parse_pairs(line, sp, [&](std::string_view key, const value& v) -> const char* {
                    out.head.config.push_back({std::string(key), v, line_no});
                    return nullptr;
                });
                if (e) return fail(e);
                if (out.head.config.size() == n0) return fail("config line without key=value");
            } else {
                return fail("unknown header line (machine, output, hook, config) or a record without a time");
            }
            continue;
        }

        // A record.
        if (!have_machine) return fail("record before the `machine` line");
        const std::uint8_t mbit = detail::bit(out.head.machine);
        value t;
        if (const char* e = detail::parse_number(word, t)) return fail(e);
        const auto time = t.as_i64();
        if (t.kind != value_kind::integer || t.negative || !time) return fail("time is nanoseconds since the origin (an integer >= 0)");
        if (*time < last_time) return fail("time goes backwards");
        last_time = *time;

        const std::size_t sp2 = rest.find(' ');
        const std::string_view name = rest.substr(0, sp2);
        const detail::record_rule* rule = nullptr;
        for (const auto& r : detail::record_table)
            if (r.name == name) rule = &r;
        if (!rule) return fail("unknown record `" + std::string(name) + "`");
        if (!(rule->machines & mbit))
            return fail("record `" + std::string(name) + "` does not apply to machine " +
                        std::string(to_string(out.head.machine)));
        record r(*time, rule->type);
        r.line = line_no;
        std::string why;
        const std::size_t fields_at = sp == std::string_view::npos || sp2 == std::string_view::npos
                                          ? line.size()
                                          : sp + 1 + sp2;
        const char* e = detail::parse_pairs(line, fields_at, [&](std::string_view key, const value& v) -> const char* {
            const detail::field_rule* fr = nullptr;
            for (std::size_t i = 0; i < rule->nfields; ++i)
                if (info(rule->fields[i].f).name == key) fr = &rule->fields[i];
            if (!fr || !(fr->allowed & mbit)) {
                why = "`" + std::string(name) + "` has no key `" + std::string(key) + "` here";
                return why.c_str();
            }
            if (r.has(fr->f)) {
                why = "key `" + std::string(key) + "` given twice";
                return why.c_str();
            }
            const field_info& fi = info(fr->f);
            if (v.kind != fi.kind) {
                why = "`" + std::string(key) + "` is " + std::string(detail::kind_name(fi.kind));
                return why.c_str();
            }
            if (v.kind == value_kind::integer && (!v.as_i64() || (fi.non_negative && v.negative && v.magnitude)))
                return fi.non_negative ? "integer out of range (must be >= 0)" : "integer out of range";
            r.set(fr->f, v);
            return nullptr;
        });
        if (e) return fail(e);
        for (std::size_t i = 0; i < rule->nfields; ++i) {
            const auto& fr = rule->fields[i];
            if ((fr.required & mbit) && !r.has(fr.f))
                return fail("`" + std::string(name) + "` needs `" + std::string(info(fr.f).name) + "=`");
        }
        out.records.push_back(std::move(r));
    }
    if (!have_version) return parse_error{0, "empty trace (no `tether-trace 1` line)"};
    if (!have_machine) return parse_error{line_no, "no `machine` line"};
    return std::nullopt;
}

}  // namespace tether::trace
