// Server fan-out through tether's endpoint: one member publishes a chat
// message to a room of 1, 100 or 10,000 members, all connected and joined
// with real handshakes. Per broadcast the endpoint parses the envelope,
// checks dedup, serialises and frames the event once, queues it on every
// member (sender included) and acks the sender.
//
//   fanout/queued/N  publish -> the last recipient's output queued (manual
//                    timing around handle_bytes only, in thread CPU time
//                    like every other row: a shared machine's preemption
//                    must not count); allocations counted over the same
//                    span. This is the target row.
//   fanout/cycle/N   the same plus what the loop does next without sockets:
//                    poll the N `flush` events and consume_output() each
//                    recipient (the bytes a write() would take).
//
// Setup costs far more than a broadcast — N handshakes and N joins, and a
// join costs O(members) in tether (presence.joined to every member, and a
// sorted members list in room.joined), so the room costs O(N^2) to build —
// so each room is built once and reused by both variants, then a warm-up
// fills the replay log (1,024 events) to its steady size. The dedup window
// (at least 4,096 ids) may still be growing: its amortised doublings show
// in allocs_per_broadcast (the mean), not in allocs_typical (the mode).
// Virtual time advances 1 s per broadcast (a busy room).
//
// --quick: rooms of 1, 100 and 1,000 (not 10,000: building that room takes
// tens of seconds of CPU), and a shorter warm-up; the output says so.
//
// Config: defaults (see bench_server.hpp) except max_message_bytes = 1 MiB:
// room.joined lists the members, and with the default 64 KiB a room of
// 10,000 distinct principals cannot be joined at all (the endpoint undoes
// a join whose answer would exceed max_message_bytes).
#include <chrono>
#include <map>
#include <memory>

#include "bench_server.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;

struct room_fixture {
    explicit room_fixture(std::size_t n) : members_wanted(n) {}
    std::size_t members_wanted;
    std::unique_ptr<srv::server::endpoint> ep;
    std::vector<srv::server::conn_id> members;
    tether::time_point now = tether::at_ms(1000);
    std::vector<std::uint8_t> frame;
    std::uint64_t next_id = 0;
    std::size_t serialisations = 0;
    bool ok = false;
};

srv::server::config fanout_config() {
    auto c = srv::config();
    c.max_message_bytes = 1u << 20;
    return c;
}

/// The publisher's next frame (new id each time) into fx.frame.
void next_frame(room_fixture& fx) {
    char text[256];
    const char head[] = R"({"kind":"chat.message","room_id":"fanout","id":"m)";
    const char tail[] = R"(","payload":{"text":"the build is green again, merging now 🚀","mentions":["user-2"]}})";
    std::size_t n = sizeof head - 1;
    std::memcpy(text, head, n);
    n = static_cast<std::size_t>(std::to_chars(text + n, text + 64, ++fx.next_id).ptr - text);
    std::memcpy(text + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    srv::client_frame({text, n}, fx.frame);
}

/// What the loop does after a broadcast: write every connection it was told to.
void flush_all(srv::server::endpoint& ep) {
    while (auto e = ep.poll_event())
        if (e->type == srv::server::event_type::flush) srv::release_output(ep, e->conn);
}

void build(room_fixture& fx, std::size_t warmup) {
    fx.ep = std::make_unique<srv::server::endpoint>(fanout_config());
    auto& ep = *fx.ep;
    std::vector<std::uint8_t> scratch;
    const double t0 = thread_cpu_seconds();
    for (std::size_t i = 0; i < fx.members_wanted; ++i) {
        fx.members.push_back(srv::open_session(ep, fx.now, srv::principal(i), "fanout", scratch));
        if (i % 256 == 255) flush_all(ep);  // presence.joined to earlier members
    }
    flush_all(ep);
    record("server/build_room_of_" + std::to_string(fx.members_wanted) + "_s", thread_cpu_seconds() - t0,
           "s CPU (N sessions: upgrade, hello, join)");
    const auto info = ep.room("fanout");
    if (!info || info->members != fx.members_wanted) return;
    for (std::size_t k = 0; k < warmup; ++k) {
        next_frame(fx);
        fx.now += 1s;
        ep.handle_bytes(fx.now, fx.members[0], fx.frame);
        flush_all(ep);
    }
    // One checked broadcast: every member got the event, and how many
    // distinct byte blocks hold it (1 = serialised and framed once).
    next_frame(fx);
    fx.now += 1s;
    ep.handle_bytes(fx.now, fx.members[0], fx.frame);
    std::vector<const std::uint8_t*> blocks;
    for (const auto& m : fx.members) {
        const auto run = ep.pending_output(m);
        if (run.empty()) return;
        blocks.push_back(run.data());
    }
    std::sort(blocks.begin(), blocks.end());
    fx.serialisations = static_cast<std::size_t>(std::unique(blocks.begin(), blocks.end()) - blocks.begin());
    const auto first = ep.pending_output(fx.members.back());
    const std::string_view text(reinterpret_cast<const char*>(first.data()), first.size());
    if (text.find(R"("event_id":)") == std::string_view::npos || text.find("merging now") == std::string_view::npos)
        return;
    flush_all(ep);
    fx.ok = true;
}

