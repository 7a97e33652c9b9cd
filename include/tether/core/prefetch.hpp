// tether/core/prefetch.hpp — cache prefetch hints.
//
// Why: a broadcast walks thousands of members whose state lies in cold cache
// lines. Loads of independent lines overlap by themselves, but stores commit
// in order, one miss at a time; asking for the lines (for writing, where the
// loop will store) a few members ahead lets the misses overlap. Hints only:
// no effect on behaviour, and a no-op where the compiler offers none.
#pragma once

namespace tether {

inline void prefetch_read(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
#endif
}

inline void prefetch_write(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 1, 3);
#else
    (void)p;
#endif
}

}  // namespace tether
