// sim_seeds — runs the randomized fault simulator (sim_faults.hpp) over a
// range of seeds and reports per fault mix.
//
//   sim_seeds --seeds 1..1000            CI's sweep (every mix, round robin)
//   sim_seeds --seeds 1..100000          the long run
//   sim_seeds --seed 104 --verbose       one seed: world, violations, full trace
//   sim_seeds --seeds 1..500 --mix chaos only one mix
//   --lenient  known library bug signatures pass their seed (listed apart)
//   --tail N   trace lines printed for a failing seed (default 80; 0: all)
//   --quiet    only the summary
//
// Exit status: 0 when every seed passed, 1 when one failed, 2 on bad usage.
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "sim_faults.hpp"

namespace {

using tsim::faults::mix;

struct args {
    std::uint64_t first = 1, last = 100;
    std::optional<mix> forced;
    bool verbose = false, strict = true, quiet = false;
    std::size_t tail = 80;
};

bool parse_u64(std::string_view s, std::uint64_t& out) {
    if (s.empty()) return false;
    std::uint64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

int usage(const char* why) {
    std::fprintf(stderr,
                 "sim_seeds: %s\n"
                 "usage: sim_seeds [--seeds A..B | --seed N] [--mix NAME] [--verbose] [--lenient] [--tail N] [--quiet]\n"
                 "mixes: calm lossy resets restarts drains slow chaos\n",
                 why);
    return 2;
}

std::string stats_line(const tsim::faults::result& r) {
    const auto& s = r.st;
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "  stats: %.0f s virtual (faults %.0f s), %llu steps; sends %llu (refused %llu), acks %llu, "
                  "refusals %llu, deliveries %llu, snapshots %llu (truncated %llu, epoch_changed %llu); "
                  "resets %llu, half-open %llu, offline %llu (long %llu), pauses %llu, spikes %llu, "
                  "restarts %llu kept / %llu lost, drains %llu, bursts %llu; closes 1006 %llu, 1012 %llu, "
                  "1013 %llu, 4008 %llu, 4029 %llu; gave_up %llu\n",
                  static_cast<double>(s.total_ms) / 1000, static_cast<double>(s.fault_ms) / 1000,
                  static_cast<unsigned long long>(s.steps), static_cast<unsigned long long>(s.sends),
                  static_cast<unsigned long long>(s.send_refused), static_cast<unsigned long long>(s.acks),
                  static_cast<unsigned long long>(s.refusals), static_cast<unsigned long long>(s.deliveries),
                  static_cast<unsigned long long>(s.snapshots), static_cast<unsigned long long>(s.snap_truncated),
                  static_cast<unsigned long long>(s.snap_epoch_changed), static_cast<unsigned long long>(s.resets),
                  static_cast<unsigned long long>(s.half_opens), static_cast<unsigned long long>(s.offlines),
                  static_cast<unsigned long long>(s.long_offlines), static_cast<unsigned long long>(s.pauses),
                  static_cast<unsigned long long>(s.spikes), static_cast<unsigned long long>(s.restarts_durable),
                  static_cast<unsigned long long>(s.restarts_lost), static_cast<unsigned long long>(s.drains),
                  static_cast<unsigned long long>(s.bursts), static_cast<unsigned long long>(s.close_1006),
                  static_cast<unsigned long long>(s.close_1012), static_cast<unsigned long long>(s.close_1013),
                  static_cast<unsigned long long>(s.close_4008), static_cast<unsigned long long>(s.close_4029),
                  static_cast<unsigned long long>(s.gave_up));
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    args a;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto value = [&]() -> std::optional<std::string_view> {
            if (i + 1 >= argc) return std::nullopt;
            return std::string_view(argv[++i]);
        };
        if (arg == "--seeds") {
            const auto v = value();
            if (!v) return usage("--seeds needs A..B");
            const auto dots = v->find("..");
            if (dots == std::string_view::npos || !parse_u64(v->substr(0, dots), a.first) ||
                !parse_u64(v->substr(dots + 2), a.last) || a.first > a.last)
                return usage("--seeds needs A..B with A <= B");
        } else if (arg == "--seed") {
            const auto v = value();
            if (!v || !parse_u64(*v, a.first)) return usage("--seed needs a number");
            a.last = a.first;
        } else if (arg == "--mix") {
            const auto v = value();
            if (!v) return usage("--mix needs a name");
            a.forced = tsim::faults::parse_mix(*v);
            if (!a.forced) return usage("unknown mix");
        } else if (arg == "--tail") {
            const auto v = value();
            std::uint64_t n = 0;
            if (!v || !parse_u64(*v, n)) return usage("--tail needs a number");
            a.tail = static_cast<std::size_t>(n);
        } else if (arg == "--verbose") {
            a.verbose = true;
        } else if (arg == "--lenient") {
            a.strict = false;
        } else if (arg == "--quiet") {
            a.quiet = true;
        } else {
            return usage("unknown argument");
        }
    }

