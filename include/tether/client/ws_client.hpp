// tether/client/ws_client.hpp — the whole client stack over raw TCP bytes:
// tether::client::client (the protocol) on top of tether::ws::connection in
// the client role (RFC 6455), Sans-IO.
//
// Theory of operation
// -------------------
// The wrapper owns one client machine and, while a connection exists, one
// ws::connection. It translates between them and leaves only TCP to the
// application:
//
//   client action `open`      -> tcp action connect_tcp; the application
//                                opens a socket to its server and calls
//                                handle_tcp_connected(now); the wrapper then
//                                builds ws::connection::client with the
//                                target, `tether.v1` and the Authorization
//                                header (the upgrade request is output at once)
//   client action `send_text` -> ws send_text
//   client action `close`     -> ws close(code, reason) (or dropping a
//                                connection whose handshake is not done);
//                                the client is done with that transport
//   ws `open` / text message / binary message
//                             -> handle_transport_open / handle_message /
//                                handle_binary
//   ws `closed` (code, http_status; the reason of a received close frame)
//                             -> handle_transport_closed, and tcp action
//                                close_tcp
//
// Inputs are the ws connection's: read_buffer()/handle_read() (zero copy)
// or handle_bytes(), handle_tcp_closed(now) on EOF/reset (or when the TCP
// connect failed), handle_timeout(now). Application commands are forwarded
// (connect, join, leave, send, snapshot_loaded, set_token, close); machine()
// gives the client's getters.
//
// Drain order, after every input or command:
//   1. poll_event() until empty — the client's events. The ws events behind
//      them are decoded lazily here, one ws message at a time, so an event's
//      views stay valid until the next call on the wrapper;
//   2. poll_action() until empty — connect_tcp / close_tcp. For close_tcp,
//      first write what the output still holds, then close the socket; for
//      connect_tcp, open a new socket (after closing the old one);
//   3. write pending_output()/gather_output(), consume_output(n);
//   4. arm a timer for next_deadline() (the earlier of both machines) and
//      call handle_timeout(now) then.
// The polls and output getters first move the client's pending actions into
// the ws connection, so commands called through machine() are picked up too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tether/client/client.hpp"
#include "tether/core/random.hpp"
#include "tether/core/time.hpp"
#include "tether/ws/connection.hpp"

namespace tether::client {

struct ws_client_config {
    tether::client::config client;
    /// The RFC 6455 layer. max_message_bytes is set to the client's;
    /// subprotocols default to {"tether.v1"}; seed seeds a generator that
    /// gives each connection its own seed (masking keys, Sec-WebSocket-Key).
    ws::config ws;
    /// The Host header, "host[:port]".
    std::string host = "localhost";
};

enum class tcp_action_type : std::uint8_t {
    connect_tcp,  ///< open a TCP connection, then call handle_tcp_connected(now)
    close_tcp,    ///< write the pending output, then close the socket
};

struct tcp_action {
    tcp_action_type type = tcp_action_type::close_tcp;
};

class ws_client {
public:
    explicit ws_client(ws_client_config cfg)
        : cfg_(std::move(cfg)), client_(cfg_.client), seeds_(cfg_.ws.seed ^ 0x7465746865722d77ULL) {
        cfg_.ws.max_message_bytes = cfg_.client.max_message_bytes;
        if (cfg_.ws.subprotocols.empty()) cfg_.ws.subprotocols.emplace_back(subprotocol_v1);
    }

    // ---- getters ------------------------------------------------------------------

    const tether::client::client& machine() const noexcept { return client_; }
    tether::client::client& machine() noexcept { return client_; }
    /// The current (or last) WebSocket connection, if any.
    const ws::connection* websocket() const noexcept { return ws_ ? &*ws_ : nullptr; }

    time_point next_deadline() const noexcept {
        const time_point a = client_.next_deadline();
        const time_point b = ws_ ? ws_->next_deadline() : never;
        return a < b ? a : b;
    }

    // ---- application commands (forwarded) -------------------------------------------

    std::error_code connect(time_point now) { return after(now, client_.connect(now)); }
    std::error_code join(time_point now, std::string_view room) { return after(now, client_.join(now, room)); }
    std::error_code leave(time_point now, std::string_view room) { return after(now, client_.leave(now, room)); }
    send_result send(time_point now, std::string_view room, std::string_view kind, std::string_view payload) {
        send_result r = client_.send(now, room, kind, payload);
        now_ = now;
        pump();
        return r;
    }
    std::error_code snapshot_loaded(time_point now, std::string_view room, std::int64_t cursor,
                                    std::string_view epoch = {}) {
        return after(now, client_.snapshot_loaded(now, room, cursor, epoch));
    }
    std::error_code set_token(time_point now, std::string_view token) {
        return after(now, client_.set_token(now, token));
    }
    std::error_code close(time_point now) { return after(now, client_.close(now)); }

    // ---- TCP inputs ---------------------------------------------------------------

    /// The socket asked for by connect_tcp is connected: start the upgrade.
    void handle_tcp_connected(time_point now) {
        now_ = now;
        if (!awaiting_tcp_) return;
        awaiting_tcp_ = false;
        ws::config wc = cfg_.ws;
        wc.seed = seeds_.next();
        ws_.emplace(ws::connection::client(now, std::move(wc), cfg_.host, target_, headers_));
        current_ = true;
        if (ws_->buffered_output() == 0) {
            // build_request refused the host, target or a header: a local
            // configuration bug that no retry will fix.
            current_ = false;
            ws_.reset();
            tcp_.push_back({tcp_action_type::close_tcp});
            client_.handle_transport_closed(now, 1002, "invalid upgrade request");
        }
        pump();
    }

