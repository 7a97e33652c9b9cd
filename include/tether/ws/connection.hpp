// tether/ws/connection.hpp — one RFC 6455 connection, either role, Sans-IO.
//
// Theory of operation
// -------------------
// A connection is a state machine over one byte stream. It never touches a
// socket or a clock: the caller moves bytes in and out and passes `now`.
//
//   handshake ──(server: request parsed)──▶ awaiting_accept ──accept()──▶ open
//      │ (client: valid 101)────────────────────────────────────────────▶ open
//      │                                            close() ◀────────────┤
//      ▼                                               ▼                 │
//   closed ◀──(peer close, failure, timeout, transport closed)── closing ┘
//
// Input is decoded in poll_event(), which decodes until it has something
// to report, or already while it is copied in by handle_bytes() (below).
// A data frame that carries a whole message and fits in the zero-copy
// window (config::max_frame_buffer) is unmasked and UTF-8-checked in
// place, in the input buffer, while it arrives — so an invalid sequence
// fails the connection as soon as it is seen — and is handed out as a
// view. Fragments and larger frames stream into the message buffer chunk
// by chunk. A frame whose header and payload are both in the buffer
// already (the common case: a whole read holds many small messages) skips
// the state machine: header, unmask, UTF-8 check and the event in one
// step. Unmasking and checking are one pass over the data
// (detail/unmask_utf8.hpp).
//
// Runs. Chat traffic is a read holding hundreds of messages of a few
// dozen bytes. Where the CPU has AVX-512BW or AVX2, the first such message
// takes the whole run of small whole messages behind it in one call
// (header, unmask and UTF-8 check of each payload in one 64-byte register
// or two 32-byte ones; see detail::small_frames), stopping before anything
// else — with AVX2 also before the last ~70 bytes of the read — a control
// frame, a fragment, a larger or partial frame, invalid text — which the
// general path then decides exactly as without the run. The run ends at
// `run_end_`; poll_event() hands its messages out one per call from the
// run's table of lengths (kept in input bytes already handed out, in front
// of the run), not by re-reading their headers: where message k+1 starts
// is then known without waiting for a load of message k's header. So the
// per-message cost is a few instructions and a handful of stores, with no
// call and no kernel dispatch.
//
// Decoding while copying. read_buffer()/handle_read() leave the copy to the
// caller (recv() into the buffer); handle_bytes() copies, and there the
// unmask and the check can be part of the copy instead of a second pass
// over bytes that have left L1 by then (copy_decode): the message under
// way goes on, whole in-window messages join the run (small ones through
// the copying small_frames), and the last one, if only its start is
// here, is begun (the tail). It takes only what the general path would take
// without a word and stops before anything else, so the events, their
// order and the output are the same whichever way the bytes come in, and
// however the calls interleave (tests/test_frame_decoder.cpp checks it,
// fuzz_frame_decoder too).
//
// Memory: 100,000 idle connections are the server's normal state, so an
// open connection keeps only what it needs: the run-time settings, not the
// whole ws::config (no subprotocol list, no seed); the random source only
// in the client role (a server never masks); the subprotocol in 16 bytes;
// no event ring (only `open` and `closed` are ever queued, at most one of
// each); one deadline (the handshake and the close timers never overlap).
//
// Drain order, after every handle_* call or command:
//   1. poll_event() until it returns nothing (events may reference the input
//      buffer: a view stays valid until the next call on the connection);
//   2. write pending_output() / gather_output() and consume_output(n);
//   3. once a `closed` event was seen and the output is drained, close the
//      transport;
//   4. arm a timer for next_deadline() and call handle_timeout(now) then.
//
// Peer violations are not errors returned to the caller: they become a
// `failed` event carrying the close code (1002, 1007, 1009, or an HTTP
// status during the handshake) followed by `closed`. Local misuse — sending
// before open or after close, a bound the caller configured — returns a
// std::error_code of category tether.ws.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tether/core/random.hpp"
#include "tether/core/time.hpp"
#include "tether/ws/close_code.hpp"
#include "tether/core/small_string.hpp"
#include "tether/ws/detail/unmask_utf8.hpp"
#include "tether/ws/error.hpp"
#include "tether/ws/frame.hpp"
#include "tether/ws/handshake.hpp"
#include "tether/ws/http.hpp"
#include "tether/ws/mask.hpp"
#include "tether/ws/message_sequence.hpp"
#include "tether/ws/output_queue.hpp"
#include "tether/ws/shared_frame.hpp"
#include "tether/ws/utf8.hpp"

namespace tether::ws {

/// Byte limits are kept in 32 bits by each connection (100,000 idle
/// connections carry them): a limit set past 4 GiB - 1 acts as 4 GiB - 1.
struct config {
    /// Largest message accepted from the peer, in payload bytes (inclusive).
    /// One byte more fails the connection with 1009, decided from the frame
    /// header before the payload is buffered.
    std::size_t max_message_bytes = 16u << 20;
    /// Single-frame messages up to this size are delivered in place, without a
    /// copy; the input buffer never holds more than this plus one read.
    std::size_t max_frame_buffer = 64u << 10;
    /// Bound on the HTTP header block (request or response).
    std::size_t max_header_bytes = 8192;
    /// Bound on queued output. Sends past it return error::output_full.
    std::size_t max_output_bytes = 64u << 20;
    /// How long to wait for the peer's close frame after sending ours.
    duration close_timeout = std::chrono::seconds(5);
    /// How long the opening handshake may take (slowloris protection).
    duration handshake_timeout = std::chrono::seconds(10);
    /// Answer pings with pongs automatically (RFC 6455 §5.5.2).
    bool auto_pong = true;
    /// Check that send_text() is given UTF-8 (the peer would fail us with 1007).
    bool validate_outgoing_utf8 = true;
    /// Seed of the connection's random source (client: masking keys and the
    /// Sec-WebSocket-Key). Seed from real entropy in production.
    std::uint64_t seed = 0;
    /// Client: subprotocols offered, in preference order.
    std::vector<std::string> subprotocols;
};

enum class state : std::uint8_t { handshake, awaiting_accept, open, closing, closed };

enum class event_type : std::uint8_t {
    upgrade_request,  ///< server: request() is ready; call accept() or reject()
    open,             ///< the handshake completed; messages may flow
    message,          ///< a complete text or binary message in `data`
    ping,             ///< a ping arrived (already answered when auto_pong)
    pong,             ///< a pong arrived
    close_received,   ///< the peer sent a close frame: `code`, `reason`
    failed,           ///< the peer broke the protocol: `code` (or `http_status`), `reason`
    closed,           ///< the connection is over: flush output, then close the transport
};

// Fields ordered largest first: 40 bytes with no padding, so building one
// (once per message) is a few wide stores.
struct event {
    std::span<const std::uint8_t> data;  ///< message / ping / pong payload
    std::string_view reason;  ///< close reason, or why the connection failed
    int http_status = 0;      ///< handshake failures: the HTTP status involved
    close_code code = close_code::none;
    event_type type = event_type::closed;
    bool is_text = false;

