// tether v1 server at scale: timer costs with 100,000 connections, counted
// in heap operations (never wall time), and the memory an idle session
// holds, measured with the allocator's own counters.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tether/server/endpoint.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TETHER_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TETHER_TEST_ASAN 1
#endif

#if defined(TETHER_TEST_ASAN)
// From <sanitizer/allocator_interface.h>, which not every toolchain installs.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#define TETHER_TEST_HEAP 1
static std::size_t heap_in_use() { return __sanitizer_get_current_allocated_bytes(); }
#elif defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 33)
#include <malloc.h>
#define TETHER_TEST_HEAP 1
static std::size_t heap_in_use() { return mallinfo2().uordblks; }
#endif
#endif

namespace {

namespace ws = tether::ws;
namespace server = tether::server;
using tether::at_ms;
using tether::time_point;
using namespace std::chrono_literals;

using bytes = std::vector<std::uint8_t>;

/// A masked client text frame (RFC 6455 §5.2), written independently of the library.
bytes client_text(std::string_view text) {
    const std::array<std::uint8_t, 4> key{0x11, 0x22, 0x33, 0x44};
    bytes f{0x81};
    const std::size_t n = text.size();
    if (n < 126) {
        f.push_back(static_cast<std::uint8_t>(0x80 | n));
    } else {
        f.push_back(0x80 | 126);
        f.push_back(static_cast<std::uint8_t>(n >> 8));
        f.push_back(static_cast<std::uint8_t>(n));
    }
    f.insert(f.end(), key.begin(), key.end());
    for (std::size_t i = 0; i < n; ++i) f.push_back(static_cast<std::uint8_t>(text[i]) ^ key[i % 4]);
    return f;
}

bytes upgrade_request(std::string_view principal) {
    const std::string r = std::string("GET /?token=") + std::string(principal) +
                          " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Protocol: tether.v1\r\n\r\n";
    return bytes(r.begin(), r.end());
}

server::config scale_cfg() {
    server::config c;
    c.seed = 1;
    c.authenticate = [](const ws::http_request& req) {
        server::auth_result r;
        r.principal = req.query_param("token").value_or("");
        if (r.principal.empty()) r.status = 401;
        return r;
    };
    return c;
}

/// Throw away everything the endpoint queued (the loop's writes).
void discard_output(server::endpoint& ep, server::conn_id id) { ep.consume_output(id, ep.buffered_output(id)); }
void discard_events(server::endpoint& ep) {
    while (ep.poll_event()) {
    }
}

/// A full session from raw bytes: upgrade, hello, join `room`.
server::conn_id raw_session(server::endpoint& ep, time_point now, const bytes& upgrade, const bytes& join) {
    const auto id = ep.open_connection(now);
    ep.handle_bytes(now, id, upgrade);
    ep.handle_bytes(now, id, join);
    discard_output(ep, id);
    return id;
}

}  // namespace

