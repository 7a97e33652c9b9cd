// websocketpp (libwebsocketpp-dev 0.8.2, header-only) beside tether: frame
// decode, frame encode, the server handshake, and the memory of one
// connection.
//
// Compiled as C++17 (websocketpp's endpoint and logger do not compile as
// C++20), so this file sees only bench_common.hpp, never tether.
//
// In process, no sockets: decode and encode use websocketpp's RFC 6455 layer
// itself, processor::hybi13 in server role, the way its connection does —
// read into the connection's 16 KiB buffer, consume(), get_message() when
// ready(); a send builds a message and prepare_data_frame()s it into a
// second one whose header and payload are then written. The handshake runs
// the steps of connection::process_handshake_request() on the processor.
// The memory figure uses a whole websocketpp::connection over the iostream
// transport (its socket-free transport), with logging off.
#include <websocketpp/config/core.hpp>
#include <websocketpp/processors/hybi13.hpp>
#include <websocketpp/server.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <ostream>
#include <streambuf>

#include "bench_common.hpp"

namespace bench {

namespace {

using cfg = websocketpp::config::core;
using processor = websocketpp::processor::hybi13<cfg>;
using msg_manager = cfg::con_msg_manager_type;

struct parts {
    msg_manager::ptr mgr = std::make_shared<msg_manager>();
    cfg::rng_type rng;
    processor proc{false, true, mgr, rng};
};

void decode_wspp(benchmark::State& state) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const std::size_t frames = decode_frames_for(size);
    const auto wire = masked_text_frames(size, frames);
    const std::string expect = sample_text(size);
    parts p;
    std::vector<std::uint8_t> buf(cfg::connection_read_buffer_size);
    bool checked = false;
    std::size_t messages = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        std::size_t pos = 0;
        while (pos < wire.size()) {
            const std::size_t n = std::min(buf.size(), wire.size() - pos);
            std::memcpy(buf.data(), wire.data() + pos, n);
            pos += n;
            std::size_t at = 0;
            while (at < n) {
                websocketpp::lib::error_code ec;
                at += p.proc.consume(buf.data() + at, n - at, ec);
                if (ec) return state.SkipWithError(ec.message().c_str());
                if (p.proc.ready()) {
                    const auto m = p.proc.get_message();
                    if (!checked) {
                        checked = true;
                        if (m->get_opcode() != websocketpp::frame::opcode::text || m->get_payload() != expect)
                            return state.SkipWithError("wrong message");
                    }
                    benchmark::DoNotOptimize(m->get_payload().data());
                    ++messages;
                }
            }
        }
    }
    if (messages != frames * static_cast<std::size_t>(state.iterations())) state.SkipWithError("lost messages");
    state.counters["allocs_per_msg"] =
        static_cast<double>(alloc_calls() - a0) / static_cast<double>(messages ? messages : 1);
    state.SetBytesProcessed(static_cast<std::int64_t>(wire.size()) * state.iterations());
    state.SetItemsProcessed(static_cast<std::int64_t>(messages));
}

void encode_wspp(benchmark::State& state) {
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const std::size_t frames = encode_frames_for(size);
    const std::string text = sample_text(size);
    parts p;
    sink out;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        for (std::size_t k = 0; k < frames; ++k) {
            // connection::send(payload, op)
            auto msg = p.mgr->get_message(websocketpp::frame::opcode::text, text.size());
            msg->append_payload(text);
            auto outgoing = p.mgr->get_message();
            const auto ec = p.proc.prepare_data_frame(msg, outgoing);
            if (ec) return state.SkipWithError(ec.message().c_str());
            // the transport's gathered write of header and payload
            const std::string& h = outgoing->get_header();
            const std::string& b = outgoing->get_payload();
            out.put(h.data(), h.size());
            out.put(b.data(), b.size());
        }
    }
    const std::size_t head = size < 126 ? 2 : size <= 0xFFFF ? 4 : 10;
    if (out.total != (size + head) * frames * static_cast<std::size_t>(state.iterations()))
        state.SkipWithError("wrong byte count");
    state.counters["allocs_per_msg"] = static_cast<double>(alloc_calls() - a0) /
                                       static_cast<double>(frames * static_cast<std::size_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<std::int64_t>(size * frames) * state.iterations());
    state.SetItemsProcessed(static_cast<std::int64_t>(frames) * state.iterations());
}

