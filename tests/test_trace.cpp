// Recorded inputs (include/tether/trace/): the format's reader and writer,
// the golden traces in tests/golden/ against their expected replay output,
// and live runs — machines driven against each other in-process with every
// side recording — whose recordings must replay to the same outputs, byte
// for byte.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "tether/core/random.hpp"
#include "tether/trace/format.hpp"
#include "tether/trace/printer.hpp"
#include "tether/trace/recorder.hpp"
#include "tether/trace/replay.hpp"

namespace tr = tether::trace;
namespace ws = tether::ws;
namespace tc = tether::client;
namespace srv = tether::server;
using tether::at_ms;
using tether::time_point;
using namespace std::chrono_literals;

namespace {

std::filesystem::path golden_dir() {
#ifdef TETHER_GOLDEN_DIR
    return TETHER_GOLDEN_DIR;
#else
    return std::filesystem::path(__FILE__).parent_path() / "golden";
#endif
}

std::string slurp(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

/// "" if equal, else the first differing line of each.
std::string first_difference(std::string_view a, std::string_view b) {
    std::size_t line = 1, i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) {
        if (a[i] == '\n') ++line;
        ++i;
    }
    if (i == a.size() && i == b.size()) return {};
    auto line_of = [](std::string_view s, std::size_t at) {
        const std::size_t begin = s.rfind('\n', at == 0 ? 0 : at - 1);
        const std::size_t from = begin == std::string_view::npos || at == 0 ? 0 : begin + 1;
        return std::string(s.substr(from, s.find('\n', from) - from));
    };
    return "line " + std::to_string(line) + ":\n  expected: " + line_of(a, i) + "\n  got:      " + line_of(b, i);
}

std::vector<std::string> lines_starting(std::string_view text, std::string_view prefix) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        const std::string_view l = text.substr(pos, nl - pos);
        if (l.starts_with(prefix)) out.emplace_back(l);
        pos = nl + 1;
    }
    return out;
}

std::string replay_or_fail(std::string_view text, tr::replay_result& r) {
    const auto err = tr::replay_text(text, r);
    if (err) return "line " + std::to_string(err->line) + ": " + err->message;
    return {};
}

}  // namespace

// ---------------------------------------------------------------------------
// Format

TEST_CASE("trace format: write -> read -> write is the identity, values exact") {
    tr::trace t;
    t.head.machine = tr::machine_kind::endpoint;
    t.head.output = tr::output_mode::recorded;
    t.head.hooks = {"authenticate", "authorize_publish"};
    srv::config cfg;
    cfg.seed = 0xFFFFFFFFFFFFFFFFull;  // needs all 64 bits
    cfg.unix_ms_at_origin = -5;
    cfg.grace = 1500ms;
    cfg.replay_max_age = 7ns + 3us;  // not a whole unit: written in ns
    cfg.allowed_origins = {"https://a.example", "https://b.example"};
    tr::write_config(t.head.config, cfg);

    const std::string tricky[] = {
        "",
        "plain",
        "quote\" backslash\\ slash/ tab\t cr\r lf\n",
        std::string("nul\0byte", 8),
        "\x7f del and \xc2\x85 C1 NEL",
        "snow \xe2\x98\x83 and astral \xf0\x9f\x98\x80",
        "\xff\xfe invalid UTF-8",
        "\xe2\x98",  // truncated sequence
        "\x81\x85\x37\xfa",
    };
    std::int64_t time = 0;
    std::int64_t conn = 0;
    t.records.emplace_back(time, tr::record_type::open_connection).set_int(tr::field::conn, conn);
    for (const auto& s : tricky) {
        time += 1000;
        t.records.emplace_back(time, tr::record_type::bytes).set_int(tr::field::conn, conn).set_str(tr::field::data, s);
        t.records.emplace_back(time, tr::record_type::hook_authenticate)
            .set_int(tr::field::status, -401)
            .set_str(tr::field::principal, s);
    }
    t.records.emplace_back(time, tr::record_type::drain).set_duration(tr::field::window, 2500ms);
    t.records.emplace_back(time, tr::record_type::set_unix_ms_at_origin).set_int(tr::field::ms, INT64_MIN);
    t.records.emplace_back(time, tr::record_type::written).set_int(tr::field::conn, 0).set_int(tr::field::n, 7);

    const std::string text1 = tr::write_trace(t);
    tr::trace back;
    const auto err = tr::read_trace(text1, back);
    REQUIRE_MESSAGE(!err, (err ? err->message : ""));
    CHECK(tr::write_trace(back) == text1);

    // Structurally equal too (values, not only their spelling).
    REQUIRE(back.records.size() == t.records.size());
    for (std::size_t i = 0; i < t.records.size(); ++i) {
        CHECK(back.records[i].time == t.records[i].time);
        CHECK(back.records[i].type == t.records[i].type);
        for (const auto& [f, v] : t.records[i].fields) {
            const tr::value* w = back.records[i].find(f);
            REQUIRE(w);
            CHECK(*w == v);
        }
    }
    srv::config cfg2;
    REQUIRE(!tr::read_config(back.head.config, cfg2));
    CHECK(cfg2.seed == cfg.seed);
    CHECK(cfg2.unix_ms_at_origin == -5);
    CHECK(cfg2.grace == cfg.grace);
    CHECK(cfg2.replay_max_age == cfg.replay_max_age);
    CHECK(cfg2.allowed_origins == cfg.allowed_origins);
    CHECK(back.head.hooks == t.head.hooks);

    // Text is JSON where it is text, hex where it is not.
    CHECK(text1.find("data=\"plain\"") != std::string::npos);
    CHECK(text1.find("data=hex:81853") != std::string::npos);
    CHECK(text1.find("principal=\"snow \xe2\x98\x83") != std::string::npos);
    CHECK(text1.find("\\u0085 C1 NEL") != std::string::npos);
    CHECK(text1.find("config grace=1500ms") != std::string::npos);
    CHECK(text1.find("config replay_max_age=3007ns") != std::string::npos);
    CHECK(text1.find("config seed=18446744073709551615") != std::string::npos);
}

