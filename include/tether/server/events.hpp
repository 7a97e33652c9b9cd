// tether/server/events.hpp — what the endpoint tells the event loop.
//
// Two kinds of event. I/O events say what to do with a socket:
//   flush            the connection's output went from empty to non-empty
//                    (once per transition: after a broadcast the loop learns
//                    exactly whom to write to, without scanning);
//   close_transport  the WebSocket is closed: write what is still queued,
//                    then close the socket and call handle_transport_closed().
// Log events say what happened, one line each:
//   connected(principal, session_id, resumed), joined(room), left(room),
//   closed(code).
// Strings are owned by the event (log events are rare; flush events carry
// none, so they allocate nothing).
#pragma once

#include <cstdint>
#include <string>

#include "tether/server/conn_id.hpp"

namespace tether::server {

enum class event_type : std::uint8_t {
    flush,
    close_transport,
    connected,
    joined,
    left,
    closed,
};

struct event {
    event_type type = event_type::flush;
    conn_id conn;             ///< the connection concerned (invalid for a session
                              ///< event without one, e.g. left on grace expiry)
    std::string principal;    ///< connected, joined, left
    std::string session_id;   ///< connected, joined, left
    std::string room_id;      ///< joined, left
    bool resumed = false;     ///< connected
    std::uint16_t code = 0;   ///< closed: the close code decided (1006 without a close handshake)
    int http_status = 0;      ///< closed: the HTTP status when the upgrade was refused
};

constexpr const char* to_string(event_type t) noexcept {
    switch (t) {
        case event_type::flush: return "flush";
        case event_type::close_transport: return "close_transport";
        case event_type::connected: return "connected";
        case event_type::joined: return "joined";
        case event_type::left: return "left";
        case event_type::closed: return "closed";
    }
    return "?";
}

}  // namespace tether::server