TEST_CASE("timers with 100,000 connections: next_deadline is O(1), a re-arm is free, a wakeup is O(log n)") {
    struct cost {
        std::uint64_t deadline_ops;
        std::uint64_t wakeups;
        std::uint64_t wakeup_sifts;
        std::uint64_t rearm_ops;
    };
    const bytes upgrade = upgrade_request("idle");
    const bytes join = client_text(R"({"kind":"client.join","room_id":"lobby"})");
    const bytes pong = client_text(R"({"kind":"client.pong","ts":1})");

    auto measure = [&](std::size_t n) {
        server::endpoint ep(scale_cfg());
        time_point now = at_ms(0);
        // 100 full sessions (heartbeat timers), the rest still in the opening
        // handshake (handshake timers), deadlines spread 1 us apart.
        std::vector<server::conn_id> sessions;
        for (int k = 0; k < 100; ++k) sessions.push_back(raw_session(ep, now, upgrade, join));
        for (std::size_t k = 100; k < n; ++k) {
            now += 1us;
            (void)ep.open_connection(now);
        }
        discard_events(ep);
        REQUIRE(ep.connection_count() == n);
        REQUIRE(ep.session_count() == 100);
        cost c{};

        auto s0 = ep.timer_stats();
        time_point first = tether::never;
        for (int k = 0; k < 1000; ++k) first = ep.next_deadline();
        auto s1 = ep.timer_stats();
        c.deadline_ops = (s1.sift_steps - s0.sift_steps) + (s1.updates - s0.updates) + (s1.inserts - s0.inserts);
        CHECK(first == at_ms(0) + 10s + 1us);  // the first handshake-only connection

        // Every session sends a frame: the liveness deadline moves later,
        // which must not touch the heap.
        now += 1ms;
        for (const auto& id : sessions) ep.handle_bytes(now, id, pong);
        auto s2 = ep.timer_stats();
        c.rearm_ops = (s2.sift_steps - s1.sift_steps) + (s2.updates - s1.updates) + (s2.inserts - s1.inserts) +
                      (s2.removes - s1.removes);

        // Exactly one connection is due.
        const auto w0 = ep.timer_wakeups();
        ep.handle_timeout(first);
        c.wakeups = ep.timer_wakeups() - w0;
        c.wakeup_sifts = ep.timer_stats().sift_steps - s2.sift_steps;
        CHECK(ep.next_deadline() == first + 1us);
        discard_events(ep);
        return c;
    };

    const cost small = measure(1000);
    const cost large = measure(100'000);
    MESSAGE("n=1000: wakeup sift steps " << small.wakeup_sifts << "; n=100000: " << large.wakeup_sifts);
    CHECK(small.deadline_ops == 0);
    CHECK(large.deadline_ops == 0);
    CHECK(small.rearm_ops == 0);
    CHECK(large.rearm_ops == 0);
    CHECK(small.wakeups == 1);
    CHECK(large.wakeups == 1);
    // Removing one entry sifts at most one path: depth of a 4-ary heap.
    const auto depth = [](double n) { return static_cast<std::uint64_t>(std::ceil(std::log(n) / std::log(4.0))) + 1; };
    CHECK(small.wakeup_sifts <= depth(1000));
    CHECK(large.wakeup_sifts <= depth(100'000));
}

TEST_CASE("heartbeat with many sessions: each ping is one wakeup, not a scan") {
    server::endpoint ep(scale_cfg());
    const bytes upgrade = upgrade_request("idle");
    const bytes join = client_text(R"({"kind":"client.join","room_id":"lobby"})");
    time_point now = at_ms(0);
    std::vector<server::conn_id> ids;
    for (int k = 0; k < 200; ++k) {
        ids.push_back(raw_session(ep, now, upgrade, join));
        now += 10ms;  // pings fall 10 ms apart
    }
    for (const auto& id : ids) discard_output(ep, id);  // presence.joined of later joiners
    discard_events(ep);
    const auto w0 = ep.timer_wakeups();
    ep.handle_timeout(at_ms(0) + 25s + 45ms);  // the first five are due
    CHECK(ep.timer_wakeups() - w0 == 5);
    std::size_t pinged = 0;
    for (const auto& id : ids) pinged += ep.buffered_output(id) > 0;
    CHECK(pinged == 5);
}

TEST_CASE("memory: bytes held per idle joined session") {
    MESSAGE("sizeof ws::connection " << sizeof(ws::connection) << ", server::connection_state "
                                     << sizeof(server::connection_state) << ", server::session "
                                     << sizeof(server::session) << ", membership " << sizeof(server::membership)
                                     << ", member_ref " << sizeof(server::member_ref));
#if defined(TETHER_TEST_HEAP)
    constexpr int n = 300;
    server::endpoint ep(scale_cfg());
    const bytes upgrade = upgrade_request("user-idle");
    const bytes join = client_text(R"({"kind":"client.join","room_id":"lobby"})");
    time_point now = at_ms(0);
    // Warm up shared scratch (reader arena, output string, event ring, room).
    std::vector<server::conn_id> warm, ids;
    for (int k = 0; k < 8; ++k) warm.push_back(raw_session(ep, now, upgrade, join));
    discard_events(ep);
    ids.reserve(n);
    // What the loop does after each call: write every connection's output.
    auto write_all = [&] {
        for (const auto& id : warm) discard_output(ep, id);
        for (const auto& id : ids) discard_output(ep, id);
    };
    write_all();
    const std::size_t h0 = heap_in_use();
    std::size_t after_open = 0, after_upgrade = 0;
    for (int k = 0; k < n; ++k) {
        const std::size_t a = heap_in_use();
        const auto id = ep.open_connection(now);
        const std::size_t b = heap_in_use();
        ep.handle_bytes(now, id, upgrade);
        const std::size_t c = heap_in_use();
        ep.handle_bytes(now, id, join);
        ids.push_back(id);
        write_all();
        discard_events(ep);
        after_open += b - a;
        after_upgrade += c - b;
    }
    const std::size_t h1 = heap_in_use();
    // Steady idle state: one heartbeat tick later, the pings written.
    now += 25s;
    ep.handle_timeout(now);
    write_all();
    discard_events(ep);
    const std::size_t h2 = heap_in_use();
    const double joined = static_cast<double>(h1 - h0) / n;
    const double idle = static_cast<double>(h2 - h0) / n;
    const auto mem = ep.memory();
    MESSAGE("per session: " << joined << " heap bytes right after join, " << idle
                            << " once idle (after one heartbeat tick); open_connection " << after_open / n
                            << ", upgrade+hello " << after_upgrade / n << "; endpoint-visible total "
                            << mem.total() << " (slots " << mem.connection_slot_bytes << ", ws inline "
                            << mem.connection_inline_bytes << ", sessions "
                            << mem.session_slot_bytes + mem.session_heap_bytes << ", rooms " << mem.room_bytes
                            << ", indexes " << mem.index_bytes << ", timers " << mem.timer_bytes << ")");
    // Regression guards, not targets: the figures are reported above.
    CHECK(idle < 3 * 1024);
    CHECK(joined < 8 * 1024);
    CHECK(mem.sessions == n + 8);
    CHECK(mem.output_bytes == 0);
#else
    MESSAGE("no allocator counters on this platform: heap bytes not measured");
#endif
}
