// Frame decode: masked client text frames, UTF-8 checked, message handed out
// without a copy — beside a memcpy of the same bytes.
//
// What "decode" includes, for every contender: moving the wire bytes into
// the decoder's own read buffer (what recv() does in real life; it is also
// the only way to re-run an in-place unmask), parsing the header, unmasking,
// validating UTF-8 and handing the message to the application.
#include <cstring>

#include "bench_common.hpp"
#include "tether/ws/connection.hpp"

namespace bench {

std::string sample_text(std::size_t size, std::uint64_t seed) {
    static const char* const words[] = {"hello ", "tether ", "κόσμε ", "frame ", "room ", "replay ", "ack ", "über "};
    tether::rng r(seed);
    std::string s;
    while (s.size() < size) s += words[r.below(8)];
    // Trim back to a code point boundary, pad with ASCII to the exact size.
    s.resize(size);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0x80)) s.pop_back();
    s.append(size - s.size(), '.');
    return s;
}

std::vector<std::uint8_t> masked_text_frames(std::size_t size, std::size_t count, std::uint64_t seed) {
    const std::string text = sample_text(size, seed);
    tether::rng r(seed + 1);
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < count; ++i) {
        std::uint8_t head[tether::ws::max_frame_header_size];
        std::array<std::uint8_t, 4> key;
        r.fill(key);
        const std::size_t hs = tether::ws::write_frame_header(head, true, tether::ws::opcode::text, size, &key);
        out.insert(out.end(), head, head + hs);
        const std::size_t at = out.size();
        out.insert(out.end(), text.begin(), text.end());
        tether::ws::apply_mask(std::span<std::uint8_t>(out.data() + at, size), key, 0);
    }
    return out;
}

namespace {

constexpr std::size_t stream_bytes = 1u << 20;  // ~1 MiB of frames per iteration

std::size_t frames_for(std::size_t size) {
    const std::size_t n = stream_bytes / (size + 14);
    return n ? n : 1;
}

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

void decode_tether(benchmark::State& state) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const auto wire = masked_text_frames(size, frames_for(size));
    auto c = open_server();
    std::size_t messages = 0;
    for (auto _ : state) {
        std::size_t pos = 0;
        while (pos < wire.size()) {
            auto buf = c.read_buffer(64u << 10);
            const std::size_t n = std::min(buf.size(), wire.size() - pos);
            std::memcpy(buf.data(), wire.data() + pos, n);
            c.handle_read(tether::at_ms(0), n);
            pos += n;
            while (auto e = c.poll_event()) {
                benchmark::DoNotOptimize(e->data.data());
                ++messages;
            }
        }
    }
    if (messages != frames_for(size) * state.iterations()) state.SkipWithError("lost messages");
    state.SetBytesProcessed(static_cast<std::int64_t>(wire.size() * state.iterations()));
    state.SetItemsProcessed(static_cast<std::int64_t>(messages));
}

void decode_memcpy(benchmark::State& state) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const auto wire = masked_text_frames(size, frames_for(size));
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
    state.SetItemsProcessed(static_cast<std::int64_t>(frames_for(size) * state.iterations()));
}

}  // namespace

}  // namespace bench

BENCHMARK(bench::decode_tether)->Name("decode/tether")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::decode_memcpy)->Name("decode/memcpy")->Arg(64)->Arg(1024)->Arg(16384);
