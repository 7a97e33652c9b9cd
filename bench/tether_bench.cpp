// tether_bench — every benchmark of bench/, then ratio tables.
//
//   tether_bench [--quick] [--json] [google-benchmark flags...]
//
// --quick  a short pass (CI uses it to prove the benchmarks still run)
// --json   machine-readable results, ratios included, on stdout
//
// Figures are ratios between contenders measured in the same process on the
// same bytes, so they mean something on any machine; absolute times do not.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

struct result {
    double ns_per_iter = 0;
    double bytes_per_second = 0;
    double items_per_second = 0;
};

// Collects every run while printing nothing (we print our own table).
class collector : public benchmark::BenchmarkReporter {
public:
    std::map<std::string, result> results;
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& r : runs) {
            if (r.error_occurred) {
                std::fprintf(stderr, "%s: %s\n", r.benchmark_name().c_str(), r.error_message.c_str());
                continue;
            }
            result x;
            x.ns_per_iter = r.GetAdjustedRealTime();
            auto it = r.counters.find("bytes_per_second");
            if (it != r.counters.end()) x.bytes_per_second = it->second;
            it = r.counters.find("items_per_second");
            if (it != r.counters.end()) x.items_per_second = it->second;
            results[r.benchmark_name()] = x;
        }
    }
};

struct ratio_row {
    std::string what;     // e.g. "decode 64 B"
    std::string ours;     // benchmark name of tether's contender
    std::string theirs;   // benchmark name of the peer
    std::string peer;     // peer's display name
};

std::vector<ratio_row> ratio_rows() {
    std::vector<ratio_row> rows;
    for (const char* size : {"64", "1024", "16384"}) {
        const std::string s = size;
        const std::string label = s == "64" ? "64 B" : s == "1024" ? "1 KiB" : "16 KiB";
        rows.push_back({"decode " + label, "decode/tether/" + s, "decode/memcpy/" + s, "memcpy"});
    }
    return rows;
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false, json = false;
    std::vector<char*> args{argv[0]};
    std::string min_time = "--benchmark_min_time=0.5";
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        else if (std::strcmp(argv[i], "--json") == 0) json = true;
        else args.push_back(argv[i]);
    }
    if (quick) min_time = "--benchmark_min_time=0.02";
    args.push_back(min_time.data());
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    collector rep;
    benchmark::RunSpecifiedBenchmarks(&rep);

    const auto rows = ratio_rows();
    if (json) {
        std::printf("{\n  \"results\": {");
        bool first = true;
        for (const auto& [name, r] : rep.results) {
            std::printf("%s\n    \"%s\": {\"ns_per_iter\": %.3f, \"bytes_per_second\": %.0f, \"items_per_second\": %.0f}",
                        first ? "" : ",", name.c_str(), r.ns_per_iter, r.bytes_per_second, r.items_per_second);
            first = false;
        }
        std::printf("\n  },\n  \"ratios\": [");
        first = true;
        for (const auto& row : rows) {
            auto a = rep.results.find(row.ours), b = rep.results.find(row.theirs);
            if (a == rep.results.end() || b == rep.results.end()) continue;
            std::printf("%s\n    {\"what\": \"%s\", \"peer\": \"%s\", \"speedup\": %.3f}", first ? "" : ",",
                        row.what.c_str(), row.peer.c_str(), b->second.ns_per_iter / a->second.ns_per_iter);
            first = false;
        }
        std::printf("\n  ]\n}\n");
        return 0;
    }
    std::printf("%-22s %14s %14s %12s %10s\n", "benchmark", "ns/iter", "MB/s", "items/s", "");
    for (const auto& [name, r] : rep.results)
        std::printf("%-22s %14.1f %14.1f %12.3g\n", name.c_str(), r.ns_per_iter, r.bytes_per_second / 1e6,
                    r.items_per_second);
    std::printf("\n%-16s %-10s %s\n", "what", "peer", "tether speed relative to peer (>1: tether faster)");
    for (const auto& row : rows) {
        auto a = rep.results.find(row.ours), b = rep.results.find(row.theirs);
        if (a == rep.results.end() || b == rep.results.end()) {
            std::printf("%-16s %-10s skipped (peer not built)\n", row.what.c_str(), row.peer.c_str());
            continue;
        }
        std::printf("%-16s %-10s %.2fx\n", row.what.c_str(), row.peer.c_str(),
                    b->second.ns_per_iter / a->second.ns_per_iter);
    }
    return 0;
}
