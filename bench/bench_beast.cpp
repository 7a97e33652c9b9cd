// Boost.Beast (libboost-dev, header-only) beside tether: frame decode, frame
// encode, the server handshake, and the memory of one connection.
//
// Beast is driven exactly as a server drives it — a websocket::stream in
// server role, accept() then read()/write() — over `wire_stream`, a minimal
// synchronous stream whose read_some copies from the wire bytes (what recv()
// does) and whose write_some copies to a byte sink (what send() does). This
// is fairer to Beast than beast::test::stream, which copies every input
// twice (append, then read_some) and takes a mutex per call.
//
// Beast's API hands a message out by copying it into a caller's dynamic
// buffer (here one flat_buffer, reused: no allocation in steady state). That
// copy is Beast's design, so it is part of its time.
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstring>
#include <memory>

#include "bench_common.hpp"

namespace bench {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

struct wire {
    const std::uint8_t* in = nullptr;
    std::size_t left = 0;
    sink* out = nullptr;
    void feed(const void* p, std::size_t n) {
        in = static_cast<const std::uint8_t*>(p);
        left = n;
    }
};

class wire_stream {
public:
    using executor_type = net::io_context::executor_type;

    wire_stream(net::io_context& ioc, wire& w) : ex_(ioc.get_executor()), w_(&w) {}
    executor_type get_executor() noexcept { return ex_; }

    template <class MutableBuffers>
    std::size_t read_some(const MutableBuffers& b, beast::error_code& ec) {
        if (w_->left == 0) {
            ec = net::error::eof;
            return 0;
        }
        ec = {};
        const std::size_t n = net::buffer_copy(b, net::const_buffer(w_->in, w_->left));
        w_->in += n;
        w_->left -= n;
        return n;
    }
    template <class MutableBuffers>
    std::size_t read_some(const MutableBuffers& b) {
        beast::error_code ec;
        const std::size_t n = read_some(b, ec);
        if (ec) throw beast::system_error(ec);
        return n;
    }

    template <class ConstBuffers>
    std::size_t write_some(const ConstBuffers& b, beast::error_code& ec) {
        ec = {};
        std::size_t n = 0;
        for (auto it = net::buffer_sequence_begin(b); it != net::buffer_sequence_end(b); ++it) {
            const net::const_buffer cb(*it);
            if (w_->out) w_->out->put(cb.data(), cb.size());
            n += cb.size();
        }
        return n;
    }
    template <class ConstBuffers>
    std::size_t write_some(const ConstBuffers& b) {
        beast::error_code ec;
        return write_some(b, ec);
    }

private:
    executor_type ex_;
    wire* w_;
};

// Closing would shut the transport down: nothing to do for bytes in memory.
void teardown(beast::role_type, wire_stream&, beast::error_code& ec) { ec = {}; }

using ws_stream = websocket::stream<wire_stream>;

void set_subprotocol(ws_stream& ws) {
    // Beast's way to answer with a subprotocol. (Checking that the client
    // offered it would need reading the request separately: skipped, which
    // only makes Beast's handshake cheaper.)
    ws.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::sec_websocket_protocol, "tether.v1"); }));
}

/// Accept the browser request on a fresh stream; the 101 goes to w.out.
bool accept(ws_stream& ws, wire& w) {
    const std::string& req = browser_upgrade_request();
    w.feed(req.data(), req.size());
    set_subprotocol(ws);
    beast::error_code ec;
    ws.accept(ec);
    return !ec;
}

void decode_beast(benchmark::State& state) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const std::size_t frames = decode_frames_for(size);
    const auto bytes = masked_text_frames(size, frames);
    const std::string expect = sample_text(size);
    net::io_context ioc;
    sink out;
    wire w;
    w.out = &out;
    ws_stream ws(ioc, w);
    if (!accept(ws, w)) return state.SkipWithError("accept failed");
    beast::flat_buffer buffer;
    bool checked = false;
    std::size_t messages = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        w.feed(bytes.data(), bytes.size());
        for (std::size_t k = 0; k < frames; ++k) {
            beast::error_code ec;
            ws.read(buffer, ec);
            if (ec) return state.SkipWithError(ec.message().c_str());
            if (!checked) {
                checked = true;
                const auto d = buffer.data();
                if (!ws.got_text() ||
                    std::string_view(static_cast<const char*>(d.data()), d.size()) != expect)
                    return state.SkipWithError("wrong message");
            }
            benchmark::DoNotOptimize(buffer.data().data());
            buffer.consume(buffer.size());
            ++messages;
        }
    }
    state.counters["allocs_per_msg"] =
        static_cast<double>(alloc_calls() - a0) / static_cast<double>(messages ? messages : 1);
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes.size() * state.iterations()));
    state.SetItemsProcessed(static_cast<std::int64_t>(messages));
}