    std::string_view text() const noexcept {
        return {reinterpret_cast<const char*>(data.data()), data.size()};
    }
};

class connection {
public:
    // ---- construction -------------------------------------------------------

    /// A server-side connection; it expects an HTTP upgrade request first.
    static connection server(time_point now, const config& cfg) {
        connection c(role::server, cfg);
        c.deadline_ = now + cfg.handshake_timeout;
        return c;
    }

    /// A client-side connection; the upgrade request is queued as output at
    /// once. `host` is the Host header ("example.com:8080"), `target` the
    /// request target ("/chat?session_id=…").
    static connection client(time_point now, const config& cfg, std::string_view host, std::string_view target,
                             std::span<const http_header> extra_headers = {}) {
        connection c(role::client, cfg);
        c.deadline_ = now + cfg.handshake_timeout;
        const std::string req =
            c.hs()->client.build_request(host, target, cfg.subprotocols, extra_headers, c.aux_->keys);
        c.out_.append_own(as_bytes(req));
        return c;
    }

    connection(connection&&) noexcept = default;
    connection& operator=(connection&&) noexcept = default;

    // ---- getters --------------------------------------------------------------

    ws::role role() const noexcept { return role_; }
    ws::state state() const noexcept { return st_; }
    /// Server: the upgrade request, from the upgrade_request event until
    /// accept() or reject() (the handshake state is freed then, so an open
    /// connection carries none of it).
    const http_request& request() const noexcept {
        static const http_request none;
        return hs() ? hs()->request_parser.request() : none;
    }
    /// The negotiated subprotocol (empty: none).
    std::string_view subprotocol() const noexcept { return subprotocol_.view(); }
    /// Bytes queued for the transport.
    std::size_t buffered_output() const noexcept { return out_.size(); }
    /// When handle_timeout() must be called next (tether::never if no timer).
    time_point next_deadline() const noexcept {
        if (st_ == state::handshake || st_ == state::awaiting_accept || st_ == state::closing) return deadline_;
        return never;
    }
    /// The settings this connection runs with. Only the ones it keeps after
    /// construction are meaningful: max_message_bytes, max_frame_buffer,
    /// max_output_bytes, close_timeout, auto_pong, validate_outgoing_utf8.
    /// The others (max_header_bytes, handshake_timeout, seed, subprotocols)
    /// are used while constructing and read back as their defaults.
    config cfg() const {
        config c;
        c.max_message_bytes = max_message_bytes_;
        c.max_frame_buffer = max_frame_buffer_;
        c.max_output_bytes = max_output_bytes_;
        c.close_timeout = close_timeout_;
        c.auto_pong = auto_pong_;
        c.validate_outgoing_utf8 = validate_outgoing_utf8_;
        return c;
    }

    // ---- inputs -----------------------------------------------------------------

    /// Zero-copy reads: a writable region at the end of the input buffer, at
    /// least `min_size` bytes when the bound allows. Read into it, then call
    /// handle_read(now, n). Empty when the input bound is reached: drain
    /// poll_event() first.
    std::span<std::uint8_t> read_buffer(std::size_t min_size = 4096) {
        make_room(min_size);
        return {in_.data() + in_end_, in_.size() - in_end_};
    }

    /// Bytes after `closed` are ignored, as by handle_bytes().
    void handle_read(time_point now, std::size_t n) noexcept {
        (void)now;
        if (st_ == state::closed) return;
        if (n > in_.size() - in_end_) n = in_.size() - in_end_;
        in_end_ += n;
    }

    /// Copy bytes in. Returns how many were taken: all of them unless the
    /// input bound was reached, in which case drain poll_event() and call
    /// again with the rest. Bytes after `closed` are ignored (and taken).
    /// Data frames are unmasked and checked during the copy where they can
    /// be (see copy_decode): one pass over the data instead of two.
    std::size_t handle_bytes(time_point now, std::span<const std::uint8_t> bytes) {
        if (st_ == state::closed) return bytes.size();
        std::size_t taken = 0;
        while (taken < bytes.size()) {
            auto room = read_buffer(bytes.size() - taken);
            if (room.empty()) break;
            const std::size_t n = room.size() < bytes.size() - taken ? room.size() : bytes.size() - taken;
            const std::size_t decoded = copy_decode(room.data(), bytes.data() + taken, n);
            if (decoded < n) std::memcpy(room.data() + decoded, bytes.data() + taken + decoded, n - decoded);
            handle_read(now, n);
            taken += n;
        }
        return taken;
    }
    std::size_t handle_bytes(time_point now, std::string_view bytes) { return handle_bytes(now, as_bytes(bytes)); }

    /// The transport was closed (EOF, reset). Without a completed close
    /// handshake this is an abnormal closure (1006).
    void handle_transport_closed(time_point now) noexcept {
        (void)now;
        if (st_ == state::closed) return;
        enter_closed(close_code::abnormal, "transport closed");
    }

    void handle_timeout(time_point now) noexcept {
        if (st_ == state::closed) return;
        if (now >= next_deadline()) {
            enter_closed(close_code::abnormal,
                         st_ == state::closing ? "close handshake timed out" : "opening handshake timed out");
        }
    }

    // ---- application commands ----------------------------------------------------

    /// Server: accept the upgrade. `subprotocol` must be empty or one the
    /// client offered (see offered_subprotocols()).
    std::error_code accept(std::string_view subprotocol = {}, std::span<const http_header> extra_headers = {}) {
        if (role_ != role::server || st_ != state::awaiting_accept) return error::wrong_state;
        if (!subprotocol.empty()) {
            bool offered = false;
            for (const auto& p : hs()->upgrade.offered_subprotocols) offered = offered || p == subprotocol;
            if (!offered) return error::bad_argument;
        }
        subprotocol_.assign(subprotocol);
        std::string resp;
        write_accept_response(resp, hs()->upgrade_key, subprotocol, extra_headers);
        out_.append_own(as_bytes(resp));
        aux_.reset();  // a server keeps nothing of its handshake (and has no rng)
        st_ = state::open;
        deadline_ = never;
        open_pending_ = true;
        return {};
    }

