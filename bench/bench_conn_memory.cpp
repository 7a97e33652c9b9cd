// Memory of one tether WebSocket connection, measured the same way as the
// Beast and websocketpp figures (bench_beast.cpp, bench_wspp.cpp): 1,000
// server connections alive at once, each after the browser handshake and
// one 64 B message each way, heap bytes live (operator new, allocator
// rounding included) plus nothing else, since the connection object itself
// is heap-allocated here too (as the endpoint does). tether keeps the
// message in its own input buffer, so unlike Beast no application read
// buffer is needed on top.
//
// Two figures: as left by that traffic (buffers kept, as Beast and
// websocketpp keep theirs), and after shrink_buffers(), which the endpoint
// calls for connections idle for a heartbeat period.
#include <memory>

#include "bench_common.hpp"
#include "tether/ws/connection.hpp"

namespace bench {

namespace {

void conn_memory(bool) {
    using namespace tether::ws;
    constexpr std::size_t n = 1000;
    const auto frame = masked_text_frames(64, 1);
    const std::string text = sample_text(64);
    const std::string& req = browser_upgrade_request();
    std::vector<std::unique_ptr<connection>> conns;
    conns.reserve(n);
    const config cfg{};
    count_heap_bytes(true);
    const std::int64_t h0 = live_heap_bytes();
    for (std::size_t i = 0; i < n; ++i) {
        conns.push_back(std::make_unique<connection>(connection::server(tether::at_ms(0), cfg)));
        connection& c = *conns.back();
        c.handle_bytes(tether::at_ms(0), req);
        while (auto e = c.poll_event())
            if (e->type == event_type::upgrade_request) (void)c.accept("tether.v1");
        c.consume_output(c.buffered_output());
    }
    const std::int64_t h1 = live_heap_bytes();
    std::size_t got = 0;
    for (auto& cp : conns) {
        connection& c = *cp;
        c.handle_bytes(tether::at_ms(0), {frame.data(), frame.size()});
        while (auto e = c.poll_event()) got += e->type == event_type::message && e->text() == text;
        (void)c.send_text(text);
        c.consume_output(c.buffered_output());
    }
    const std::int64_t h2 = live_heap_bytes();
    for (auto& c : conns) c->shrink_buffers();
    const std::int64_t h3 = live_heap_bytes();
    count_heap_bytes(false);
    if (got != n) return failure("tether connection memory: messages lost");
    record("memory/tether/sizeof", static_cast<double>(sizeof(connection)), "B");
    record("memory/tether/conn_bytes_after_handshake", static_cast<double>(h1 - h0) / n, "B");
    record("memory/tether/conn_bytes", static_cast<double>(h2 - h0) / n, "B");
    record("memory/tether/conn_bytes_idle", static_cast<double>(h3 - h0) / n, "B");
}

const study conn_memory_study("tether per-connection memory", 29, conn_memory);

}  // namespace

}  // namespace bench
