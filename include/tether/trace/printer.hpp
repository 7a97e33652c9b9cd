// tether/trace/printer.hpp — machine outputs as stable text lines.
//
// One line per event, action or result, `key=value` with the trace's value
// spellings (JSON strings, hex:, integers), fields in a fixed order per type,
// so that the same outputs always print the same bytes and two replays diff
// line by line. Byte streams are printed raw (exact) and then decoded by a
// stream_annotator into indented `  = …` lines (the HTTP head, then one line
// per WebSocket frame, unmasked) so that a reader sees the envelopes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "tether/client/client.hpp"
#include "tether/client/ws_client.hpp"
#include "tether/proto/envelope.hpp"
#include "tether/server/events.hpp"
#include "tether/trace/format.hpp"
#include "tether/ws/connection.hpp"
#include "tether/ws/frame.hpp"
#include "tether/ws/mask.hpp"

namespace tether::trace {

/// Builds one output line: head, then ` key=value`…, then end().
class line_builder {
public:
    line_builder(std::string& out, std::string_view head) : out_(out) { out_.append(head); }
    line_builder& num(std::string_view key, std::int64_t v) {
        key_(key).append(std::to_string(v));
        return *this;
    }
    /// Text (JSON when valid UTF-8, else hex).
    line_builder& str(std::string_view key, std::string_view v) {
        key_(key);
        detail::append_bytes(out_, v, false);
        return *this;
    }
    /// A byte stream (JSON only when printable text).
    line_builder& bytes(std::string_view key, std::string_view v) {
        key_(key);
        detail::append_bytes(out_, v, true);
        return *this;
    }
    line_builder& word(std::string_view key, std::string_view v) {
        key_(key).append(v);
        return *this;
    }
    line_builder& dur(std::string_view key, duration d) {
        key_(key);
        write_value(out_, value::make_duration(d));
        return *this;
    }
    void end() { out_.push_back('\n'); }

private:
    std::string& key_(std::string_view key) {
        out_.push_back(' ');
        return out_.append(key).append("=");
    }
    std::string& out_;
};

inline std::string_view chars(std::span<const std::uint8_t> b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// `result error="<category>: <message>"` for a refused command.
inline void print_error(std::string& out, const std::error_code& ec) {
    if (!ec) return;
    std::string s(ec.category().name());
    s.append(": ").append(ec.message());
    line_builder(out, "result").str("error", s).end();
}

// ---------------------------------------------------------------------------
// ws::connection

constexpr std::string_view to_string(ws::event_type t) noexcept {
    switch (t) {
        case ws::event_type::upgrade_request: return "upgrade_request";
        case ws::event_type::open: return "open";
        case ws::event_type::message: return "message";
        case ws::event_type::ping: return "ping";
        case ws::event_type::pong: return "pong";
        case ws::event_type::close_received: return "close_received";
        case ws::event_type::failed: return "failed";
        case ws::event_type::closed: return "closed";
    }
    return "?";
}

/// `c` (the connection that produced `e`) adds the request line on upgrade_request.
inline void print_event(std::string& out, const ws::event& e, const ws::connection* c = nullptr) {
    line_builder l(out, "event ");
    out.append(to_string(e.type));
    switch (e.type) {
        case ws::event_type::upgrade_request:
            if (c) {
                l.str("method", c->request().method).str("target", c->request().target);
                for (const auto& p : c->offered_subprotocols()) l.str("subprotocol", p);
            }
            break;
        case ws::event_type::open:
            if (c && !c->subprotocol().empty()) l.str("subprotocol", c->subprotocol());
            break;
        case ws::event_type::message:
            if (e.is_text)
                l.str("text", e.text());
            else
                l.bytes("binary", chars(e.data));
            break;
        case ws::event_type::ping:
        case ws::event_type::pong: l.bytes("data", chars(e.data)); break;
        case ws::event_type::close_received: l.num("code", ws::to_int(e.code)).str("reason", e.reason); break;
        case ws::event_type::failed:
        case ws::event_type::closed:
            l.num("code", ws::to_int(e.code)).num("http_status", e.http_status).str("reason", e.reason);
            break;
    }
    l.end();
}

// ---------------------------------------------------------------------------
// client::client and client::ws_client

inline void print_event(std::string& out, const client::event& e) {
    using client::event_type;
    line_builder l(out, "event ");
    out.append(client::to_string(e.type));
    switch (e.type) {
        case event_type::connected: l.str("session_id", e.session_id).num("resumed", e.resumed); break;
        case event_type::joined:
            l.str("room", e.room).word("resume", proto::to_string(e.resume)).num("head", e.head);
            l.str("epoch", e.epoch).str("members", e.members).str("correlation_id", e.correlation_id);
            break;
        case event_type::message:
            l.str("room", e.room).num("event_id", e.event_id).str("kind", e.kind).str("sender", e.sender);
            l.str("id", e.id).str("payload", e.payload).num("ts", e.ts);
            break;
        case event_type::presence:
            l.str("room", e.room).str("user", e.user).word("presence", proto::to_string(e.presence));
            break;
        case event_type::ack:
            l.str("id", e.id).str("room", e.room).num("event_id", e.event_id);
            l.word("status", proto::to_string(e.status)).str("correlation_id", e.correlation_id);
            break;
        case event_type::server_error:
            l.str("code", e.code).str("message", e.message).str("id", e.id);
            l.str("correlation_id", e.correlation_id).str("room", e.room);
            if (e.retry_after_ms) l.num("retry_after_ms", *e.retry_after_ms);
            break;
        case event_type::snapshot_required:
            l.str("room", e.room).word("reason", proto::to_string(e.reason)).num("head", e.head).str("epoch", e.epoch);
            break;
        case event_type::left: l.str("room", e.room); break;
        case event_type::reconnecting:
            l.dur("delay", e.delay).num("attempt", e.attempt).num("close_code", e.close_code);
            l.num("http_status", e.http_status);
            break;
        case event_type::token_required: l.num("close_code", e.close_code).num("http_status", e.http_status); break;
        case event_type::upgrade_required: break;
        case event_type::gave_up:
            l.num("attempt", e.attempt).num("close_code", e.close_code).num("http_status", e.http_status);
            break;
        case event_type::stopped:
            l.word("stop", client::to_string(e.stop)).num("close_code", e.close_code).num("http_status", e.http_status);
            break;
    }
    l.end();
}

inline void print_action(std::string& out, const client::action& a) {
    switch (a.type) {
        case client::action_type::open: {
            line_builder l(out, "action open");
            l.str("target", a.target).str("subprotocol", a.subprotocol);
            for (const auto& h : a.headers) l.str("header", std::string(h.name) + ": " + std::string(h.value));
            l.end();
            return;
        }
        case client::action_type::send_text: line_builder(out, "action send_text").str("text", a.text).end(); return;
        case client::action_type::close:
            line_builder(out, "action close").num("code", a.code).str("reason", a.reason).end();
            return;
    }
}

inline void print_action(std::string& out, const client::tcp_action& a) {
    out.append(a.type == client::tcp_action_type::connect_tcp ? "action connect_tcp\n" : "action close_tcp\n");
}

// ---------------------------------------------------------------------------
// server::endpoint

/// `conn` is the trace's number for e.conn (-1: none or unknown).
inline void print_event(std::string& out, const server::event& e, std::int64_t conn) {
    line_builder l(out, "event ");
    out.append(server::to_string(e.type));
    if (conn >= 0) l.num("conn", conn);
    else l.word("conn", "-");
    switch (e.type) {
        case server::event_type::flush:
        case server::event_type::close_transport: break;
        case server::event_type::connected:
            l.str("principal", e.principal).str("session_id", e.session_id).num("resumed", e.resumed);
            break;
        case server::event_type::joined:
        case server::event_type::left:
            l.str("principal", e.principal).str("session_id", e.session_id).str("room", e.room_id);
            break;
        case server::event_type::closed:
            l.str("principal", e.principal).num("code", e.code).num("http_status", e.http_status);
            break;
    }
    l.end();
}

// ---------------------------------------------------------------------------
// Decoding a byte stream for the reader

/// Follows one direction of a WebSocket connection: the HTTP head, then
/// frames (sent by `sender`), each printed as an indented `  = …` line once
/// complete. Stops decoding (one `  = undecodable` line) at anything it
/// cannot parse; after a refused upgrade the rest is the response body.
class stream_annotator {
public:
    explicit stream_annotator(ws::role sender) : sender_(sender) {}

    void reset() {
        buf_.clear();
        phase_ = phase::head;
    }

    void feed(std::string_view bytes, std::string& out) {
        if (phase_ == phase::off || bytes.empty()) return;
        buf_.append(bytes);
        if (phase_ == phase::body) {
            line_builder(out, "  =").bytes("body", buf_).end();
            buf_.clear();
            return;
        }
        if (phase_ == phase::head) {
            const std::size_t end = buf_.find("\r\n\r\n");
            if (end == std::string::npos) {
                if (buf_.size() > (64u << 10)) give_up(out);
                return;
            }
            const std::string_view head(buf_.data(), end + 4);
            line_builder(out, "  =").bytes("http", head).end();
            // A response other than 101 ends the WebSocket story: a body follows.
            const bool response = head.starts_with("HTTP/");
            phase_ = response && head.substr(0, 13).find(" 101") == std::string_view::npos ? phase::body : phase::frames;
            buf_.erase(0, end + 4);
            if (phase_ == phase::body) {
                if (!buf_.empty()) line_builder(out, "  =").bytes("body", buf_).end();
                buf_.clear();
                return;
            }
        }
        std::size_t pos = 0;
        for (;;) {
            ws::frame_header h{};
            const std::span<const std::uint8_t> rest{reinterpret_cast<const std::uint8_t*>(buf_.data()) + pos,
                                                     buf_.size() - pos};
            const auto r = ws::parse_frame_header(rest, sender_ == ws::role::client ? ws::role::server : ws::role::client, h);
            if (r.status == ws::header_status::need_more) break;
            if (r.status == ws::header_status::invalid) {
                buf_.clear();
                return give_up(out);
            }
            if (rest.size() - h.header_size < h.payload_size) break;
            std::string payload(buf_.data() + pos + h.header_size, static_cast<std::size_t>(h.payload_size));
            if (h.masked)
                ws::apply_mask({reinterpret_cast<std::uint8_t*>(payload.data()), payload.size()}, h.mask, 0);
            print_frame(out, h, payload);
            pos += h.header_size + static_cast<std::size_t>(h.payload_size);
        }
        buf_.erase(0, pos);
    }

private:
    enum class phase : std::uint8_t { head, frames, body, off };

    void give_up(std::string& out) {
        out.append("  = undecodable\n");
        phase_ = phase::off;
        buf_.clear();
    }

    static void print_frame(std::string& out, const ws::frame_header& h, const std::string& p) {
        std::string_view name = "?";
        switch (h.op) {
            case ws::opcode::continuation: name = "continuation"; break;
            case ws::opcode::text: name = "text"; break;
            case ws::opcode::binary: name = "binary"; break;
            case ws::opcode::close: name = "close"; break;
            case ws::opcode::ping: name = "ping"; break;
            case ws::opcode::pong: name = "pong"; break;
        }
        line_builder l(out, "  = ");
        out.append(name);
        if (!h.fin) l.num("fin", 0);
        if (h.op == ws::opcode::close && p.size() >= 2) {
            l.num("code", (static_cast<unsigned char>(p[0]) << 8) | static_cast<unsigned char>(p[1]));
            l.str("reason", std::string_view(p).substr(2));
        } else if (h.op == ws::opcode::binary) {
            l.bytes("data", p);
        } else if (!(h.op == ws::opcode::close && p.empty())) {
            l.str("data", p);
        }
        l.end();
    }

    ws::role sender_;
    phase phase_ = phase::head;
    std::string buf_;
};

}  // namespace tether::trace