    /// Server: the subprotocols the client offered, in its order.
    std::span<const std::string> offered_subprotocols() const noexcept {
        if (!hs()) return {};
        return hs()->upgrade.offered_subprotocols;
    }

    /// Server: refuse the upgrade with an HTTP status (401, 403, …).
    std::error_code reject(int status, std::string_view body = {}, std::span<const http_header> extra_headers = {}) {
        if (role_ != role::server || st_ != state::awaiting_accept) return error::wrong_state;
        if (status < 300 || status > 599) return error::bad_argument;
        std::string resp;
        write_reject_response(resp, status, body, extra_headers);
        out_.append_own(as_bytes(resp));
        enter_closed(close_code::abnormal, "upgrade rejected", status);
        return {};
    }

    std::error_code send_text(std::string_view text) {
        if (validate_outgoing_utf8_ && !is_valid_utf8(text)) return error::invalid_utf8;
        return send_frame(opcode::text, as_bytes(text), true);
    }
    std::error_code send_binary(std::span<const std::uint8_t> bytes) {
        return send_frame(opcode::binary, bytes, true);
    }

    /// Send one data frame: text/binary opens a message, continuation goes on
    /// with it; fin ends it. Local misuse of the sequence is error::wrong_state.
    std::error_code send_frame(opcode op, std::span<const std::uint8_t> payload, bool fin) {
        if (auto ec = check_can_send()) return ec;
        if (is_control(op)) return error::bad_argument;
        const auto step = next_message_state(out_msg_state_, op, fin);
        if (!step.allowed) return error::wrong_state;
        if (auto ec = write_frame(op, payload, fin, false)) return ec;
        out_msg_state_ = step.next;
        return {};
    }

    /// Server: queue a frame built once by make_shared_frame() (a broadcast).
    /// Only whole messages: it must not interleave with a fragmented send.
    /// `offset`: the owner already wrote the frame's first bytes itself
    /// (server::endpoint holds broadcast frames outside the queue while it
    /// is empty); the rest is queued.
    std::error_code send_shared(const shared_frame& frame, std::size_t offset = 0) {
        if (auto ec = check_can_send()) return ec;
        if (role_ != role::server) return error::wrong_state;
        if (out_msg_state_ != message_state::idle) return error::wrong_state;
        if (offset > frame.size()) return error::wrong_state;
        if (out_.size() + frame.size() - offset > max_output_bytes_) return error::output_full;
        out_.append_shared(frame, offset);
        return {};
    }

    std::error_code ping(std::span<const std::uint8_t> payload = {}) {
        if (auto ec = check_can_send()) return ec;
        if (payload.size() > max_control_payload) return error::control_too_big;
        return write_frame(opcode::ping, payload, true, false);
    }

    std::error_code pong(std::span<const std::uint8_t> payload = {}) {
        if (auto ec = check_can_send()) return ec;
        if (payload.size() > max_control_payload) return error::control_too_big;
        return write_frame(opcode::pong, payload, true, false);
    }

    /// Start the closing handshake (RFC 6455 §7.1.2). The peer's close frame
    /// is awaited for config::close_timeout.
    std::error_code close(time_point now, close_code code = close_code::normal, std::string_view reason = {}) {
        if (st_ == state::handshake || st_ == state::awaiting_accept) return error::not_open;
        if (st_ == state::closed) return error::closed;
        if (close_sent_) return error::closing;
        if (code != close_code::none && !is_valid_wire_code(to_int(code))) return error::bad_close_code;
        if (code == close_code::none && !reason.empty()) return error::bad_argument;
        if (reason.size() > 123) return error::reason_too_long;
        if (!is_valid_utf8(reason)) return error::invalid_utf8;
        write_close(code, reason);
        st_ = state::closing;
        deadline_ = now + close_timeout_;
        return {};
    }

    // ---- outputs ----------------------------------------------------------------

    /// The next event, or nothing when there is nothing more to report until
    /// more input arrives. Views in the event are valid until the next call
    /// on this connection.
    std::optional<event> poll_event() {
        // The next message of a run, built in the caller's std::optional
        // (returned as a prvalue: elided).
        if (run_end_ > in_begin_) return next_ready();
        // Otherwise one std::optional, built in place (named return value)
        // and filled where the event is decided: a message is never copied
        // on its way out.
        std::optional<event> out;
        if (open_pending_ || closed_pending_) {
            pop_event(out);
        } else if (st_ == state::open || st_ == state::closing) {
            poll_frames(out);
        } else if (st_ == state::handshake) {
            if (role_ == role::server)
                poll_request(out);
            else
                poll_response(out);
        }
        return out;
    }

    /// The first contiguous run of output bytes.
    std::span<const std::uint8_t> pending_output() const noexcept { return out_.front(); }
    /// Several runs at once, for a gathering write; returns how many.
    std::size_t gather_output(std::span<std::span<const std::uint8_t>> runs) const noexcept {
        return out_.gather(runs);
    }
    /// Release `n` bytes the transport took.
    void consume_output(std::size_t n) noexcept { out_.consume(n); }

    /// Give back the memory of buffers that are empty right now (input,
    /// reassembly, output). A server calls it for idle connections (e.g. on
    /// its heartbeat tick) so that 100,000 idle sessions cost little; the
    /// next message simply allocates again.
    void shrink_buffers() noexcept {
        if (in_begin_ == in_end_ && !in_frame_) {
            std::vector<std::uint8_t>().swap(in_);
            in_begin_ = in_end_ = run_end_ = 0;
        }
        // Not while a frame is under way: a single-frame message bigger
        // than the zero-copy window streams into msg_ with the message
        // state idle (it is FIN).
        if (in_msg_state_ == message_state::idle && !in_frame_) std::vector<std::uint8_t>().swap(msg_);
        out_.shrink_if_empty();
    }

    /// Frame `payload` once as an unmasked server frame that many
    /// connections can queue with send_shared(). Empty on allocation failure.
    static shared_frame make_shared_frame(opcode op, std::span<const std::uint8_t> payload) noexcept {
        const std::size_t hs = frame_header_size(payload.size(), false);
        shared_frame f = shared_frame::allocate(hs + payload.size());
        if (!f) return f;
        write_frame_header(f.data(), true, op, payload.size(), nullptr);
        if (!payload.empty()) std::memcpy(f.data() + hs, payload.data(), payload.size());
        return f;
    }
    static shared_frame make_shared_frame(std::string_view text) noexcept {
        return make_shared_frame(opcode::text, as_bytes(text));
    }

private:
    connection(ws::role r, const config& cfg)
        : aux_(std::make_unique<aux_state>(cfg.max_header_bytes, cfg.seed)),
          max_message_bytes_(limit32(cfg.max_message_bytes)),
          max_output_bytes_(limit32(cfg.max_output_bytes)),
          max_frame_buffer_(limit32(cfg.max_frame_buffer)),
          input_limit_(limit32(
              (cfg.max_frame_buffer > cfg.max_header_bytes ? cfg.max_frame_buffer : cfg.max_header_bytes) +
              max_frame_header_size + read_slack)),
          close_timeout_(cfg.close_timeout),
          role_(r),
          auto_pong_(cfg.auto_pong),
          validate_outgoing_utf8_(cfg.validate_outgoing_utf8) {}

