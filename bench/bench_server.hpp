// Helpers for the benchmarks and studies that drive tether's server
// endpoint with real bytes: masked client frames, upgrade requests, and a
// full session (upgrade, server.hello, client.join) opened the way a socket
// loop would, minus the sockets (output is released with consume_output).
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bench_common.hpp"
#include "tether/server/endpoint.hpp"
#include "tether/ws/frame.hpp"
#include "tether/ws/mask.hpp"

namespace bench::srv {

namespace server = tether::server;
using tether::time_point;

/// A masked client text frame of `text` into `out` (reused: no allocation
/// once it is large enough).
inline void client_frame(std::string_view text, std::vector<std::uint8_t>& out, std::uint32_t key_seed = 0x9e3779b9) {
    std::array<std::uint8_t, 4> key;
    std::memcpy(key.data(), &key_seed, 4);
    out.resize(tether::ws::max_frame_header_size + text.size());
    const std::size_t hs = tether::ws::write_frame_header(out.data(), true, tether::ws::opcode::text, text.size(), &key);
    tether::ws::mask_copy({out.data() + hs, text.size()},
                          {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, key, 0);
    out.resize(hs + text.size());
}

inline std::vector<std::uint8_t> client_frame(std::string_view text) {
    std::vector<std::uint8_t> out;
    client_frame(text, out);
    return out;
}

/// A browser-like upgrade request authenticating as `principal` (?token=).
inline std::string upgrade_request(std::string_view principal) {
    std::string r = "GET /chat?token=";
    r += principal;
    r += " HTTP/1.1\r\nHost: chat.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
         "Origin: https://chat.example.com\r\nSec-WebSocket-Version: 13\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: tether.v1\r\n\r\n";
    return r;
}

/// Defaults, except: the principal is the ?token= value (as a real
/// authenticate hook would derive it), and no rate limit (the benchmarks
/// send faster than any client may).
inline server::config config() {
    server::config c;
    c.seed = 7;
    c.unix_ms_at_origin = 1'732'270'000'000;
    c.rate_per_s = 0;
    c.authenticate = [](const tether::ws::http_request& req) {
        server::auth_result r;
        r.principal = std::string(req.query_param("token").value_or(""));
        if (r.principal.empty()) r.status = 401;
        return r;
    };
    return c;
}

inline void release_output(server::endpoint& ep, server::conn_id id) {
    ep.consume_output(id, ep.buffered_output(id));
}

inline void drop_events(server::endpoint& ep) {
    while (ep.poll_event()) {
    }
}

/// "user-<n>"
inline std::string principal(std::size_t n) { return "user-" + std::to_string(n); }

/// A session from raw bytes: upgrade (server.hello follows), then
/// client.join of `room` unless empty. Output is released; events are not.
inline server::conn_id open_session(server::endpoint& ep, time_point now, std::string_view who, std::string_view room,
                                    std::vector<std::uint8_t>& scratch) {
    const auto id = ep.open_connection(now);
    ep.handle_bytes(now, id, upgrade_request(who));
    if (!room.empty()) {
        std::string join = R"({"kind":"client.join","room_id":")";
        join += room;
        join += R"(","id":"j1"})";
        client_frame(join, scratch);
        ep.handle_bytes(now, id, scratch);
    }
    release_output(ep, id);
    return id;
}

}  // namespace bench::srv
