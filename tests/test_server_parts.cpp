// The server's building blocks, each against a simple reference model:
// timer_heap, ring_buffer, probe_table, siphash24, token_bucket,
// strike_counter, dedup_window, replay_log, close reasons.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "tether/core/probe_table.hpp"
#include "tether/core/random.hpp"
#include "tether/core/ring_buffer.hpp"
#include "tether/core/siphash.hpp"
#include "tether/core/timer_heap.hpp"
#include "tether/server/dedup_window.hpp"
#include "tether/server/detail/close_reason.hpp"
#include "tether/server/replay_log.hpp"
#include "tether/server/strike_counter.hpp"
#include "tether/server/token_bucket.hpp"
#include "tether/ws/connection.hpp"

using tether::at_ms;
using tether::duration;
using tether::time_point;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// timer_heap

TEST_CASE("timer_heap: differential against a std::map reference") {
    tether::timer_heap h;
    std::map<std::uint32_t, time_point> ref;  // slot -> key
    tether::rng r(99);
    auto ref_min = [&] {
        time_point best = tether::never;
        for (auto& [s, d] : ref) best = std::min(best, d);
        return best;
    };
    for (int step = 0; step < 8000; ++step) {
        const auto slot = static_cast<std::uint32_t>(r.below(300));
        const time_point d = at_ms(static_cast<std::int64_t>(r.below(1000)));
        switch (r.below(5)) {
            case 0:
            case 1:
                h.set(slot, d);
                ref[slot] = d;
                break;
            case 2: {
                const bool touched = h.arm_no_later_than(slot, d);
                auto it = ref.find(slot);
                const bool expect = it == ref.end() || d < it->second;
                CHECK(touched == expect);
                if (expect) ref[slot] = d;
                break;
            }
            case 3:
                h.remove(slot);
                ref.erase(slot);
                break;
            case 4:
                if (!ref.empty()) {  // pop the top like a timer loop
                    const auto top = h.top();
                    REQUIRE(ref.count(top) == 1);
                    CHECK(ref[top] == ref_min());
                    h.remove(top);
                    ref.erase(top);
                }
                break;
        }
        REQUIRE(h.size() == ref.size());
        REQUIRE(h.next_deadline() == ref_min());
        CHECK(h.key(slot) == (ref.count(slot) ? ref[slot] : tether::never));
        CHECK(h.contains(slot) == (ref.count(slot) == 1));
    }
}

TEST_CASE("timer_heap: pops in deadline order; a later re-arm costs no heap work") {
    tether::timer_heap h;
    for (std::uint32_t s = 0; s < 1000; ++s) h.set(s, at_ms((s * 7919) % 1000));
    const auto before = h.stats();
    for (std::uint32_t s = 0; s < 1000; ++s) CHECK_FALSE(h.arm_no_later_than(s, at_ms(5000)));
    for (int i = 0; i < 1000; ++i) (void)h.next_deadline();
    CHECK(h.stats().sift_steps == before.sift_steps);
    CHECK(h.stats().updates == before.updates);
    time_point last = at_ms(-1);
    while (!h.empty()) {
        const time_point d = h.next_deadline();
        CHECK(last <= d);
        last = d;
        h.remove(h.top());
    }
    CHECK(h.next_deadline() == tether::never);
    CHECK(h.top() == tether::timer_heap::no_slot);
}

TEST_CASE("timer_heap: set to never removes") {
    tether::timer_heap h;
    h.set(3, at_ms(5));
    h.set(3, tether::never);
    CHECK(h.empty());
    CHECK_FALSE(h.arm_no_later_than(3, tether::never));
    CHECK(h.empty());
}

// ---------------------------------------------------------------------------
// ring_buffer

