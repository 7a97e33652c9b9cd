// Envelope parse, nlohmann::json (nlohmann-json3-dev): parse each envelope to
// a DOM, then extract kind, room_id, event_id and id by reference (no string
// copies). nlohmann has no raw slice of a value, so the payload is taken as
// a reference to its subtree; a relay would also have to dump() it back to
// text, which is NOT charged here (it only flatters nlohmann).
#include <nlohmann/json.hpp>

#include "bench_common.hpp"

namespace bench {

namespace {

using json = nlohmann::json;

struct extracted {
    const std::string* kind = nullptr;
    const std::string* room_id = nullptr;
    const std::string* id = nullptr;
    std::int64_t event_id = -1;
    const json* payload = nullptr;
};

bool extract(const json& j, extracted& x) {
    if (!j.is_object()) return false;
    const auto kind = j.find("kind"), room = j.find("room_id"), id = j.find("id"), ev = j.find("event_id"),
               payload = j.find("payload");
    if (kind == j.end() || !kind->is_string() || room == j.end() || !room->is_string() || id == j.end() ||
        !id->is_string() || payload == j.end())
        return false;
    x.kind = &kind->get_ref<const std::string&>();
    x.room_id = &room->get_ref<const std::string&>();
    x.id = &id->get_ref<const std::string&>();
    x.event_id = ev != j.end() && ev->is_number_integer() ? ev->get<std::int64_t>() : -1;
    x.payload = &*payload;
    return true;
}

void envelope_nlohmann(benchmark::State& state) {
    const auto& texts = sample_envelopes();
    const auto& expect = expected_envelope_fields();
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const json j = json::parse(texts[i], nullptr, false);
        extracted x;
        const auto& e = expect[i];
        if (j.is_discarded() || !extract(j, x) || *x.kind != e.kind || *x.room_id != e.room_id || *x.id != e.id ||
            x.event_id != e.event_id || *x.payload != json::parse(e.payload))
            return state.SkipWithError("wrong fields");
    }
    std::uint64_t sum = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        for (const auto& t : texts) {
            const json j = json::parse(t, nullptr, false);
            extracted x;
            if (j.is_discarded() || !extract(j, x)) return state.SkipWithError("parse failed");
            sum += x.kind->size() + x.room_id->size() + x.id->size() + x.payload->size() +
                   static_cast<std::uint64_t>(x.event_id);
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

BENCHMARK(bench::envelope_nlohmann)->Name("envelope/nlohmann");
