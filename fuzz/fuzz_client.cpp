// fuzz_client — the tether v1 client machine (client::client, message
// mode) driven by a fuzzer-decoded sequence of (time step, input).
//
// Input: [config byte][op]... Each op is one byte choosing what happens
// next, followed by the bytes that op consumes (see `run_op`):
//   time step (then handle_timeout if a deadline is due) / jump to the next
//   deadline; transport open; a server message from a small grammar of
//   valid-ish envelopes with fuzzer-chosen fields (hello, ping + heads, ack,
//   error, room.joined, room.left, presence, application events, unknown
//   kinds), raw fuzzer bytes, or a binary message; transport closed with a
//   code / reason / HTTP status; app commands join, leave, send,
//   snapshot_loaded, close, connect, set_token.
//
// The harness plays an honest transport: server messages, opens and
// closures are delivered only while a transport exists (an `open` action was
// performed and no `close` action or closure report since), as the drain
// order in client.hpp requires. Fields it sends refer to the client's real
// state (its rooms, cursors, message ids, correlation ids) so that deep paths
// are reachable, with fuzzer-chosen offsets to make them wrong too.
//
// Invariants after every input or command (events drained, then actions):
//   - delivery: per room, a message event's event_id is exactly the model
//     cursor + 1 (no loss, no duplicate, no reordering); the model follows
//     docs/protocol.md: joined/none sets the cursor to head (unless waiting
//     for a snapshot), joined/replay without a cursor likewise,
//     snapshot_required clears it until snapshot_loaded; the client's
//     cursor(room) equals the model's, so a cursor never moves backwards
//     except through those documented resets;
//   - rooms appear only by join() and disappear only with a `left` event;
//   - every accepted send() is pending until exactly one terminal event
//     (ack, or a server_error with its id that is not rate_limited), and
//     pending() equals that count, within the outbox bounds;
//   - actions: `open` only when connecting and no transport exists; sends
//     only on a transport, application messages only when live; after the
//     client is stopped no action at all (except the close that stopped it,
//     and whatever connect() starts);
//   - after handle_timeout(now) (and draining), next_deadline() > now.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "tether/client/client.hpp"
#include "tether/proto/envelope.hpp"

namespace {

namespace cl = tether::client;
namespace proto = tether::proto;
using fuzz::printable;
using fuzz::quote;
using tether::duration;
using tether::time_point;
using namespace std::chrono_literals;

constexpr const char* k_rooms[] = {"a", "b", "c"};

struct model_room {
    bool has = false;
    std::int64_t cur = 0;
    bool awaiting = false;
};

// FUZZ_TRACE=1 in the environment prints every input, event and action
// (for reading a crash or a seed; off while fuzzing).
const bool g_trace = std::getenv("FUZZ_TRACE") != nullptr;

struct harness {
    explicit harness(cl::config cfg) : c(std::move(cfg)) {}

    cl::client c;
    time_point now = tether::at_ms(1'000'000);
    bool transport = false;         // an open action was performed, no close since
    bool transport_opened = false;  // handle_transport_open was delivered
    std::map<std::string, model_room> rooms;
    std::set<std::string> pending;    // accepted send() ids without a terminal event
    std::vector<std::string> ids;     // every id send() returned
    std::vector<std::string> corrs;   // correlation ids of client.join / client.leave seen
    std::vector<std::string> epochs{"e1", "e2"};
    proto::envelope_reader reader;
    std::string last_text;

    std::int64_t cursor_of(const std::string& room) const {
        auto it = rooms.find(room);
        return it != rooms.end() && it->second.has ? it->second.cur : 0;
    }

