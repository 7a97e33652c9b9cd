// The client's pure parts: the close-code table (PROTOCOL.md §4), backoff
// with jitter, and the bounded outbox (checked against a simple model).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "tether/client/backoff.hpp"
#include "tether/client/close_policy.hpp"
#include "tether/client/error.hpp"
#include "tether/client/outbox.hpp"

namespace tc = tether::client;
using tc::close_action;
using namespace std::chrono_literals;

// ---- close policy -----------------------------------------------------------------

TEST_CASE("close policy: every row of PROTOCOL.md §4") {
    struct row {
        std::uint16_t code;
        close_action want;
    };
    // Written from the protocol text, one line per table row.
    const row rows[] = {
        {1000, close_action::stop_normal},
        {1001, close_action::reconnect_backoff},
        {1002, close_action::stop_report_bug},
        {1003, close_action::stop_report_bug},
        {1007, close_action::stop_report_bug},
        {1008, close_action::stop_policy},
        {1009, close_action::stop_policy},
        {1011, close_action::reconnect_backoff},
        {1012, close_action::reconnect_after_server_delay},
        {1013, close_action::reconnect_after_server_delay},
        {1006, close_action::reconnect_backoff},
        {4001, close_action::need_token},
        {4002, close_action::stop_upgrade_required},
        {4003, close_action::stop_taken_over},
        {4008, close_action::reconnect_backoff},
        {4029, close_action::reconnect_after_server_delay},
    };
    for (const row& r : rows) {
        INFO("code " << r.code);
        CHECK(tc::policy_for_close_code(r.code) == r.want);
        CHECK(tc::policy_for(r.code) == r.want);
        CHECK(tc::reconnects(r.want) ==
              (r.want == close_action::reconnect_backoff || r.want == close_action::reconnect_after_server_delay));
    }
}

TEST_CASE("close policy: codes the table does not name (docs/protocol.md)") {
    for (std::uint16_t code : {1005, 1014, 1015, 3000, 3999, 4000, 4004, 4999})
        CHECK(tc::policy_for_close_code(code) == close_action::reconnect_backoff);
    CHECK(tc::policy_for_close_code(1010) == close_action::stop_report_bug);
}

TEST_CASE("close policy: HTTP status at the upgrade wins over the close code") {
    CHECK(tc::policy_for(1006, 401) == close_action::need_token);
    CHECK(tc::policy_for(1006, 403) == close_action::forbidden);
    CHECK(tc::policy_for(1006, 426) == close_action::stop_upgrade_required);
    for (int s : {408, 429, 500, 502, 503, 599}) CHECK(tc::policy_for(1006, s) == close_action::reconnect_backoff);
    for (int s : {101, 200, 301, 302, 400, 404, 405})
        CHECK(tc::policy_for(1006, s) == close_action::stop_report_bug);
    CHECK(tc::policy_for(1006, 0) == close_action::reconnect_backoff);
}

TEST_CASE("close policy: retry_after_ms from the close reason") {
    CHECK(tc::retry_after_from_reason(R"({"reason":"restart","retry_after_ms":1830})") == 1830);
    CHECK(tc::retry_after_from_reason(R"({"retry_after_ms":0})") == 0);
    CHECK(tc::retry_after_from_reason(R"( {"retry_after_ms":7} )") == 7);
    CHECK(tc::retry_after_from_reason("[1830]") == std::nullopt);
    CHECK(tc::retry_after_from_reason(R"({"reason":"restart"})") == std::nullopt);
    CHECK(tc::retry_after_from_reason("") == std::nullopt);
    CHECK(tc::retry_after_from_reason("going away") == std::nullopt);
    CHECK(tc::retry_after_from_reason(R"({"retry_after_ms":"1830"})") == std::nullopt);
    CHECK(tc::retry_after_from_reason(R"({"retry_after_ms":-5})") == std::nullopt);
    CHECK(tc::retry_after_from_reason(R"({"retry_after_ms":1.5})") == std::nullopt);
    CHECK(tc::retry_after_from_reason(R"({"retry_after_ms":9007199254740992})") == std::nullopt);
    CHECK(tc::retry_after_from_reason(R"({"retry_after_ms":12,)") == std::nullopt);  // truncated JSON
    CHECK(tc::retry_after_from_reason(R"({"retry_after_ms":1,"retry_after_ms":2})") == std::nullopt);  // duplicate
    CHECK(tc::retry_after_from_reason(R"({"nested":{"retry_after_ms":3}})") == std::nullopt);
}