TEST_CASE("trace format: hand-written spellings read as the writer's") {
    const std::string text =
        "# a comment\n"
        "tether-trace 1\r\n"
        "machine client\n"
        "\n"
        "config seed=3  path=\"/x\"\n"
        "5 send   room=\"r\" kind=hex:6b payload=\"{\\u0022a\\u0022:\\ud83d\\ude00}\"\n"
        "6 transport_closed code=1006\n";
    tr::trace t;
    const auto err = tr::read_trace(text, t);
    REQUIRE_MESSAGE(!err, (err ? err->message : ""));
    REQUIRE(t.records.size() == 2);
    CHECK(t.records[0].get_str(tr::field::kind) == "k");
    CHECK(t.records[0].get_str(tr::field::payload) == "{\"a\":\xf0\x9f\x98\x80}");
    CHECK(t.records[0].line == 6);
    CHECK(tr::write_trace(t) ==
          "tether-trace 1\nmachine client\noutput auto\nconfig seed=3\nconfig path=\"/x\"\n"
          "5 send room=\"r\" kind=\"k\" payload=\"{\\\"a\\\":\xf0\x9f\x98\x80}\"\n"
          "6 transport_closed code=1006\n");
    tc::config cfg;
    REQUIRE(!tr::read_config(t.head.config, cfg));
    CHECK(cfg.seed == 3);
    CHECK(cfg.path == "/x");
}

