// Envelope parse, simdjson On-Demand (libsimdjson-dev): iterate the
// envelope's fields once, in document order (the fastest On-Demand idiom),
// comparing raw keys; kind, room_id and id with get_string(), event_id with
// get_uint64(), the payload as raw JSON text with raw_json() (3.0.1 has it
// on objects and arrays; scalars use raw_json_token()). Fields not asked for
// are skipped, not validated — On-Demand's advantage, kept. The inputs are
// given the SIMDJSON_PADDING bytes of slack simdjson needs, in place (a
// server can allocate its read buffer with that slack), so no copy is timed.
#include <simdjson.h>

#include "bench_common.hpp"

namespace bench {

namespace {

namespace od = simdjson::ondemand;

struct extracted {
    std::string_view kind, room_id, id, payload;
    std::int64_t event_id = -1;
};

simdjson::error_code raw_value(od::value v, std::string_view& out) {
    od::json_type t;
    if (auto e = v.type().get(t)) return e;
    if (t == od::json_type::object) {
        od::object o;
        if (auto e = v.get_object().get(o)) return e;
        return o.raw_json().get(out);
    }
    if (t == od::json_type::array) {
        od::array a;
        if (auto e = v.get_array().get(a)) return e;
        return a.raw_json().get(out);
    }
    out = v.raw_json_token();
    return simdjson::SUCCESS;
}

bool extract(od::parser& parser, const simdjson::padded_string_view& text, extracted& x) {
    od::document doc;
    if (parser.iterate(text).get(doc)) return false;
    od::object obj;
    if (doc.get_object().get(obj)) return false;
    for (auto field : obj) {
        od::raw_json_string key;
        if (field.key().get(key)) return false;
        if (key == "kind") {
            if (field.value().get_string().get(x.kind)) return false;
        } else if (key == "room_id") {
            if (field.value().get_string().get(x.room_id)) return false;
        } else if (key == "id") {
            if (field.value().get_string().get(x.id)) return false;
        } else if (key == "event_id") {
            std::uint64_t v;
            if (field.value().get_uint64().get(v)) return false;
            x.event_id = static_cast<std::int64_t>(v);
        } else if (key == "payload") {
            if (raw_value(field.value(), x.payload)) return false;
        }
    }
    return true;
}

void envelope_simdjson(benchmark::State& state) {
    const auto& texts = sample_envelopes();
    const auto& expect = expected_envelope_fields();
    std::vector<std::string> padded;
    std::vector<simdjson::padded_string_view> views;
    padded.reserve(texts.size());
    for (const auto& t : texts) {
        padded.push_back(t);
        padded.back().reserve(t.size() + simdjson::SIMDJSON_PADDING);
    }
    for (const auto& p : padded) views.emplace_back(p.data(), p.size(), p.capacity());
    od::parser parser;
    for (std::size_t i = 0; i < views.size(); ++i) {
        extracted x;
        const auto& e = expect[i];
        // payload: raw_json() of an object ends at its closing brace.
        if (!extract(parser, views[i], x) || x.kind != e.kind || x.room_id != e.room_id || x.id != e.id ||
            x.event_id != e.event_id || x.payload != e.payload)
            return state.SkipWithError("wrong fields");
    }
    std::uint64_t sum = 0;
    const std::uint64_t a0 = alloc_calls();
    for (auto _ : state) {
        for (const auto& v : views) {
            extracted x;
            if (!extract(parser, v, x)) return state.SkipWithError("parse failed");
            sum += x.kind.size() + x.room_id.size() + x.id.size() + x.payload.size() +
                   static_cast<std::uint64_t>(x.event_id);
        }
    }
    benchmark::DoNotOptimize(sum);
    const double messages = static_cast<double>(texts.size()) * static_cast<double>(state.iterations());
    state.counters["allocs_per_msg"] = static_cast<double>(alloc_calls() - a0) / messages;
    state.SetBytesProcessed(static_cast<std::int64_t>(sample_envelope_bytes()) * state.iterations());
    state.SetItemsProcessed(static_cast<std::int64_t>(messages));
}

void simdjson_notes(bool) {
    note(std::string("simdjson: stage 1 runs as '") +
         simdjson::get_active_implementation()->name() + "' (runtime dispatch), the On-Demand front end as '" +
         simdjson::builtin_implementation()->name() + "' (compile flags; no -march, like tether)");
}

const study simdjson_note_study("simdjson implementation", 90, simdjson_notes);

}  // namespace

}  // namespace bench

BENCHMARK(bench::envelope_simdjson)->Name("envelope/simdjson");