/// connection::process_handshake_request() + write_http_response(), on the
/// processor. Returns the 101 response ("" on failure).
std::string handshake_once(const msg_manager::ptr& mgr, cfg::rng_type& rng, const std::string& raw) {
    auto proc = std::make_shared<processor>(false, true, mgr, rng);  // per connection, as in get_processor()
    websocketpp::http::parser::request req;
    std::size_t used = req.consume(raw.data(), raw.size());
    if (used != raw.size() || !req.ready()) return {};
    if (!websocketpp::processor::is_websocket_handshake(req)) return {};
    if (websocketpp::processor::get_websocket_version(req) != 13) return {};
    if (proc->validate_handshake(req)) return {};
    websocketpp::http::parser::response res;
    const auto neg = proc->negotiate_extensions(req);
    if (!neg.first && !neg.second.empty()) res.replace_header("Sec-WebSocket-Extensions", neg.second);
    const auto uri = proc->get_uri(req);
    if (!uri->get_valid()) return {};
    std::vector<std::string> offered;
    (void)proc->extract_subprotocols(req, offered);
    std::string sub;
    for (const auto& s : offered)
        if (s == "tether.v1") sub = s;
    res.set_status(websocketpp::http::status_code::switching_protocols);
    if (proc->process_handshake(req, sub, res)) return {};
    res.set_version("HTTP/1.1");
    res.replace_header("Server", "WebSocket++/0.8.2");
    return res.raw();
}

void handshake_wspp(benchmark::State& state) {
    const auto mgr = std::make_shared<msg_manager>();
    cfg::rng_type rng;
    const std::string& req = browser_upgrade_request();
    if (!is_valid_101(handshake_once(mgr, rng, req))) return state.SkipWithError("bad 101 response");
    sink out;
    std::size_t ok = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        const std::string res = handshake_once(mgr, rng, req);
        ok += !res.empty();
        out.put(res.data(), res.size());
    }
    if (static_cast<std::int64_t>(ok) != state.iterations()) state.SkipWithError("handshake failed");
    state.counters["allocs_per_op"] =
        static_cast<double>(alloc_calls() - a0) / static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations());
}

// An ostream that drops everything (the iostream transport's "socket").
class null_buf : public std::streambuf {
protected:
    int_type overflow(int_type c) override { return traits_type::not_eof(c); }
    std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

// Memory of one open websocketpp connection after the handshake and one
// 64 B message each way: the connection object (make_shared, so sizeof is in
// its heap chunk; it embeds a 16 KiB read buffer) plus everything it holds
// (processor, request/response, handlers, URI, ...), averaged over 1,000
// connections alive at once. The endpoint is created before counting starts.
void wspp_memory(bool) {
    constexpr std::size_t n = 1000;
    null_buf nb;
    std::ostream sink_stream(&nb);
    websocketpp::server<cfg> server;
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.register_ostream(&sink_stream);
    const std::string& req = browser_upgrade_request();
    const auto frame = masked_text_frames(64, 1);
    const std::string text = sample_text(64);
    std::size_t got = 0;
    server.set_message_handler([&](websocketpp::connection_hdl, websocketpp::server<cfg>::message_ptr) { ++got; });
    std::vector<websocketpp::server<cfg>::connection_ptr> conns;
    conns.reserve(n);
    count_heap_bytes(true);
    const std::int64_t h0 = live_heap_bytes();
    for (std::size_t i = 0; i < n; ++i) {
        auto con = server.get_connection();
        con->start();
        con->read_all(req.data(), req.size());
        conns.push_back(con);
    }
    const std::int64_t h1 = live_heap_bytes();
    for (auto& con : conns) {
        con->read_all(reinterpret_cast<const char*>(frame.data()), frame.size());
        con->send(text, websocketpp::frame::opcode::text);
    }
    const std::int64_t h2 = live_heap_bytes();
    count_heap_bytes(false);
    if (got != n) return failure("websocketpp memory: messages lost");
    record("memory/wspp/sizeof", static_cast<double>(sizeof(websocketpp::connection<cfg>)), "B");
    record("memory/wspp/conn_bytes", static_cast<double>(h2 - h0) / n, "B");
    record("memory/wspp/conn_bytes_after_handshake", static_cast<double>(h1 - h0) / n, "B");
}

const study wspp_memory_study("websocketpp per-connection memory", 31, wspp_memory);

}  // namespace

}  // namespace bench

BENCHMARK(bench::decode_wspp)->Name("decode/websocketpp")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::encode_wspp)->Name("encode/websocketpp")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::handshake_wspp)->Name("handshake/websocketpp");
