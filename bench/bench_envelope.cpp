// Envelope parse, tether: envelope_reader over realistic 150-400 B tether v1
// envelopes, extracting kind, room_id, event_id, id and the payload as a raw
// slice (the reader also validates the whole text as strict I-JSON and every
// field the protocol names; the peers do less, see their files).
//
// Steady state: one reader, reused as the server does; the first pass warms
// it up (its arena and scanner stacks grow to the largest text once), then
// allocations are counted over the timed loop and reported per message.
#include "bench_common.hpp"
#include "tether/proto/envelope.hpp"

namespace bench {

namespace {

void envelope_tether(benchmark::State& state) {
    const auto& texts = sample_envelopes();
    const auto& expect = expected_envelope_fields();
    tether::proto::envelope_reader reader;
    tether::proto::envelope env;
    // Check (and warm up) once.
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const auto r = reader.read(texts[i], env);
        const auto& x = expect[i];
        if (!r || env.kind != x.kind || env.room_id != x.room_id || env.id != x.id ||
            env.event_id.value_or(-1) != x.event_id || env.payload != x.payload)
            return state.SkipWithError("wrong fields");
    }
    std::uint64_t sum = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        for (const auto& t : texts) {
            if (!reader.read(t, env)) return state.SkipWithError("parse failed");
            sum += env.kind.size() + env.room_id.size() + env.id.size() + env.payload.size() +
                   static_cast<std::uint64_t>(env.event_id.value_or(0));
        }
    }
    benchmark::DoNotOptimize(sum);
    const double messages = static_cast<double>(texts.size()) * static_cast<double>(state.iterations());
    state.counters["allocs_per_msg"] = static_cast<double>(alloc_calls() - a0) / messages;
    state.SetBytesProcessed(static_cast<std::int64_t>(sample_envelope_bytes()) * state.iterations());
    state.SetItemsProcessed(static_cast<std::int64_t>(messages));
}

}  // namespace

}  // namespace bench

BENCHMARK(bench::envelope_tether)->Name("envelope/tether");
