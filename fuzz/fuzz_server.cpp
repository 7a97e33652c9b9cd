// fuzz_server — the tether v1 server endpoint with four connection slots,
// driven by a fuzzer-decoded sequence of (time step, input).
//
// Input: [config byte][op]... Each op is one byte choosing what happens,
// followed by the bytes it consumes (see run_op):
//   open a connection in slot k (upgrade variants: principal, resume of a
//   known session id or a bogus one, no subprotocol, a broken request, no
//   request, a request in two reads); a well-formed client frame to slot k
//   carrying an envelope from a small grammar (join with or without
//   resume_from/epoch, leave, publish with ids from a small set so that
//   deduplication is hit, pong, garbage, a reserved kind, an invalid room
//   id), or a binary / ping / close / fragmented frame, possibly delivered in
//   two reads; raw fuzzer bytes to slot k; a time step (handle_timeout when
//   due) or a jump to the next deadline; the transport of slot k closing;
//   slot k becoming a slow reader (or a reader again); a drain; a partial
//   read of slot k's output.
//
// The harness is the event loop: it answers `close_transport` by reading
// what is left (for a reading slot) and reporting the transport closed —
// at once, or only when the fuzzer closes that slot (config bit 1), so
// that closed-but-not-released connections are exercised too.
//
// Invariants, after every op:
//   - output bound: every connection's buffered_output() stays within
//     send_high_water + one message frame + one close frame;
//   - no output on a closed connection (its buffered output never grows
//     once the WebSocket is closed) and nothing after a close frame on the
//     wire; each slot's output is one HTTP response, then (for 101) frames
//     that are unmasked, well-formed, texts within max_message_bytes that
//     are valid envelopes of known kinds, server.hello first;
//   - delivery: on each connection, the events of a room are contiguous
//     from the point room.joined announces (resume_from + 1 for a replay,
//     head + 1 otherwise) and absent after room.left; the same
//     (room, epoch, event_id) always carries the same bytes (live and
//     replayed copies are identical); an event_id is acked `accepted` at
//     most once per room history;
//   - deduplication: republishing (principal, id) in a room within
//     dedup_window is acked `duplicate` with the original event_id;
//   - room heads never decrease within an epoch, and no event or ack names
//     an event_id above the head;
//   - counts: connection_count() equals the live slots, memory() agrees,
//     sessions / rooms / replay / dedup within their bounds, no two open
//     connections share a session, every connection a `flush`,
//     `close_transport`, `connected` or `closed` event names is live, and
//     `closed` is reported once per connection;
//   - after handle_timeout(now), next_deadline() > now.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "tether/proto/envelope.hpp"
#include "tether/server/endpoint.hpp"

namespace {

namespace server = tether::server;
namespace proto = tether::proto;
namespace ws = tether::ws;
using fuzz::printable;
using fuzz::quote;
using tether::time_point;
using namespace std::chrono_literals;

const bool g_trace = std::getenv("FUZZ_TRACE") != nullptr;

constexpr std::size_t k_slots = 4;
constexpr const char* k_rooms[] = {"r1", "r2", "r3", "r.forbidden", "r4"};
constexpr std::size_t k_nrooms = std::size(k_rooms);
constexpr const char* k_ids[] = {"m1", "m2", "m3", "m4", "m5", "m6"};
constexpr const char* k_users[] = {"alice", "bob", "alice", "", "deny", "forbid"};

struct slot {
    server::conn_id id;
    bool live = false;      // a valid handle: opened, transport not reported closed
    bool reading = true;    // consumes its output after every op
    bool close_pending = false;  // close_transport seen, transport not closed yet (lazy mode)
    bool closed_event = false;
    std::string principal;
    // the client side of the wire
    std::string http;       // response head bytes until complete
    bool head_done = false;
    int status = 0;
    std::size_t body_left = 0;
    fuzz::frame_reader frames{false};
    bool close_frame = false;
    bool hello = false;
    std::string session;
    std::map<std::string, std::int64_t> next_event;  // room -> expected next event_id
    std::set<std::string> left_rooms;                // room.left seen, no room.joined since
    std::map<std::string, std::string> stream_epoch;  // room -> epoch of its last room.joined here
    bool stale = false;     // output was left unread at the end of an earlier op
    std::size_t last_buffered = 0;
    bool was_ws_closed = false;
};

struct dedup_entry {
    std::int64_t event_id;
    time_point at;
};

struct harness {
    // cfg: what the endpoint runs with (it raises a too small max_message_bytes).
    explicit harness(const server::config& c) : ep(c), cfg(ep.cfg()) {}

