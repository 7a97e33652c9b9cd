// Timers at scale, on tether's timer_heap (core/timer_heap.hpp) used exactly
// as the endpoint uses it (server/endpoint.hpp: rearm(), earliest(),
// service_connection(), next_deadline()). The endpoint's own functions are
// private, so the few lines they run are restated here over the same heap:
//
//   timers/rearm/N   a frame arrived on a random one of N open sessions:
//                    last_rx = now; the earliest of (next ping, last_rx + 2 x
//                    heartbeat) is offered to arm_no_later_than() — the lazy
//                    re-arm, which leaves the heap alone when the deadline
//                    moved later (the common case). In the endpoint the
//                    connection's record is hot at that point (the frame was
//                    just decoded through it) while the heap's pos_[i] and
//                    heap_[pos] entries are not: the record is prefetched a
//                    few sessions ahead to model exactly that. Target row.
//   timers/rearm_cold/N  the same with nothing prefetched (context: every
//                    access a potential cache miss).
//   timers/rearm_seq/N   sessions in slot order, so that every access is a
//                    cache hit (context: what the re-arm costs without
//                    misses — the gap to rearm/N is the heap's pos_/heap_
//                    lookups missing the cache).
//   timers/fire/N    the earliest of N heartbeats fires and is re-keyed one
//                    period later (service_connection's set()): a sift down.
//   timers/next_deadline/N  the min of the endpoint's three heaps' roots.
//
// The real endpoint's next_deadline() at 100,000 sessions and its heartbeat
// tick per session are measured in bench_sessions.cpp.
#include <algorithm>
#include <chrono>
#include <memory>
#include <numeric>

#include "bench_common.hpp"
#include "tether/core/random.hpp"
#include "tether/core/timer_heap.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;
using tether::time_point;

constexpr tether::duration heartbeat = 25s;

// The two connection_state fields earliest() reads for an open connection.
struct conn_rec {
    time_point last_rx{};
    time_point next_ping = tether::never;
};

struct timer_fixture {
    explicit timer_fixture(std::size_t n) : recs(n), order(n) {
        tether::rng r(n);
        heap.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            // Sessions opened over one heartbeat period: pings spread evenly.
            recs[i].last_rx = tether::at_ms(0);
            recs[i].next_ping = tether::at_ms(0) + heartbeat * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n) + 1ms;
            heap.set(static_cast<std::uint32_t>(i), earliest(recs[i]));
        }
        std::iota(order.begin(), order.end(), 0u);
        for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[r.below(i)]);
    }
    static time_point earliest(const conn_rec& c) noexcept { return std::min(c.next_ping, c.last_rx + 2 * heartbeat); }
    std::vector<conn_rec> recs;
    std::vector<std::uint32_t> order;
    tether::timer_heap heap;
};

enum class access { hot_record, cold, sequential };

template <access Mode>
void timers_rearm(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    timer_fixture fx(n);
    if constexpr (Mode == access::sequential) std::iota(fx.order.begin(), fx.order.end(), 0u);
    time_point now = tether::at_ms(1);
    std::size_t k = 0;
    std::uint64_t touched = 0;
    for (auto _ : state) {
        const std::uint32_t i = fx.order[k];
        if (++k == n) k = 0;
        if constexpr (Mode == access::hot_record) {
            std::size_t ahead = k + 8;
            if (ahead >= n) ahead -= n;
            __builtin_prefetch(&fx.recs[fx.order[ahead]]);
        }
        now += 1ns;
        conn_rec& c = fx.recs[i];
        c.last_rx = now;
        touched += fx.heap.arm_no_later_than(i, timer_fixture::earliest(c));
    }
    state.counters["heap_touched"] = static_cast<double>(touched);
    state.SetItemsProcessed(state.iterations());
}

void timers_fire(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    timer_fixture fx(n);
    for (auto _ : state) {
        const std::uint32_t i = fx.heap.top();
        conn_rec& c = fx.recs[i];
        c.last_rx = c.next_ping;  // the client answered the previous ping
        c.next_ping += heartbeat;
        fx.heap.set(i, timer_fixture::earliest(c));
    }
    state.SetItemsProcessed(state.iterations());
}

void timers_next_deadline(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    timer_fixture fx(n);
    tether::timer_heap sessions, rooms;  // the endpoint's grace and linger heaps
    for (std::uint32_t i = 0; i < n / 100; ++i) sessions.set(i, tether::at_ms(30'000 + i));
    for (auto _ : state) {
        benchmark::DoNotOptimize(&fx.heap);
        benchmark::DoNotOptimize(std::min({fx.heap.next_deadline(), sessions.next_deadline(), rooms.next_deadline()}));
    }
    state.SetItemsProcessed(state.iterations());
}

}  // namespace

}  // namespace bench

BENCHMARK(bench::timers_rearm<bench::access::hot_record>)->Name("timers/rearm")->Arg(100000);
BENCHMARK(bench::timers_rearm<bench::access::cold>)->Name("timers/rearm_cold")->Arg(100000);
BENCHMARK(bench::timers_rearm<bench::access::sequential>)->Name("timers/rearm_seq")->Arg(100000);
BENCHMARK(bench::timers_fire)->Name("timers/fire")->Arg(100000);
BENCHMARK(bench::timers_next_deadline)->Name("timers/next_deadline")->Arg(1000)->Arg(100000);