    /// EOF, reset, or the TCP connect failed.
    void handle_tcp_closed(time_point now) {
        now_ = now;
        if (awaiting_tcp_) {
            awaiting_tcp_ = false;
            client_.handle_transport_closed(now, 1006, "tcp connect failed");
        } else if (ws_) {
            ws_->handle_transport_closed(now);  // its `closed` event is handled in poll_event()
        }
        pump();
    }

    // ---- byte inputs (see ws::connection) -------------------------------------------

    std::span<std::uint8_t> read_buffer(std::size_t min_size = 4096) {
        if (!ws_) return {};
        return ws_->read_buffer(min_size);
    }
    void handle_read(time_point now, std::size_t n) {
        now_ = now;
        if (ws_) ws_->handle_read(now, n);
    }
    std::size_t handle_bytes(time_point now, std::span<const std::uint8_t> bytes) {
        now_ = now;
        return ws_ ? ws_->handle_bytes(now, bytes) : bytes.size();
    }
    std::size_t handle_bytes(time_point now, std::string_view bytes) {
        return handle_bytes(now, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                                               bytes.size()));
    }

    void handle_timeout(time_point now) {
        now_ = now;
        if (ws_) ws_->handle_timeout(now);
        client_.handle_timeout(now);
        pump();
    }

    // ---- outputs ------------------------------------------------------------------

    std::optional<event> poll_event() {
        for (;;) {
            pump();
            if (auto e = client_.poll_event()) return e;
            if (!ws_) return std::nullopt;
            const auto we = ws_->poll_event();
            if (!we) return std::nullopt;
            on_ws_event(*we);
        }
    }

    std::optional<tcp_action> poll_action() {
        pump();
        if (tcp_head_ == tcp_.size()) {
            tcp_.clear();
            tcp_head_ = 0;
            return std::nullopt;
        }
        return tcp_[tcp_head_++];
    }

    std::span<const std::uint8_t> pending_output() {
        pump();
        return ws_ ? ws_->pending_output() : std::span<const std::uint8_t>{};
    }
    std::size_t gather_output(std::span<std::span<const std::uint8_t>> runs) {
        pump();
        return ws_ ? ws_->gather_output(runs) : 0;
    }
    void consume_output(std::size_t n) {
        if (ws_) ws_->consume_output(n);
    }
    std::size_t buffered_output() const noexcept { return ws_ ? ws_->buffered_output() : 0; }

private:
    std::error_code after(time_point now, std::error_code ec) {
        now_ = now;
        pump();
        return ec;
    }

    // Move the client's actions into the ws connection / the tcp queue.
    void pump() {
        while (auto a = client_.poll_action()) {
            switch (a->type) {
                case action_type::open: open(*a); break;
                case action_type::send_text:
                    // A refusal here (output bound) leaves the message unacked;
                    // the client's ack timeout sends it again.
                    if (ws_ && current_ && ws_->state() == ws::state::open) (void)ws_->send_text(a->text);
                    break;
                case action_type::close:
                    if (!ws_ || !current_) break;
                    current_ = false;
                    if (ws_->state() == ws::state::open) {
                        (void)ws_->close(now_, static_cast<ws::close_code>(a->code), a->reason);
                    } else if (ws_->state() != ws::state::closing) {
                        ws_.reset();  // handshake not done: just drop the socket
                        tcp_.push_back({tcp_action_type::close_tcp});
                    }
                    break;
            }
        }
    }

    void open(const action& a) {
        if (ws_ || awaiting_tcp_) {
            // The previous socket (closing, or never connected) is abandoned.
            if (ws_ && ws_->state() != ws::state::closed) tcp_.push_back({tcp_action_type::close_tcp});
            ws_.reset();
        }
        target_.assign(a.target);
        headers_.clear();
        for (const header& h : a.headers) headers_.push_back(ws::http_header{std::string(h.name), std::string(h.value)});
        current_ = false;
        awaiting_tcp_ = true;
        tcp_.push_back({tcp_action_type::connect_tcp});
    }

    void on_ws_event(const ws::event& e) {
        switch (e.type) {
            case ws::event_type::open:
                if (current_) client_.handle_transport_open(now_);
                break;
            case ws::event_type::message:
                if (!current_) break;
                if (e.is_text)
                    client_.handle_message(now_, e.text());
                else
                    client_.handle_binary(now_);
                break;
            case ws::event_type::close_received:
                close_reason_.assign(e.reason);
                break;
            case ws::event_type::closed: {
                tcp_.push_back({tcp_action_type::close_tcp});
                if (!current_) break;
                current_ = false;
                client_.handle_transport_closed(now_, ws::to_int(e.code), close_reason_, e.http_status);
                close_reason_.clear();
                break;
            }
            case ws::event_type::upgrade_request:
            case ws::event_type::ping:
            case ws::event_type::pong:
            case ws::event_type::failed: break;  // `closed` follows with the code and status
        }
    }

    ws_client_config cfg_;
    tether::client::client client_;
    rng seeds_;
    std::optional<ws::connection> ws_;
    bool current_ = false;       ///< ws_ is the client's transport
    bool awaiting_tcp_ = false;  ///< connect_tcp issued, handle_tcp_connected not yet
    std::string target_;
    std::vector<ws::http_header> headers_;
    std::string close_reason_;
    std::vector<tcp_action> tcp_;
    std::size_t tcp_head_ = 0;
    time_point now_{};
};

}  // namespace tether::client