    server::endpoint ep;
    server::config cfg;
    time_point now = tether::at_ms(1'000'000);
    std::array<slot, k_slots> slots;
    bool lazy_close = false;
    std::vector<std::string> sessions;           // session ids seen in hellos
    std::map<std::string, std::string> epoch_of; // room -> epoch last seen in endpoint.room()
    std::map<std::string, std::int64_t> head_of; // room -> head last seen (same epoch)
    std::map<std::string, std::string> event_bytes;    // room|epoch|event_id -> frame text
    std::set<std::string> accepted;                    // room|epoch|event_id acked accepted
    std::map<std::string, dedup_entry> dedup;          // room|epoch|principal|id -> first accept
    std::map<std::string, std::vector<time_point>> accepts;  // room|epoch -> times of accepted acks
    std::uint64_t fresh_ids = 0;
    std::map<std::string, std::optional<std::int64_t>> join_resume;  // correlation_id -> resume_from sent
    std::uint64_t corr_counter = 0;
    std::set<std::uint64_t> closed_ids;                // conn ids whose `closed` was reported
    std::set<std::uint64_t> opened_ids;                // every conn id open_connection() returned
    proto::envelope_reader reader;

    slot* find(server::conn_id id) {
        for (auto& s : slots)
            if (s.live && s.id == id) return &s;
        return nullptr;
    }
    /// The history a frame on slot s about `room` belongs to: the epoch of
    /// the last room.joined on that stream; else, for output read in the op
    /// that produced it, the room's epoch now; else unknown (checks skipped).
    std::optional<std::string> epoch_for(const slot& s, const std::string& room) const {
        if (auto it = s.stream_epoch.find(room); it != s.stream_epoch.end()) return it->second;
        if (s.stale) return std::nullopt;
        const auto info = ep.room(room);
        if (!info) return std::nullopt;
        return std::string(info->epoch);
    }

    // ---- reading a slot's output as its client would ----------------------------

    void read_output(slot& s, std::size_t limit = SIZE_MAX) {
        while (limit > 0) {
            const auto run = ep.pending_output(s.id);
            if (run.empty()) break;
            const std::size_t n = std::min(run.size(), limit);
            parse_wire(s, run.first(n));
            ep.consume_output(s.id, n);
            limit -= n;
        }
    }

    void parse_wire(slot& s, std::span<const std::uint8_t> bytes) {
        if (!s.head_done) {
            std::size_t i = 0;
            for (; i < bytes.size() && !s.head_done; ++i) {
                s.http.push_back(static_cast<char>(bytes[i]));
                if (s.http.size() >= 4 && s.http.compare(s.http.size() - 4, 4, "\r\n\r\n") == 0) s.head_done = true;
            }
            FUZZ_CHECK(s.http.size() <= 4096, "response head too long");
            if (!s.head_done) return;
            FUZZ_CHECK(s.http.size() >= 12 && s.http.compare(0, 9, "HTTP/1.1 ") == 0, "not an HTTP response");
            s.status = std::atoi(s.http.c_str() + 9);
            if (s.status != 101) {
                const std::size_t cl = s.http.find("Content-Length: ");
                FUZZ_CHECK(cl != std::string::npos, "refusal without Content-Length");
                s.body_left = static_cast<std::size_t>(std::atoll(s.http.c_str() + cl + 16));
            } else {
                FUZZ_CHECK(s.http.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos,
                           "101 with a wrong accept");
            }
            bytes = bytes.subspan(i);
        }
        if (s.status != 101) {
            FUZZ_CHECK(bytes.size() <= s.body_left, "bytes after the refusal's body");
            s.body_left -= bytes.size();
            return;
        }
        std::vector<fuzz::wire_frame> frames;
        FUZZ_CHECK(s.frames.feed(bytes, frames), std::string("malformed server output: ") + s.frames.why());
        for (auto& f : frames) on_frame(s, f);
    }

