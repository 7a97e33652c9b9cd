// tether/server/config.hpp — every knob and bound of the tether v1 server.
//
// Defaults are PROTOCOL.md §7's and docs/protocol.md's. Every buffer the
// server keeps is bounded by one of these (PROTOCOL.md §5).
//
// Time: the endpoint never reads a clock. `now` (a tether::time_point) comes
// with every call; wire timestamps (`ts`, Unix milliseconds) are computed as
// unix_ms_at_origin + to_ms(now), where the loop sets unix_ms_at_origin to
// the wall clock at its time origin (e.g. posix::unix_ms() - to_ms(posix::now())
// at start-up; endpoint::set_unix_ms_at_origin() re-syncs it).
//
// Hooks are plain std::function (empty = the default policy):
//   authenticate(request) -> {status, principal}: status 0 accepts with that
//     principal; 401 or 403 (or any 3xx-5xx) refuses the upgrade with that
//     status. The hook reads `Authorization: Bearer …` or `?token=` itself
//     (request.find("Authorization"), request.query_param("token")).
//     Default: everyone is accepted as principal "anonymous".
//   authorize_join(principal, room) -> bool: false answers server.error forbidden.
//   authorize_publish(principal, room, kind) -> bool: false answers forbidden.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/core/time.hpp"
#include "tether/ws/http.hpp"

namespace tether::server {

struct auth_result {
    int status = 0;         ///< 0: accepted; else the HTTP status to refuse with (401, 403, …)
    std::string principal;  ///< who the client is, when accepted (1..max_principal_bytes, UTF-8)
};

struct config {
    /// Seeds the endpoint rng: session ids, epochs, the dedup hash key.
    /// Seed from OS entropy in production.
    std::uint64_t seed = 0;
    /// Unix time in ms at time_point zero (see above).
    std::int64_t unix_ms_at_origin = 0;

    // -- heartbeat and sessions ------------------------------------------------
    duration heartbeat = std::chrono::seconds(25);   ///< server.ping period; 4008 after 2x silence
    duration grace = std::chrono::seconds(30);       ///< how long an away session is kept
    std::size_t max_sessions = 1'000'000;            ///< past it, new sessions get HTTP 503

    // -- rooms ---------------------------------------------------------------------
    std::size_t replay_window = 1024;                ///< events kept per room for replay
    duration replay_max_age = duration::zero();      ///< zero: no age bound
    duration dedup_window = std::chrono::minutes(5);
    std::size_t dedup_min_ids = 4096;
    std::size_t dedup_max_ids = 65536;
    std::size_t max_rooms_per_session = 100;
    std::size_t max_rooms = 100'000;                 ///< rooms held by the endpoint

    // -- abuse ---------------------------------------------------------------------
    std::uint32_t rate_per_s = 50;                   ///< 0: no rate limit
    std::uint32_t rate_burst = 100;
    std::uint32_t rate_abuse_strikes = 20;           ///< more refusals than this in the window: 4029
    duration rate_abuse_window = std::chrono::seconds(10);
    std::uint32_t max_bad_requests = 10;             ///< more than this in the window: 1008
    duration bad_request_window = std::chrono::seconds(10);

    // -- transport -----------------------------------------------------------------
    /// Largest incoming message (inclusive); the WebSocket layer closes 1009
    /// from the frame header. Also the largest frame the server sends, so the
    /// endpoint raises it to at least min_message_bytes: its own server.hello
    /// and server.error frames (ids echoed, up to 128 bytes each, escaped)
    /// must always fit, or they would be lost.
    std::size_t max_message_bytes = 65536;
    static constexpr std::size_t min_message_bytes = 2048;
    /// Queued output past this closes the connection with 1013 (slow reader).
    std::size_t send_high_water = std::size_t{1} << 20;
    duration slow_reader_retry_after = std::chrono::seconds(5);
    duration handshake_timeout = std::chrono::seconds(10);
    duration close_timeout = std::chrono::seconds(5);
    std::size_t max_header_bytes = 8192;
    std::size_t max_principal_bytes = 256;
    /// Origin allow-list (exact, case-sensitive match of the header value).
    /// Empty: any origin.
    std::vector<std::string> allowed_origins;

    // -- application hooks --------------------------------------------------------
    std::function<auth_result(const ws::http_request&)> authenticate;
    std::function<bool(std::string_view principal, std::string_view room)> authorize_join;
    std::function<bool(std::string_view principal, std::string_view room, std::string_view kind)>
        authorize_publish;
};

}  // namespace tether::server