TEST_CASE("trace format: the reader is strict and names the line") {
    struct bad {
        const char* text;
        std::size_t line;
        const char* says;
    };
    const std::string head = "tether-trace 1\nmachine ws_server\n";
    const bad cases[] = {
        {"", 0, "empty trace"},
        {"machine ws_server\n", 1, "starts with"},
        {"tether-trace 2\n", 1, "version"},
        {"tether-trace 1\n0 start\n", 2, "before the `machine`"},
        {"tether-trace 1\nmachine ws_serve\n", 2, "unknown machine"},
        {"tether-trace 1\nmachine ws_server\nmachine ws_server\n", 3, "second"},
        {"tether-trace 1\nmachine ws_server\nhook authenticate\n", 3, "only the endpoint"},
        {"tether-trace 1\nmachine endpoint\nhook authorise\n", 3, "unknown hook"},
        {"tether-trace 1\nmachine ws_server\noutput sometimes\n", 3, "auto"},
        {"tether-trace 1\nmachine ws_server\nconfig\n", 3, "without key=value"},
        {"tether-trace 1\nmachine ws_server\nconfig seed\n", 3, "key=value"},
        {"tether-trace 1\nmachine ws_server\n0 start\nconfig seed=1\n", 4, "after the first record"},
        {"tether-trace 1\nmachine ws_server\n0 strat\n", 3, "unknown record"},
        {"tether-trace 1\nmachine ws_server\n0 join room=\"a\"\n", 3, "does not apply"},
        {"tether-trace 1\nmachine ws_server\n0 bytes conn=1 data=\"\"\n", 3, "no key `conn`"},
        {"tether-trace 1\nmachine endpoint\n0 bytes data=\"\"\n", 3, "needs `conn=`"},
        {"tether-trace 1\nmachine ws_server\n0 bytes\n", 3, "needs `data=`"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"a\" data=\"b\"\n", 3, "twice"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=12\n", 3, "is a \"string\""},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=hex:abc\n", 3, "hex"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=hex:zz\n", 3, "hex"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"abc\n", 3, "unterminated"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"\\q\"\n", 3, "unknown escape"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"\\ud800\"\n", 3, "surrogate"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"\\udc00\"\n", 3, "surrogate"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"\t\"\n", 3, "control"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"\xff\"\n", 3, "UTF-8"},
        {"tether-trace 1\nmachine ws_server\n0 bytes data=\"a\"x\n", 3, "space"},
        {"tether-trace 1\nmachine ws_server\n0 tick\n1 tick\n0 tick\n", 5, "backwards"},
        {"tether-trace 1\nmachine ws_server\n-1 tick\n", 3, "unknown header line"},
        {"tether-trace 1\nmachine ws_server\n99999999999999999999 tick\n", 3, "range"},
        {"tether-trace 1\nmachine ws_server\n5s tick\n", 3, "nanoseconds"},
        {"tether-trace 1\nmachine ws_server\n0 written n=-1\n", 3, ">= 0"},
        {"tether-trace 1\nmachine ws_server\n0 close code=5s\n", 3, "integer"},
        {"tether-trace 1\nmachine endpoint\n0 drain window=5\n", 3, "duration"},
        {"tether-trace 1\nmachine endpoint\n0 drain window=5h\n", 3, "unit"},
        {"tether-trace 1\nmachine client\n0 poll events=1\n", 3, "needs `actions=`"},
    };
    for (const auto& c : cases) {
        tr::trace t;
        const auto err = tr::read_trace(c.text, t);
        CAPTURE(c.text);
        REQUIRE(err);
        CHECK(err->line == c.line);
        CHECK_MESSAGE(err->message.find(c.says) != std::string::npos, err->message);
    }
    (void)head;
}

TEST_CASE("trace config: unknown, repeated and mistyped keys are refused with their line") {
    auto config_error = [](std::string_view machine, std::string_view lines) {
        std::string text = "tether-trace 1\nmachine " + std::string(machine) + "\n" + std::string(lines);
        tr::trace t;
        REQUIRE(!tr::read_trace(text, t));
        tr::replay_result r;
        return tr::replay(t, r);
    };
    auto e = config_error("ws_server", "config seed=1\nconfig sede=2\n");
    REQUIRE(e);
    CHECK(e->line == 4);
    CHECK(e->message.find("unknown config key `sede`") != std::string::npos);
    e = config_error("client", "config seed=1\nconfig seed=2\n");
    REQUIRE(e);
    CHECK(e->message.find("twice") != std::string::npos);
    e = config_error("endpoint", "config heartbeat=25000\n");
    REQUIRE(e);
    CHECK(e->message.find("duration") != std::string::npos);
    e = config_error("endpoint", "config rate_per_s=4294967296\n");  // a uint32_t
    REQUIRE(e);
    CHECK(e->message.find("out of range") != std::string::npos);
    e = config_error("client_bytes", "config ws.auto_pong=2\n");
    REQUIRE(e);
    CHECK(e->message.find("0 or 1") != std::string::npos);
    e = config_error("ws_client", "config header=\"no colon\"\n");
    REQUIRE(e);
    CHECK(e->message.find("Name: value") != std::string::npos);
    CHECK(!config_error("client_bytes", "config ws.seed=9\nconfig seed=8\nconfig host=\"h:1\"\n"));
}

// ---------------------------------------------------------------------------
// Golden traces