    void on_frame(slot& s, const fuzz::wire_frame& f) {
        FUZZ_CHECK(!s.close_frame, "a frame after the close frame");
        FUZZ_CHECK(f.fin, "the server fragmented a message");
        switch (f.opcode) {
            case 8:
                s.close_frame = true;
                if (f.payload.size() >= 2) {
                    const int code = (static_cast<std::uint8_t>(f.payload[0]) << 8) | static_cast<std::uint8_t>(f.payload[1]);
                    if (g_trace) std::fprintf(stderr, "  slot close %d %s\n", code, printable(f.payload.substr(2)).c_str());
                }
                return;
            case 10:
                return;  // pong
            case 1:
                break;
            default:
                FUZZ_CHECK(false, "unexpected opcode from the server: " + std::to_string(f.opcode));
        }
        FUZZ_CHECK(f.payload.size() <= cfg.max_message_bytes, "server frame over max_message_bytes");
        proto::envelope e;
        const auto r = reader.read(f.payload, e);
        FUZZ_CHECK(static_cast<bool>(r), "server sent an invalid envelope: " + printable(f.payload));
        if (g_trace) std::fprintf(stderr, "  slot %zu <- %s\n", static_cast<std::size_t>(&s - slots.data()), printable(f.payload, 300).c_str());
        const std::string kind(e.kind);
        if (!s.hello) {
            FUZZ_CHECK(kind == "server.hello", "first frame is not server.hello: " + kind);
            FUZZ_CHECK(e.protocol_version == 1 && !e.session_id.empty(), "hello incomplete");
            s.hello = true;
            s.session.assign(e.session_id);
            sessions.push_back(s.session);
            if (sessions.size() > 8) sessions.erase(sessions.begin());
            return;
        }
        FUZZ_CHECK(kind != "server.hello", "second hello");
        const std::string room(e.room_id);
        if (kind == "room.joined") {
            FUZZ_CHECK(e.head && e.has(proto::field::epoch) && !room.empty(), "room.joined incomplete");
            const auto mode = proto::parse_resume_mode(e.resume);
            FUZZ_CHECK(mode.has_value(), "room.joined with an unknown resume mode");
            bool member = false;
            std::string scratch;
            proto::for_each_string(e.members, scratch, [&](std::string_view m) { member = member || m == s.principal; });
            FUZZ_CHECK(member, "room.joined members lack the joiner " + s.principal);
            std::int64_t next = *e.head + 1;
            if (*mode == proto::resume_mode::replay) {
                FUZZ_CHECK(e.replay_to == e.head, "replay_to is not head");
                const auto it = join_resume.find(std::string(e.correlation_id));
                FUZZ_CHECK(it != join_resume.end() && it->second, "replay answer to a join without resume_from");
                FUZZ_CHECK(*it->second <= *e.head, "replay from beyond head");
                next = *it->second + 1;
            }
            s.next_event[room] = next;
            s.left_rooms.erase(room);
            s.stream_epoch[room] = std::string(e.epoch);
            return;
        }
        if (kind == "room.left") {
            s.next_event.erase(room);
            s.left_rooms.insert(room);
            s.stream_epoch.erase(room);
            return;
        }
        if (kind == "server.ack") {
            FUZZ_CHECK(e.event_id && *e.event_id >= 1 && !room.empty(), "ack incomplete");
            const auto epoch = epoch_for(s, room);
            if (!epoch) return;
            const std::string ep_key = room + "|" + *epoch;
            const auto info = ep.room(room);
            if (info && info->epoch == *epoch)
                FUZZ_CHECK(*e.event_id <= info->head, "ack names an event_id above the head");
            const std::string ev_key = ep_key + "|" + std::to_string(*e.event_id);
            const std::string dd_key = ep_key + "|" + s.principal + "|" + std::string(e.id);
            if (e.status == "accepted") {
                FUZZ_CHECK(accepted.insert(ev_key).second, "event_id acked accepted twice: " + ev_key);
                const auto it = dedup.find(dd_key);
                auto& times = accepts[ep_key];
                if (it != dedup.end() && now - it->second.at < cfg.dedup_window) {
                    // Remembered for dedup_window unless dedup_max_ids newer ids pushed it out.
                    std::size_t newer = 0;
                    for (const auto t : times) newer += !(t < it->second.at);
                    FUZZ_CHECK(newer > cfg.dedup_max_ids, "republish inside the dedup window accepted again: " + dd_key);
                }
                times.push_back(now);
                dedup[dd_key] = {*e.event_id, now};
            } else {
                FUZZ_CHECK(e.status == "duplicate", "ack status unknown");
                const auto it = dedup.find(dd_key);
                if (it != dedup.end())
                    FUZZ_CHECK(it->second.event_id == *e.event_id, "duplicate ack names another event_id");
            }
            return;
        }
        if (kind == "server.error" || kind == "server.ping" || kind.starts_with("presence.")) {
            if (kind == "server.error") FUZZ_CHECK(proto::parse_error_code(e.code).has_value(), "unknown error code");
            if (kind == "server.ping") FUZZ_CHECK(e.ts.has_value(), "ping without ts");
            return;
        }
        // An application event.
        FUZZ_CHECK(!proto::is_reserved_kind(kind), "server sent an unknown reserved kind " + kind);
        FUZZ_CHECK(e.event_id && !room.empty() && e.has(proto::field::sender) && e.has(proto::field::id),
                   "event incomplete");
        FUZZ_CHECK(s.left_rooms.count(room) == 0, "event for a room after room.left: " + room);
        const auto it = s.next_event.find(room);
        if (it != s.next_event.end())
            FUZZ_CHECK(*e.event_id == it->second, "event " + std::to_string(*e.event_id) + " in " + room +
                                                      " where " + std::to_string(it->second) + " was due");
        s.next_event[room] = *e.event_id + 1;
        const auto epoch = epoch_for(s, room);
        if (!epoch) return;
        const auto info = ep.room(room);
        if (info && info->epoch == *epoch)
            FUZZ_CHECK(*e.event_id <= info->head, "event names an event_id above the head");
        const std::string key = room + "|" + *epoch + "|" + std::to_string(*e.event_id);
        auto [pos, fresh] = event_bytes.emplace(key, f.payload);
        FUZZ_CHECK(fresh || pos->second == f.payload, "two different frames for " + key);
    }