TEST_CASE("ring_buffer: FIFO against std::deque, across growth and wrap-around") {
    tether::ring_buffer<std::string> rb;
    std::deque<std::string> ref;
    tether::rng r(5);
    for (int step = 0; step < 2500; ++step) {
        if (r.below(3) != 0 || ref.empty()) {
            const std::string v = "v" + std::to_string(step) + std::string(r.below(20), 'x');
            rb.push_back(v);
            ref.push_back(v);
        } else if (r.below(2)) {
            CHECK(rb.take_front() == ref.front());
            ref.pop_front();
        } else {
            rb.pop_front();
            ref.pop_front();
        }
        REQUIRE(rb.size() == ref.size());
        for (std::size_t i = 0; i < ref.size(); i += 7) CHECK(rb[i] == ref[i]);
        if (!ref.empty()) {
            CHECK(rb.front() == ref.front());
            CHECK(rb.back() == ref.back());
        }
    }
    rb.clear();
    CHECK(rb.empty());
}

TEST_CASE("ring_buffer: storage given back with release() is taken again on the next push") {
    // push_back() reads "full" from the mask; without storage the mask must
    // still say full, or the push would write into an empty vector.
    tether::ring_buffer<std::string> rb;
    for (int round = 0; round < 3; ++round) {
        CHECK(rb.capacity() == 0);
        for (int i = 0; i < 9; ++i) rb.push_back("r" + std::to_string(round) + "-" + std::to_string(i));
        REQUIRE(rb.size() == 9);
        CHECK(rb.capacity() >= 9);
        for (int i = 0; i < 9; ++i) CHECK(rb.take_front() == "r" + std::to_string(round) + "-" + std::to_string(i));
        rb.push_back("left");
        rb.release();
        CHECK(rb.empty());
    }
}

// ---------------------------------------------------------------------------
// probe_table

TEST_CASE("probe_table: differential against std::unordered_map, with colliding hashes") {
    // Keys live in the "owner" array; the table stores indices. A weak hash
    // (only 64 distinct values) forces long clusters and exercises the
    // backward-shift deletion.
    std::vector<std::uint64_t> keys(4000);
    for (std::size_t i = 0; i < keys.size(); ++i) keys[i] = i * 2654435761u + 17;
    auto weak = [](std::uint64_t k) { return k % 64; };
    auto hash_of = [&](std::uint32_t i) { return weak(keys[i]); };
    tether::probe_table<std::uint32_t, 0xffffffffu> t;
    std::unordered_map<std::uint64_t, std::uint32_t> ref;
    tether::rng r(11);
    for (int step = 0; step < 20000; ++step) {
        const auto i = static_cast<std::uint32_t>(r.below(keys.size()));
        const std::uint64_t k = keys[i];
        const bool present = ref.count(k) == 1;
        if (r.below(2)) {
            if (!present) {
                t.insert(weak(k), i, hash_of);
                ref[k] = i;
            }
        } else {
            CHECK(t.erase(weak(k), i, hash_of) == present);
            ref.erase(k);
        }
        REQUIRE(t.size() == ref.size());
        if (step % 97 == 0) {
            for (std::size_t j = 0; j < keys.size(); j += 13) {
                const std::uint32_t* f = t.find(weak(keys[j]), [&](std::uint32_t x) { return keys[x] == keys[j]; });
                CHECK((f != nullptr) == (ref.count(keys[j]) == 1));
                if (f) CHECK(*f == j);
            }
        }
        CHECK(t.bucket_count() >= 2 * t.size());
    }
}

// ---------------------------------------------------------------------------
// siphash24

TEST_CASE("siphash24: reference vectors, any split") {
    // SipHash-2-4 paper / reference implementation: key 00..0f, message 00..n-1.
    const std::uint64_t expect[17] = {
        0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
        0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
        0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
        0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL,
        0x3f2acc7f57c29bdbULL,
    };
    const std::uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
    std::uint8_t msg[17];
    for (int i = 0; i < 17; ++i) msg[i] = static_cast<std::uint8_t>(i);
    for (std::size_t n = 0; n <= 16; ++n) {
        tether::siphash24 whole(k0, k1);
        whole.update(std::span<const std::uint8_t>(msg, n));
        CHECK(whole.finish() == expect[n]);
        for (std::size_t split = 0; split <= n; ++split) {
            tether::siphash24 h(k0, k1);
            h.update(std::span<const std::uint8_t>(msg, split));
            h.update(std::span<const std::uint8_t>(msg + split, n - split));
            CHECK(h.finish() == expect[n]);
        }
    }
    // The key matters.
    tether::siphash24 a(k0, k1), b(k0 ^ 1, k1);
    a.update(std::string_view("x"));
    b.update(std::string_view("x"));
    CHECK(a.finish() != b.finish());
}

