// Shared pieces of tether_bench: synthetic inputs and the result registry
// that turns Google Benchmark's per-case figures into ratio tables.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tether/core/random.hpp"

namespace bench {

/// `count` masked client text frames of `size` payload bytes each, with
/// realistic text (mostly ASCII with some multi-byte UTF-8), as one stream.
std::vector<std::uint8_t> masked_text_frames(std::size_t size, std::size_t count, std::uint64_t seed = 1);

/// The text payload used for frames of `size` bytes (valid UTF-8, exact size).
std::string sample_text(std::size_t size, std::uint64_t seed = 1);

}  // namespace bench
