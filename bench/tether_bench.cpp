// tether_bench — every benchmark and study of bench/, then ratio tables.
//
//   tether_bench [--quick] [--json] [--no-studies] [google-benchmark flags...]
//
// --quick  a short pass (CI uses it to prove the benchmarks still run): one
//          repetition, 10 ms per benchmark, a fan-out room of 1,000 instead
//          of 10,000 and an idle-session study of 20,000 sessions instead of
//          100,000 (the output says so); the storm keeps its 100,000 clients
// --json   machine-readable results on stdout: every run, every figure,
//          every ratio and each target's verdict
// --no-studies  only the Google Benchmark runs (with --benchmark_filter, to
//          look at one benchmark, e.g. under perf)
// --simd=avx2|ssse3|scalar  cap tether's UTF-8 and unmask kernels at that
//          level (through the kernels' test hook): the figures of a CPU
//          without AVX-512 (or without AVX2), taken on this one. The
//          machine line says which level ran.
//
// Figures are ratios between contenders measured in the same process on the
// same bytes, so they mean something on any machine; absolute times do not.
//
// Exit status: 0, also when targets are missed; 1 when a benchmark or study
// could not measure correctly (wrong output, lost messages).
//
// Times are CPU time per iteration (steadier than wall time on a shared
// machine); runs timed manually (fan-out) measure thread CPU time of the
// timed span only. Other processes only ever add time, and a ratio of two
// runs taken seconds apart on a busy machine drifts with the load, so a
// normal run repeats every benchmark 5 times in random interleaved order
// (Google Benchmark's --benchmark_enable_random_interleaving) and keeps the
// fastest repetition of each. The program reports; it never fails on a MISS.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench_common.hpp"
#include "tether/ws/detail/utf8_simd.hpp"

namespace {

struct result {
    double ns_per_iter = 0;
    double bytes_per_second = 0;
    double items_per_second = 0;
    std::map<std::string, double> counters;
};

// Collects every run while printing nothing (we print our own tables).
class collector : public benchmark::BenchmarkReporter {
public:
    std::map<std::string, result> results;
    std::map<std::string, int> repetitions;
    std::vector<std::string> order;
    std::vector<std::string> errors;
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& r : runs) {
            if (r.run_type == Run::RT_Aggregate) continue;  // we keep the fastest repetition instead
            std::string name = r.benchmark_name();
            const std::string manual = "/manual_time";
            const bool is_manual = name.size() > manual.size() && name.compare(name.size() - manual.size(), manual.size(), manual) == 0;
            if (is_manual) name.resize(name.size() - manual.size());
            if (r.error_occurred) {
                errors.push_back(name + ": " + r.error_message);
                std::fprintf(stderr, "%s: %s\n", name.c_str(), r.error_message.c_str());
                continue;
            }
            result x;
            x.ns_per_iter = is_manual ? r.GetAdjustedRealTime() : r.GetAdjustedCPUTime();
            for (const auto& [k, c] : r.counters) {
                if (k == "bytes_per_second") x.bytes_per_second = c.value;
                else if (k == "items_per_second") x.items_per_second = c.value;
                else x.counters[k] = c.value;
            }
            if (!results.count(name)) order.push_back(name);
            ++repetitions[name];
            if (repetitions[name] == 1 || x.ns_per_iter < results[name].ns_per_iter) results[name] = x;
        }
    }
    const result* find(const std::string& name) const {
        auto it = results.find(name);
        return it == results.end() ? nullptr : &it->second;
    }
};

const collector* g_rep = nullptr;