TEST_CASE("golden traces replay to their expected output") {
    const auto dir = golden_dir();
    REQUIRE_MESSAGE(std::filesystem::is_directory(dir), dir.string());
    std::vector<std::filesystem::path> traces;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".trace") traces.push_back(e.path());
    std::sort(traces.begin(), traces.end());
    REQUIRE(traces.size() >= 3);
    for (const auto& path : traces) {
        CAPTURE(path.string());
        const std::string text = slurp(path);
        auto expected_path = path;
        expected_path.replace_extension(".expected");
        REQUIRE(std::filesystem::exists(expected_path));
        tr::replay_result r;
        const std::string err = replay_or_fail(text, r);
        REQUIRE_MESSAGE(err.empty(), err);
        const std::string diff = first_difference(slurp(expected_path), r.text);
        CHECK_MESSAGE(diff.empty(), diff);
        CHECK(r.text.find("!!") == std::string::npos);  // no divergence in a golden trace

        // Canonical rewrite: same records, same replay.
        tr::trace t;
        REQUIRE(!tr::read_trace(text, t));
        const std::string rewritten = tr::write_trace(t);
        tr::trace t2;
        REQUIRE(!tr::read_trace(rewritten, t2));
        CHECK(tr::write_trace(t2) == rewritten);
        tr::replay_result r2;
        REQUIRE(replay_or_fail(rewritten, r2).empty());
        CHECK(r2.text == r.text);
    }
}

