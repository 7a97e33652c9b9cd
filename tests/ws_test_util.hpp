// Test helpers for the RFC 6455 layer: build open connections, feed bytes
// split at arbitrary points, and turn everything a connection emits into a
// comparable transcript.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tether/ws/connection.hpp"

namespace tt {

using bytes = std::vector<std::uint8_t>;
namespace ws = tether::ws;
inline const tether::time_point t0 = tether::at_ms(0);

inline bytes b(std::string_view s) { return bytes(s.begin(), s.end()); }
inline bytes cat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

/// Drain all output of `c` into a vector (consuming it), in small partial
/// "writes" to exercise consume_output.
inline bytes drain_output(ws::connection& c, std::size_t write_size = 7) {
    bytes out;
    while (c.buffered_output() > 0) {
        auto run = c.pending_output();
        const std::size_t n = run.size() < write_size ? run.size() : write_size;
        out.insert(out.end(), run.begin(), run.begin() + static_cast<std::ptrdiff_t>(n));
        c.consume_output(n);
    }
    return out;
}

inline std::string describe(const ws::event& e) {
    switch (e.type) {
        case ws::event_type::upgrade_request: return "upgrade_request";
        case ws::event_type::open: return "open";
        case ws::event_type::message:
            return std::string(e.is_text ? "text:" : "binary:") + std::string(e.text());
        case ws::event_type::ping: return "ping:" + std::string(e.text());
        case ws::event_type::pong: return "pong:" + std::string(e.text());
        case ws::event_type::close_received:
            return "close_received:" + std::to_string(ws::to_int(e.code)) + ":" + std::string(e.reason);
        case ws::event_type::failed:
            return "failed:" + std::to_string(ws::to_int(e.code)) + ":" + std::to_string(e.http_status);
        case ws::event_type::closed: return "closed:" + std::to_string(ws::to_int(e.code));
    }
    return "?";
}

/// Everything observable: events in order, and the output bytes.
struct transcript {
    std::vector<std::string> events;
    bytes output;
    bool operator==(const transcript&) const = default;
};

inline void drain_events(ws::connection& c, transcript& t, bool auto_accept = true) {
    while (auto e = c.poll_event()) {
        t.events.push_back(describe(*e));
        if (e->type == ws::event_type::upgrade_request && auto_accept) (void)c.accept();
    }
}

/// Feed `input` in chunks whose boundaries are `splits` (ascending offsets),
/// draining events after every chunk.
inline transcript feed_split(ws::connection c, const bytes& input, const std::vector<std::size_t>& splits) {
    transcript t;
    std::size_t pos = 0;
    auto feed_to = [&](std::size_t end) {
        while (pos < end) {
            const std::size_t took = c.handle_bytes(t0, std::span<const std::uint8_t>(input.data() + pos, end - pos));
            pos += took;
            drain_events(c, t);
        }
        drain_events(c, t);
    };
    for (std::size_t s : splits) feed_to(s);
    feed_to(input.size());
    t.output = drain_output(c);
    return t;
}

/// Feed the input whole, at every single split point, and byte by byte;
/// require identical transcripts; return the whole-input one.
template <class MakeConn>
transcript feed_all_splits(MakeConn make, const bytes& input) {
    const transcript whole = feed_split(make(), input, {});
    for (std::size_t s = 1; s < input.size(); ++s) {
        const transcript t = feed_split(make(), input, {s});
        if (!(t == whole)) {
            INFO("split at " << s);
            CHECK(t.events == whole.events);
            CHECK(t.output == whole.output);
            return whole;
        }
    }
    std::vector<std::size_t> every;
    for (std::size_t s = 1; s < input.size(); ++s) every.push_back(s);
    const transcript bb = feed_split(make(), input, every);
    CHECK(bb.events == whole.events);
    CHECK(bb.output == whole.output);
    return whole;
}

/// Pump bytes between two connections until neither has output, collecting
/// events of each side.
inline void pump(ws::connection& a, ws::connection& b, transcript* ta = nullptr, transcript* tb = nullptr) {
    transcript sink_a, sink_b;
    if (!ta) ta = &sink_a;
    if (!tb) tb = &sink_b;
    for (int guard = 0; guard < 10000; ++guard) {
        const bytes ab = drain_output(a, 1u << 20);
        const bytes ba = drain_output(b, 1u << 20);
        if (ab.empty() && ba.empty()) return;
        std::size_t pos = 0;
        while (pos < ab.size()) {
            pos += b.handle_bytes(t0, std::span<const std::uint8_t>(ab.data() + pos, ab.size() - pos));
            drain_events(b, *tb);
        }
        pos = 0;
        while (pos < ba.size()) {
            pos += a.handle_bytes(t0, std::span<const std::uint8_t>(ba.data() + pos, ba.size() - pos));
            drain_events(a, *ta);
        }
        drain_events(a, *ta);
        drain_events(b, *tb);
    }
}

/// A client and a server connection with the handshake done.
struct pair {
    ws::connection client;
    ws::connection server;
};

inline pair open_pair(ws::config ccfg = {}, ws::config scfg = {}) {
    ccfg.seed = ccfg.seed ? ccfg.seed : 42;
    pair p{ws::connection::client(t0, ccfg, "localhost:9001", "/chat?x=1"), ws::connection::server(t0, scfg)};
    transcript tc, ts;
    pump(p.client, p.server, &tc, &ts);
    REQUIRE(p.client.state() == ws::state::open);
    REQUIRE(p.server.state() == ws::state::open);
    return p;
}

/// A server connection that has accepted a standard upgrade request.
inline ws::connection open_server(ws::config cfg = {}) {
    auto c = ws::connection::server(t0, cfg);
    const std::string req =
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.handle_bytes(t0, req);
    auto e = c.poll_event();
    REQUIRE(e);
    REQUIRE(e->type == ws::event_type::upgrade_request);
    REQUIRE(!c.accept());
    e = c.poll_event();
    REQUIRE(e);
    REQUIRE(e->type == ws::event_type::open);
    (void)drain_output(c);
    return c;
}

/// A client connection that has received a valid 101 for its own request.
inline ws::connection open_client(ws::config cfg = {}) {
    return open_pair(cfg).client;
}

/// An independent frame encoder for the tests (deliberately not the
/// library's): header, optional mask, payload.
inline bytes frame_bytes(std::uint8_t b0, const bytes& payload, const std::array<std::uint8_t, 4>* key) {
    bytes out;
    out.push_back(b0);
    const std::uint8_t mbit = key ? 0x80 : 0;
    const std::size_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<std::uint8_t>(mbit | n));
    } else if (n <= 0xFFFF) {
        out.push_back(mbit | 126);
        out.push_back(static_cast<std::uint8_t>(n >> 8));
        out.push_back(static_cast<std::uint8_t>(n));
    } else {
        out.push_back(mbit | 127);
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(std::uint64_t{n} >> (8 * i)));
    }
    if (key) out.insert(out.end(), key->begin(), key->end());
    for (std::size_t i = 0; i < n; ++i) out.push_back(key ? payload[i] ^ (*key)[i % 4] : payload[i]);
    return out;
}

/// A client-to-server frame, masked with `key` (default: RFC 6455 §5.7's).
inline bytes masked_frame(std::uint8_t b0, const bytes& payload,
                          std::array<std::uint8_t, 4> key = {0x37, 0xfa, 0x21, 0x3d}) {
    return frame_bytes(b0, payload, &key);
}

/// A server-to-client (unmasked) frame.
inline bytes plain_frame(std::uint8_t b0, const bytes& payload) { return frame_bytes(b0, payload, nullptr); }

}  // namespace tt