// Reading order for the runs table: by area, then size, then contender
// (tether first, the baseline last), whatever order the runs came in.
std::vector<std::string> reading_order(std::vector<std::string> names) {
    const auto rank = [](const std::vector<std::string>& list, const std::string& x) {
        for (std::size_t i = 0; i < list.size(); ++i)
            if (list[i] == x) return i;
        return list.size();
    };
    static const std::vector<std::string> areas = {"decode", "encode", "handshake", "envelope", "fanout", "timers"};
    static const std::vector<std::string> who = {"tether",   "tether_nocheck", "beast",        "websocketpp",
                                                 "simdjson", "nlohmann",       "memcpy",       "queued",
                                                 "cycle",    "rearm",          "rearm_cold",   "rearm_seq",
                                                 "fire",     "next_deadline"};
    struct key {
        std::size_t area, who;
        double arg;
    };
    const auto key_of = [&](const std::string& n) {
        std::vector<std::string> parts;
        std::size_t at = 0;
        for (std::size_t slash; (slash = n.find('/', at)) != std::string::npos; at = slash + 1)
            parts.push_back(n.substr(at, slash - at));
        parts.push_back(n.substr(at));
        key k{rank(areas, parts[0]), parts.size() > 1 ? rank(who, parts[1]) : 0, 0};
        if (parts.size() > 2) k.arg = std::atof(parts[2].c_str());
        return k;
    };
    std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
        const key x = key_of(a), y = key_of(b);
        if (x.area != y.area) return x.area < y.area;
        if (x.arg != y.arg) return x.arg < y.arg;
        return x.who < y.who;
    });
    return names;
}

