// Shared pieces of tether_bench: the inputs every contender is given, the
// allocation counter, and the registry of figures that the plain-code studies
// (memory, timers at scale, the reconnect storm) report beside Google
// Benchmark's runs.
//
// This header is deliberately C++17 and includes nothing of tether: the
// websocketpp translation unit is compiled as C++17 (websocketpp 0.8.2 does
// not compile as C++20) and shares these inputs.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

// ---- inputs (bench_inputs.cpp) ------------------------------------------------

/// Payload sizes of the frame benchmarks.
inline constexpr std::int64_t frame_sizes[] = {64, 1024, 16384};

/// The text payload used for frames of `size` bytes: valid UTF-8 of exactly
/// `size` bytes, mostly ASCII words with some two-byte ones ("κόσμε",
/// "über"). Chosen over JSON envelopes on purpose: JSON chat traffic is
/// nearly all ASCII, which would only exercise the validators' ASCII fast
/// paths; this sample also exercises their multi-byte paths.
std::string sample_text(std::size_t size, std::uint64_t seed = 1);

/// `count` masked client text frames of `size` payload bytes each (each with
/// its own random masking key), as one stream.
std::vector<std::uint8_t> masked_text_frames(std::size_t size, std::size_t count, std::uint64_t seed = 1);

/// Frames per decode iteration: about 1 MiB of wire bytes whatever the size,
/// the same stream for every contender.
std::size_t decode_frames_for(std::size_t size);
/// Frames per encode iteration (about 256 KiB of payload).
std::size_t encode_frames_for(std::size_t size);

/// A typical browser upgrade request (Chrome's header set, with a cookie,
/// permessage-deflate offered, subprotocol tether.v1).
const std::string& browser_upgrade_request();

/// True if `response` is a 101 answer to browser_upgrade_request(): the right
/// Sec-WebSocket-Accept and tether.v1 selected (header names in any case).
bool is_valid_101(const std::string& response);

/// Realistic tether v1 envelopes of 150-400 bytes: relayed chat events
/// (kind, room_id, event_id, sender, id, ts, payload) and client publishes
/// (kind, room_id, id, payload), payloads with nested objects, arrays,
/// non-ASCII text and escapes. Every contender parses the same list.
const std::vector<std::string>& sample_envelopes();
/// The fields every envelope contender must extract, found independently
/// (by plain string search over the generated text) to check each one.
struct envelope_fields {
    std::string kind, room_id, id;
    std::int64_t event_id = -1;  ///< -1: absent (client publishes)
    std::string payload;         ///< raw JSON text of the payload value
};
const std::vector<envelope_fields>& expected_envelope_fields();
/// Bytes of all sample_envelopes().
std::size_t sample_envelope_bytes();

/// A byte sink standing in for the kernel's socket buffer: every encoder
/// copies its output here, as write() would.
struct sink {
    std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(256u << 10);
    std::size_t at = 0;
    std::uint64_t total = 0;
    void put(const void* p, std::size_t n);
};

// ---- allocation counter (alloc_counter.cpp) -----------------------------------

/// Calls of the global operator new (every form) on this thread since start.
std::uint64_t alloc_calls() noexcept;
/// Heap bytes live (allocated minus freed, as malloc_usable_size reports
/// them), counted only while byte counting is on.
std::int64_t live_heap_bytes() noexcept;
/// Byte counting costs a malloc_usable_size() per new/delete, so it is on
/// only in the memory studies, never while peers are timed.
void count_heap_bytes(bool on) noexcept;

// ---- figures, notes and studies (bench_registry.cpp) ---------------------------

/// A number a study measured, shown in the figures table and in --json.
void record(const std::string& name, double value, const std::string& unit);
/// A line printed under the tables ("--quick: 20,000 sessions ...").
void note(const std::string& text);
/// A study could not measure correctly (wrong output, lost messages): shown
/// with the errors, and tether_bench exits with status 1 (a harness that
/// rotted, never a missed target).
void failure(const std::string& text);
const std::vector<std::string>& failures();

struct figure {
    std::string name;
    double value;
    std::string unit;
};
const std::vector<figure>& figures();
const std::vector<std::string>& notes();
/// The figure `name`, or nullptr.
const figure* find_figure(const std::string& name);

/// A plain-code study: run after the Google Benchmark runs, in `order`.
/// Used where a timed loop is not the point (memory at 100,000 sessions, a
/// simulated storm) or where setting up is far costlier than the thing
/// measured and must happen once, not once per benchmark repetition.
using study_fn = void (*)(bool quick);
struct study {
    study(const char* name, int order, study_fn fn);
};
void run_studies(bool quick);

/// Benchmarks whose sizes depend on --quick register themselves from a
/// registrar, which main runs before Google Benchmark starts.
using registrar_fn = void (*)(bool quick);
struct registrar {
    explicit registrar(registrar_fn fn);
};
void run_registrars(bool quick);

/// CPU time of the calling thread, in seconds (what the studies time with:
/// on a shared machine, wall time would count other processes).
double thread_cpu_seconds();

/// --quick was given.
bool quick();
void set_quick(bool q);

}  // namespace bench
