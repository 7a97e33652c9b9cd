// tether/ws/detail/small_string.hpp — moved to core/small_string.hpp (the
// server's sessions use it too); this name stays for existing code.
#pragma once

#include "tether/core/small_string.hpp"

namespace tether::ws::detail {
using tether::small_string;
}  // namespace tether::ws::detail