TEST_CASE("golden: the RFC 6455 walk-through answers with the RFC's bytes") {
    // Independent of the .expected file: §1.3's accept value for the sample
    // key, and §5.7's unmasked "Hello" as the echo.
    tr::replay_result r;
    REQUIRE(replay_or_fail(slurp(golden_dir() / "ws_server_rfc6455.trace"), r).empty());
    REQUIRE(r.output.size() == 1);
    const std::string& out = r.output[0];
    CHECK(out.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    CHECK(out.find(std::string("\x81\x05Hello", 7)) != std::string::npos);
    CHECK(out.find(std::string("\x8a\x05Hello", 7)) != std::string::npos);  // auto pong
    CHECK(out.ends_with(std::string("\x88\x05\x03\xe8" "bye", 7)));
}

TEST_CASE("replay: the same trace prints the same bytes; a changed input changes them") {
    const std::string text = slurp(golden_dir() / "endpoint_chat_server.trace");
    tr::replay_result a, b;
    REQUIRE(replay_or_fail(text, a).empty());
    REQUIRE(replay_or_fail(text, b).empty());
    CHECK(a.text == b.text);
    CHECK(a.output == b.output);

    // A different seed gives other session ids: the comparison can fail.
    std::string reseeded = text;
    const auto at = reseeded.find("config seed=");
    REQUIRE(at != std::string::npos);
    reseeded.insert(at + 12, "1");
    tr::replay_result c;
    REQUIRE(replay_or_fail(reseeded, c).empty());
    CHECK(c.text != a.text);
    CHECK(c.output != a.output);
}

// ---------------------------------------------------------------------------
// Live runs: record, replay, compare

namespace {

/// The endpoint and several bytes-mode clients on an instantaneous network,
/// every machine recorded. The loop writes output in random-sized pieces and
/// alternates between the zero-copy read path and handle_bytes, and clients
/// answer a message while still draining (so the recorder must write `poll`).
struct world {
    struct peer {
        std::string user;
        std::string trace;
        tr::recorded<tc::ws_client> c;
        srv::conn_id id{};
        bool tcp = false;
        std::string sent;                  ///< every byte this client wrote
        std::vector<std::string> printed;  ///< events and actions, as printed
        int replies = 0;
        peer(std::string u, tc::ws_client_config cfg) : user(std::move(u)), c(std::move(cfg), tr::sink(&trace)) {}
    };

    std::string server_trace;
    tr::recorded<srv::endpoint> ep;
    std::vector<std::unique_ptr<peer>> peers;
    std::vector<std::string> server_sent;  ///< per trace connection number
    std::vector<std::string> server_printed;
    std::vector<std::pair<std::uint64_t, std::size_t>> conn_numbers;  ///< conn_id value -> number
    std::vector<std::size_t> owner;                                    ///< number -> peer
    tether::rng chunks{99};
    time_point now = at_ms(0);

    static srv::config server_config() {
        srv::config c;
        c.seed = 4242;
        c.unix_ms_at_origin = 1'700'000'000'000;
        c.heartbeat = 2s;
        c.authenticate = [](const ws::http_request& req) {
            srv::auth_result a;
            a.principal = req.query_param("user").value_or("anonymous");
            if (a.principal == "mallory") a.status = 403;
            return a;
        };
        c.authorize_publish = [](std::string_view, std::string_view, std::string_view kind) {
            return kind != "forbidden.kind";
        };
        return c;
    }

    world() : ep(server_config(), tr::sink(&server_trace)) {}

    peer& add(std::string user, std::uint64_t seed) {
        tc::ws_client_config cfg;
        cfg.client.seed = seed;
        cfg.ws.seed = seed * 7;
        cfg.client.path = "/chat?user=" + user;
        cfg.host = "sim:1";
        peers.push_back(std::make_unique<peer>(user, std::move(cfg)));
        return *peers.back();
    }

    std::size_t number(srv::conn_id id) const {
        for (const auto& [v, n] : conn_numbers)
            if (v == id.value()) return n;
        FAIL("unknown connection");
        return 0;
    }

    std::size_t piece(std::size_t left) { return std::min<std::size_t>(left, 1 + chunks.below(700)); }

    // Bytes into the endpoint / a client, by either input path.
    void to_server(peer& p, std::string_view b) {
        if (chunks.below(2) == 0) {
            auto buf = ep.read_buffer(p.id, b.size());
            REQUIRE(buf.size() >= b.size());
            std::copy(b.begin(), b.end(), buf.begin());
            ep.handle_read(now, p.id, b.size());
        } else {
            CHECK(ep.handle_bytes(now, p.id, b) == b.size());
        }
    }
    void to_client(peer& p, std::string_view b) {
        while (!b.empty() && p.tcp) {
            std::size_t n;
            auto buf = chunks.below(2) == 0 ? p.c.read_buffer(b.size()) : std::span<std::uint8_t>{};
            if (!buf.empty()) {
                n = std::min(buf.size(), b.size());
                std::copy(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n), buf.begin());
                p.c.handle_read(now, n);
            } else {
                n = p.c.handle_bytes(now, b);
            }
            b.remove_prefix(n);
            if (!b.empty()) drain_client(p);
        }
    }

    bool drain_client(peer& p) {
        bool any = false;
        while (auto e = p.c.poll_event()) {
            any = true;
            std::string line;
            tr::print_event(line, *e);
            p.printed.push_back(line);
            // Answer someone else's message mid-drain: a command between polls.
            if (e->type == tc::event_type::message && e->sender != p.user && p.replies < 3 &&
                e->kind == "chat.message" && std::string(e->payload).find("reply") == std::string::npos) {
                ++p.replies;
                (void)p.c.send(now, e->room, "chat.message", R"({"text":"reply"})");
                break;  // the rest of the events on the next round
            }
        }
        while (auto a = p.c.poll_action()) {
            any = true;
            std::string line;
            tr::print_action(line, *a);
            p.printed.push_back(line);
            if (a->type == tc::tcp_action_type::connect_tcp) {
                p.id = ep.open_connection(now);
                conn_numbers.emplace_back(p.id.value(), server_sent.size());
                server_sent.emplace_back();
                owner.push_back(index_of(p));
                p.tcp = true;
                p.c.handle_tcp_connected(now);
            } else if (p.tcp) {
                flush_client(p);
                p.tcp = false;
                ep.handle_transport_closed(now, p.id);
            }
        }
        return any;
    }

    std::size_t index_of(const peer& p) const {
        for (std::size_t i = 0; i < peers.size(); ++i)
            if (peers[i].get() == &p) return i;
        return 0;
    }

    bool flush_client(peer& p) {
        bool any = false;
        while (p.tcp) {
            const auto run = p.c.pending_output();
            if (run.empty()) break;
            const std::size_t n = piece(run.size());
            const std::string bytes(reinterpret_cast<const char*>(run.data()), n);
            p.c.consume_output(n);
            p.sent.append(bytes);
            to_server(p, bytes);
            any = true;
        }
        return any;
    }

    bool drain_server() {
        bool any = false;
        while (auto e = ep.poll_event()) {
            any = true;
            const std::int64_t k = e->conn.valid() ? static_cast<std::int64_t>(number(e->conn)) : -1;
            std::string line;
            tr::print_event(line, *e, k);
            server_printed.push_back(line);
            if (k < 0) continue;
            peer& p = *peers[owner[static_cast<std::size_t>(k)]];
            if (e->type == srv::event_type::flush) {
                flush_server(static_cast<std::size_t>(k));
            } else if (e->type == srv::event_type::close_transport) {
                flush_server(static_cast<std::size_t>(k));
                ep.handle_transport_closed(now, e->conn);
                if (p.tcp && p.id == e->conn) {
                    // The client reads what came before the EOF first (drain order).
                    drain_client(p);
                    if (p.tcp && p.id == e->conn) {
                        p.tcp = false;
                        p.c.handle_tcp_closed(now);
                    }
                }
            }
        }
        return any;
    }

    void flush_server(std::size_t k) {
        peer& p = *peers[owner[k]];
        srv::conn_id id{};
        for (const auto& [v, n] : conn_numbers)
            if (n == k) id = srv::conn_id::from_value(v);
        while (ep.buffered_output(id) > 0) {
            const auto run = ep.pending_output(id);
            const std::size_t n = piece(run.size());
            const std::string bytes(reinterpret_cast<const char*>(run.data()), n);
            ep.consume_output(id, n);
            server_sent[k].append(bytes);
            if (p.tcp && p.id == id) to_client(p, bytes);
        }
    }

    void settle() {
        for (int round = 0; round < 10000; ++round) {
            bool any = drain_server();
            for (auto& p : peers) any = drain_client(*p) || flush_client(*p) || any;
            if (!any) return;
        }
        FAIL("the world does not settle");
    }

    /// Advance to `until`, firing every timer on the way.
    void run_until(time_point until) {
        settle();
        for (;;) {
            time_point next = ep.next_deadline();
            for (auto& p : peers) next = std::min(next, p->c.next_deadline());
            if (next > until) break;
            now = std::max(now, next);
            if (ep.next_deadline() <= now) ep.handle_timeout(now);
            for (auto& p : peers)
                if (p->c.next_deadline() <= now) p->c.handle_timeout(now);
            settle();
        }
        now = until;
    }

    /// Both ends see the TCP connection of `p` die.
    void reset(peer& p) {
        REQUIRE(p.tcp);
        p.tcp = false;
        ep.handle_transport_closed(now, p.id);
        p.c.handle_tcp_closed(now);
        settle();
    }
};

void check_replay_matches(const std::string& trace_text, const std::vector<std::string>& sent,
                          const std::vector<std::string>& printed) {
    tr::replay_result r;
    const std::string err = replay_or_fail(trace_text, r);
    REQUIRE_MESSAGE(err.empty(), err);
    CHECK(r.text.find("!!") == std::string::npos);
    REQUIRE(r.output.size() >= sent.size());
    for (std::size_t k = 0; k < sent.size(); ++k) {
        CAPTURE(k);
        CHECK(r.output[k].size() == sent[k].size());
        CHECK(r.output[k] == sent[k]);
    }
    std::vector<std::string> live;
    for (const auto& p : printed) live.push_back(p.substr(0, p.size() - 1));  // without '\n'
    std::vector<std::string> replayed = lines_starting(r.text, "event ");
    for (auto& a : lines_starting(r.text, "action ")) replayed.push_back(a);
    // Events keep their order, actions theirs: compare each sequence.
    auto only = [](const std::vector<std::string>& v, std::string_view prefix) {
        std::vector<std::string> o;
        for (const auto& s : v)
            if (s.starts_with(prefix)) o.push_back(s);
        return o;
    };
    CHECK(only(live, "event ") == only(replayed, "event "));
    CHECK(only(live, "action ") == only(replayed, "action "));
}

}  // namespace