    /// Byte limits are kept in 32 bits (100,000 idle connections carry
    /// them): a configured limit past 4 GiB - 1 means 4 GiB - 1.
    static std::uint32_t limit32(std::size_t n) noexcept {
        return n > 0xffff'ffffu ? 0xffff'ffffu : static_cast<std::uint32_t>(n);
    }

    static event& emit(std::optional<event>& out, event_type t) noexcept {
        out.emplace();
        out->type = t;
        return *out;
    }

    // A message event as one value, its fields in the order of their
    // words: built in place in the caller's std::optional, each word is
    // stored once. (Built in an engaged std::optional field by field, GCC
    // zeroes all 48 bytes first and then overwrites five fields: eight
    // stores per message, where handing out a run of small messages is
    // bound by stores.)
    static event message_event(bool text, std::span<const std::uint8_t> data) noexcept {
        return event{data, {}, 0, close_code::none, event_type::message, text};
    }

    static std::span<const std::uint8_t> as_bytes(std::string_view s) noexcept {
        return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
    }

    // -- input buffer -----------------------------------------------------------

    // The bound: one zero-copy frame (or one header block) plus one read.
    std::size_t input_limit() const noexcept { return input_limit_; }

    void make_room(std::size_t want) {
        // The header of an in-place message under way stays in front of
        // it: copy_decode() may turn the message into the first of a run,
        // which next_ready() hands out from its header.
        const std::uint32_t keep = in_frame_ && in_place_ && !is_control(fh_.op) ? fh_.header_size : 0;
        const std::uint32_t from = in_begin_ - keep;
        // Unread bytes start over at run_table_room where the buffer has
        // the room: a run's length table goes in front of it.
        const std::size_t unread_bytes = in_end_ - from;
        const std::uint32_t base = in_.size() >= run_table_room + unread_bytes + want ? run_table_room : 0;
        if (from > base && (unread_bytes == 0 || in_.size() - in_end_ < want)) {
            run_at_ = no_run_table;  // the move may overwrite it
            if (unread_bytes) std::memmove(in_.data() + base, in_.data() + from, unread_bytes);
            run_end_ = run_end_ > in_begin_ ? run_end_ - (from - base) : 0;
            in_end_ = static_cast<std::uint32_t>(base + unread_bytes);
            in_begin_ = base + keep;
        }
        if (in_.size() - in_end_ >= want) return;
        std::size_t cap = in_.size() ? in_.size() * 2 : 4096;
        while (cap < in_end_ + want) cap *= 2;
        const std::size_t limit = input_limit();
        if (cap > limit) cap = limit;
        if (cap > in_.size()) in_.resize(cap);
    }

    std::span<std::uint8_t> unread() noexcept { return {in_.data() + in_begin_, in_end_ - in_begin_}; }
    // Where the run ends, or in_begin_ when there is none.
    std::uint32_t run_end() const noexcept { return run_end_ > in_begin_ ? run_end_ : in_begin_; }

    // -- events -------------------------------------------------------------------

    // Only state changes are ever queued, never a message: an `open` (after
    // accept()) and a `closed` (entering the closed state, which happens
    // once). accept() needs awaiting_accept, so an `open` is never queued
    // behind a `closed`: two flags and the closed event's fields are the
    // whole queue. Every reason given to enter_closed() is static text.
    void pop_event(std::optional<event>& out) noexcept {
        if (open_pending_) {
            open_pending_ = false;
            emit(out, event_type::open);
            return;
        }
        closed_pending_ = false;
        event& e = emit(out, event_type::closed);
        e.code = closed_code_;
        e.reason = closed_reason_;
        e.http_status = closed_status_;
    }

    void enter_closed(close_code code, const char* why, int http_status = 0) noexcept {
        st_ = state::closed;
        deadline_ = never;
        in_begin_ = in_end_ = 0;
        run_end_ = 0;
        in_frame_ = false;
        tail_ = false;
        closed_pending_ = true;
        closed_code_ = code;
        closed_reason_ = why;
        closed_status_ = static_cast<std::uint16_t>(http_status);
    }

    /// Fail the WebSocket connection (RFC 6455 §7.1.7): send a close frame
    /// with `code` if none was sent yet, report `failed`, then `closed`.
    void fail(std::optional<event>& out, close_code code, const char* why) {
        if (!close_sent_) write_close(code, why);
        event& e = emit(out, event_type::failed);
        e.code = code;
        e.reason = why;
        enter_closed(code, why);
    }

    // -- handshake ------------------------------------------------------------------

    void poll_request(std::optional<event>& out) {
        auto bytes = unread();
        if (bytes.empty()) return;
        const auto r = hs()->request_parser.feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        if (r.status == http_parse_status::need_more) {
            in_begin_ = in_end_;
            return;
        }
        if (r.status == http_parse_status::error) return refuse_upgrade(out, r.http_status, "malformed upgrade request");
        in_begin_ += r.consumed;
        hs()->upgrade = check_upgrade(hs()->request_parser.request());
        if (hs()->upgrade.status != 0) return refuse_upgrade(out, hs()->upgrade.status, hs()->upgrade.why);
        hs()->upgrade_key = std::string(hs()->upgrade.key);
        st_ = state::awaiting_accept;
        emit(out, event_type::upgrade_request);
    }

    void refuse_upgrade(std::optional<event>& out, int status, std::string_view why) {
        std::string resp;
        write_reject_response(resp, status, why);
        out_.append_own(as_bytes(resp));
        event& e = emit(out, event_type::failed);
        e.http_status = status;
        e.code = close_code::abnormal;
        e.reason = why;
        enter_closed(close_code::abnormal, "upgrade refused", status);
    }