// Rooms are kept until the studies start: repetitions run interleaved with
// every other benchmark, and a room of 10,000 must be built only once.
std::map<std::size_t, std::unique_ptr<room_fixture>>& cached() {
    static std::map<std::size_t, std::unique_ptr<room_fixture>> rooms;
    return rooms;
}

room_fixture& fixture(std::size_t n) {
    auto& fx = cached()[n];
    if (!fx) {
        fx = std::make_unique<room_fixture>(n);
        build(*fx, quick() ? 100 : 1100);
    }
    return *fx;
}

void fanout_queued(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    room_fixture& fx = fixture(n);
    if (!fx.ok) return state.SkipWithError("room setup failed");
    auto& ep = *fx.ep;
    std::uint64_t allocs = 0;
    std::map<std::uint64_t, std::uint64_t> histogram;
    for (auto _ : state) {
        next_frame(fx);
        fx.now += 1s;
        const double t0 = thread_cpu_seconds();
        const std::uint64_t a0 = alloc_calls();
        ep.handle_bytes(fx.now, fx.members[0], fx.frame);
        const std::uint64_t a1 = alloc_calls();
        const double t1 = thread_cpu_seconds();
        state.SetIterationTime(t1 - t0);
        allocs += a1 - a0;
        ++histogram[a1 - a0];
        flush_all(ep);
    }
    std::uint64_t typical = 0, most = 0;
    for (const auto& [k, v] : histogram)
        if (v > most) most = v, typical = k;
    state.counters["members"] = static_cast<double>(n);
    state.counters["allocs_per_broadcast"] = static_cast<double>(allocs) / static_cast<double>(state.iterations());
    state.counters["allocs_typical"] = static_cast<double>(typical);
    state.counters["serialisations"] = static_cast<double>(fx.serialisations);
    state.SetItemsProcessed(static_cast<std::int64_t>(n) * state.iterations());
}

void fanout_cycle(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    room_fixture& fx = fixture(n);
    if (!fx.ok) return state.SkipWithError("room setup failed");
    auto& ep = *fx.ep;
    for (auto _ : state) {
        next_frame(fx);
        fx.now += 1s;
        ep.handle_bytes(fx.now, fx.members[0], fx.frame);
        flush_all(ep);
    }
    state.counters["members"] = static_cast<double>(n);
    state.SetItemsProcessed(static_cast<std::int64_t>(n) * state.iterations());
}

void register_fanout(bool quick) {
    // Each room is built once (see cached()) and shared by both variants.
    for (const std::int64_t n : {std::int64_t{1}, std::int64_t{100}, quick ? std::int64_t{1000} : std::int64_t{10000}}) {
        benchmark::RegisterBenchmark("fanout/queued", fanout_queued)->Arg(n)->UseManualTime();
        benchmark::RegisterBenchmark("fanout/cycle", fanout_cycle)->Arg(n);
    }
    if (quick) note("--quick: fan-out rooms of 1, 100 and 1,000 members (not 10,000), shorter warm-up");
}
const registrar fanout_registrar(register_fanout);

// Free the rooms before the memory studies.
void release_fixture(bool) { cached().clear(); }
const study release_study("release the fan-out rooms", 0, release_fixture);

}  // namespace

}  // namespace bench

