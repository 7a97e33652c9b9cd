// Handshake, tether: a new server connection takes a typical browser upgrade
// request, parses and checks it, selects the subprotocol and writes the 101
// response (SHA-1 + base64 of the key) to a byte sink. Constructing and
// destroying the connection is included for every contender: it is part of
// accepting one, and each library allocates its per-connection state there.
#include "bench_common.hpp"
#include "tether/ws/connection.hpp"

namespace bench {

namespace {

/// One server handshake; the 101 response goes to `out`. True on success.
template <class Out>
bool handshake_once(const tether::ws::config& cfg, const std::string& req, Out&& out) {
    using namespace tether::ws;
    auto c = connection::server(tether::at_ms(0), cfg);
    c.handle_bytes(tether::at_ms(0), req);
    bool ok = false;
    while (auto e = c.poll_event()) {
        if (e->type == event_type::upgrade_request) {
            std::string_view sub;
            for (const auto& p : c.offered_subprotocols())
                if (p == "tether.v1") sub = "tether.v1";
            ok = !c.accept(sub);
        }
    }
    const auto run = c.pending_output();
    out(run);
    c.consume_output(run.size());
    return ok;
}

void handshake_tether(benchmark::State& state) {
    const std::string& req = browser_upgrade_request();
    const tether::ws::config cfg{};
    std::string first;
    if (!handshake_once(cfg, req, [&](auto run) { first.assign(run.begin(), run.end()); }) || !is_valid_101(first)) {
        state.SkipWithError("handshake failed");
        return;
    }
    sink out;
    std::size_t ok = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) ok += handshake_once(cfg, req, [&](auto run) { out.put(run.data(), run.size()); });
    if (static_cast<std::int64_t>(ok) != state.iterations()) state.SkipWithError("handshake failed");
    state.counters["allocs_per_op"] =
        static_cast<double>(alloc_calls() - a0) / static_cast<double>(state.iterations());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

}  // namespace

}  // namespace bench

BENCHMARK(bench::handshake_tether)->Name("handshake/tether");