    struct counts {
        std::uint64_t passed = 0, failed = 0, known = 0;
    };
    std::array<counts, tsim::faults::mix_count> per_mix{};
    std::uint64_t passed = 0, failed = 0, known = 0;
    std::string failed_seeds, known_seeds;
    const auto t0 = std::chrono::steady_clock::now();

    for (std::uint64_t seed = a.first;; ++seed) {
        tsim::faults::result r;
        if (a.verbose) {
            tsim::faults::options o;
            o.seed = seed;
            o.forced = a.forced;
            o.strict = a.strict;
            o.tracing = true;
            r = tsim::faults::run(o);
        } else {
            r = tsim::faults::run_and_trace_failure(seed, a.forced, a.strict);
        }
        counts& c = per_mix[static_cast<std::size_t>(r.m)];
        if (r.ok()) {
            ++passed;
            ++c.passed;
        } else {
            ++failed;
            ++c.failed;
            failed_seeds += " " + std::to_string(seed);
        }
        if (!r.known.empty()) {
            ++known;
            ++c.known;
            known_seeds += " " + std::to_string(seed);
        }
        if (a.verbose) {
            std::fputs(tsim::faults::report(r, 0).c_str(), stdout);
            std::fputs(stats_line(r).c_str(), stdout);
        } else if (!r.ok() && !a.quiet) {
            std::fputs(tsim::faults::report(r, a.tail).c_str(), stdout);
        } else if (!r.known.empty() && !a.quiet) {
            std::printf("seed %llu mix %s: passed, hit a known bug: %s\n", static_cast<unsigned long long>(seed),
                        std::string(tsim::faults::to_string(r.m)).c_str(), r.known.front().c_str());
        }
        std::fflush(stdout);
        if (seed == a.last) break;
    }

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-9s %8s %8s %8s %10s\n", "mix", "seeds", "passed", "failed", "known-bug");
    for (std::size_t m = 0; m < tsim::faults::mix_count; ++m) {
        const counts& c = per_mix[m];
        if (c.passed + c.failed == 0) continue;
        std::printf("%-9s %8llu %8llu %8llu %10llu\n", std::string(tsim::faults::mix_names[m]).c_str(),
                    static_cast<unsigned long long>(c.passed + c.failed), static_cast<unsigned long long>(c.passed),
                    static_cast<unsigned long long>(c.failed), static_cast<unsigned long long>(c.known));
    }
    if (!failed_seeds.empty()) std::printf("failed seeds:%s\n", failed_seeds.c_str());
    if (!known_seeds.empty())
        std::printf("seeds hitting a known library bug (passed: --lenient):%s\n", known_seeds.c_str());
    std::printf("%llu passed, %llu failed (%.1f s)\n", static_cast<unsigned long long>(passed),
                static_cast<unsigned long long>(failed), secs);
    return failed == 0 ? 0 : 1;
}
