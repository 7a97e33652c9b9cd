// tether/server/token_bucket.hpp — per-connection rate limit (PROTOCOL.md §5).
//
// Theory of operation
// -------------------
// A classic token bucket: `burst` tokens at most, refilled at `rate_per_s`
// tokens per second, one token per message. It is kept in exact integer
// arithmetic so that the same inputs give the same answers on every
// platform: the credit is counted in nano-tokens (one token = 10^9 units),
// and `elapsed_ns * rate_per_s` units are added on refill, so there is no
// rounding at all — 50/s really is one token per 20,000,000 ns.
//
// retry_after() is the exact time until the next whole token, rounded up to
// the nanosecond; the endpoint rounds it up again to milliseconds for the
// wire (`retry_after_ms`), so a client that waits that long always finds a
// token.
//
// rate_per_s == 0 disables the limit (every take succeeds).
#pragma once

#include <cstdint>

#include "tether/core/time.hpp"

namespace tether::server {

class token_bucket {
public:
    static constexpr std::uint64_t unit = 1'000'000'000;  ///< nano-tokens per token

    token_bucket() = default;
    /// Starts full.
    token_bucket(std::uint32_t rate_per_s, std::uint32_t burst, time_point now) noexcept
        : credit_(std::uint64_t{burst} * unit), last_(now), rate_(rate_per_s), burst_(burst) {}

    /// Take one token if there is one.
    bool try_take(time_point now) noexcept {
        if (rate_ == 0) return true;
        refill(now);
        if (credit_ < unit) return false;
        credit_ -= unit;
        return true;
    }

    /// Time until one whole token is available (zero if one is).
    duration retry_after(time_point now) noexcept {
        if (rate_ == 0) return duration::zero();
        refill(now);
        if (credit_ >= unit) return duration::zero();
        const std::uint64_t missing = unit - credit_;
        return duration{static_cast<duration::rep>((missing + rate_ - 1) / rate_)};
    }

    /// Whole tokens available at `now`.
    std::uint64_t tokens(time_point now) noexcept {
        if (rate_ == 0) return burst_;
        refill(now);
        return credit_ / unit;
    }

private:
    void refill(time_point now) noexcept {
        if (!(last_ < now)) return;  // time never runs backwards for the bucket
        const std::uint64_t cap = std::uint64_t{burst_} * unit;
        const auto elapsed = static_cast<std::uint64_t>((now - last_).count());
        last_ = now;
        if (credit_ >= cap) return;
        // Overflow-safe: elapsed * rate only when it cannot pass the cap.
        const std::uint64_t room = cap - credit_;
        if (elapsed >= room / rate_ + 1) {
            credit_ = cap;
        } else {
            credit_ += elapsed * rate_;
            if (credit_ > cap) credit_ = cap;
        }
    }

    std::uint64_t credit_ = 0;  ///< nano-tokens
    time_point last_{};
    std::uint32_t rate_ = 0;
    std::uint32_t burst_ = 0;
};

}  // namespace tether::server
