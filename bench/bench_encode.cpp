// Frame encode, tether: server text frames of 64 B, 1 KiB and 16 KiB, each
// written to a byte sink (what write() would take) and released.
//
// encode/tether runs with the default config, which checks that outgoing
// text is UTF-8 (websocketpp checks too; Beast does not): the comparison is
// not tilted towards tether by switching a check off. encode/tether_nocheck
// (validate_outgoing_utf8 = false) is the like-for-like row beside Beast.
#include "bench_common.hpp"
#include "tether/ws/connection.hpp"

namespace bench {

namespace {

template <bool CheckUtf8>
void encode_tether(benchmark::State& state) {
    using namespace tether::ws;
    const std::size_t size = static_cast<std::size_t>(state.range(0));
    const std::size_t frames = encode_frames_for(size);
    const std::string text = sample_text(size);
    config cfg;
    cfg.validate_outgoing_utf8 = CheckUtf8;
    auto c = connection::server(tether::at_ms(0), cfg);
    c.handle_bytes(tether::at_ms(0), browser_upgrade_request());
    while (auto e = c.poll_event())
        if (e->type == event_type::upgrade_request) (void)c.accept("tether.v1");
    c.consume_output(c.buffered_output());
    sink out;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        for (std::size_t k = 0; k < frames; ++k) {
            if (c.send_text(text)) {
                state.SkipWithError("send_text failed");
                return;
            }
            const auto run = c.pending_output();
            out.put(run.data(), run.size());
            c.consume_output(run.size());
        }
    }
    if (out.total != (size + frame_header_size(size, false)) * frames * state.iterations())
        state.SkipWithError("wrong byte count");
    state.counters["allocs_per_msg"] = static_cast<double>(alloc_calls() - a0) /
                                       static_cast<double>(frames * state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(size * frames * state.iterations()));
    state.SetItemsProcessed(static_cast<std::int64_t>(frames * state.iterations()));
}

}  // namespace

}  // namespace bench

BENCHMARK(bench::encode_tether<true>)->Name("encode/tether")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(bench::encode_tether<false>)->Name("encode/tether_nocheck")->Arg(64)->Arg(1024)->Arg(16384);