    void poll_response(std::optional<event>& out) {
        auto bytes = unread();
        if (bytes.empty()) return;
        const auto r = hs()->response_parser.feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        if (r.status == http_parse_status::need_more) {
            in_begin_ = in_end_;
            return;
        }
        if (r.status == http_parse_status::error) {
            event& e = emit(out, event_type::failed);
            e.code = close_code::abnormal;
            e.reason = "malformed upgrade response";
            enter_closed(close_code::abnormal, "upgrade failed");
            return;
        }
        in_begin_ += r.consumed;
        const http_response& res = hs()->response_parser.response();
        if (const auto ec = hs()->client.validate(res)) {
            event& e = emit(out, event_type::failed);
            e.code = close_code::abnormal;
            e.http_status = res.status;
            e.reason = handshake_error_reason(ec);
            enter_closed(close_code::abnormal, "upgrade failed", res.status);
            return;
        }
        subprotocol_.assign(hs()->client.selected_subprotocol());
        aux_->hs.reset();  // the client keeps only its masking keys
        st_ = state::open;
        deadline_ = never;
        emit(out, event_type::open);
    }

    // The category's message() returns a std::string; the event needs a view
    // that outlives this call, so map to static text.
    static std::string_view handshake_error_reason(const std::error_code& ec) noexcept {
        if (ec.category() != handshake_error_category()) return "handshake failed";
        switch (static_cast<handshake_error>(ec.value())) {
            case handshake_error::bad_status: return "upgrade refused (not 101)";
            case handshake_error::no_upgrade: return "101 without Upgrade: websocket";
            case handshake_error::no_connection: return "101 without Connection: upgrade";
            case handshake_error::no_accept: return "101 without Sec-WebSocket-Accept";
            case handshake_error::bad_accept: return "wrong Sec-WebSocket-Accept";
            case handshake_error::bad_subprotocol: return "subprotocol not offered";
            case handshake_error::unexpected_extension: return "extension not offered";
            default: return "handshake failed";
        }
    }

    // -- frames ---------------------------------------------------------------------

    void poll_frames(std::optional<event>& out) {
        for (;;) {
            if (!in_frame_) {
                if (whole_frame(out)) return;
                start_frame(out);
                if (out || !in_frame_) return;  // failed, or need more bytes
            }
            if (is_control(fh_.op)) {
                if (in_end_ - in_begin_ < fh_.payload_size) return;
                return finish_control_frame(out);
            }
            if (in_place_) {
                advance_in_place(out);
            } else {
                advance_streamed(out);
            }
            if (out || in_frame_) return;
        }
    }

    /// The common case in one step: a single-frame text or binary message
    /// whose header and payload are all in the buffer and that fits the
    /// zero-copy window. Returns false to leave the frame to the general
    /// path (start_frame), which decides every case this one does not take
    /// — including every violation — so both give identical results.
    bool whole_frame(std::optional<event>& out) {
        const std::size_t avail = in_end_ - in_begin_;
        if (avail < 2 || in_msg_state_ != message_state::idle || tail_) return false;
        std::uint8_t* const p = in_.data() + in_begin_;
        const std::uint8_t b0 = p[0];
        const std::uint8_t b1 = p[1];
        // FIN set, RSV clear, opcode text or binary.
        if (b0 != 0x81 && b0 != 0x82) return false;
        // §5.1: client frames are masked, server frames are not.
        const bool masked = role_ == role::server;
        if (((b1 & 0x80) != 0) != masked) return false;
        std::size_t len = b1 & 0x7F;
        std::size_t hs = 2;
        if (len == 126) {
            if (avail < 4) return false;
            len = (std::size_t{p[2]} << 8) | p[3];
            if (len < 126) return false;  // non-minimal: the general path fails it
            hs = 4;
        } else if (len == 127) {
            return false;
        }
        const std::size_t key_at = hs;
        if (masked) hs += 4;
        if (avail < hs || avail - hs < len) return false;  // not all here yet
        if (hs + len > max_frame_buffer_ || len > max_message_bytes_) return false;
        const bool text = b0 == 0x81;
#if TETHER_WS_UTF8_SIMD
        if (len <= detail::small_frame_max && detail::has_small_frames()) {
            // Chat traffic: take the whole run of small messages in this
            // read now; poll_event() then hands them out one by one.
            const std::size_t max_len = small_run_max_len(hs);
            // The run's length table lives at the front of the input
            // buffer, in bytes already handed out (their views ended with
            // this call): no memory of its own. None when there are no such
            // bytes (the first run after the buffer was emptied or moved):
            // the hand-out then reads the headers.
            const std::size_t table = in_begin_ < max_run_frames ? in_begin_ : max_run_frames;
            run_at_ = table != 0 ? 0 : no_run_table;
            run_end_ = in_begin_ + static_cast<std::uint32_t>(detail::small_frames<false>(
                p, p, avail, masked, max_len, max_ready, table != 0 ? in_.data() : nullptr, table != 0 ? table : max_ready));
            if (run_end_ > in_begin_) {
                out.emplace(next_ready());
                return true;
            }
            // The first frame is not one the run takes (invalid UTF-8; with
            // AVX2, also one in the last ~70 bytes): the path below decides
            // it as ever.
        }
#endif
        mask_key key;
        if (masked) std::memcpy(key.data(), p + key_at, 4);
        std::uint8_t* const payload = p + hs;
        msg_is_text_ = text;
        utf8_.reset();
        if (!detail::unmask_validate(payload, len, masked ? &key : nullptr, 0, text ? &utf8_ : nullptr) ||
            (text && !utf8_.complete())) {
            fail(out, close_code::invalid_payload, "invalid UTF-8");
            return true;
        }
        in_begin_ += hs + len;
        event& e = emit(out, event_type::message);
        e.is_text = text;
        e.data = {payload, len};
        return true;
    }

    // The longest payload a run of small frames may take: what the general
    // path would take without a word (the message bound, and header plus
    // payload within the zero-copy window; the caller's frame, of header
    // size hs, passed that check, so hs <= max_frame_buffer_).
    std::size_t small_run_max_len(std::size_t hs) const noexcept {
        std::size_t max_len = detail::small_frame_max;
        if (max_message_bytes_ < max_len) max_len = max_message_bytes_;
        if (max_frame_buffer_ - hs < max_len) max_len = max_frame_buffer_ - hs;
        return max_len;
    }

    // Hand out the next message of a run small_frames() or
    // copy_decode() took: whole, unmasked and checked already. For a run of
    // small messages its length and type come from the run's table, so
    // finding the next message does not wait for a load of this one's
    // header.
    event next_ready() noexcept {
        std::uint8_t* const p = in_.data() + in_begin_;
        std::size_t hs = role_ == role::server ? 6 : 2;
        std::size_t len;
        bool text;
        if (run_at_ < no_run_table) {
            const std::uint8_t t = in_.data()[run_at_++];
            len = t & 0x7F;
            text = (t & 0x80) != 0;
        } else {
            // No table (see whole_frame), or make_room() moved the unread
            // bytes over it, or copy_decode() took the run: the header says
            // the same, and it was checked when the run was taken.
            len = p[1] & 0x7F;
            text = (p[0] & 1) != 0;
            if (len >= 126) [[unlikely]] {
                if (len == 126) {
                    len = std::size_t{p[2]} << 8 | p[3];
                    hs += 2;
                } else {
                    len = 0;
                    for (int i = 2; i < 10; ++i) len = len << 8 | p[i];
                    hs += 8;
                }
            }
        }
        in_begin_ += static_cast<std::uint32_t>(hs + len);
        return message_event(text, {p + hs, len});
    }