    // ---- the event loop ----------------------------------------------------------

    void pump() {
        for (int round = 0; round < 64; ++round) {
            std::vector<server::conn_id> to_close;
            while (auto e = ep.poll_event()) {
                if (g_trace)
                    std::fprintf(stderr, "  ep event %s conn=%u code=%u %s %s\n", server::to_string(e->type),
                                 e->conn.index, e->code, e->principal.c_str(), e->room_id.c_str());
                switch (e->type) {
                    // Events queued while handle_transport_closed released the
                    // connection name an id that is stale by now: allowed for
                    // flush and the log events, never for close_transport/connected.
                    case server::event_type::flush:
                        FUZZ_CHECK(opened_ids.count(e->conn.value()), "flush for a connection never opened");
                        break;
                    case server::event_type::close_transport: {
                        slot* s = find(e->conn);
                        FUZZ_CHECK(s != nullptr, "close_transport for a connection that is not live");
                        FUZZ_CHECK(ep.state(e->conn) == ws::state::closed, "close_transport before the WebSocket closed");
                        s->close_pending = true;
                        if (!lazy_close) to_close.push_back(e->conn);
                        break;
                    }
                    case server::event_type::connected: {
                        slot* s = find(e->conn);
                        FUZZ_CHECK(s != nullptr, "connected for a connection that is not live");
                        FUZZ_CHECK(e->principal == s->principal, "connected with another principal");
                        break;
                    }
                    case server::event_type::closed: {
                        FUZZ_CHECK(opened_ids.count(e->conn.value()), "closed for a connection never opened");
                        FUZZ_CHECK(closed_ids.insert(e->conn.value()).second, "closed reported twice");
                        break;
                    }
                    case server::event_type::joined:
                    case server::event_type::left:
                        if (e->conn.valid())
                            FUZZ_CHECK(opened_ids.count(e->conn.value()), "room event names a connection never opened");
                        break;
                }
            }
            if (to_close.empty()) return;
            for (const auto id : to_close) close_transport(*find(id));
        }
        FUZZ_CHECK(false, "the event loop does not settle");
    }

