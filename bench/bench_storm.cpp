// A reconnect storm with 100,000 clients (also with --quick: it is cheap).
//
// What decides when a client comes back is the close it saw and its
// backoff: the code and reason go through the client's close policy
// (client/close_policy.hpp: policy_for, retry_after_from_reason) and then
// client::backoff::next() with the client's own seeded rng — the exact
// calls client::client makes on a close (client.hpp, reconnect_backoff /
// reconnect_after_server_delay). The rest of a client machine plays no part
// in the timing, so each client is modelled by those real pieces alone, not
// by 100,000 full machines (which would only make the study slow).
//
// The server side is real: a tether endpoint with N open sessions is
// drained, and each client's close frame (code 1012, reason
// {"reason":"restart","retry_after_ms":…}) is read from that connection's
// actual output bytes.
//
//   drain   endpoint.drain(now, window), window = N / 10,000 per second
//           (10 s for 100,000): the server spreads retry_after_ms.
//   jitter  the server dies without a word: every client sees 1006 and
//           uses its own jittered backoff (1 s, minus up to 50 %).
//   jitter, server back after 2 s  (context) attempts before the server is
//           back fail at once and back off again: waves.
//
// Rates are counted in 100 ms buckets from the moment of the disconnect to
// the last reconnect; mean = clients / buckets in that span.
#include <algorithm>
#include <chrono>
#include <memory>

#include "bench_server.hpp"
#include "tether/client/backoff.hpp"
#include "tether/client/close_policy.hpp"
#include "tether/ws/frame.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;

struct storm_result {
    double peak = 0, mean = 0;
    double span_s = 0;
};

storm_result buckets(const std::vector<tether::duration>& at) {
    storm_result r;
    if (at.empty()) return r;
    const auto last = *std::max_element(at.begin(), at.end());
    const std::size_t nb = static_cast<std::size_t>(last / 100ms) + 1;
    std::vector<std::size_t> count(nb, 0);
    for (const auto& t : at) ++count[static_cast<std::size_t>(t / 100ms)];
    r.peak = static_cast<double>(*std::max_element(count.begin(), count.end()));
    r.mean = static_cast<double>(at.size()) / static_cast<double>(nb);
    r.span_s = static_cast<double>(nb) / 10.0;
    return r;
}

void report(const std::string& name, const storm_result& r) {
    record("storm/" + name + "/peak_per_100ms", r.peak, "reconnects");
    record("storm/" + name + "/mean_per_100ms", r.mean, "reconnects");
    record("storm/" + name + "/peak_over_mean", r.peak / r.mean, "ratio");
    record("storm/" + name + "/span", r.span_s, "s");
}

void storm_study(bool) {
    const std::size_t n = 100'000;
    record("storm/clients", static_cast<double>(n), "clients");
    auto ep = std::make_unique<srv::server::endpoint>(srv::config());
    const tether::time_point now = tether::at_ms(0);
    std::vector<srv::server::conn_id> ids;
    ids.reserve(n);
    std::vector<std::uint8_t> scratch;
    for (std::size_t i = 0; i < n; ++i) {
        ids.push_back(srv::open_session(*ep, now, srv::principal(i), {}, scratch));
        if (i % 1024 == 1023) srv::drop_events(*ep);
    }
    srv::drop_events(*ep);

    // -- drain: the server spreads retry_after_ms --------------------------------
    const auto window = std::chrono::duration_cast<tether::duration>(std::chrono::milliseconds(n / 10));
    ep->drain(now, window);
    tether::proto::json_scanner scanner;
    std::vector<tether::duration> at;
    at.reserve(n);
    std::size_t unexpected = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const auto out = ep->pending_output(ids[i]);
        tether::ws::frame_header h{};
        const auto pr = tether::ws::parse_frame_header(out, tether::ws::role::client, h);
        if (pr.status != tether::ws::header_status::ok || h.op != tether::ws::opcode::close || h.payload_size < 2 ||
            out.size() < h.header_size + h.payload_size) {
            ++unexpected;
            continue;
        }
        const std::uint8_t* body = out.data() + h.header_size;
        const auto code = static_cast<std::uint16_t>((body[0] << 8) | body[1]);
        const std::string_view reason(reinterpret_cast<const char*>(body + 2), static_cast<std::size_t>(h.payload_size) - 2);
        const auto action = tether::client::policy_for(code);
        if (!tether::client::reconnects(action)) {
            ++unexpected;
            continue;
        }
        std::optional<std::int64_t> server_delay;
        if (action == tether::client::close_action::reconnect_after_server_delay)
            server_delay = tether::client::retry_after_from_reason(reason, scanner);
        tether::rng r(0x5eed0000 + i);
        tether::client::backoff b;
        const auto d = b.next(r, server_delay);
        if (!d) {
            ++unexpected;
            continue;
        }
        at.push_back(*d);
    }
    ep.reset();
    if (unexpected) failure("storm: " + std::to_string(unexpected) + " clients saw an unexpected close");
    report("drain", buckets(at));
    record("storm/drain/window", std::chrono::duration<double>(window).count(), "s");

    // -- jitter only: every client saw 1006 ------------------------------------------
    at.clear();
    for (std::size_t i = 0; i < n; ++i) {
        tether::rng r(0x5eed0000 + i);
        tether::client::backoff b;
        const auto action = tether::client::policy_for(1006);
        if (action != tether::client::close_action::reconnect_backoff) break;
        at.push_back(*b.next(r));
    }
    report("jitter", buckets(at));

    // -- jitter, server back after 2 s: early attempts fail and back off again --------
    at.clear();
    std::size_t attempts = 0, gave_up = 0;
    for (std::size_t i = 0; i < n; ++i) {
        tether::rng r(0x5eed0000 + i);
        tether::client::backoff b;
        tether::duration t{};
        bool ok = false;
        while (auto d = b.next(r)) {
            t += *d;
            ++attempts;
            if (t >= 2s) {
                ok = true;
                break;
            }
        }
        if (ok) at.push_back(t);
        else ++gave_up;
    }
    report("jitter_2s_outage", buckets(at));
    record("storm/jitter_2s_outage/attempts_per_client", static_cast<double>(attempts) / static_cast<double>(n),
           "attempts");
    if (gave_up) note("storm: " + std::to_string(gave_up) + " clients gave up during the 2 s outage");
}

const study storm("reconnect storm", 20, storm_study);

}  // namespace

}  // namespace bench
