// tether/core/time.hpp — the only notion of time the machines know.
//
// Machines never read a clock. The caller passes `now` into every handle_*
// call as a tether::time_point: nanoseconds since an arbitrary origin the
// caller chooses (process start, a trace's first record, zero in tests).
// Keeping it a distinct type (not steady_clock::time_point) makes it
// impossible to hand a machine a clock by accident, and makes recorded
// traces portable: a trace stores plain integers.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

namespace tether {

/// Tag "clock" for tether::time_point. It deliberately has no now().
struct mono_clock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::duration<rep, period>;
    using time_point = std::chrono::time_point<mono_clock>;
    static constexpr bool is_steady = true;
};

using duration = mono_clock::duration;
using time_point = mono_clock::time_point;

/// "No deadline": what next_deadline() returns when no timer is armed.
inline constexpr time_point never = time_point::max();

/// A time_point `ms` milliseconds after the origin; handy in tests and traces.
constexpr time_point at_ms(std::int64_t ms) noexcept {
    return time_point{std::chrono::milliseconds{ms}};
}

/// Milliseconds since the origin (truncated); the inverse of at_ms.
constexpr std::int64_t to_ms(time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace tether