void encode_beast(benchmark::State& state) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const std::size_t frames = encode_frames_for(size);
    const std::string text = sample_text(size);
    net::io_context ioc;
    sink out;
    wire w;
    w.out = &out;
    ws_stream ws(ioc, w);
    if (!accept(ws, w)) return state.SkipWithError("accept failed");
    ws.text(true);
    ws.auto_fragment(false);  // one frame per message, like the others
    const std::uint64_t before = out.total;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        for (std::size_t k = 0; k < frames; ++k) {
            beast::error_code ec;
            ws.write(net::buffer(text), ec);
            if (ec) return state.SkipWithError(ec.message().c_str());
        }
    }
    const std::size_t head = size < 126 ? 2 : size <= 0xFFFF ? 4 : 10;
    if (out.total - before != (size + head) * frames * state.iterations())
        state.SkipWithError("wrong byte count");
    state.counters["allocs_per_msg"] = static_cast<double>(alloc_calls() - a0) /
                                       static_cast<double>(frames * state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(size * frames * state.iterations()));
    state.SetItemsProcessed(static_cast<std::int64_t>(frames * state.iterations()));
}

void handshake_beast(benchmark::State& state) {
    net::io_context ioc;
    {
        // Check once that Beast answers the request correctly.
        sink first;
        wire w;
        w.out = &first;
        ws_stream ws(ioc, w);
        if (!accept(ws, w)) return state.SkipWithError("accept failed");
        const std::string resp(first.buf.begin(), first.buf.begin() + static_cast<std::ptrdiff_t>(first.at));
        if (!is_valid_101(resp)) return state.SkipWithError("bad 101 response");
    }
    sink out;
    wire w;
    w.out = &out;
    std::size_t ok = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        ws_stream ws(ioc, w);
        ok += accept(ws, w);
    }
    if (static_cast<std::int64_t>(ok) != state.iterations()) state.SkipWithError("accept failed");
    state.counters["allocs_per_op"] =
        static_cast<double>(alloc_calls() - a0) / static_cast<double>(state.iterations());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// Memory of one open Beast connection after the handshake and one 64 B
// message each way: sizeof(websocket::stream) plus the heap it holds (its
// shared impl: read buffer, handshake leftovers, timer), averaged over 1,000
// connections alive at once. The flat_buffer the application must keep to
// read messages into is reported separately (tether's equivalent is inside
// the connection and counted there).
void beast_memory(bool) {
    constexpr std::size_t n = 1000;
    net::io_context ioc;
    const auto frame = masked_text_frames(64, 1);
    const std::string text = sample_text(64);
    std::vector<wire> wires(n);
    std::vector<std::unique_ptr<ws_stream>> conns;
    std::vector<beast::flat_buffer> buffers(n);
    conns.reserve(n);
    sink out;
    count_heap_bytes(true);
    const std::int64_t h0 = live_heap_bytes();
    for (std::size_t i = 0; i < n; ++i) {
        wires[i].out = &out;
        conns.push_back(std::make_unique<ws_stream>(ioc, wires[i]));
        if (!accept(*conns[i], wires[i])) return failure("beast memory: accept failed");
    }
    const std::int64_t h1 = live_heap_bytes();
    for (std::size_t i = 0; i < n; ++i) {
        wires[i].feed(frame.data(), frame.size());
        beast::error_code ec;
        conns[i]->read(buffers[i], ec);
        if (ec) return failure("beast memory: read failed");
        conns[i]->text(true);
        conns[i]->write(net::buffer(text), ec);
        buffers[i].consume(buffers[i].size());
    }
    const std::int64_t h2 = live_heap_bytes();
    std::int64_t buffer_heap = 0;
    for (const auto& b : buffers) buffer_heap += static_cast<std::int64_t>(b.capacity());
    count_heap_bytes(false);
    // Each unique_ptr allocation holds exactly sizeof(ws_stream) (rounded by
    // malloc); count sizeof once, not twice.
    const double heap_per = static_cast<double>(h2 - h0 - buffer_heap) / n;
    record("memory/beast/sizeof", static_cast<double>(sizeof(ws_stream)), "B");
    record("memory/beast/conn_bytes", heap_per, "B");
    record("memory/beast/conn_bytes_after_handshake", static_cast<double>(h1 - h0) / n, "B");
    record("memory/beast/app_read_buffer", static_cast<double>(buffer_heap) / n, "B");
}

const study beast_memory_study("beast per-connection memory", 30, beast_memory);

}  // namespace

}  // namespace bench

BENCHMARK(bench::decode_beast)->Name("decode/beast")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::encode_beast)->Name("encode/beast")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::handshake_beast)->Name("handshake/beast");