    /// Events, then actions, then the invariants.
    void after(bool stopped_before, bool allow_actions_when_stopped, bool was_timeout) {
        while (auto e = c.poll_event()) on_event(*e);
        std::size_t non_close = 0, actions = 0;
        while (auto a = c.poll_action()) {
            ++actions;
            if (a->type != cl::action_type::close) ++non_close;
            on_action(*a);
        }
        if (stopped_before && !allow_actions_when_stopped)
            FUZZ_CHECK(actions == 0, "an action from a client that was already stopped");
        if (c.state() == cl::state::stopped) FUZZ_CHECK(non_close == 0, "a non-close action while stopping");
        check_state();
        if (was_timeout)
            FUZZ_CHECK(c.next_deadline() > now, "next_deadline() not in the future after handle_timeout (" +
                                                     std::to_string(tether::to_ms(c.next_deadline())) + " <= " +
                                                     std::to_string(tether::to_ms(now)) + ")");
    }

    void on_event(const cl::event& e) {
        const std::string room(e.room);
        if (g_trace)
            std::fprintf(stderr, "  event %s room=%s id=%lld head=%lld code=%s msgid=%s state=%s\n",
                         cl::to_string(e.type).data(), room.c_str(), static_cast<long long>(e.event_id),
                         static_cast<long long>(e.head), std::string(e.code).c_str(), std::string(e.id).c_str(),
                         cl::to_string(c.state()).data());
        switch (e.type) {
            case cl::event_type::message: {
                auto it = rooms.find(room);
                FUZZ_CHECK(it != rooms.end(), "message for a room the client does not have: " + room);
                model_room& m = it->second;
                FUZZ_CHECK(m.has && !m.awaiting, "message delivered without a cursor / while awaiting a snapshot");
                FUZZ_CHECK(e.event_id == m.cur + 1, "message event_id " + std::to_string(e.event_id) +
                                                        " is not cursor+1 = " + std::to_string(m.cur + 1) + " in " + room);
                m.cur = e.event_id;
                break;
            }
            case cl::event_type::joined: {
                auto it = rooms.find(room);
                FUZZ_CHECK(it != rooms.end(), "joined for a room the client does not have");
                model_room& m = it->second;
                switch (e.resume) {
                    case proto::resume_mode::none:
                        if (!m.awaiting) {
                            m.has = true;
                            m.cur = e.head;
                        }
                        break;
                    case proto::resume_mode::replay:
                        if (!m.has) {
                            m.has = true;
                            m.cur = e.head;
                        }
                        break;
                    case proto::resume_mode::snapshot_required:
                        m.awaiting = true;
                        m.has = false;
                        break;
                }
                break;
            }
            case cl::event_type::left: {
                FUZZ_CHECK(rooms.erase(room) == 1, "left for a room the client did not have: " + room);
                break;
            }
            case cl::event_type::ack: {
                FUZZ_CHECK(pending.erase(std::string(e.id)) == 1, "ack for an id that is not pending: " + printable(e.id));
                break;
            }
            case cl::event_type::server_error: {
                if (!e.id.empty() && e.code != "rate_limited") pending.erase(std::string(e.id));
                break;
            }
            default:
                break;
        }
    }

    void on_action(const cl::action& a) {
        if (g_trace)
            std::fprintf(stderr, "  action %d %s code=%u\n", static_cast<int>(a.type),
                         printable(a.type == cl::action_type::open ? a.target : a.text, 300).c_str(), a.code);
        switch (a.type) {
            case cl::action_type::open:
                FUZZ_CHECK(c.state() == cl::state::connecting, "open action outside connecting");
                FUZZ_CHECK(!transport, "open action while a transport exists");
                FUZZ_CHECK(!a.target.empty() && a.target.front() == '/', "open target not absolute");
                FUZZ_CHECK(a.subprotocol == "tether.v1", "open without tether.v1");
                transport = true;
                transport_opened = false;
                break;
            case cl::action_type::send_text: {
                FUZZ_CHECK(transport, "send_text without a transport");
                last_text.assign(a.text);
                proto::envelope env;
                const auto r = reader.read(last_text, env);
                FUZZ_CHECK(static_cast<bool>(r), "client sent an invalid envelope: " + printable(last_text));
                if (env.kind == "client.join" || env.kind == "client.leave") {
                    FUZZ_CHECK(env.has(proto::field::room_id) && !env.correlation_id.empty(), "join/leave incomplete");
                    corrs.emplace_back(env.correlation_id);
                    if (corrs.size() > 8) corrs.erase(corrs.begin());
                    FUZZ_CHECK(c.state() == cl::state::syncing || c.state() == cl::state::live,
                               "join/leave before server.hello");
                } else if (env.kind == "client.pong") {
                    FUZZ_CHECK(env.ts.has_value(), "pong without ts");
                } else {
                    FUZZ_CHECK(!proto::is_reserved_kind(env.kind), "client sent a reserved kind " + printable(env.kind));
                    FUZZ_CHECK(c.state() == cl::state::live, "application message sent while not live");
                    FUZZ_CHECK(pending.count(std::string(env.id)) == 1, "sent a message that is not pending");
                    FUZZ_CHECK(last_text.size() <= c.max_outgoing_bytes(), "sent a message over the size bound");
                }
                break;
            }
            case cl::action_type::close:
                FUZZ_CHECK(transport, "close action without a transport");
                transport = false;
                transport_opened = false;
                break;
        }
    }