double ns(const std::string& name) {
    const result* r = g_rep->find(name);
    return r ? r->ns_per_iter : NAN;
}
double counter(const std::string& name, const std::string& key) {
    const result* r = g_rep->find(name);
    if (!r) return NAN;
    auto it = r->counters.find(key);
    return it == r->counters.end() ? NAN : it->second;
}
double fig(const std::string& name) {
    const bench::figure* f = bench::find_figure(name);
    return f ? f->value : NAN;
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// ---- context comparisons (no target: how tether stands beside each peer) ----

struct comparison {
    std::string what;
    std::string peer;
    double speedup;  // peer time / tether time (> 1: tether faster)
};

std::vector<comparison> comparisons() {
    std::vector<comparison> out;
    const char* labels[] = {"64 B", "1 KiB", "16 KiB"};
    const char* sizes[] = {"64", "1024", "16384"};
    for (const char* area : {"decode", "encode"}) {
        for (int i = 0; i < 3; ++i) {
            const std::string ours = std::string(area) + "/tether/" + sizes[i];
            for (const auto& [peer, label] : std::vector<std::pair<std::string, std::string>>{
                     {"beast", "Beast"}, {"websocketpp", "websocketpp"}, {"memcpy", "memcpy"}}) {
                const double s = ns(std::string(area) + "/" + peer + "/" + sizes[i]) / ns(ours);
                if (!std::isnan(s)) out.push_back({std::string(area) + " " + labels[i], label, s});
            }
            if (std::string(area) == "decode") {
                // The same bytes written by the caller into read_buffer():
                // unmasked and checked in place afterwards, a second pass.
                const std::string read = std::string("decode/tether_read/") + sizes[i];
                for (const auto& [peer, label] : std::vector<std::pair<std::string, std::string>>{
                         {"beast", "Beast"}, {"websocketpp", "websocketpp"}, {"memcpy", "memcpy"}}) {
                    const double s = ns(std::string("decode/") + peer + "/" + sizes[i]) / ns(read);
                    if (!std::isnan(s)) out.push_back({std::string("decode ") + labels[i] + ", read_buffer()", label, s});
                }
            }
            if (std::string(area) == "encode") {
                // Beast does not check outgoing UTF-8: like for like, tether's check off.
                const double s = ns(std::string("encode/beast/") + sizes[i]) / ns(std::string("encode/tether_nocheck/") + sizes[i]);
                if (!std::isnan(s)) out.push_back({std::string("encode ") + labels[i] + ", UTF-8 check off", "Beast", s});
            }
        }
    }
    for (const auto& [peer, label] : std::vector<std::pair<std::string, std::string>>{
             {"beast", "Beast"}, {"websocketpp", "websocketpp"}}) {
        const double s = ns("handshake/" + peer) / ns("handshake/tether");
        if (!std::isnan(s)) out.push_back({"handshake", label, s});
    }
    for (const auto& [peer, label] : std::vector<std::pair<std::string, std::string>>{
             {"simdjson", "simdjson"}, {"nlohmann", "nlohmann"}}) {
        const double s = ns("envelope/" + peer) / ns("envelope/tether");
        if (!std::isnan(s)) out.push_back({"envelope parse", label, s});
    }
    // Memory: peer bytes / tether bytes (> 1: tether smaller).
    for (const auto& [peer, label] : std::vector<std::pair<std::string, std::string>>{
             {"beast", "Beast"}, {"wspp", "websocketpp"}}) {
        const double s = fig("memory/" + peer + "/conn_bytes") / fig("memory/tether/conn_bytes");
        if (!std::isnan(s)) out.push_back({"bytes per open connection (smaller)", label, s});
        const double s2 = fig("memory/" + peer + "/conn_bytes") / fig("memory/tether/conn_bytes_idle");
        if (!std::isnan(s2)) out.push_back({"bytes per idle connection (smaller)", label, s2});
    }
    return out;
}

// ---- targets of issue 5 ------------------------------------------------------

enum class verdict { pass, miss, skipped };

struct target {
    std::string what;      // what is compared
    std::string goal;      // the target, in words
    std::string measured;  // the measurement, in words
    double value = NAN;    // the ratio or figure compared with `bound`
    double bound = NAN;
    verdict v = verdict::skipped;
};

target at_most(std::string what, std::string goal, double value, double bound, std::string measured) {
    target t{std::move(what), std::move(goal), std::move(measured), value, bound, verdict::skipped};
    if (!std::isnan(value)) t.v = value <= bound ? verdict::pass : verdict::miss;
    return t;
}
target at_least(std::string what, std::string goal, double value, double bound, std::string measured) {
    target t{std::move(what), std::move(goal), std::move(measured), value, bound, verdict::skipped};
    if (!std::isnan(value)) t.v = value >= bound ? verdict::pass : verdict::miss;
    return t;
}

std::vector<target> targets() {
    std::vector<target> out;
    {
        const double r = ns("decode/tether/64") / ns("decode/beast/64");
        out.push_back(at_most("decode 64 B vs Beast", "time <= 1/10 of Beast's", r, 0.1,
                              fmt("time ratio %.3f", r) + fmt(" (%.1fx faster)", 1 / r)));
    }
    {
        const double r = ns("decode/tether/64") / ns("decode/websocketpp/64");
        out.push_back(at_most("decode 64 B vs websocketpp", "time <= 1/30 of websocketpp's", r, 1.0 / 30,
                              fmt("time ratio %.4f", r) + fmt(" (%.1fx faster)", 1 / r)));
    }
    {
        const double r = ns("decode/beast/16384") / ns("decode/tether/16384");
        out.push_back(at_least("decode 16 KiB vs Beast", "throughput >= 4x Beast's", r, 4,
                               fmt("throughput %.2fx Beast's", r)));
    }
    {
        const double r = ns("decode/memcpy/16384") / ns("decode/tether/16384");
        out.push_back(at_least("decode 16 KiB vs memcpy", "throughput >= 0.5x memcpy's", r, 0.5,
                               fmt("throughput %.2fx memcpy's", r)));
    }
    {
        const double r = ns("envelope/tether") / ns("envelope/simdjson");
        out.push_back(at_most("envelope parse vs simdjson", "time <= 1.5x simdjson On-Demand's", r, 1.5,
                              fmt("time ratio %.2f", r)));
    }
    {
        const double r = ns("envelope/nlohmann") / ns("envelope/tether");
        out.push_back(at_least("envelope parse vs nlohmann", ">= 15x faster than nlohmann::json", r, 15,
                               fmt("%.1fx faster", r)));
    }
    {
        const double a = counter("envelope/tether", "allocs_per_msg");
        out.push_back(at_most("envelope parse allocations", "0 per message in steady state", a, 0,
                              fmt("%.4f allocations per message", a)));
    }
    {
        // --quick measures a room of 1,000 instead of 10,000.
        const std::string room = g_rep->find("fanout/queued/10000") ? "10000" : "1000";
        const double members = std::stod(room);
        const double per = ns("fanout/queued/" + room) / members;
        out.push_back(at_most("fan-out, room of 10,000", "<= 10 ns per recipient", per, 10,
                              fmt("%.2f ns per recipient (publish -> last output queued", per) +
                                  (room == "10000" ? ")" : "; room of 1,000: --quick)")));
        const double s = counter("fanout/queued/" + room, "serialisations");
        out.push_back(at_most("fan-out serialisations", "1 per broadcast", s, 1,
                              fmt("%.0f distinct frame block(s)", s) + fmt(" across %.0f queues", members)));
    }
    {
        const double b = fig("memory/tether/idle_session_bytes");
        const double n = fig("memory/tether/sessions");
        out.push_back(at_most("idle session memory", "<= 512 B per idle session", b, 512,
                              fmt("%.0f B per session", b) + fmt(" at %.0f sessions (operator new bytes)", n)));
    }
    {
        const double r = ns("timers/next_deadline/100000") / ns("timers/next_deadline/1000");
        out.push_back(at_most("next_deadline() O(1)", "cost independent of n (100,000 vs 1,000: <= 1.5x)", r, 1.5,
                              fmt("%.2fx", r) + fmt(" (%.2f ns", ns("timers/next_deadline/1000")) +
                                  fmt(" vs %.2f ns)", ns("timers/next_deadline/100000"))));
    }
    {
        const double r = ns("timers/rearm/100000");
        out.push_back(at_most("heartbeat re-arm, 100,000 sessions", "< 20 ns per re-arm", r, 20,
                              fmt("%.2f ns per re-arm (random sessions, record hot; all cold: ", r) +
                                  fmt("%.2f ns; all in cache: ", ns("timers/rearm_cold/100000")) +
                                  fmt("%.2f ns)", ns("timers/rearm_seq/100000"))));
    }
    {
        const double r = fig("storm/drain/peak_over_mean");
        out.push_back(at_most("reconnect storm with drain", "peak <= 1.5x mean (100 ms buckets)", r, 1.5,
                              fmt("peak/mean %.2f", r) + fmt(" (%.0f clients)", fig("storm/clients"))));
    }
    return out;
}

const char* verdict_name(verdict v) { return v == verdict::pass ? "PASS" : v == verdict::miss ? "MISS" : "SKIPPED"; }

std::string json_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\', o += c;
        else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
        else o += c;
    }
    return o;
}