// ---- backoff ------------------------------------------------------------------------

TEST_CASE("backoff without jitter: 1 s doubling to the 30 s cap, then gives up") {
    tc::backoff_config cfg;
    cfg.jitter_percent = 0;
    tc::backoff b(cfg);
    tether::rng r(1);
    const std::int64_t want_s[] = {1, 2, 4, 8, 16, 30, 30, 30, 30, 30};
    for (unsigned i = 0; i < 10; ++i) {
        const auto d = b.next(r);
        REQUIRE(d);
        CHECK(*d == std::chrono::seconds(want_s[i]));
        CHECK(b.attempt() == i + 1);
    }
    CHECK(b.exhausted());
    CHECK(!b.next(r));
    CHECK(b.attempt() == 10);
    b.reset();
    CHECK(b.attempt() == 0);
    CHECK(b.next(r) == std::optional<tether::duration>(1s));
}

TEST_CASE("backoff jitter stays in [delay/2, delay] and spreads") {
    tc::backoff_config cfg;  // 50 %
    for (unsigned attempt = 1; attempt <= 7; ++attempt) {
        const tether::duration base = tc::backoff(cfg).base_delay(attempt);
        tether::duration lo = base, hi = tether::duration::zero();
        double sum = 0;
        for (std::uint64_t seed = 0; seed < 400; ++seed) {
            tc::backoff b(cfg);
            tether::rng r(seed);
            std::optional<tether::duration> d;
            for (unsigned i = 0; i < attempt; ++i) d = b.next(r);
            REQUIRE(d);
            CHECK(*d <= base);
            CHECK(*d >= base / 2);
            lo = std::min(lo, *d);
            hi = std::max(hi, *d);
            sum += static_cast<double>(d->count());
        }
        // A uniform jitter: the extremes are approached, the mean is near 3/4.
        CHECK(lo < base / 2 + base / 20);
        CHECK(hi > base - base / 20);
        const double mean = sum / 400 / static_cast<double>(base.count());
        CHECK(mean > 0.70);
        CHECK(mean < 0.80);
    }
}

TEST_CASE("backoff is deterministic per seed") {
    auto run = [](std::uint64_t seed) {
        tc::backoff b;
        tether::rng r(seed);
        std::vector<std::int64_t> v;
        while (auto d = b.next(r)) v.push_back(d->count());
        return v;
    };
    CHECK(run(7) == run(7));
    CHECK(run(7) != run(8));
    CHECK(run(7).size() == 10);
}

TEST_CASE("backoff: the server's retry_after_ms replaces the delay, counts, and is capped") {
    tc::backoff b;
    tether::rng r(3);
    CHECK(b.next(r, 1830) == std::optional<tether::duration>(1830ms));
    CHECK(b.attempt() == 1);
    CHECK(b.next(r, 0) == std::optional<tether::duration>(0ms));
    CHECK(b.next(r, 9007199254740991) == std::optional<tether::duration>(10min));  // no overflow
    CHECK(b.attempt() == 3);
    // The override draws nothing from the rng (no jitter on the server's delay).
    tether::rng fresh(3);
    CHECK(r.next() == fresh.next());
    tc::backoff_config cfg;
    cfg.max_attempts = 0;
    tc::backoff forever(cfg);
    for (int i = 0; i < 100; ++i) CHECK(forever.next(r));
    CHECK(forever.attempt() == 100);
    CHECK(!forever.exhausted());
}

// ---- outbox -----------------------------------------------------------------------

