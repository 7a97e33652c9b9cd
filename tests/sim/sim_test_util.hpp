// Helpers shared by the simulator's test files (test_sim_scenarios.cpp,
// test_sim_faults.cpp): the endpoint's configuration in every simulated
// world, and small readers of a world's state.
#pragma once

#include <string>

#include "sim/sim_world.hpp"

namespace tsim::testing {

/// Every world's endpoint: fixed seed and wall-clock origin, the principal
/// from `?user=`, and `?token=wrong` refused with 401.
inline tether::server::config server_config() {
    tether::server::config c;
    c.seed = 77;
    c.unix_ms_at_origin = 1'700'000'000'000;
    c.authenticate = [](const tether::ws::http_request& r) {
        tether::server::auth_result a;
        a.principal = r.query_param("user").value_or("anonymous");
        if (auto t = r.query_param("token"); t && *t == "wrong") a.status = 401;
        return a;
    };
    return c;
}

inline bool live(world& w, std::size_t i) {
    return w.client(i).c.machine().state() == tether::client::state::live;
}

/// A small application payload, distinct for each k.
inline std::string msg(int k) { return "{\"n\":" + std::to_string(k) + "}"; }

}  // namespace tsim::testing