std::string json_num(double v) {
    if (std::isnan(v) || std::isinf(v)) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

std::string machine() {
    const auto& ci = benchmark::CPUInfo::Get();
    std::string m = cpu_model() + ", " + std::to_string(ci.num_cpus) + " CPUs";
#if defined(__clang__)
    m += ", clang " __clang_version__;
#elif defined(__GNUC__)
    m += ", g++ " __VERSION__;
#endif
    using tether::ws::detail::utf8_simd::level;
    const level l = tether::ws::detail::utf8_simd::current_level();
    m += std::string(", tether kernels: ") +
         (l == level::avx512 ? "avx512" : l == level::avx2 ? "avx2" : l == level::ssse3 ? "ssse3" : "scalar");
    if (l != tether::ws::detail::utf8_simd::best_supported()) m += " (capped by --simd)";
    return m;
}

void print_json(const collector& rep, const std::vector<comparison>& cmp, const std::vector<target>& tg, bool quick) {
    std::printf("{\n  \"machine\": \"%s\",\n  \"quick\": %s,\n  \"results\": {", json_escape(machine()).c_str(),
                quick ? "true" : "false");
    bool first = true;
    for (const auto& name : reading_order(rep.order)) {
        const result& r = rep.results.at(name);
        std::printf("%s\n    \"%s\": {\"ns_per_iter\": %s, \"bytes_per_second\": %s, \"items_per_second\": %s",
                    first ? "" : ",", json_escape(name).c_str(), json_num(r.ns_per_iter).c_str(),
                    json_num(r.bytes_per_second).c_str(), json_num(r.items_per_second).c_str());
        for (const auto& [k, v] : r.counters) std::printf(", \"%s\": %s", json_escape(k).c_str(), json_num(v).c_str());
        std::printf("}");
        first = false;
    }
    std::printf("\n  },\n  \"figures\": {");
    first = true;
    for (const auto& f : bench::figures()) {
        std::printf("%s\n    \"%s\": {\"value\": %s, \"unit\": \"%s\"}", first ? "" : ",", json_escape(f.name).c_str(),
                    json_num(f.value).c_str(), json_escape(f.unit).c_str());
        first = false;
    }
    std::printf("\n  },\n  \"ratios\": [");
    first = true;
    for (const auto& c : cmp) {
        std::printf("%s\n    {\"what\": \"%s\", \"peer\": \"%s\", \"tether_advantage\": %s}", first ? "" : ",",
                    json_escape(c.what).c_str(), json_escape(c.peer).c_str(), json_num(c.speedup).c_str());
        first = false;
    }
    std::printf("\n  ],\n  \"targets\": [");
    first = true;
    for (const auto& t : tg) {
        std::printf("%s\n    {\"what\": \"%s\", \"target\": \"%s\", \"value\": %s, \"bound\": %s, \"measured\": \"%s\", "
                    "\"verdict\": \"%s\"}",
                    first ? "" : ",", json_escape(t.what).c_str(), json_escape(t.goal).c_str(),
                    json_num(t.value).c_str(), json_num(t.bound).c_str(), json_escape(t.measured).c_str(),
                    verdict_name(t.v));
        first = false;
    }
    std::printf("\n  ],\n  \"errors\": [");
    first = true;
    for (const auto& e : rep.errors) {
        std::printf("%s\n    \"%s\"", first ? "" : ",", json_escape(e).c_str());
        first = false;
    }
    std::printf("\n  ],\n  \"notes\": [");
    first = true;
    for (const auto& n : bench::notes()) {
        std::printf("%s\n    \"%s\"", first ? "" : ",", json_escape(n).c_str());
        first = false;
    }
    std::printf("\n  ]\n}\n");
}

void print_text(const collector& rep, const std::vector<comparison>& cmp, const std::vector<target>& tg, bool quick) {
    std::printf("tether_bench%s on %s\n", quick ? " --quick" : "", machine().c_str());
    int reps = 0;
    for (const auto& [name, n] : rep.repetitions) reps = std::max(reps, n);
    std::printf("CPU time per iteration, fastest of %d repetition(s)%s\n\n", reps,
                reps > 1 ? " run in random interleaved order" : "");
    std::printf("%-28s %14s %10s %12s  %s\n", "benchmark", "ns/iter", "MB/s", "items/s", "counters");
    for (const auto& name : reading_order(rep.order)) {
        const result& r = rep.results.at(name);
        std::string counters;
        for (const auto& [k, v] : r.counters) counters += k + "=" + fmt("%.4g", v) + " ";
        std::printf("%-28s %14.1f %10.1f %12.4g  %s\n", name.c_str(), r.ns_per_iter, r.bytes_per_second / 1e6,
                    r.items_per_second, counters.c_str());
    }
    std::printf("\n%-38s %-12s %s\n", "comparison", "peer", "tether advantage (peer cost / tether cost)");
    for (const auto& c : cmp) std::printf("%-38s %-12s %.2fx\n", c.what.c_str(), c.peer.c_str(), c.speedup);
    std::printf("\n%-48s %14s  %s\n", "figure", "value", "unit");
    for (const auto& f : bench::figures())
        std::printf("%-48s %14.2f  %s\n", f.name.c_str(), f.value, f.unit.c_str());
    std::printf("\n%-36s %-52s %-8s %s\n", "TARGET (issue 5)", "goal", "verdict", "measured");
    for (const auto& t : tg)
        std::printf("%-36s %-52s %-8s %s\n", t.what.c_str(), t.goal.c_str(), verdict_name(t.v),
                    t.v == verdict::skipped ? "peer or figure missing (not built or failed)" : t.measured.c_str());
    if (!rep.errors.empty()) {
        std::printf("\nerrors:\n");
        for (const auto& e : rep.errors) std::printf("  %s\n", e.c_str());
    }
    std::printf("\nnotes:\n");
    for (const auto& n : bench::notes()) std::printf("  - %s\n", n.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false, json = false, studies = true;
    std::vector<char*> args{argv[0]};
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        else if (std::strcmp(argv[i], "--json") == 0) json = true;
        else if (std::strcmp(argv[i], "--no-studies") == 0) studies = false;
        else if (std::strncmp(argv[i], "--simd=", 7) == 0) {
            using tether::ws::detail::utf8_simd::level;
            const std::string_view v = argv[i] + 7;
            const level l = v == "avx2" ? level::avx2 : v == "ssse3" ? level::ssse3 : v == "scalar" ? level::none
                                                                                                      : level::avx512;
            if (l == level::avx512 && v != "avx512") {
                std::fprintf(stderr, "tether_bench: --simd=%s: one of avx512, avx2, ssse3, scalar\n", argv[i] + 7);
                return 2;
            }
            tether::ws::detail::utf8_simd::set_max_level(l);
        } else args.push_back(argv[i]);
    }
    bench::set_quick(quick);
    bench::run_registrars(quick);
    // Defaults first: a flag given on the command line comes later and wins.
    std::vector<std::string> defaults;
    if (quick) {
        defaults = {"--benchmark_min_time=0.01"};
    } else {
        defaults = {"--benchmark_min_time=0.2", "--benchmark_repetitions=5",
                    "--benchmark_enable_random_interleaving=true"};
    }
    for (std::size_t i = 0; i < defaults.size(); ++i) args.insert(args.begin() + 1 + static_cast<std::ptrdiff_t>(i), defaults[i].data());
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;

#if !TETHER_BENCH_HAVE_BEAST
    bench::note("Boost.Beast not found at configure time (libboost-dev): its rows are skipped");
#endif
#if !TETHER_BENCH_HAVE_WSPP
    bench::note("websocketpp not found at configure time (libwebsocketpp-dev): its rows are skipped");
#endif
#if !TETHER_BENCH_HAVE_NLOHMANN
    bench::note("nlohmann::json not found at configure time (nlohmann-json3-dev): its rows are skipped");
#endif
#if !TETHER_BENCH_HAVE_SIMDJSON
    bench::note("simdjson not found at configure time (libsimdjson-dev): its rows are skipped");
#endif

    collector rep;
    g_rep = &rep;
    benchmark::RunSpecifiedBenchmarks(&rep);
    if (studies) bench::run_studies(quick);
    for (const auto& f : bench::failures()) rep.errors.push_back(f);

    const auto cmp = comparisons();
    const auto tg = targets();
    if (json)
        print_json(rep, cmp, tg, quick);
    else
        print_text(rep, cmp, tg, quick);
    benchmark::Shutdown();
    // A MISS is a result, not a failure; a benchmark that could not run
    // correctly (wrong output, lost messages) is: CI must see it rot.
    return rep.errors.empty() ? 0 : 1;
}