    void close_transport(slot& s) {
        if (s.reading) read_output(s);
        ep.handle_transport_closed(now, s.id);
        FUZZ_CHECK(!ep.is_live(s.id), "connection still live after handle_transport_closed");
        FUZZ_CHECK(ep.buffered_output(s.id) == 0 && ep.pending_output(s.id).empty(), "a released connection has output");
        s.live = false;
    }

    // ---- invariants ----------------------------------------------------------------

    void check(bool was_timeout) {
        std::size_t live = 0;
        std::map<std::string, int> open_sessions;
        const std::size_t bound = cfg.send_high_water + (cfg.max_message_bytes + 10) + 131;
        for (auto& s : slots) {
            if (!s.live) continue;
            ++live;
            FUZZ_CHECK(ep.is_live(s.id), "a live slot's connection is gone");
            const std::size_t b = ep.buffered_output(s.id);
            FUZZ_CHECK(b <= bound, "buffered_output " + std::to_string(b) + " over send_high_water + one message + close (" +
                                       std::to_string(bound) + ")");
            const auto st = ep.state(s.id);
            if (s.was_ws_closed) FUZZ_CHECK(b <= s.last_buffered, "output grew on a closed connection");
            s.was_ws_closed = st == ws::state::closed;
            s.last_buffered = b;
            if (st == ws::state::open && s.hello && !s.close_frame) ++open_sessions[s.session];
        }
        for (const auto& [sid, n] : open_sessions) FUZZ_CHECK(n == 1, "two open connections share session " + sid);
        FUZZ_CHECK(ep.connection_count() == live, "connection_count() = " + std::to_string(ep.connection_count()) +
                                                      ", live slots " + std::to_string(live));
        const auto mem = ep.memory();
        FUZZ_CHECK(mem.connections == live && mem.sessions == ep.session_count() && mem.rooms == ep.room_count(),
                   "memory() counts disagree");
        FUZZ_CHECK(ep.session_count() <= cfg.max_sessions, "sessions over max_sessions");
        FUZZ_CHECK(ep.room_count() <= cfg.max_rooms, "rooms over max_rooms");
        FUZZ_CHECK(open_sessions.size() <= ep.session_count(), "more open sessions than sessions");
        for (const char* r : k_rooms) {
            const auto info = ep.room(r);
            if (!info) {
                epoch_of.erase(r);
                head_of.erase(r);
                continue;
            }
            FUZZ_CHECK(info->members <= ep.session_count(), "room has more members than there are sessions");
            FUZZ_CHECK(info->replay_events <= cfg.replay_window, "replay log over replay_window");
            FUZZ_CHECK(info->dedup_ids <= cfg.dedup_max_ids, "dedup window over dedup_max_ids");
            FUZZ_CHECK(info->head >= 0 && info->head <= server::endpoint::max_event_id, "head out of range");
            if (info->replay_events)
                FUZZ_CHECK(info->replay_first + static_cast<std::int64_t>(info->replay_events) - 1 == info->head,
                           "replay log does not end at the head");
            const std::string ep_str(info->epoch);
            auto e = epoch_of.find(r);
            if (e != epoch_of.end() && e->second == ep_str)
                FUZZ_CHECK(info->head >= head_of[r], "room head decreased in " + std::string(r));
            epoch_of[r] = ep_str;
            head_of[r] = info->head;
        }
        if (was_timeout) FUZZ_CHECK(ep.next_deadline() > now, "next_deadline() not in the future after handle_timeout");
    }

