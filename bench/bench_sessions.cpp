// Memory per idle session, at scale: N sessions (100,000; 20,000 with
// --quick) opened through tether's endpoint with full handshakes (upgrade,
// server.hello), one client.join each (rooms of 10), then one heartbeat
// tick (server.ping to everyone, after which the endpoint releases the
// buffers of connections that sent nothing since the previous tick) and the
// output drained. Bytes per idle session = heap bytes live (counted by the
// replaced operator new, allocator rounding included) / N: everything the
// endpoint holds — slot arrays, ws::connection objects and their buffers,
// sessions, rooms, indexes, timer heaps — not only what memory() can see.
//
// Plain code, not Google Benchmark: the point is a byte count after a
// one-time setup of 100,000 sessions, not a repeated timed loop. The same
// setup also gives, as context, the CPU cost of opening a session and of
// the heartbeat tick per session, and next_deadline() on the real endpoint.
#include <chrono>
#include <memory>

#include "bench_server.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;
double ns_between(double a, double b) { return (b - a) * 1e9; }

void sessions_study(bool quick) {
    const std::size_t n = quick ? 20'000 : 100'000;
    if (quick) note("--quick: the idle-session memory study opens 20,000 sessions instead of 100,000");
    std::vector<srv::server::conn_id> ids;
    ids.reserve(n);
    std::vector<std::uint8_t> scratch(256);
    std::string room;
    room.reserve(32);

    count_heap_bytes(true);
    const std::int64_t h0 = live_heap_bytes();
    auto ep = std::make_unique<srv::server::endpoint>(srv::config());
    tether::time_point now = tether::at_ms(0);
    const auto t0 = thread_cpu_seconds();
    for (std::size_t i = 0; i < n; ++i) {
        room = "room-" + std::to_string(i / 10);
        ids.push_back(srv::open_session(*ep, now, srv::principal(i), room, scratch));
        if (i % 10 == 9)  // presence.joined went to the room's earlier members
            for (std::size_t k = i - 9; k <= i; ++k) srv::release_output(*ep, ids[k]);
        if (i % 1024 == 1023) srv::drop_events(*ep);
    }
    for (const auto& id : ids) srv::release_output(*ep, id);
    srv::drop_events(*ep);
    const auto t1 = thread_cpu_seconds();
    const std::int64_t h_open = live_heap_bytes();

    // The heartbeat tick: every session is due at once.
    now += ep->cfg().heartbeat;
    ep->handle_timeout(now);
    const auto t2 = thread_cpu_seconds();
    for (const auto& id : ids) srv::release_output(*ep, id);
    srv::drop_events(*ep);
    const std::int64_t h_idle = live_heap_bytes();
    count_heap_bytes(false);

    const auto m = ep->memory();
    if (ep->session_count() != n || ep->room_count() != (n + 9) / 10) {
        failure("idle-session study: sessions or rooms missing");
        return;
    }

    // next_deadline() on the real endpoint (three heaps, n connections).
    constexpr int calls = 10'000'000;
    const auto t3 = thread_cpu_seconds();
    for (int k = 0; k < calls; ++k) {
        benchmark::DoNotOptimize(ep.get());
        benchmark::DoNotOptimize(ep->next_deadline());
    }
    const auto t4 = thread_cpu_seconds();

    record("memory/tether/sessions", static_cast<double>(n), "sessions");
    record("memory/tether/idle_session_bytes", static_cast<double>(h_idle - h0) / static_cast<double>(n), "B/session");
    record("memory/tether/session_bytes_before_tick", static_cast<double>(h_open - h0) / static_cast<double>(n),
           "B/session");
    record("memory/tether/endpoint_memory_figure", static_cast<double>(m.total()) / static_cast<double>(n),
           "B/session (endpoint::memory(), excludes ws buffers)");
    const double per = 1.0 / static_cast<double>(n);
    record("memory/tether/breakdown/connection_slots", static_cast<double>(m.connection_slot_bytes) * per, "B/session");
    record("memory/tether/breakdown/ws_connection_objects", static_cast<double>(m.connection_inline_bytes) * per, "B/session");
    record("memory/tether/breakdown/session_slots", static_cast<double>(m.session_slot_bytes) * per, "B/session");
    record("memory/tether/breakdown/session_heap", static_cast<double>(m.session_heap_bytes) * per, "B/session");
    record("memory/tether/breakdown/rooms", static_cast<double>(m.room_bytes) * per, "B/session");
    record("memory/tether/breakdown/indexes", static_cast<double>(m.index_bytes) * per, "B/session");
    record("memory/tether/breakdown/timers", static_cast<double>(m.timer_bytes) * per, "B/session");
    record("memory/tether/breakdown/output", static_cast<double>(m.output_bytes) * per, "B/session");
    record("memory/tether/sizeof_ws_connection", static_cast<double>(sizeof(tether::ws::connection)), "B");
    record("memory/tether/sizeof_connection_state", static_cast<double>(sizeof(srv::server::connection_state)), "B");
    record("server/open_session_us", ns_between(t0, t1) / 1000.0 / static_cast<double>(n),
           "us per session (upgrade + hello + join)");
    record("server/heartbeat_tick_ns", ns_between(t1, t2) / static_cast<double>(n), "ns per session (ping written)");
    record("server/endpoint_next_deadline_ns", ns_between(t3, t4) / calls, "ns per call at n sessions");

    // Tear down uncounted (and untimed).
    ep.reset();
}

const study sessions("idle sessions at scale", 10, sessions_study);

}  // namespace

}  // namespace bench