    // Called by handle_bytes() for n bytes about to be copied from src to
    // dst (= the end of the input buffer): unmask and check data frames
    // while copying them, where poll_event() would otherwise do it in
    // place afterwards — a second pass over the bytes, from L2 or memory
    // for a large read. Returns how many bytes it wrote to dst (and took
    // into account); the caller copies the rest as they are, for
    // poll_event() to decide as ever.
    //
    // Only what the general path would take without a word is taken here,
    // so that every event, and the order of events, is the one poll_event()
    // gives for the same bytes read in. Every byte in the buffer must be
    // accounted for already: a run of ready messages, then possibly one
    // in-place message whose payload has only partly arrived, all of which
    // is unmasked and checked — either the frame under way (start_frame()
    // vetted its header) or the tail of the run (`tail_`, vetted here).
    // That message goes on with the same validator; once whole and valid it
    // joins the run. Then whole single-frame text or binary messages that
    // fit the zero-copy window join the run, and the last one, if only its
    // start is here, becomes the tail. Anything else — a control frame, a
    // fragment, a frame bigger than the window, invalid or incomplete
    // UTF-8, a violation — ends it, and that frame is left as it came.
    // Invalid text in the message under way leaves its validator failed,
    // and advance_in_place() fails the connection with 1007 at the next
    // poll_event(), as it would have.
    std::size_t copy_decode(std::uint8_t* dst, const std::uint8_t* src, std::size_t n) noexcept {
        if (st_ != state::open && st_ != state::closing) return 0;
        std::size_t at = 0;
        // A run that starts in this call may have a table of its lengths,
        // as in whole_frame, in the bytes in front of it: the message that
        // joins it first (if small) and then one small_frames call.
        // A run is handed out by its table or by its headers, not a mix:
        // anything after that call ends it here.
        std::size_t tabled = run_end_ > in_begin_ ? no_table : 0;
        if (in_frame_ || tail_) {
            // A control frame under way (in_place_ then tells of the last
            // data frame), or a message streamed into msg_: not ours.
            if (in_frame_ && (is_control(fh_.op) || !in_place_)) return 0;
            // Where its next byte goes: in_begin_ is at the payload of the
            // frame under way (no run then), the tail follows the run.
            const std::size_t next = in_frame_ ? in_begin_ + frame_done_ : run_end() + fh_.header_size + frame_done_;
            if (next != in_end_ || (in_frame_ && run_end_ > in_begin_)) return 0;
            const std::uint64_t left = fh_.payload_size - frame_done_;
            at = left < n ? static_cast<std::size_t>(left) : n;
            if (!detail::copy_unmask_validate(dst, src, at, fh_.masked ? &fh_.mask : nullptr, frame_done_ % 4,
                                              msg_is_text_ ? &utf8_ : nullptr))
                return 0;
            frame_done_ += at;
            if (frame_done_ < fh_.payload_size) return at;
            if (msg_is_text_ && !utf8_.complete()) return at;  // advance_in_place() fails it
            // Whole and valid: the first (or next) message of the run, its
            // header in front of it (make_room() keeps it there).
            if (in_frame_) {
                in_begin_ -= fh_.header_size;
                run_end_ = in_begin_;
                in_frame_ = false;
            }
            tail_ = false;
            run_end_ = run_end() + static_cast<std::uint32_t>(fh_.header_size + fh_.payload_size);
            run_at_ = no_run_table;
            if (tabled == 0 && fh_.payload_size < 126 && in_begin_ != 0) {
                in_.data()[0] = static_cast<std::uint8_t>(fh_.payload_size | (msg_is_text_ ? 0x80u : 0u));
                run_at_ = 0;
                tabled = 1;
            } else {
                tabled = no_table;
            }
        } else if (in_msg_state_ != message_state::idle || run_end() != in_end_) {
            return 0;
        }
        while (n - at >= 2 && tabled != table_closed) {
            const std::uint8_t* const f = src + at;
            // FIN set, RSV clear, opcode text or binary, masked as the role
            // wants (RFC 6455 §5.1), minimal length (§5.2), within the
            // bounds: then start_frame() would take it without a word.
            if (f[0] != 0x81 && f[0] != 0x82) break;
            frame_header h;
            const auto r = parse_frame_header({f, n - at}, role_, h);
            if (r.status != header_status::ok) break;
            const std::size_t hs = h.header_size;
            if (h.payload_size > max_message_bytes_ || hs + h.payload_size > max_frame_buffer_) break;
            const std::size_t len = static_cast<std::size_t>(h.payload_size);
#if TETHER_WS_UTF8_SIMD
            if (len <= detail::small_frame_max && detail::has_small_frames()) {
                // Chat traffic: the whole run of small messages in one call.
                const std::size_t max_len = small_run_max_len(hs);
                const std::size_t room = in_begin_ < max_run_frames ? in_begin_ : max_run_frames;
                const bool table = tabled != no_table && room > tabled;
                const std::size_t k = detail::small_frames<true>(dst + at, src + at, n - at, h.masked, max_len,
                                                                 n - at, table ? in_.data() + tabled : nullptr,
                                                                 table ? room - tabled : n);
                // k == 0: a frame the run does not take (invalid text; with
                // AVX2, also one in the last ~70 bytes): the frame-by-frame
                // path below decides it.
                if (k != 0) {
                    at += k;
                    run_end_ = run_end() + static_cast<std::uint32_t>(k);
                    if (table) {
                        run_at_ = 0;
                        tabled = table_closed;
                    } else {
                        run_at_ = no_run_table;
                        tabled = no_table;
                    }
                    continue;
                }
            }
#endif
            const bool text = f[0] == 0x81;
            const std::size_t have = n - at - hs < len ? n - at - hs : len;
            if (have == 0) break;  // nothing of the payload yet: no tail
            utf8_validator v;
            std::memcpy(dst + at, f, hs);
            if (!detail::copy_unmask_validate(dst + at + hs, f + hs, have, h.masked ? &h.mask : nullptr, 0,
                                              text ? &v : nullptr))
                break;  // the caller copies the frame again, as it came
            if (have < len) {
                // The tail: the rest comes with the next bytes.
                fh_ = h;
                frame_done_ = have;
                msg_is_text_ = text;
                utf8_ = v;
                tail_ = true;
                at += hs + have;
                break;
            }
            if (!v.complete()) break;
            at += hs + len;
            run_end_ = run_end() + static_cast<std::uint32_t>(hs + len);
            run_at_ = no_run_table;  // headers from here on
            tabled = no_table;
        }
        return at;
    }

