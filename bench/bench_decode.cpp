// Frame decode, tether and the memcpy baseline: masked client text frames,
// UTF-8 checked, each message handed to the application (tether: a view into
// its input buffer, no copy).
//
// What "decode" includes, for every contender (here and in the peers' files):
// moving the wire bytes into the decoder's own read buffer (what recv() does
// in real life, in the contender's natural read size; tether: handle_bytes(),
// or the caller's copy into read_buffer() for decode/tether_read), parsing the header,
// unmasking, validating UTF-8 and handing the message to the application.
// One iteration is the same ~1 MiB stream of frames for everyone, so the
// ratio of times per iteration is the ratio of throughputs.
#include <cstring>

#include "bench_common.hpp"
#include "tether/ws/connection.hpp"

namespace bench {

namespace {

tether::ws::connection open_server() {
    using namespace tether::ws;
    auto c = connection::server(tether::at_ms(0), {});
    c.handle_bytes(tether::at_ms(0), std::string_view(
        "GET / HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    while (auto e = c.poll_event()) {
        if (e->type == event_type::upgrade_request) (void)c.accept();
    }
    c.consume_output(c.buffered_output());
    return c;
}

// How the bytes reach the connection: handle_bytes() copies them in from
// the caller's memory (as Beast's stream read and websocketpp's read buffer
// here copy them into theirs), unmasking and checking data frames during
// that copy; read_buffer() + handle_read() lets the caller (recv(), here a
// memcpy) write into the connection's buffer, and poll_event() unmasks and
// checks in place afterwards: a second pass over the bytes.
enum class feed { bytes, read };

void decode_tether_by(benchmark::State& state, feed how) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const std::size_t frames = decode_frames_for(size);
    const auto wire = masked_text_frames(size, frames);
    const std::string expect = sample_text(size);
    auto c = open_server();
    std::size_t messages = 0;
    bool checked = false;
    const std::uint64_t a0 = alloc_calls();
    constexpr std::size_t read_size = 64u << 10;
    for (auto _ : state) {
        std::size_t pos = 0;
        while (pos < wire.size()) {
            if (how == feed::bytes) {
                const std::size_t n = std::min(read_size, wire.size() - pos);
                pos += c.handle_bytes(tether::at_ms(0), std::span<const std::uint8_t>(wire.data() + pos, n));
            } else {
                auto buf = c.read_buffer(read_size);
                const std::size_t n = std::min(buf.size(), wire.size() - pos);
                std::memcpy(buf.data(), wire.data() + pos, n);
                c.handle_read(tether::at_ms(0), n);
                pos += n;
            }
            while (auto e = c.poll_event()) {
                if (!checked) {
                    checked = true;
                    if (e->type != tether::ws::event_type::message || e->text() != expect)
                        state.SkipWithError("wrong message");
                }
                benchmark::DoNotOptimize(e->data.data());
                ++messages;
            }
        }
    }
    if (messages != frames * state.iterations()) state.SkipWithError("lost messages");
    state.counters["allocs_per_msg"] =
        static_cast<double>(alloc_calls() - a0) / static_cast<double>(messages ? messages : 1);
    state.SetBytesProcessed(static_cast<std::int64_t>(wire.size() * state.iterations()));
    state.SetItemsProcessed(static_cast<std::int64_t>(messages));
}

void decode_tether(benchmark::State& state) { decode_tether_by(state, feed::bytes); }
void decode_tether_read(benchmark::State& state) { decode_tether_by(state, feed::read); }

void decode_memcpy(benchmark::State& state) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const std::size_t frames = decode_frames_for(size);
    const auto wire = masked_text_frames(size, frames);
    std::vector<std::uint8_t> dst(64u << 10);
    for (auto _ : state) {
        std::size_t pos = 0;
        while (pos < wire.size()) {
            const std::size_t n = std::min(dst.size(), wire.size() - pos);
            std::memcpy(dst.data(), wire.data() + pos, n);
            benchmark::ClobberMemory();
            pos += n;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(wire.size() * state.iterations()));
    state.SetItemsProcessed(static_cast<std::int64_t>(frames * state.iterations()));
}

}  // namespace

}  // namespace bench

BENCHMARK(bench::decode_tether)->Name("decode/tether")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::decode_tether_read)->Name("decode/tether_read")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::decode_memcpy)->Name("decode/memcpy")->Arg(64)->Arg(1024)->Arg(16384);
