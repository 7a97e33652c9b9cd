// Figures, notes and studies: what the plain-code parts of tether_bench
// report, collected for the tables and --json. Registries are function-local
// statics so that studies can register from any translation unit's static
// initialisers.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench_common.hpp"

namespace bench {

namespace {

std::vector<figure>& figure_list() {
    static std::vector<figure> v;
    return v;
}
std::vector<std::string>& note_list() {
    static std::vector<std::string> v;
    return v;
}
struct study_entry {
    const char* name;
    int order;
    study_fn fn;
};
std::vector<study_entry>& study_list() {
    static std::vector<study_entry> v;
    return v;
}
std::vector<registrar_fn>& registrar_list() {
    static std::vector<registrar_fn> v;
    return v;
}
bool g_quick = false;

}  // namespace

void record(const std::string& name, double value, const std::string& unit) {
    for (auto& f : figure_list()) {
        if (f.name == name) {
            f.value = value;
            f.unit = unit;
            return;
        }
    }
    figure_list().push_back({name, value, unit});
}

void note(const std::string& text) { note_list().push_back(text); }

namespace {
std::vector<std::string>& failure_list() {
    static std::vector<std::string> v;
    return v;
}
}  // namespace

void failure(const std::string& text) { failure_list().push_back(text); }
const std::vector<std::string>& failures() { return failure_list(); }
const std::vector<figure>& figures() { return figure_list(); }
const std::vector<std::string>& notes() { return note_list(); }

const figure* find_figure(const std::string& name) {
    for (const auto& f : figure_list())
        if (f.name == name) return &f;
    return nullptr;
}

study::study(const char* name, int order, study_fn fn) { study_list().push_back({name, order, fn}); }

void run_studies(bool quick) {
    auto list = study_list();
    std::stable_sort(list.begin(), list.end(), [](const study_entry& a, const study_entry& b) { return a.order < b.order; });
    for (const auto& s : list) {
        const auto t0 = std::chrono::steady_clock::now();
        const double c0 = thread_cpu_seconds();
        s.fn(quick);
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
        std::fprintf(stderr, "study: %s (%.1f s, %.1f s CPU)\n", s.name, took.count(), thread_cpu_seconds() - c0);
    }
}

registrar::registrar(registrar_fn fn) { registrar_list().push_back(fn); }

void run_registrars(bool quick) {
    for (auto fn : registrar_list()) fn(quick);
}

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

bool quick() { return g_quick; }
void set_quick(bool q) { g_quick = q; }

void sink::put(const void* p, std::size_t n) {
    total += n;
    const auto* b = static_cast<const std::uint8_t*>(p);
    while (n > 0) {
        if (at == buf.size()) at = 0;
        const std::size_t k = std::min(n, buf.size() - at);
        std::copy(b, b + k, buf.data() + at);
        at += k;
        b += k;
        n -= k;
    }
}

}  // namespace bench