// ---------------------------------------------------------------------------
// token_bucket

TEST_CASE("token_bucket: burst, exact refill, retry_after") {
    using tether::server::token_bucket;
    token_bucket b(50, 100, at_ms(0));
    for (int i = 0; i < 100; ++i) REQUIRE(b.try_take(at_ms(0)));
    CHECK_FALSE(b.try_take(at_ms(0)));
    CHECK(b.retry_after(at_ms(0)) == 20ms);                    // 1 token / 50 per s
    CHECK(b.retry_after(at_ms(5)) == 15ms);
    CHECK_FALSE(b.try_take(at_ms(19)));
    CHECK(b.try_take(at_ms(20)));
    CHECK_FALSE(b.try_take(at_ms(20)));
    // A long idle period refills to the burst, never more.
    CHECK(b.tokens(at_ms(1'000'000'000)) == 100);
    // rate 0 disables the limit.
    token_bucket off(0, 0, at_ms(0));
    for (int i = 0; i < 1000; ++i) CHECK(off.try_take(at_ms(0)));
}

TEST_CASE("token_bucket: differential against an exact rational model") {
    using tether::server::token_bucket;
    // Reference: tokens as a fraction with denominator 10^9 (big enough to be
    // exact for the tested rates), refilled by elapsed_ns * rate / 10^9.
    for (const std::uint32_t rate : {1u, 3u, 7u, 50u, 1000u}) {
        const std::uint32_t burst = 5;
        token_bucket b(rate, burst, at_ms(0));
        __extension__ using u128 = unsigned __int128;
        u128 credit = u128{burst} * 1'000'000'000u;  // nano-tokens
        std::int64_t last = 0;
        tether::rng r(rate);
        std::int64_t t = 0;
        for (int step = 0; step < 3000; ++step) {
            t += static_cast<std::int64_t>(r.below(3'000'000'00 / rate + 1));
            const u128 cap = u128{burst} * 1'000'000'000u;
            credit += static_cast<u128>(t - last) * rate;
            if (credit > cap) credit = cap;
            last = t;
            const bool expect = credit >= 1'000'000'000u;
            if (expect) credit -= 1'000'000'000u;
            REQUIRE(b.try_take(time_point{duration{t}}) == expect);
        }
    }
}

TEST_CASE("strike_counter: more than max inside one window") {
    tether::server::strike_counter s;
    for (int i = 0; i < 10; ++i) CHECK_FALSE(s.strike(at_ms(i * 100), 10s, 10));
    CHECK(s.strike(at_ms(1000), 10s, 10));  // 11th inside 10 s
    tether::server::strike_counter t;
    for (int i = 0; i < 30; ++i) CHECK_FALSE(t.strike(at_ms(i * 1001), 10s, 10));  // ~10 per window, never 11
}

// ---------------------------------------------------------------------------
// dedup_window

TEST_CASE("dedup_window: keep while young OR among the newest min_ids, never past max_ids") {
    using tether::server::dedup_limits;
    using tether::server::dedup_window;
    dedup_limits lim;
    lim.window = 1000ms;
    lim.min_ids = 4;
    lim.max_ids = 10;
    dedup_window d;
    // Reference: a deque of (key, event_id, t) with the same rule spelled out.
    struct e {
        std::uint64_t key;
        std::int64_t id;
        time_point at;
    };
    std::deque<e> ref;
    auto ref_prune = [&](time_point now) {
        while (!ref.empty()) {
            const bool over = ref.size() > lim.max_ids;
            const bool old = ref.size() > lim.min_ids && now - ref.front().at >= lim.window;
            if (!over && !old) break;
            ref.pop_front();
        }
    };
    tether::rng r(3);
    std::int64_t next_id = 1;
    time_point now = at_ms(0);
    for (int step = 0; step < 4000; ++step) {
        now += std::chrono::milliseconds(r.below(300));
        d.prune(now, lim);
        ref_prune(now);
        const std::uint64_t key = r.below(40);
        auto found = d.find(key);
        auto it = std::find_if(ref.begin(), ref.end(), [&](const e& x) { return x.key == key; });
        REQUIRE(found.has_value() == (it != ref.end()));
        if (found) {
            CHECK(*found == it->id);
        } else {
            d.insert(key, next_id, now, lim);
            if (ref.size() >= lim.max_ids) ref.pop_front();
            ref.push_back({key, next_id, now});
            ++next_id;
        }
        REQUIRE(d.size() == ref.size());
        REQUIRE(d.size() <= lim.max_ids);
    }
}

TEST_CASE("dedup_window: the protocol defaults hold 4096 ids past the time window") {
    using tether::server::dedup_limits;
    using tether::server::dedup_window;
    dedup_limits lim;  // 5 min, 4096, 65536
    dedup_window d;
    for (std::uint64_t k = 0; k < 5000; ++k) d.insert(k * 0x9E3779B97F4A7C15ULL, static_cast<std::int64_t>(k + 1), at_ms(0), lim);
    d.prune(at_ms(10 * 60 * 1000), lim);  // 10 minutes later
    CHECK(d.size() == 4096);
    CHECK_FALSE(d.find(0));                                        // oldest went
    CHECK(d.find(4999 * 0x9E3779B97F4A7C15ULL) == 5000);           // newest kept
    CHECK(d.find(904 * 0x9E3779B97F4A7C15ULL) == 905);             // the 4096th newest kept
    CHECK_FALSE(d.find(903 * 0x9E3779B97F4A7C15ULL));
    // Inside the window, up to max_ids.
    dedup_limits small = lim;
    small.max_ids = 100;
    dedup_window d2;
    for (std::uint64_t k = 0; k < 150; ++k) d2.insert(k + 1, static_cast<std::int64_t>(k), at_ms(0), small);
    CHECK(d2.size() == 100);
    CHECK_FALSE(d2.find(50));
    CHECK(d2.find(51) == 50);
}

// ---------------------------------------------------------------------------
// replay_log

TEST_CASE("replay_log: last W events, age bound, exact frames") {
    using tether::server::replay_log;
    replay_log log(3, 1000ms);
    auto frame = [](int i) { return tether::ws::connection::make_shared_frame("e" + std::to_string(i)); };
    CHECK(log.first_id() == 0);
    CHECK_FALSE(log.covers_after(0));
    for (int i = 1; i <= 5; ++i) log.append(i, at_ms(i * 100), frame(i));
    CHECK(log.size() == 3);
    CHECK(log.first_id() == 3);
    CHECK(log.last_id() == 5);
    CHECK(log.covers_after(2));
    CHECK_FALSE(log.covers_after(1));
    CHECK(log.find(2) == nullptr);
    REQUIRE(log.find(4) != nullptr);
    const auto f4 = log.find(4)->bytes();
    CHECK(std::string(f4.begin() + 2, f4.end()) == "e4");  // 2-byte header, unmasked
    std::vector<std::string> seen;
    log.for_each_after(3, [&](const tether::ws::shared_frame& f) { seen.emplace_back(f.bytes().begin() + 2, f.bytes().end()); });
    CHECK(seen == std::vector<std::string>{"e4", "e5"});
    log.prune(at_ms(1300));  // event 3 (t=300) is 1000 ms old: gone
    CHECK(log.first_id() == 4);
    log.prune(at_ms(5000));
    CHECK(log.empty());
    CHECK(log.frame_bytes() == 0);
    replay_log none(0, duration::zero());
    none.append(1, at_ms(0), frame(1));
    CHECK(none.empty());
}

TEST_CASE("close reason JSON stays within 123 bytes") {
    const auto r = tether::server::detail::make_close_reason("restart", 1830);
    CHECK(r.view() == R"({"reason":"restart","retry_after_ms":1830})");
    const auto big = tether::server::detail::make_close_reason(std::string(200, 'x'), INT64_MAX);
    CHECK(big.view().size() <= 123);
    CHECK(tether::server::detail::ceil_ms(1) == 1);
    CHECK(tether::server::detail::ceil_ms(1'000'000) == 1);
    CHECK(tether::server::detail::ceil_ms(1'000'001) == 2);
}
