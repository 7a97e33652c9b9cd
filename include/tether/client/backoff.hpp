// tether/client/backoff.hpp — reconnect delays (PROTOCOL.md §4, "Backoff").
//
// Theory of operation
// -------------------
// Every connection that ends without the policy saying "stop" is a failure;
// each failure schedules reconnect attempt n = 1, 2, 3 … with
//
//     delay  = min(cap, initial * 2^(n-1))
//     delay -= jitter,   jitter uniform in [0, delay * jitter_percent / 100]
//
// (docs/protocol.md, "Client"), the jitter drawn from the caller's seeded
// tether::rng so that a herd of clients spreads out and a replayed trace
// gives the same delays. A `retry_after_ms` sent by the server replaces the
// whole delay for that attempt (capped by max_server_delay, no jitter: the
// server already spread its clients) but still counts as an attempt. When
// attempt max_attempts has failed, next() refuses: the caller reports
// "gave up". reset() after a session reached `live` starts over at 1 s.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "tether/core/random.hpp"
#include "tether/core/time.hpp"

namespace tether::client {

struct backoff_config {
    duration initial = std::chrono::seconds(1);
    duration cap = std::chrono::seconds(30);
    /// Jitter bound as a percentage of the delay (0..100; larger is clamped).
    unsigned jitter_percent = 50;
    /// Reconnect attempts after a loss before giving up; 0 = never give up.
    unsigned max_attempts = 10;
    /// Upper bound on a server's retry_after_ms, so that a buggy or hostile
    /// server cannot park the client for days.
    duration max_server_delay = std::chrono::minutes(10);
};

class backoff {
public:
    explicit backoff(backoff_config cfg = {}) noexcept : cfg_(cfg) {}

    const backoff_config& config() const noexcept { return cfg_; }

    /// The attempt most recently scheduled by next(); 0 after reset().
    unsigned attempt() const noexcept { return attempt_; }

    /// True when the next failure will give up.
    bool exhausted() const noexcept { return cfg_.max_attempts != 0 && attempt_ >= cfg_.max_attempts; }

    /// The un-jittered delay of attempt n (n >= 1).
    duration base_delay(unsigned n) const noexcept {
        duration d = cfg_.initial;
        if (d <= duration::zero()) return duration::zero();
        for (unsigned i = 1; i < n && d < cfg_.cap; ++i) d += d;  // doubling, stops at the cap
        return d < cfg_.cap ? d : cfg_.cap;
    }

    /// A failure happened: the delay before the next attempt, or nullopt when
    /// max_attempts attempts have already failed (give up).
    std::optional<duration> next(rng& r, std::optional<std::int64_t> server_delay_ms = std::nullopt) noexcept {
        if (exhausted()) return std::nullopt;
        ++attempt_;
        if (server_delay_ms) {
            // Clamp in milliseconds first: 2^53 ms would overflow nanoseconds.
            const std::int64_t cap_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.max_server_delay).count();
            std::int64_t ms = *server_delay_ms < 0 ? 0 : *server_delay_ms;
            if (ms > cap_ms) ms = cap_ms;
            return duration(std::chrono::milliseconds(ms));
        }
        const duration d = base_delay(attempt_);
        const unsigned pct = cfg_.jitter_percent > 100 ? 100 : cfg_.jitter_percent;
        const auto span = static_cast<std::uint64_t>(d.count()) / 100 * pct +
                          static_cast<std::uint64_t>(d.count()) % 100 * pct / 100;
        const auto jitter = static_cast<duration::rep>(r.below(span + 1));
        return d - duration(jitter);
    }

    void reset() noexcept { attempt_ = 0; }

private:
    backoff_config cfg_;
    unsigned attempt_ = 0;
};

}  // namespace tether::client