TEST_CASE("live run: endpoint and bytes-mode clients, every side recorded, replays byte for byte") {
    world w;
    auto& alice = w.add("alice", 11);
    auto& bob = w.add("bob", 22);
    auto& mallory = w.add("mallory", 33);
    for (auto* p : {&alice, &bob, &mallory}) {
        REQUIRE(!p->c.join(w.now, "lobby"));
        REQUIRE(!p->c.connect(w.now));
    }
    w.run_until(at_ms(100));
    CHECK(alice.c.machine().state() == tc::state::live);
    CHECK(bob.c.machine().state() == tc::state::live);
    CHECK(mallory.c.machine().state() == tc::state::stopped);  // 403

    for (int i = 0; i < 5; ++i) {
        REQUIRE(alice.c.send(w.now, "lobby", "chat.message", R"({"text":"hello )" + std::to_string(i) + "\"}"));
        w.now += 7ms;
    }
    REQUIRE(bob.c.send(w.now, "lobby", "forbidden.kind", "{}"));
    w.run_until(at_ms(3000));  // a heartbeat on the way
    w.reset(bob);              // bob's TCP dies; he reconnects after the backoff and resumes
    REQUIRE(alice.c.send(w.now, "lobby", "chat.message", R"({"text":"while bob is away"})"));
    w.run_until(at_ms(6000));
    CHECK(bob.c.machine().state() == tc::state::live);
    CHECK(bob.c.machine().resumed());
    REQUIRE(!bob.c.leave(w.now, "lobby"));
    w.run_until(at_ms(6500));
    w.ep.drain(w.now, 1s);
    w.run_until(at_ms(9000));

    // The run did what it should, so the comparison covers real traffic.
    CHECK(alice.replies + bob.replies > 0);
    CHECK(w.server_trace.find(" poll events=") == std::string::npos);  // the endpoint is eager
    CHECK((alice.trace + bob.trace).find(" poll events=") != std::string::npos);
    CHECK(w.server_trace.find("hook_authenticate status=403") != std::string::npos);
    CHECK(w.server_trace.find("hook_authorize_publish allow=0") != std::string::npos);
    CHECK(w.server_trace.find(" drain window=1s") != std::string::npos);
    REQUIRE(w.server_sent.size() >= 4);

    SUBCASE("the endpoint's recording") { check_replay_matches(w.server_trace, w.server_sent, w.server_printed); }
    SUBCASE("each client's recording") {
        for (auto* p : {&alice, &bob, &mallory}) {
            CAPTURE(p->trace.substr(0, 400));
            check_replay_matches(p->trace, {p->sent}, p->printed);
        }
    }
    SUBCASE("a recording that lost an input does not replay the same") {
        // Drop the first `written` record after bob's reconnect: the output
        // pace changes, so the printed output must change.
        std::string t = w.server_trace;
        const auto at = t.find(" written conn=", t.find("open_connection conn=3"));
        REQUIRE(at != std::string::npos);
        const auto begin = t.rfind('\n', at) + 1;
        t.erase(begin, t.find('\n', at) + 1 - begin);
        tr::replay_result a, b;
        REQUIRE(replay_or_fail(w.server_trace, a).empty());
        REQUIRE(replay_or_fail(t, b).empty());
        CHECK(a.text != b.text);
    }
}

