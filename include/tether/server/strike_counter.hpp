// tether/server/strike_counter.hpp — "more than N offences inside a window".
//
// Used for the escalations of docs/protocol.md: rate-limit refusals (close
// 4029) and bad requests (close 1008). A fixed window that opens at the
// first strike after the previous window ended: deterministic, 16 bytes,
// and good enough to tell a buggy burst from sustained abuse.
#pragma once

#include <cstdint>

#include "tether/core/time.hpp"

namespace tether::server {

class strike_counter {
public:
    /// Record one strike at `now`; true when more than `max` strikes fell
    /// inside one `window`.
    bool strike(time_point now, duration window, std::uint32_t max) noexcept {
        if (count_ == 0 || !(now - start_ < window)) {
            start_ = now;
            count_ = 0;
        }
        ++count_;
        return count_ > max;
    }
    std::uint32_t count() const noexcept { return count_; }

private:
    time_point start_{};
    std::uint32_t count_ = 0;
};

}  // namespace tether::server