    /// Read and vet the next header. Emits an event only on failure.
    void start_frame(std::optional<event>& out) {
        if (tail_) {
            // copy_decode() vetted this header as start_frame() would and
            // went ahead with its payload (fh_, frame_done_, utf8_).
            tail_ = false;
            msg_is_text_ = fh_.op == opcode::text;
            in_place_ = true;
            in_begin_ += fh_.header_size;
            in_frame_ = true;
            return;
        }
        const auto r = parse_frame_header(unread(), role_, fh_);
        if (r.status == header_status::need_more) return;
        if (r.status == header_status::invalid) return fail(out, r.code, r.why);
        const auto step = next_message_state(in_msg_state_, fh_.op, fh_.fin);
        if (!step.allowed) return fail(out, close_code::protocol_error, step.why);
        if (!is_control(fh_.op)) {
            const bool starts = fh_.op != opcode::continuation;
            const std::uint64_t so_far = starts ? 0 : msg_.size();
            // PROTOCOL.md §7 / RFC 6455 §10.4: refuse before buffering.
            if (fh_.payload_size > max_message_bytes_ - so_far)
                return fail(out, close_code::message_too_big, "message too big");
            if (starts) {
                msg_is_text_ = fh_.op == opcode::text;
                msg_.clear();
                utf8_.reset();
            }
            // Zero-copy only for a whole message in one frame that fits the window.
            in_place_ = starts && fh_.fin && fh_.header_size + fh_.payload_size <= max_frame_buffer_;
            in_msg_state_ = step.next;
        }
        in_begin_ += fh_.header_size;
        in_frame_ = true;
        frame_done_ = 0;
    }

    // Unmask and check whatever part of the in-place frame has arrived, so
    // that invalid UTF-8 fails the connection without waiting for the rest.
    void advance_in_place(std::optional<event>& out) {
        const std::size_t avail = in_end_ - in_begin_;
        const std::size_t have = avail < fh_.payload_size ? avail : static_cast<std::size_t>(fh_.payload_size);
        if (have > frame_done_) {
            if (!detail::unmask_validate(in_.data() + in_begin_ + frame_done_, have - frame_done_,
                                         fh_.masked ? &fh_.mask : nullptr, frame_done_ % 4,
                                         msg_is_text_ ? &utf8_ : nullptr))
                return fail(out, close_code::invalid_payload, "invalid UTF-8");
            frame_done_ = have;
        }
        if (frame_done_ < fh_.payload_size) return;
        if (msg_is_text_ && !utf8_.complete()) return fail(out, close_code::invalid_payload, "invalid UTF-8");
        event& e = emit(out, event_type::message);
        e.is_text = msg_is_text_;
        e.data = {in_.data() + in_begin_, static_cast<std::size_t>(fh_.payload_size)};
        in_begin_ += static_cast<std::size_t>(fh_.payload_size);
        in_frame_ = false;
    }

    // Move whatever has arrived of a fragment (or an oversize frame) into the
    // message buffer, checking UTF-8 as it goes.
    void advance_streamed(std::optional<event>& out) {
        const std::size_t avail = in_end_ - in_begin_;
        const std::uint64_t left = fh_.payload_size - frame_done_;
        const std::size_t n = avail < left ? avail : static_cast<std::size_t>(left);
        if (n > 0) {
            std::uint8_t* const chunk = in_.data() + in_begin_;
            if (!detail::unmask_validate(chunk, n, fh_.masked ? &fh_.mask : nullptr, frame_done_ % 4,
                                         msg_is_text_ ? &utf8_ : nullptr))
                return fail(out, close_code::invalid_payload, "invalid UTF-8");
            msg_.insert(msg_.end(), chunk, chunk + n);
            in_begin_ += n;
            frame_done_ += n;
        }
        if (frame_done_ < fh_.payload_size) return;
        in_frame_ = false;
        if (!fh_.fin) return;
        if (msg_is_text_ && !utf8_.complete()) return fail(out, close_code::invalid_payload, "invalid UTF-8");
        event& e = emit(out, event_type::message);
        e.is_text = msg_is_text_;
        e.data = {msg_.data(), msg_.size()};
    }

    void finish_control_frame(std::optional<event>& out) {
        const std::size_t n = static_cast<std::size_t>(fh_.payload_size);
        std::span<std::uint8_t> payload{in_.data() + in_begin_, n};
        if (fh_.masked) apply_mask(payload, fh_.mask, 0);
        in_begin_ += n;
        in_frame_ = false;
        switch (fh_.op) {
            case opcode::ping: {
                // §5.5.2: answer with the same payload, unless our close is
                // already out. Pongs count against the output bound; past it a
                // pong is dropped, which §5.5.3 allows (only the latest ping
                // needs an answer) and which stops a ping flood from growing
                // the queue of a peer that does not read.
                if (auto_pong_ && !close_sent_) (void)write_frame(opcode::pong, payload, true, false);
                emit(out, event_type::ping).data = payload;
                return;
            }
            case opcode::pong:
                emit(out, event_type::pong).data = payload;
                return;
            default:
                return handle_close_frame(out, payload);
        }
    }

    void handle_close_frame(std::optional<event>& out, std::span<const std::uint8_t> payload) {
        // §5.5.1: a body, if present, starts with a 2-byte code; the rest is
        // UTF-8 (§8.1). §7.4: some codes must never be sent.
        close_code code = close_code::none;
        std::string_view reason;
        if (payload.size() == 1) return fail(out, close_code::protocol_error, "close frame with 1-byte body");
        if (payload.size() >= 2) {
            const auto raw = static_cast<std::uint16_t>((payload[0] << 8) | payload[1]);
            if (!is_valid_wire_code(raw)) return fail(out, close_code::protocol_error, "invalid close code");
            code = static_cast<close_code>(raw);
            reason = {reinterpret_cast<const char*>(payload.data() + 2), payload.size() - 2};
            if (!is_valid_utf8(reason)) return fail(out, close_code::invalid_payload, "close reason not UTF-8");
        }
        close_received_ = true;
        // §5.5.1: "it MUST send a Close frame in response", echoing the code.
        if (!close_sent_) write_close(code, {});
        event& e = emit(out, event_type::close_received);
        e.code = code;
        e.reason = reason;
        enter_closed(code == close_code::none ? close_code::no_status : code, "closed");
    }