TEST_CASE("live run: a ws::connection pair, both recorded, replays byte for byte") {
    std::string st, ct;
    ws::config scfg;
    scfg.seed = 5;
    ws::config ccfg;
    ccfg.seed = 6;
    ccfg.subprotocols = {"chat"};
    time_point now = at_ms(0);
    auto server = tr::recorded<ws::connection>::server(now, scfg, tr::sink(&st));
    const ws::http_header extra[] = {{"X-Trace", "yes"}};
    auto client = tr::recorded<ws::connection>::client(now, ccfg, "example.com", "/live?x=1", extra, tr::sink(&ct));
    std::string s_sent, c_sent;
    std::vector<std::string> s_printed, c_printed;
    tether::rng pieces(3);

    auto pump = [&] {
        for (int round = 0; round < 1000; ++round) {
            bool any = false;
            while (auto e = server.poll_event()) {
                any = true;
                std::string l;
                tr::print_event(l, *e, &server.machine());
                s_printed.push_back(l);
                if (e->type == ws::event_type::upgrade_request) CHECK(!server.accept("chat"));
                if (e->type == ws::event_type::message && e->is_text) {
                    const std::string echo = "echo: " + std::string(e->text());
                    CHECK(!server.send_text(echo));
                    break;  // answer before decoding the rest
                }
            }
            while (auto e = client.poll_event()) {
                any = true;
                std::string l;
                tr::print_event(l, *e, &client.machine());
                c_printed.push_back(l);
            }
            for (auto [from, to, sent] : {std::tuple{&server, &client, &s_sent}, std::tuple{&client, &server, &c_sent}}) {
                while (from->buffered_output() > 0) {
                    const auto run = from->pending_output();
                    const std::size_t n = std::min<std::size_t>(run.size(), 1 + pieces.below(40));
                    const std::string b(reinterpret_cast<const char*>(run.data()), n);
                    from->consume_output(n);
                    sent->append(b);
                    CHECK(to->handle_bytes(now, b) == n);
                    any = true;
                }
            }
            if (!any) return;
        }
        FAIL("no quiescence");
    };
    pump();
    REQUIRE(client.state() == ws::state::open);
    now = at_ms(10);
    const std::uint8_t bin[] = {0, 1, 2, 0xff};
    CHECK(!client.send_text("one"));
    CHECK(!client.send_binary(bin));
    CHECK(!client.ping(bin));
    CHECK(!client.send_frame(ws::opcode::text, std::span<const std::uint8_t>(bin, 1), false));
    CHECK(!client.send_frame(ws::opcode::continuation, std::span<const std::uint8_t>(bin, 2), true));
    CHECK(!client.send_text("two"));
    pump();
    now = at_ms(20);
    CHECK(!server.close(now, ws::close_code::going_away, "done"));
    CHECK(server.send_text("late") == ws::error::closing);
    pump();
    server.handle_transport_closed(now);
    client.handle_transport_closed(now);
    pump();
    CHECK(server.state() == ws::state::closed);
    CHECK(st.find(" poll events=") != std::string::npos);

    check_replay_matches(st, {s_sent}, s_printed);
    check_replay_matches(ct, {c_sent}, c_printed);

    // The `poll` records carry weight: without them the replay decodes the
    // whole read before the echo, so the pong of a ping that came in the
    // same read goes out before the echo instead of after it.
    std::string stripped;
    for (std::size_t pos = 0; pos < st.size();) {
        const std::size_t nl = st.find('\n', pos);
        const std::string_view l(st.data() + pos, nl - pos);
        if (l.find(" poll events=") == std::string_view::npos) stripped.append(l).push_back('\n');
        pos = nl + 1;
    }
    tr::replay_result r;
    REQUIRE(replay_or_fail(stripped, r).empty());
    CHECK(r.output[0].size() == s_sent.size());
    CHECK(r.output[0] != s_sent);
}