namespace {

tc::outbox_entry* push(tc::outbox& o, const std::string& id, const std::string& text, std::string_view room = "r") {
    return o.push(id, room, [&](std::string& s) { s.append(text); });
}

std::vector<std::string> ids(const tc::outbox& o) {
    std::vector<std::string> v;
    o.for_each([&](const tc::outbox_entry& e) { v.push_back(e.id); });
    return v;
}

}  // namespace

TEST_CASE("outbox: the message bound refuses, never drops") {
    tc::outbox o({3, 1u << 20});
    CHECK(push(o, "a", "x"));
    CHECK(push(o, "b", "x"));
    CHECK(push(o, "c", "x"));
    CHECK(!o.fits(1));
    CHECK(!push(o, "d", "x"));
    CHECK(o.size() == 3);
    CHECK(ids(o) == std::vector<std::string>{"a", "b", "c"});
    o.remove(*o.find("b"));
    CHECK(push(o, "d", "x"));
    CHECK(ids(o) == std::vector<std::string>{"a", "c", "d"});
}

TEST_CASE("outbox: the byte bound counts the serialized text, inclusive") {
    tc::outbox o({100, 10});
    CHECK(push(o, "a", "12345"));
    CHECK(!push(o, "b", "123456"));  // 11 > 10
    CHECK(o.bytes() == 5);
    CHECK(o.size() == 1);
    CHECK(push(o, "b", "12345"));  // exactly 10
    CHECK(o.bytes() == 10);
    CHECK(!push(o, "c", "1"));
    o.remove(*o.find("a"));
    CHECK(o.bytes() == 5);
    CHECK(push(o, "c", "1234"));
    CHECK(o.find("c")->text == "1234");
    CHECK(o.find("c")->room == "r");
}

TEST_CASE("outbox: flush order, in flight, requeue, earliest send time") {
    tc::outbox o;
    for (const char* id : {"a", "b", "c"}) REQUIRE(push(o, id, std::string("t-") + id));
    std::vector<std::string> sent;
    int t = 0;
    while (auto* e = o.next_queued()) {
        sent.push_back(e->id);
        o.mark_sent(*e, tether::at_ms(t += 10));
    }
    CHECK(sent == std::vector<std::string>{"a", "b", "c"});
    CHECK(o.in_flight() == 3);
    CHECK(o.earliest_in_flight() == tether::at_ms(10));
    o.requeue(*o.find("b"));
    CHECK(o.in_flight() == 2);
    REQUIRE(o.next_queued());
    CHECK(o.next_queued()->id == "b");
    o.mark_sent(*o.next_queued(), tether::at_ms(100));
    CHECK(!o.next_queued());
    CHECK(o.requeue_sent_before(tether::at_ms(30)) == 2);  // a (10), c (30)
    CHECK(o.next_queued()->id == "a");
    o.requeue_all();
    CHECK(o.in_flight() == 0);
    CHECK(o.earliest_in_flight() == tether::never);
    CHECK(o.next_queued()->id == "a");
    o.remove(*o.find("a"));
    CHECK(o.next_queued()->id == "b");
}

TEST_CASE("outbox: tombstones are squeezed out in order; the ring does not grow with churn") {
    tc::outbox o({1000, 1u << 20});
    for (int i = 0; i < 8; ++i) REQUIRE(push(o, "m" + std::to_string(i), "x"));
    CHECK(o.capacity() == 8);
    for (int i = 2; i <= 6; ++i) o.remove(*o.find("m" + std::to_string(i)));  // middle holes
    for (int i = 8; i < 13; ++i) REQUIRE(push(o, "m" + std::to_string(i), "x"));
    CHECK(o.capacity() == 8);  // compacted, not grown
    CHECK(ids(o) == std::vector<std::string>{"m0", "m1", "m7", "m8", "m9", "m10", "m11", "m12"});
    // Steady churn with a small window keeps the ring at its working size.
    tc::outbox p({1000, 1u << 20});
    for (int i = 0; i < 10000; ++i) {
        REQUIRE(push(p, "k" + std::to_string(i), std::string(40, 'z')));
        if (i >= 4) p.remove(*p.find("k" + std::to_string(i - 4)));
    }
    CHECK(p.capacity() == 8);
    CHECK(p.size() == 4);
}