    void after(bool was_timeout) {
        pump();
        for (auto& s : slots)
            if (s.live && s.reading) read_output(s);
        pump();
        check(was_timeout);
        for (auto& s : slots) s.stale = s.live && ep.buffered_output(s.id) > 0;
    }
};

// ---- client frames -------------------------------------------------------------------

std::string client_frame(fuzz::byte_source& src, std::uint8_t first, std::string_view payload) {
    std::string out;
    const std::uint32_t mask = src.flag() ? src.u32() : 0x01020304u;
    fuzz::append_frame(out, first, payload, mask);
    return out;
}

std::string envelope(harness& h, slot& s, fuzz::byte_source& src) {
    std::string j = "{";
    auto field = [&j](std::string_view name, const std::string& value) {
        if (j.size() > 1) j.push_back(',');
        j.append(quote(name)).push_back(':');
        j.append(value);
    };
    const std::string room = k_rooms[src.below(k_nrooms)];
    switch (src.below(10)) {
        case 0:
        case 1: {  // client.join
            field("kind", quote("client.join"));
            field("room_id", quote(room));
            std::optional<std::int64_t> rf;
            const auto info = h.ep.room(room);
            const std::int64_t head = info ? info->head : 0;
            switch (src.below(6)) {
                case 0: case 1: break;
                case 2: rf = head; break;
                case 3: rf = head > 0 ? head - 1 - static_cast<std::int64_t>(src.below(static_cast<std::size_t>(std::min<std::int64_t>(head, 8)))) : 0; break;
                case 4: rf = head + 1; break;
                default: rf = 0; break;
            }
            if (rf) {
                field("resume_from", std::to_string(*rf));
                switch (src.below(4)) {
                    case 0: break;
                    case 1: field("epoch", quote("e-bogus")); break;
                    default: field("epoch", quote(info ? std::string(info->epoch) : std::string("e-none"))); break;
                }
            }
            const std::string corr = "j" + std::to_string(++h.corr_counter);
            h.join_resume[corr] = rf;
            field("correlation_id", quote(corr));
            break;
        }
        case 2:  // client.leave
            field("kind", quote("client.leave"));
            field("room_id", quote(room));
            field("correlation_id", quote("l" + std::to_string(++h.corr_counter)));
            break;
        case 3:
        case 4:
        case 5: {  // publish
            field("kind", quote(src.below(16) ? "chat.m" : "chat.forbidden"));
            if (src.below(16)) field("room_id", quote(room));
            switch (src.below(8)) {
                case 0: break;  // no id: bad_request
                case 1: field("id", quote("f" + std::to_string(++h.fresh_ids))); break;  // always new
                default: field("id", quote(k_ids[src.below(std::size(k_ids))])); break;
            }
            switch (src.below(4)) {
                case 0: field("payload", R"({"t":"hi"})"); break;
                case 1: field("payload", "null"); break;
                case 2: field("payload", quote(std::string(static_cast<std::size_t>(src.u8()) * 2, 'x'))); break;
                default: break;
            }
            break;
        }
        case 6:  // client.pong
            field("kind", quote("client.pong"));
            if (src.below(8)) field("ts", std::to_string(1700000000000 + src.u8()));
            break;
        case 7:  // reserved / unknown client kind
            field("kind", quote(src.flag() ? "server.hello" : "client.bogus"));
            field("correlation_id", quote("x1"));
            break;
        case 8:  // invalid room id
            field("kind", quote("client.join"));
            field("room_id", quote("bad room"));
            break;
        default:  // not JSON at all
            (void)s;
            return "{\"kind\":";
    }
    j.push_back('}');
    return j;
}

constexpr std::int64_t k_steps_ms[] = {0, 1, 10, 100, 500, 1000, 1500, 2000, 3500, 5000, 10000, 60000};

void feed(harness& h, slot& s, const std::string& bytes, fuzz::byte_source& src) {
    // Whole, or in two reads at a fuzzer-chosen point.
    std::size_t cut = bytes.size();
    if (src.below(4) == 0 && !bytes.empty()) cut = src.below(bytes.size());
    h.ep.handle_bytes(h.now, s.id, std::string_view(bytes).substr(0, cut));
    if (cut < bytes.size() && s.live && h.ep.is_live(s.id))
        h.ep.handle_bytes(h.now, s.id, std::string_view(bytes).substr(cut));
}

void run_op(harness& h, fuzz::byte_source& src) {
    const std::size_t op = src.below(12);
    slot& s = h.slots[src.below(k_slots)];
    if (g_trace)
        std::fprintf(stderr, "op %zu slot %zu at %lld ms\n", op, static_cast<std::size_t>(&s - h.slots.data()),
                     static_cast<long long>(tether::to_ms(h.now)));
    bool was_timeout = false;
    switch (op) {
        case 0: {  // open a connection
            if (s.live) return;
            const std::size_t variant = src.below(6);
            const char* user = src.pick(k_users);
            s = slot{};
            s.principal = *user ? user : "anonymous";
            s.id = h.ep.open_connection(h.now);
            s.live = true;
            FUZZ_CHECK(h.opened_ids.insert(s.id.value()).second, "open_connection() reused a live id");
            std::string target = "/chat?user=";
            target += user;
            switch (src.below(4)) {
                case 0:
                    if (!h.sessions.empty()) target += "&session_id=" + h.sessions[src.below(h.sessions.size())];
                    break;
                case 1: target += "&session_id=0123456789abcdef0123456789abcdef"; break;
                default: break;
            }
            std::string req = "GET " + target +
                              " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
            if (variant != 3) req += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
            req += "Sec-WebSocket-Version: 13\r\n";
            if (variant != 2) req += "Sec-WebSocket-Protocol: tether.v1\r\n";
            if (src.below(8) == 0) req += "Origin: https://evil.example\r\n";
            req += "\r\n";
            if (variant == 4) break;  // nothing arrives: the handshake times out
            feed(h, s, req, src);
            break;
        }
        case 1:
        case 2:
        case 3: {  // a well-formed frame
            if (!s.live) return;
            std::string bytes;
            switch (src.below(8)) {
                case 0: bytes = client_frame(src, 0x82, "\x01\x02"); break;                 // binary
                case 1: bytes = client_frame(src, 0x89, src.take_string(src.u8() % 126)); break;  // ping
                case 2: {                                                                    // close
                    static constexpr std::uint16_t codes[] = {1000, 1001, 1002, 4000, 0};
                    const std::uint16_t c = src.pick(codes);
                    std::string body;
                    if (c) body = {static_cast<char>(c >> 8), static_cast<char>(c & 0xFF)};
                    bytes = client_frame(src, 0x88, body);
                    break;
                }
                case 3: {  // a fragmented text message with a ping in the middle
                    const std::string text = envelope(h, s, src);
                    const std::size_t cut = text.size() / 2;
                    bytes = client_frame(src, 0x01, std::string_view(text).substr(0, cut));
                    bytes += client_frame(src, 0x89, "p");
                    bytes += client_frame(src, 0x80, std::string_view(text).substr(cut));
                    break;
                }
                default: bytes = client_frame(src, 0x81, envelope(h, s, src)); break;
            }
            if (g_trace) std::fprintf(stderr, "  -> %s\n", printable(bytes, 200).c_str());
            feed(h, s, bytes, src);
            break;
        }
        case 4: {  // raw bytes (up to 1020: enough for a ping flood in one read)
            if (!s.live) return;
            const std::string bytes = src.take_string(src.u8() * 4u);
            h.ep.handle_bytes(h.now, s.id, bytes);
            break;
        }
        case 5:
        case 6: {  // time step; sometimes the loop is late and serves I/O before its timers
            h.now += std::chrono::milliseconds(src.pick(k_steps_ms));
            if (op == 6 && src.below(4) == 0) break;
            if (!(h.now < h.ep.next_deadline())) {
                h.ep.handle_timeout(h.now);
                was_timeout = true;
            }
            break;
        }
        case 7: {  // jump to the next deadline
            const time_point d = h.ep.next_deadline();
            if (d == tether::never) return;
            if (h.now < d) h.now = d;
            h.ep.handle_timeout(h.now);
            was_timeout = true;
            break;
        }
        case 8:  // the transport closes (a reset, or the loop after close_transport)
            if (!s.live) return;
            h.close_transport(s);
            break;
        case 9:  // slow reader / reader again
            s.reading = !s.reading;
            break;
        case 10: {  // drain (rare)
            if (src.below(8) != 0) return;
            static constexpr std::int64_t windows[] = {0, 1000, 10000};
            h.ep.drain(h.now, std::chrono::milliseconds(src.pick(windows)));
            break;
        }
        default:  // a partial read
            if (!s.live) return;
            h.read_output(s, src.u8() * 8u + 1);
            break;
    }
    h.after(was_timeout);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::byte_source src(data, size);
    const std::uint8_t c = src.u8();
    server::config cfg;
    cfg.seed = c;
    cfg.heartbeat = 1s;
    cfg.grace = 3s;
    cfg.max_sessions = 3;
    cfg.replay_window = 4;
    cfg.dedup_window = 10s;
    cfg.dedup_min_ids = 4;
    cfg.dedup_max_ids = 24;
    cfg.max_rooms_per_session = 2;
    cfg.max_rooms = 3;
    cfg.rate_per_s = (c & 1) ? 0 : 20;
    cfg.rate_burst = 5;
    cfg.rate_abuse_strikes = 5;
    cfg.max_bad_requests = 5;
    cfg.max_message_bytes = (c & 8) ? 250 : 2100;  // 250: raised to the floor (2048)
    cfg.send_high_water = 1500;
    cfg.handshake_timeout = 2s;
    cfg.close_timeout = 1s;
    if (c & 4) cfg.allowed_origins = {"https://ok.example"};
    cfg.authenticate = [](const ws::http_request& req) {
        server::auth_result r;
        const auto u = req.query_param("user");
        if (!u || u->empty()) {
            r.principal = "anonymous";
        } else if (*u == "deny") {
            r.status = 401;
        } else if (*u == "forbid") {
            r.status = 403;
        } else {
            r.principal = *u;
        }
        return r;
    };
    cfg.authorize_join = [](std::string_view, std::string_view room) { return room != "r.forbidden"; };
    cfg.authorize_publish = [](std::string_view, std::string_view, std::string_view kind) {
        return kind != "chat.forbidden";
    };
    harness h(cfg);
    h.lazy_close = (c >> 1) & 1;
    int ops = 0;
    while (!src.empty() && ops++ < 400) run_op(h, src);
    return 0;
}