TEST_CASE("live run: the message-mode client, recorded, replays its actions and events") {
    std::string t;
    tc::config cfg;
    cfg.seed = 77;
    tr::recorded<tc::client> c(cfg, tr::sink(&t));
    std::vector<std::string> printed;
    auto drain = [&] {
        while (auto e = c.poll_event()) {
            std::string l;
            tr::print_event(l, *e);
            printed.push_back(l);
        }
        while (auto a = c.poll_action()) {
            std::string l;
            tr::print_action(l, *a);
            printed.push_back(l);
        }
    };
    CHECK(!c.join(at_ms(0), "r1"));
    CHECK(!c.connect(at_ms(0)));
    drain();
    c.handle_transport_open(at_ms(5));
    c.handle_message(at_ms(6), R"({"kind":"server.hello","protocol_version":1,"session_id":"S","heartbeat_ms":1000})");
    drain();
    c.handle_message(at_ms(7), R"({"kind":"room.joined","room_id":"r1","resume":"none","head":0,"epoch":"e","correlation_id":"c1"})");
    // Two sends before the loop polls: the poll record keeps the timing of
    // mark-sent exact.
    const auto id1 = c.send(at_ms(8), "r1", "k.a", "1");
    const auto id2 = c.send(at_ms(9), "r1", "k.a", "2");
    REQUIRE(id1);
    REQUIRE(id2);
    drain();
    c.handle_timeout(at_ms(20000));  // ack timeout, heartbeat timeout
    drain();
    c.handle_binary(at_ms(20001));
    c.handle_transport_closed(at_ms(20002), 1006, "gone", 0);
    drain();
    c.handle_timeout(at_ms(40000));
    drain();
    CHECK(t.find(" poll events=0 actions=0") != std::string::npos);
    check_replay_matches(t, {}, printed);
}