    void check_state() {
        const auto& ob = c.outbox().config();
        FUZZ_CHECK(c.pending() == pending.size(), "pending() = " + std::to_string(c.pending()) + " but " +
                                                      std::to_string(pending.size()) + " sends have no terminal event");
        FUZZ_CHECK(c.pending() <= ob.max_messages, "outbox over max_messages");
        FUZZ_CHECK(c.outbox().bytes() <= ob.max_bytes, "outbox over max_bytes");
        FUZZ_CHECK(c.rooms().size() <= c.cfg().max_rooms, "more rooms than max_rooms");
        for (const auto& r : c.rooms()) {
            auto it = rooms.find(r.id);
            FUZZ_CHECK(it != rooms.end(), "room " + r.id + " exists without join()");
            const model_room& m = it->second;
            const auto cur = c.cursor(r.id);
            FUZZ_CHECK(cur.has_value() == m.has && (!m.has || *cur == m.cur),
                       "cursor of " + r.id + " is " + (cur ? std::to_string(*cur) : "none") + ", model " +
                           (m.has ? std::to_string(m.cur) : "none"));
            FUZZ_CHECK(r.awaiting_snapshot == m.awaiting, "awaiting_snapshot differs from the model");
        }
        for (const auto& [id, m] : rooms)
            FUZZ_CHECK(c.find_room(id) != nullptr, "room " + id + " vanished without a left event");
        (void)c.next_deadline();
    }
};

// ---- the server-message grammar -------------------------------------------------------

std::string pick_room(fuzz::byte_source& src) { return k_rooms[src.below(3)]; }

std::int64_t pick_event_id(fuzz::byte_source& src, std::int64_t cur) {
    switch (src.below(8)) {
        case 0: case 1: case 2: return cur + 1;
        case 3: return cur;
        case 4: return cur + 2;
        case 5: return cur + 1 + src.u8();
        case 6: return src.u8();
        default: return cur > 0 ? cur - 1 : 0;
    }
}

std::string server_message(harness& h, fuzz::byte_source& src) {
    std::string j = "{";
    auto field = [&j](std::string_view name, const std::string& value) {
        if (j.size() > 1) j.push_back(',');
        j.append(quote(name)).push_back(':');
        j.append(value);
    };
    auto num = [](std::int64_t v) { return std::to_string(v); };
    auto pick_id = [&]() -> std::string {
        if (!h.ids.empty() && src.below(4) != 0) return h.ids[src.below(h.ids.size())];
        return "zz-1";
    };
    auto pick_corr = [&]() -> std::string {
        if (!h.corrs.empty() && src.below(4) != 0) return h.corrs[h.corrs.size() - 1 - src.below(h.corrs.size())];
        return "c999";
    };
    switch (src.below(11)) {
        case 0: {  // server.hello
            field("kind", quote("server.hello"));
            static constexpr int pvs[] = {1, 1, 1, 2, -1};
            if (const int pv = src.pick(pvs); pv >= 0) field("protocol_version", num(pv));
            static constexpr const char* sids[] = {"s1", "s1", "s2", "", nullptr};
            if (const char* s = src.pick(sids)) field("session_id", quote(s));
            static constexpr int resumed[] = {0, 1, -1};
            if (const int r = src.pick(resumed); r >= 0) field("resumed", r ? "true" : "false");
            static constexpr std::int64_t hbs[] = {-1, 0, 1000, 25000, 9007199254740991};
            if (const auto hb = src.pick(hbs); hb >= 0) field("heartbeat_ms", num(hb));
            field("ts", num(1700000000000));
            switch (src.below(4)) {
                case 0: break;
                case 1: field("limits", R"({"max_message_bytes":300})"); break;
                case 2: field("limits", R"({"max_message_bytes":65536,"rate_per_s":5,"rate_burst":2})"); break;
                default: field("limits", R"({"max_message_bytes":0,"rate_per_s":0})"); break;
            }
            field("caps", R"(["replay","ack","presence"])");
            break;
        }
        case 1: {  // server.ping
            field("kind", quote("server.ping"));
            if (src.below(8) != 0) field("ts", num(1700000000000 + src.u8()));
            if (src.flag()) {
                std::string heads = "{";
                const std::size_t n = 1 + src.below(2);
                std::set<std::string> used;
                for (std::size_t i = 0; i < n; ++i) {
                    const std::string r = pick_room(src);
                    if (!used.insert(r).second) continue;
                    if (heads.size() > 1) heads.push_back(',');
                    heads += quote(r) + ":" + num(pick_event_id(src, h.cursor_of(r)));
                }
                field("heads", heads + "}");
            }
            break;
        }
        case 2: {  // server.ack
            field("kind", quote("server.ack"));
            field("id", quote(pick_id()));
            const std::string r = pick_room(src);
            if (src.flag()) field("room_id", quote(r));
            field("event_id", num(pick_event_id(src, h.cursor_of(r))));
            static constexpr const char* st[] = {"accepted", "accepted", "duplicate", "other"};
            field("status", quote(src.pick(st)));
            break;
        }
        case 3: {  // server.error
            field("kind", quote("server.error"));
            static constexpr const char* codes[] = {"rate_limited", "rate_limited", "bad_request", "not_member",
                                                    "forbidden", "too_many_rooms", "too_large", "brand_new"};
            field("code", quote(src.pick(codes)));
            field("message", quote("x"));
            switch (src.below(3)) {
                case 0: field("id", quote(pick_id())); break;
                case 1: field("correlation_id", quote(pick_corr())); break;
                default: break;
            }
            static constexpr std::int64_t ras[] = {-1, 0, 50, 1000, 1000000000};
            if (const auto ra = src.pick(ras); ra >= 0) field("retry_after_ms", num(ra));
            if (src.below(4) == 0) field("room_id", quote(pick_room(src)));
            break;
        }
        case 4: {  // room.joined
            field("kind", quote("room.joined"));
            const std::string r = pick_room(src);
            if (src.below(16) != 0) field("room_id", quote(r));
            static constexpr const char* modes[] = {"none", "replay", "replay", "snapshot_required", "bogus", nullptr};
            const char* mode = src.pick(modes);
            if (mode) field("resume", quote(mode));
            const std::int64_t cur = h.cursor_of(r);
            std::int64_t head = cur + static_cast<std::int64_t>(src.below(6)) - 2;
            if (head < 0) head = 0;
            if (src.below(16) != 0) field("head", num(head));
            if (src.below(8) != 0) field("replay_to", num(src.flag() ? head : head + src.below(3)));
            if (src.below(16) != 0) field("epoch", quote(h.epochs[src.below(2)]));
            static constexpr const char* reasons[] = {"truncated", "epoch_changed", "ahead", "odd"};
            field("reason", quote(src.pick(reasons)));
            field("members", R"(["u1","u2"])");
            if (src.flag()) field("correlation_id", quote(pick_corr()));
            break;
        }
        case 5: {  // room.left
            field("kind", quote("room.left"));
            field("room_id", quote(pick_room(src)));
            if (src.flag()) field("correlation_id", quote(pick_corr()));
            break;
        }
        case 6: {  // presence
            static constexpr const char* kinds[] = {"presence.joined", "presence.away", "presence.reconnected",
                                                    "presence.left", "presence.future"};
            field("kind", quote(src.pick(kinds)));
            field("room_id", quote(pick_room(src)));
            if (src.below(8) != 0) field("user", quote("u2"));
            break;
        }
        case 7:
        case 8: {  // an application event
            field("kind", quote(src.below(8) ? "chat.message" : "other.kind"));
            const std::string r = pick_room(src);
            if (src.below(16) != 0) field("room_id", quote(r));
            if (src.below(16) != 0) field("event_id", num(pick_event_id(src, h.cursor_of(r))));
            field("sender", quote("u2"));
            if (src.flag()) field("id", quote(pick_id()));
            static constexpr const char* payloads[] = {R"({"t":"hi"})", "null", "[1,2,3]", nullptr};
            if (const char* p = src.pick(payloads)) field("payload", p);
            field("ts", num(1700000000000));
            break;
        }
        case 9:  // a reserved kind this version does not know
            field("kind", quote(src.flag() ? "server.future" : "room.future"));
            break;
        default:  // raw bytes
            return src.take_string(src.u8());
    }
    j.push_back('}');
    return j;
}

constexpr std::int64_t k_steps_ms[] = {0, 1, 10, 100, 500, 1000, 2000, 5000, 10000, 30000, 60000, 600000};

void run_op(harness& h, fuzz::byte_source& src) {
    const bool stopped_before = h.c.state() == cl::state::stopped;
    bool allow_when_stopped = false;
    bool was_timeout = false;
    const std::size_t op = src.below(16);
    if (g_trace)
        std::fprintf(stderr, "op %zu at %lld ms, state %s\n", op, static_cast<long long>(tether::to_ms(h.now)),
                     cl::to_string(h.c.state()).data());
    switch (op) {
        case 0:
        case 1: {  // time step
            h.now += std::chrono::milliseconds(src.pick(k_steps_ms));
            if (!(h.now < h.c.next_deadline())) {
                h.c.handle_timeout(h.now);
                was_timeout = true;
            }
            break;
        }
        case 2:  // the transport opened
            if (!h.transport || h.transport_opened) return;
            h.transport_opened = true;
            h.c.handle_transport_open(h.now);
            break;
        case 3:
        case 4:
        case 5:
        case 6: {  // a server message
            const std::string text = server_message(h, src);
            if (!h.transport) return;
            if (g_trace) std::fprintf(stderr, "  server says %s\n", printable(text, 300).c_str());
            if (src.below(32) == 0)
                h.c.handle_binary(h.now);
            else
                h.c.handle_message(h.now, text);
            break;
        }
        case 7: {  // the transport closed
            static constexpr std::uint16_t codes[] = {1000, 1001, 1002, 1003, 1005, 1006, 1006, 1006, 1007, 1008, 1009,
                                                      1010, 1011, 1012, 1013, 1014, 1015, 4001, 4002, 4003, 4008, 4029,
                                                      3000, 0};
            static constexpr const char* reasons[] = {"", R"({"reason":"restart","retry_after_ms":1830})",
                                                      R"({"retry_after_ms":0})", "garbage",
                                                      R"({"retry_after_ms":99999999999})"};
            static constexpr int https[] = {0, 0, 0, 401, 403, 426, 429, 500, 503, 302, 404};
            const std::uint16_t code = src.pick(codes);
            const char* reason = src.pick(reasons);
            const int http = src.pick(https);
            if (!h.transport) return;
            h.transport = false;
            h.transport_opened = false;
            h.c.handle_transport_closed(h.now, code, reason, http);
            break;
        }
        case 8: {  // join
            const std::string room = src.below(16) ? pick_room(src) : std::string("bad room");
            const bool existed = h.c.find_room(room) != nullptr;
            const auto ec = h.c.join(h.now, room);
            if (!ec && !existed) {
                FUZZ_CHECK(h.rooms.count(room) == 0, "model has a room the client does not");
                h.rooms[room] = model_room{};
            }
            if (room == "bad room") FUZZ_CHECK(ec == cl::client_error::bad_room_id, "invalid room id accepted");
            break;
        }
        case 9:  // leave
            (void)h.c.leave(h.now, pick_room(src));
            break;
        case 10: {  // send
            const std::string room = pick_room(src);
            static constexpr const char* kinds[] = {"chat.message", "chat.message", "", "server.x"};
            const char* kind = src.pick(kinds);
            std::string payload;
            switch (src.below(5)) {
                case 0: break;
                case 1: payload = R"({"t":1})"; break;
                case 2: payload = "{bad"; break;
                case 3: payload = "null"; break;
                default: payload = quote(std::string(static_cast<std::size_t>(src.u8()) * 4, 'x')); break;
            }
            const auto r = h.c.send(h.now, room, kind, payload);
            if (r) {
                const std::string id(r.id.view());
                FUZZ_CHECK(!id.empty() && id.size() <= 64, "bad message id");
                FUZZ_CHECK(h.pending.insert(id).second, "send() returned an id twice");
                h.ids.push_back(id);
                if (h.ids.size() > 16) h.ids.erase(h.ids.begin());
            }
            if (stopped_before) FUZZ_CHECK(!r, "send() accepted while stopped");
            break;
        }
        case 11: {  // snapshot_loaded
            const std::string room = pick_room(src);
            const std::int64_t cur = h.cursor_of(room);
            std::int64_t at = 0;
            switch (src.below(5)) {
                case 0: at = cur; break;
                case 1: at = cur + 1; break;
                case 2: at = cur > 0 ? cur - 1 : 0; break;
                case 3: at = src.u8(); break;
                default: at = -1; break;
            }
            static constexpr const char* eps[] = {"", "e1", "e2"};
            const char* ep = src.pick(eps);
            const auto ec = h.c.snapshot_loaded(h.now, room, at, ep);
            if (!ec) {
                auto it = h.rooms.find(room);
                FUZZ_CHECK(it != h.rooms.end(), "snapshot_loaded accepted for an unknown room");
                it->second = model_room{true, at, false};
            }
            break;
        }
        case 12:  // close
            (void)h.c.close(h.now);
            break;
        case 13:  // connect
            allow_when_stopped = true;
            (void)h.c.connect(h.now);
            break;
        case 14: {  // set_token
            allow_when_stopped = false;
            (void)h.c.set_token(h.now, src.flag() ? "tok1" : "bad token");
            break;
        }
        default: {  // jump to the next deadline
            const time_point d = h.c.next_deadline();
            if (d == tether::never) return;
            if (h.now < d) h.now = d;
            h.c.handle_timeout(h.now);
            was_timeout = true;
            break;
        }
    }
    h.after(stopped_before, allow_when_stopped, was_timeout);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::byte_source src(data, size);
    const std::uint8_t cfg_byte = src.u8();
    cl::config cfg;
    cfg.seed = cfg_byte;
    cfg.outbox.max_messages = 4;
    cfg.outbox.max_bytes = 700;
    cfg.max_message_bytes = 1000;
    cfg.max_rooms = 2 + (cfg_byte & 1);
    static constexpr unsigned attempts[] = {0, 2, 10, 1};
    cfg.backoff.max_attempts = attempts[(cfg_byte >> 1) & 3];
    if (cfg_byte & 8) cfg.token = "tok0";
    harness h(cfg);
    if (cfg_byte & 16) {
        (void)h.c.connect(h.now);
        h.after(false, true, false);
    }
    int ops = 0;
    while (!src.empty() && ops++ < 400) run_op(h, src);
    return 0;
}
