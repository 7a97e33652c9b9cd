// The global operator new/delete, replaced to count allocations.
//
// Every form of operator new bumps a per-thread call counter (one increment:
// cheap enough to leave on while peers are timed, and it never changes which
// allocator does the work). Live heap bytes are counted only while
// count_heap_bytes(true): that costs a malloc_usable_size() per call, which
// the memory studies can afford and the timed runs must not pay. Bytes are
// the allocator's usable sizes (what a chunk really holds, rounding
// included), not the sizes asked for, so small objects are not flattered.
//
// Being the program's definitions, these also serve allocations made inside
// shared libraries (libsimdjson, libbenchmark, libstdc++).
#include <malloc.h>

#include <cstdlib>
#include <new>

#include "bench_common.hpp"

namespace {

thread_local std::uint64_t t_calls = 0;
thread_local std::int64_t t_live = 0;
thread_local bool t_count_bytes = false;

void* counted(std::size_t n) noexcept {
    ++t_calls;
    void* p = std::malloc(n ? n : 1);
    if (p && t_count_bytes) t_live += static_cast<std::int64_t>(malloc_usable_size(p));
    return p;
}

void* counted_aligned(std::size_t n, std::align_val_t a) noexcept {
    ++t_calls;
    const auto al = static_cast<std::size_t>(a);
    void* p = nullptr;
    if (posix_memalign(&p, al < sizeof(void*) ? sizeof(void*) : al, n ? n : 1) != 0) return nullptr;
    if (t_count_bytes) t_live += static_cast<std::int64_t>(malloc_usable_size(p));
    return p;
}

void release(void* p) noexcept {
    if (!p) return;
    if (t_count_bytes) t_live -= static_cast<std::int64_t>(malloc_usable_size(p));
    std::free(p);
}

void* or_throw(void* p) {
    if (!p) throw std::bad_alloc();
    return p;
}

}  // namespace

namespace bench {

std::uint64_t alloc_calls() noexcept { return t_calls; }
std::int64_t live_heap_bytes() noexcept { return t_live; }
void count_heap_bytes(bool on) noexcept { t_count_bytes = on; }

}  // namespace bench

void* operator new(std::size_t n) { return or_throw(counted(n)); }
void* operator new[](std::size_t n) { return or_throw(counted(n)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new(std::size_t n, std::align_val_t a) { return or_throw(counted_aligned(n, a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return or_throw(counted_aligned(n, a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return counted_aligned(n, a);
}

void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
