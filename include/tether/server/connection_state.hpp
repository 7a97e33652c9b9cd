// tether/server/connection_state.hpp — the endpoint's record of one
// transport connection.
//
// The WebSocket machine is held by pointer so that a free slot (the slot
// array recycles them, core/slot_array.hpp) costs a few bytes, not a machine.
// Timers are plain fields: the endpoint's timer heap holds one key per
// connection no later than the earliest of them (core/timer_heap.hpp,
// "lazy re-arming"), so moving `last_rx` on every frame touches nothing else.
#pragma once

#include <cstdint>
#include <memory>

#include "tether/core/time.hpp"
#include "tether/server/pending_frames.hpp"
#include "tether/server/session.hpp"
#include "tether/server/strike_counter.hpp"
#include "tether/server/token_bucket.hpp"
#include "tether/ws/connection.hpp"

namespace tether::server {

struct connection_state {
    // First the fields a broadcast reads and writes (one cache line per
    // recipient; see endpoint::broadcast), then the rest.
    std::unique_ptr<ws::connection> ws;   ///< null: free slot
    std::uint32_t generation = 0;
    std::uint32_t session = no_index;     ///< attached session slot
    pending_frames pending;               ///< broadcast frames after the ws queue (pending_frames.hpp)
    std::uint16_t close_code = 0;         ///< first close code decided (ours or the peer's)
    bool flush_reported = false;          ///< a flush event is out and the output not yet drained
    bool slow = false;                    ///< over the high-water mark; a 1013 close is pending
    bool ws_output = false;               ///< the ws queue holds bytes (kept by after_send/consume_output)
    bool closed_reported = false;         ///< the `closed` log event was emitted
    bool transport_gone = false;          ///< the loop reported the socket closed
    bool quiet = false;                   ///< no message since the last heartbeat tick
    time_point last_rx{};                 ///< last frame from the peer (liveness)
    time_point next_ping = never;         ///< next server.ping (never until open)
    token_bucket bucket;
    strike_counter rate_strikes;
    strike_counter bad_requests;

    bool in_use() const noexcept { return ws != nullptr; }
};

}  // namespace tether::server