    // -- output -------------------------------------------------------------------

    std::error_code check_can_send() const noexcept {
        switch (st_) {
            case state::handshake:
            case state::awaiting_accept: return error::not_open;
            case state::closing: return error::closing;
            case state::closed: return close_sent_ || close_received_ ? error::closing : error::closed;
            case state::open: return {};
        }
        return error::closed;
    }

    std::error_code write_frame(opcode op, std::span<const std::uint8_t> payload, bool fin, bool force) {
        if (!is_control(op) && payload.size() > max_message_bytes_) return error::message_too_big;
        const bool masked = role_ == role::client;
        const std::size_t hs = frame_header_size(payload.size(), masked);
        if (!force && out_.size() + hs + payload.size() > max_output_bytes_) return error::output_full;
        std::array<std::uint8_t, 4> key{};
        if (masked) {
            const std::uint32_t k = aux_->keys.next_u32();
            std::memcpy(key.data(), &k, 4);
        }
        std::uint8_t* p = out_.append_own(hs + payload.size());
        write_frame_header(p, fin, op, payload.size(), masked ? &key : nullptr);
        if (payload.empty()) return {};
        if (masked) {
            mask_copy({p + hs, payload.size()}, payload, key, 0);
        } else {
            std::memcpy(p + hs, payload.data(), payload.size());
        }
        return {};
    }

    void write_close(close_code code, std::string_view reason) {
        std::array<std::uint8_t, 125> body{};
        std::size_t n = 0;
        if (code != close_code::none && code != close_code::no_status && code != close_code::abnormal) {
            body[0] = static_cast<std::uint8_t>(to_int(code) >> 8);
            body[1] = static_cast<std::uint8_t>(to_int(code));
            n = 2;
            const std::size_t r = reason.size() < 123 ? reason.size() : 123;
            if (r) std::memcpy(body.data() + 2, reason.data(), r);
            n += r;
        }
        (void)write_frame(opcode::close, {body.data(), n}, true, true);
        close_sent_ = true;
    }

    static constexpr std::size_t read_slack = 16u << 10;
    // Bound on the bytes of one run whole_frame() takes.
    static constexpr std::size_t max_ready = 4096;
    // Bound on the messages of one run: its length table (see whole_frame).
    static constexpr std::size_t max_run_frames = 1024;
    // Where make_room() starts the unread bytes over, room permitting: the
    // length table of a run at the start of the buffer fits in front.
    static constexpr std::uint32_t run_table_room = max_run_frames;
    // run_at_ when the run has no table.
    static constexpr std::uint16_t no_run_table = 0x8000;
    // copy_decode(): the run has no table / its table is complete.
    static constexpr std::size_t no_table = ~std::size_t{0};
    static constexpr std::size_t table_closed = no_table - 1;

    // Largest first, so that the bytes at the end pack without padding.

    // handshake
    // Everything only the opening handshake needs lives on the heap and is
    // freed once the connection is open: an idle open connection stays small.
    struct handshake_state {
        explicit handshake_state(std::size_t max_header_bytes)
            : request_parser(max_header_bytes), response_parser(max_header_bytes) {}
        http_request_parser request_parser;
        http_response_parser response_parser;
        upgrade_check upgrade;
        std::string upgrade_key;
        client_handshake client;
    };
    // What only part of a connection's life needs, in one heap block (one
    // pointer in 100,000 idle server connections): the handshake state, and
    // in the client role the masking keys (RFC 6455 §5.3). A server frees
    // the block when it accepts (it never masks); a client keeps the keys.
    struct aux_state {
        aux_state(std::size_t max_header_bytes, std::uint64_t seed) : hs(std::in_place, max_header_bytes), keys(seed) {}
        std::optional<handshake_state> hs;
        rng keys;
    };
    std::unique_ptr<aux_state> aux_;
    handshake_state* hs() noexcept { return aux_ && aux_->hs ? &*aux_->hs : nullptr; }
    const handshake_state* hs() const noexcept { return aux_ && aux_->hs ? &*aux_->hs : nullptr; }
    // The opening handshake timeout, then (closing) the close timeout.
    time_point deadline_ = never;

    // settings (config, minus what only construction needs), in 32 bits:
    // no single buffer of one connection may pass 4 GiB (limit32).
    std::uint32_t max_message_bytes_;
    std::uint32_t max_output_bytes_;
    std::uint32_t max_frame_buffer_;
    std::uint32_t input_limit_;
    duration close_timeout_;

    // input
    std::vector<std::uint8_t> in_;
    std::uint32_t in_begin_ = 0;  // 32 bits: the input buffer is at most input_limit_
    std::uint32_t in_end_ = 0;
    frame_header fh_{};
    std::uint64_t frame_done_ = 0;  // payload bytes of the current frame already unmasked
    std::vector<std::uint8_t> msg_;

    // output
    output_queue out_;

    // the pending `closed` event (see pop_event)
    const char* closed_reason_ = nullptr;
    small_string subprotocol_;
    close_code closed_code_ = close_code::none;
    std::uint16_t closed_status_ = 0;
    // [in_begin_, run_end_) is a run of whole messages, unmasked and
    // checked already (see whole_frame and copy_decode); each poll_event()
    // hands out one. No run while run_end_ <= in_begin_ (a stale end is
    // left behind; whatever moves in_begin_ back resets it). An end, not a
    // count: handing a message out stores one offset, not two. (Fits in
    // the padding after the two 16-bit fields: sizeof does not grow.)
    std::uint32_t run_end_ = 0;
    // The next message of the run, as an index into its length table (at
    // the front of in_), or no_run_table; meaningful while there is a run.
    // (In padding, as run_end_.)
    std::uint16_t run_at_ = 0;

    ws::role role_;
    ws::state st_ = state::handshake;
    bool auto_pong_ : 1;
    bool validate_outgoing_utf8_ : 1;
    // The run is followed by a message copy_decode() started (see there).
    // (Bit-fields: sizeof does not grow.)
    bool tail_ : 1 = false;
    bool in_frame_ = false;
    bool in_place_ = false;
    message_state in_msg_state_ = message_state::idle;
    bool msg_is_text_ = false;
    utf8_validator utf8_;
    message_state out_msg_state_ = message_state::idle;
    bool close_sent_ = false;
    bool close_received_ = false;
    bool open_pending_ = false;
    bool closed_pending_ = false;
};

}  // namespace tether::ws
