// tether/server/conn_id.hpp — the handle of one transport connection.
//
// A connection lives in a slot of the endpoint's slot array; the slot is
// reused after the loop reports the transport closed. The generation makes
// a handle held past that point stale instead of silently aliasing the next
// connection in the slot: every call with a stale id is a no-op.
#pragma once

#include <cstdint>
#include <limits>

namespace tether::server {

struct conn_id {
    std::uint32_t index = std::numeric_limits<std::uint32_t>::max();
    std::uint32_t generation = 0;

    bool operator==(const conn_id&) const = default;
    /// One integer, e.g. for a map key or epoll's data.u64.
    std::uint64_t value() const noexcept { return (std::uint64_t{generation} << 32) | index; }
    static conn_id from_value(std::uint64_t v) noexcept {
        return {static_cast<std::uint32_t>(v), static_cast<std::uint32_t>(v >> 32)};
    }
    bool valid() const noexcept { return index != std::numeric_limits<std::uint32_t>::max(); }
};

}  // namespace tether::server