TEST_CASE("outbox: random operations agree with a simple model") {
    struct model_entry {
        std::string id;
        std::size_t bytes;
        tc::entry_state st;
        tether::time_point sent;
    };
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        tether::rng r(seed);
        const std::size_t max_msgs = 1 + r.below(12);
        const std::size_t max_bytes = 20 + r.below(200);
        tc::outbox o({max_msgs, max_bytes});
        std::deque<model_entry> m;
        int next_id = 0;
        std::int64_t clock = 0;
        for (int step = 0; step < 3000; ++step) {
            INFO("seed " << seed << " step " << step);
            clock += static_cast<std::int64_t>(r.below(5));
            const auto now = tether::at_ms(clock);
            const auto op = r.below(7);
            if (op <= 1) {  // push
                const std::string id = "i" + std::to_string(next_id++);
                const std::string text(r.below(40), 'q');
                std::size_t total = 0;
                for (auto& e : m) total += e.bytes;
                const bool fits = m.size() < max_msgs && total + text.size() <= max_bytes;
                CHECK(o.fits(text.size()) == fits);
                CHECK((push(o, id, text) != nullptr) == fits);
                if (fits) m.push_back({id, text.size(), tc::entry_state::queued, {}});
            } else if (op == 2 && !m.empty()) {  // ack a random entry
                const std::size_t k = r.below(m.size());
                auto* e = o.find(m[k].id);
                REQUIRE(e);
                o.remove(*e);
                m.erase(m.begin() + static_cast<std::ptrdiff_t>(k));
            } else if (op == 3) {  // send the next queued
                auto it = std::find_if(m.begin(), m.end(), [](auto& e) { return e.st == tc::entry_state::queued; });
                auto* e = o.next_queued();
                CHECK((e != nullptr) == (it != m.end()));
                if (e && it != m.end()) {
                    CHECK(e->id == it->id);
                    o.mark_sent(*e, now);
                    it->st = tc::entry_state::in_flight;
                    it->sent = now;
                }
            } else if (op == 4 && !m.empty()) {  // requeue one
                const std::size_t k = r.below(m.size());
                o.requeue(*o.find(m[k].id));
                if (m[k].st == tc::entry_state::in_flight) m[k].st = tc::entry_state::queued;
            } else if (op == 5) {  // ack timeout sweep
                const auto cutoff = tether::at_ms(clock - 7);
                std::size_t n = 0;
                for (auto& e : m)
                    if (e.st == tc::entry_state::in_flight && e.sent <= cutoff) {
                        e.st = tc::entry_state::queued;
                        ++n;
                    }
                CHECK(o.requeue_sent_before(cutoff) == n);
            } else if (op == 6 && r.below(10) == 0) {  // reconnect
                o.requeue_all();
                for (auto& e : m) e.st = tc::entry_state::queued;
            }
            // Compare the whole observable state.
            std::vector<std::string> want_ids;
            std::size_t bytes = 0, flying = 0;
            tether::time_point earliest = tether::never;
            for (auto& e : m) {
                want_ids.push_back(e.id);
                bytes += e.bytes;
                if (e.st == tc::entry_state::in_flight) {
                    ++flying;
                    earliest = std::min(earliest, e.sent);
                }
            }
            REQUIRE(ids(o) == want_ids);
            CHECK(o.size() == m.size());
            CHECK(o.bytes() == bytes);
            CHECK(o.in_flight() == flying);
            CHECK(o.earliest_in_flight() == earliest);
            CHECK(o.capacity() <= std::max<std::size_t>(max_msgs, 8));
        }
    }
}

TEST_CASE("client_error has a category and messages") {
    const std::error_code ec = tc::client_error::outbox_full;
    CHECK(ec.category().name() == std::string("tether.client"));
    CHECK(ec.message() == "outbox full");
    CHECK(std::error_code(tc::client_error::stopped).message() == "client is stopped");
    CHECK(!std::error_code(tc::client_error::ok));
}
