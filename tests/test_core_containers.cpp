// Memory-saving containers, each against a std:: reference model:
// slot_array (chunked, stable addresses), inline_vector (first element
// inline), small_string (15 characters inline), pending_frames (broadcast
// frames held in a connection slot).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tether/core/inline_vector.hpp"
#include "tether/core/random.hpp"
#include "tether/core/slot_array.hpp"
#include "tether/core/small_string.hpp"
#include "tether/server/pending_frames.hpp"
#include "tether/ws/shared_frame.hpp"

TEST_CASE("slot_array: indices, stable addresses across chunks, iteration, memory") {
    tether::slot_array<std::uint64_t, 3> a;  // chunks of 8
    std::vector<std::uint64_t> ref;
    std::vector<const std::uint64_t*> addr;
    CHECK(a.empty());
    CHECK(a.memory_bytes() == 0);
    for (std::uint64_t i = 0; i < 100; ++i) {
        std::uint64_t& x = a.emplace_back();
        CHECK(x == 0);  // value-initialised
        x = i * 7 + 1;
        ref.push_back(x);
        addr.push_back(&x);
        // Earlier elements never move.
        for (std::size_t k = 0; k < addr.size(); k += 13) CHECK(&a[k] == addr[k]);
    }
    REQUIRE(a.size() == ref.size());
    for (std::size_t k = 0; k < ref.size(); ++k) CHECK(a[k] == ref[k]);
    std::size_t n = 0;
    for (const std::uint64_t& x : a) CHECK(x == ref[n++]);
    CHECK(n == 100);
    // 100 elements in chunks of 8: 13 chunks, never more than one unused.
    CHECK(a.memory_bytes() >= 13 * 8 * sizeof(std::uint64_t));
    CHECK(a.memory_bytes() < 14 * 8 * sizeof(std::uint64_t) + 32 * sizeof(void*));
}

namespace {
struct pair32 {
    std::uint32_t a = 0;
    std::uint32_t b = 0;
};
}  // namespace

TEST_CASE("inline_vector: differential against std::vector, inline then on the heap and back") {
    tether::rng r(5);
    tether::inline_vector<pair32, 1> v;
    std::vector<pair32> ref;
    for (int step = 0; step < 2000; ++step) {
        const auto op = r.next() % 5;
        if (op < 3 || ref.empty()) {
            const pair32 p{static_cast<std::uint32_t>(r.next()), static_cast<std::uint32_t>(step)};
            v.push_back(p);
            ref.push_back(p);
        } else if (op == 3) {
            v.pop_back();
            ref.pop_back();
        } else {  // swap-with-last removal, as the directory does
            const std::size_t j = r.next() % ref.size();
            v[j] = v[v.size() - 1];
            v.pop_back();
            ref[j] = ref.back();
            ref.pop_back();
        }
        REQUIRE(v.size() == ref.size());
        CHECK(v.empty() == ref.empty());
        CHECK(v.heap_bytes() == (v.capacity() > 1 ? v.capacity() * sizeof(pair32) : 0));
        std::size_t k = 0;
        for (const pair32& p : v) {
            CHECK(p.a == ref[k].a);
            CHECK(p.b == ref[k].b);
            ++k;
        }
    }
    // Moves carry the elements (inline or on the heap) and empty the source.
    for (const std::size_t n : {std::size_t{1}, std::size_t{5}}) {
        tether::inline_vector<pair32, 1> a;
        for (std::uint32_t i = 0; i < n; ++i) a.push_back({i, i + 1});
        tether::inline_vector<pair32, 1> b(std::move(a));
        CHECK(a.empty());
        REQUIRE(b.size() == n);
        CHECK(b[n - 1].b == n);
        tether::inline_vector<pair32, 1> c;
        c.push_back({9, 9});
        c = std::move(b);
        REQUIRE(c.size() == n);
        CHECK(c[0].a == 0);
        CHECK(b.empty());
    }
    CHECK(sizeof(tether::inline_vector<pair32, 1>) == 16);
}

TEST_CASE("small_string: inline up to 15 characters, heap past them") {
    for (std::size_t len = 0; len <= 40; ++len) {
        std::string s;
        for (std::size_t i = 0; i < len; ++i) s.push_back(static_cast<char>('a' + i % 26));
        tether::small_string x(s);
        CHECK(x.view() == s);
        CHECK(x.heap_bytes() == (len <= tether::small_string::inline_capacity ? 0 : sizeof(std::size_t) + len));
        tether::small_string y(std::move(x));
        CHECK(y.view() == s);
        CHECK(x.view().empty());
    }
    CHECK(sizeof(tether::small_string) == 16);
}

TEST_CASE("pending_frames: bytes, front, gather and consume at every split") {
    using tether::ws::shared_frame;
    auto make = [](std::string_view text) {
        shared_frame f = shared_frame::allocate(text.size());
        std::memcpy(f.data(), text.data(), text.size());
        return f;
    };
    const shared_frame f1 = make("hello");
    const shared_frame f2 = make("world!!");
    const std::string all = "helloworld!!";
    for (std::size_t split = 0; split <= all.size(); ++split) {
        CAPTURE(split);
        tether::server::pending_frames p;
        p.push_raw(f1.raw());
        f1.retain(1);
        CHECK_FALSE(p.full());
        p.push_raw(f2.raw());
        f2.retain(1);
        CHECK(p.full());
        CHECK(f1.use_count() == 2);
        CHECK(p.bytes() == all.size());
        CHECK(p.consume(split) == split);
        CHECK(p.bytes() == all.size() - split);
        std::string rest;
        std::array<std::span<const std::uint8_t>, 4> runs;
        const std::size_t n = p.gather(runs);
        for (std::size_t k = 0; k < n; ++k) rest.append(reinterpret_cast<const char*>(runs[k].data()), runs[k].size());
        CHECK(rest == all.substr(split));
        if (split < all.size()) {
            const auto fr = p.front();
            CHECK(std::string_view(reinterpret_cast<const char*>(fr.data()), fr.size()) ==
                  all.substr(split, split < 5 ? 5 - split : all.size() - split));
        }
        // drain hands out each frame with the offset of its first unwritten byte.
        std::string drained;
        p.drain([&](const shared_frame& f, std::size_t off) {
            drained.append(reinterpret_cast<const char*>(f.data()) + off, f.size() - off);
        });
        CHECK(drained == all.substr(split));
        CHECK(p.empty());
        CHECK(f1.use_count() == 1);  // every reference given back
        CHECK(f2.use_count() == 1);
    }
}
