// fuzz_frame_decoder — ws::connection reading frames, in server and in
// client role, after a valid opening handshake (or, in "raw" mode, with
// the handshake itself part of the input), the input split into chunks at
// fuzzer-chosen points.
//
// Input: [cfg0][cfg1][close_at][n][n split sizes][n schedule bytes, if mixed][stream...]
//   cfg0 bit 0      role: 0 server (reads masked frames), 1 client
//        bit 1      auto_pong
//        bits 2-3   max_message_bytes in {16 MiB, 0, 125, 70000}
//        bits 4-5   max_frame_buffer in {64 KiB, 0, 16, 200}
//        bit 6      consume output after every chunk (else only at the end)
//        bit 7      close() locally after chunk number `close_at`
//   cfg1 bits 0-1   max_output_bytes in {64 MiB, 0, 150, 1000}
//        bit 2      transport closed at the end
//        bit 3      handle_timeout far in the future at the end
//        bit 4      raw: the stream starts with the upgrade request (server)
//        bit 5      feed through read_buffer()/handle_read() instead of handle_bytes()
//        bits 6-7   local close code: 1000, 4000 + reason, 1001 + reason, none
//   n    bits 0-3   split count
//        bit 4      mixed: a schedule byte per split follows the split sizes
//        bits 5-6   the UTF-8/unmask kernels capped at: the best this CPU has,
//                   AVX2, SSSE3, scalar (each level has its own run and
//                   fused loops; bit 7 is ignored)
//   schedule byte, for the chunks cut by the same split:
//        bit 0      feed it the other way (handle_bytes <-> read_buffer)
//        bits 1-2   then drain: everything, nothing, one event, up to three
//        bit 3      shrink_buffers() before it
//        bit 4      read_buffer(more than the free room) before it: moves what is unread
//        bit 5      read_buffer mode: ask for twice the room, fill at most half of it
//        bit 6      when the input bound (or a short read) stops it: drain one
//                   event (else all) and go on
//        bit 7      alternate handle_bytes / read_buffer at every retry within it
// Without the mixed bit every chunk is fed the same way and everything is
// drained after it, as before. With it, events may stay queued across
// inputs, so handle_bytes() decodes while copying (copy_decode) with a run,
// a tail or a message under way left over from earlier chunks; everything
// is drained before a local close() and before the end-of-stream calls.
//
// The events are compared with a reference decoder written here from RFC
// 6455 §5 (whole stream at once, no buffering concerns): same messages, pings,
// pongs, close and failure codes, in the same order, then `closed` and
// nothing after it. Other invariants: handle_bytes() always makes progress
// once events are drained; buffered_output() stays within max_output_bytes
// plus one close frame; the output is well-formed frames (masked iff
// client), pongs echo pings in order (all of them when nothing can drop one),
// at most one close frame, last, carrying the failure code, the echoed code,
// or the local one.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "tether/ws/connection.hpp"
#include "tether/ws/detail/utf8_simd.hpp"

namespace {

namespace ws = tether::ws;
using fuzz::printable;
using tether::at_ms;
using tether::time_point;

struct ev {
    explicit ev(ws::event_type t) : type(t) {}
    ws::event_type type;
    bool text = false;
    std::string data;
    std::uint16_t code = 0;
    std::string reason;
    int http_status = 0;
};

std::string describe(const ev& e) {
    std::string s = "type=" + std::to_string(static_cast<int>(e.type)) + " text=" + std::to_string(e.text) +
                    " code=" + std::to_string(e.code) + " len=" + std::to_string(e.data.size()) +
                    " data=" + printable(e.data, 40);
    return s;
}

bool valid_wire_code(std::uint16_t c) {
    // RFC 6455 §7.4.1-§7.4.2 and the IANA registry (1012-1014 registered since).
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/// RFC 6455 §5 over the whole stream. Events up to the first failure or
/// close frame; bytes of an incomplete final frame produce a failure only
/// when they already decide it (header rules, size, invalid UTF-8).
std::vector<ev> reference(std::span<const std::uint8_t> in, ws::role receiver, std::size_t max_msg) {
    std::vector<ev> out;
    auto fail = [&](std::uint16_t code) {
        ev e{ws::event_type::failed};
        e.code = code;
        out.push_back(e);
    };
    std::size_t pos = 0;
    int state = 0;  // 0 idle, 1 in text message, 2 in binary message
    std::string msg;
    for (;;) {
        const std::size_t avail = in.size() - pos;
        if (avail < 2) return out;
        const std::uint8_t b0 = in[pos], b1 = in[pos + 1];
        const bool fin = b0 & 0x80;
        const std::uint8_t op = b0 & 0x0F;
        const bool masked = b1 & 0x80;
        const std::uint8_t len7 = b1 & 0x7F;
        if (b0 & 0x70) return fail(1002), out;                                   // §5.2 RSV
        if (!(op <= 2 || (op >= 8 && op <= 10))) return fail(1002), out;         // §5.2 opcodes
        const bool control = op >= 8;
        if (control && (!fin || len7 > 125)) return fail(1002), out;            // §5.5
        if (masked != (receiver == ws::role::server)) return fail(1002), out;   // §5.1
        std::uint64_t len = len7;
        std::size_t hdr = 2;
        if (len7 == 126) {
            if (avail < 4) return out;
            len = (std::uint64_t{in[pos + 2]} << 8) | in[pos + 3];
            if (len < 126) return fail(1002), out;  // §5.2 minimal encoding
            hdr = 4;
        } else if (len7 == 127) {
            if (avail < 10) return out;
            len = 0;
            for (std::size_t i = 0; i < 8; ++i) len = (len << 8) | in[pos + 2 + i];
            if (len >> 63) return fail(1002), out;
            if (len <= 0xFFFF) return fail(1002), out;
            hdr = 10;
        }
        std::uint8_t key[4] = {0, 0, 0, 0};
        if (masked) {
            if (avail < hdr + 4) return out;
            for (std::size_t i = 0; i < 4; ++i) key[i] = in[pos + hdr + i];
            hdr += 4;
        }
        if (!control) {
            // §5.4: fragments of one message are not interleaved.
            if (op == 0 && state == 0) return fail(1002), out;
            if (op != 0 && state != 0) return fail(1002), out;
            const std::uint64_t so_far = op == 0 ? msg.size() : 0;
            if (len > max_msg - so_far) return fail(1009), out;  // PROTOCOL.md §7: from the header
            if (op != 0) {
                msg.clear();
                state = op == 1 ? 1 : 2;
            }
        }
        const std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(len, avail - hdr));
        std::string payload(have, '\0');
        for (std::size_t i = 0; i < have; ++i)
            payload[i] = static_cast<char>(in[pos + hdr + i] ^ key[i % 4]);
        if (!control) {
            msg += payload;
            const auto cls = fuzz::classify_utf8(fuzz::as_bytes(msg));
            if (state == 1 && cls == fuzz::utf8_class::invalid) return fail(1007), out;  // §8.1
            if (have < len) return out;
            if (fin) {
                if (state == 1 && cls != fuzz::utf8_class::valid) return fail(1007), out;
                ev e{ws::event_type::message};
                e.text = state == 1;
                e.data = msg;
                out.push_back(std::move(e));
                state = 0;
            }
        } else {
            if (have < len) return out;
            if (op == 9 || op == 10) {
                ev e{op == 9 ? ws::event_type::ping : ws::event_type::pong};
                e.data = payload;
                out.push_back(std::move(e));
            } else {
                // §5.5.1: empty, or a 2-byte code then UTF-8 (§8.1); §7.4 codes.
                ev e{ws::event_type::close_received};
                if (payload.size() == 1) return fail(1002), out;
                if (payload.size() >= 2) {
                    e.code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                        static_cast<std::uint8_t>(payload[1]));
                    if (!valid_wire_code(e.code)) return fail(1002), out;
                    e.reason = payload.substr(2);
                    if (!fuzz::valid_utf8(e.reason)) return fail(1007), out;
                }
                out.push_back(std::move(e));
                return out;
            }
        }
        pos += hdr + static_cast<std::size_t>(len);
    }
}

constexpr std::size_t k_max_message[] = {std::size_t{1} << 24, 0, 125, 70000};
constexpr std::size_t k_frame_buffer[] = {64u << 10, 0, 16, 200};
constexpr std::size_t k_max_output[] = {std::size_t{64} << 20, 0, 150, 1000};

const char k_request[] =
    "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

struct harness {
    harness(ws::connection c, time_point t) : conn(std::move(c)), now(t) {}
    ws::connection conn;
    time_point now;
    std::vector<ev> events;  // after the setup
    bool closed_seen = false;
    std::string output;      // consumed output after the setup
    bool raw = false;
    bool opened = false;

    std::size_t drain() {
        std::size_t n = 0;
        while (drain_one()) ++n;
        return n;
    }

    bool drain_one() {
        {
            auto e = conn.poll_event();
            if (!e) return false;
            FUZZ_CHECK(!closed_seen, "event after closed: " + std::to_string(static_cast<int>(e->type)));
            ev x{e->type};
            x.text = e->is_text;
            x.data.assign(reinterpret_cast<const char*>(e->data.data()), e->data.size());
            x.code = ws::to_int(e->code);
            x.reason.assign(e->reason);
            x.http_status = e->http_status;
            if (e->type == ws::event_type::closed) {
                closed_seen = true;
                FUZZ_CHECK(conn.state() == ws::state::closed, "closed event but state is not closed");
            }
            if (e->type == ws::event_type::upgrade_request) {
                FUZZ_CHECK(raw && !opened, "unexpected upgrade_request");
                FUZZ_CHECK(conn.state() == ws::state::awaiting_accept, "upgrade_request outside awaiting_accept");
                FUZZ_CHECK(!conn.accept(), "accept() refused after upgrade_request");
            }
            if (e->type == ws::event_type::open) {
                FUZZ_CHECK(!opened, "second open event");
                opened = true;
            }
            events.push_back(std::move(x));
        }
        return true;
    }

    void consume() {
        while (true) {
            const auto run = conn.pending_output();
            if (run.empty()) break;
            output.append(reinterpret_cast<const char*>(run.data()), run.size());
            conn.consume_output(run.size());
        }
        FUZZ_CHECK(conn.buffered_output() == 0, "output left after consuming every run");
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::byte_source src(data, size);
    const std::uint8_t cfg0 = src.u8(), cfg1 = src.u8(), close_at = src.u8();
    const bool client = cfg0 & 1;
    ws::config cfg;
    cfg.auto_pong = (cfg0 >> 1) & 1;
    cfg.max_message_bytes = k_max_message[(cfg0 >> 2) & 3];
    cfg.max_frame_buffer = k_frame_buffer[(cfg0 >> 4) & 3];
    const bool consume_each = (cfg0 >> 6) & 1;
    const bool local_close = (cfg0 >> 7) & 1;
    cfg.max_output_bytes = k_max_output[cfg1 & 3];
    const bool transport_close_at_end = (cfg1 >> 2) & 1;
    const bool timeout_at_end = (cfg1 >> 3) & 1;
    const bool raw = !client && ((cfg1 >> 4) & 1);
    const bool use_read_buffer = (cfg1 >> 5) & 1;
    const unsigned close_variant = (cfg1 >> 6) & 3;
    cfg.seed = cfg0 * 131u + cfg1;
    std::vector<std::size_t> splits;
    const std::uint8_t nbyte = src.u8();
    const std::size_t nsplits = nbyte % 16;
    const bool mixed = (nbyte >> 4) & 1;
    {
        namespace simd = tether::ws::detail::utf8_simd;
        constexpr simd::level caps[] = {simd::level::avx512, simd::level::avx2, simd::level::ssse3, simd::level::none};
        simd::set_max_level(caps[(nbyte >> 5) & 3]);
    }
    for (std::size_t i = 0; i < nsplits; ++i) splits.push_back(static_cast<std::size_t>(src.u8()) + 1);
    std::vector<std::uint8_t> schedule(nsplits, 0);
    if (mixed)
        for (auto& s : schedule) s = src.u8();
    const auto stream = src.rest();

    const time_point t0 = at_ms(1000);
    harness h(client ? ws::connection::client(t0, cfg, "example.com", "/chat") : ws::connection::server(t0, cfg),
              t0);
    h.raw = raw;

    // ---- the handshake (unless it is part of the input) ----------------------------
    if (!raw) {
        if (client) {
            const auto req = h.conn.pending_output();
            const std::string req_text(reinterpret_cast<const char*>(req.data()), req.size());
            h.conn.consume_output(req.size());
            ws::http_request_parser p;
            FUZZ_CHECK(p.feed(req_text).status == ws::http_parse_status::done, "client request does not parse");
            const std::string* key = p.request().find("Sec-WebSocket-Key");
            FUZZ_CHECK(key != nullptr, "client request without a key");
            const std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: " + fuzz::websocket_accept(*key) + "\r\n\r\n";
            FUZZ_CHECK(h.conn.handle_bytes(t0, resp) == resp.size(), "response not taken");
            auto e = h.conn.poll_event();
            FUZZ_CHECK(e && e->type == ws::event_type::open, "client did not open");
        } else {
            const std::string_view req(k_request, sizeof k_request - 1);
            FUZZ_CHECK(h.conn.handle_bytes(t0, req) == req.size(), "request not taken");
            auto e = h.conn.poll_event();
            FUZZ_CHECK(e && e->type == ws::event_type::upgrade_request, "no upgrade_request");
            FUZZ_CHECK(!h.conn.accept(), "accept() failed");
            e = h.conn.poll_event();
            FUZZ_CHECK(e && e->type == ws::event_type::open, "server did not open");
            const auto resp = h.conn.pending_output();
            const std::string_view resp_text(reinterpret_cast<const char*>(resp.data()), resp.size());
            FUZZ_CHECK(resp_text.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string_view::npos,
                       "wrong accept in the 101");
        }
        FUZZ_CHECK(!h.conn.poll_event(), "event after open with no input");
        h.conn.consume_output(h.conn.buffered_output());
        FUZZ_CHECK(h.conn.state() == ws::state::open, "not open after the handshake");
        h.opened = true;
    }

    // ---- the stream, in chunks ------------------------------------------------------
    std::size_t off = 0, k = 0, chunk_no = 0;
    bool did_local_close = false;
    std::uint16_t local_code = 0;
    std::string local_reason;
    bool close_before_end = false;  // our close went out before the peer's close/failure
    while (off < stream.size()) {
        const std::uint8_t sched = splits.empty() ? 0 : schedule[k % splits.size()];
        const std::size_t n =
            splits.empty() ? stream.size() : std::min(splits[k++ % splits.size()], stream.size() - off);
        auto chunk = stream.subspan(off, n);
        const bool was_open_before = h.opened;
        if (sched & 8) h.conn.shrink_buffers();
        if (sched & 16) (void)h.conn.read_buffer(h.conn.read_buffer(0).size() + 1);
        bool by_read = use_read_buffer != ((sched & 1) != 0);
        std::size_t taken = 0;
        int stalls = 0;
        while (taken < chunk.size()) {
            std::size_t t = 0;
            if (by_read && h.conn.state() != ws::state::closed) {
                const std::size_t want = chunk.size() - taken;
                auto room = h.conn.read_buffer(sched & 32 ? 2 * want : want);
                t = std::min(room.size(), want);
                if (sched & 32) t = std::min(t, (room.size() + 1) / 2);
                if (t) std::memcpy(room.data(), chunk.data() + taken, t);
                h.conn.handle_read(h.now, t);
            } else {
                t = h.conn.handle_bytes(h.now, chunk.subspan(taken));
                FUZZ_CHECK(t <= chunk.size() - taken, "handle_bytes took more than given");
            }
            taken += t;
            if (sched & 128) by_read = !by_read;
            if (mixed && taken < chunk.size() && t != 0) {
                // Stopped by the bound (or a short read), with progress: drain
                // as the schedule says and go on.
                if (sched & 64) h.drain_one(); else h.drain();
                stalls = 0;
                continue;
            }
            if (mixed && taken == chunk.size()) break;
            const std::size_t nev = h.drain();
            // A full input buffer is fine once; draining must then make room
            // (a fragment streams into the message buffer without an event).
            stalls = (t == 0 && nev == 0) ? stalls + 1 : 0;
            FUZZ_CHECK(stalls < 2, "handle_bytes makes no progress even after draining");
        }
        if (mixed) {
            switch ((sched >> 1) & 3) {
                case 0: h.drain(); break;
                case 1: break;
                case 2: h.drain_one(); break;
                default:
                    for (int i = 0; i < 3; ++i) h.drain_one();
                    break;
            }
        }
        // Bound: max_output_bytes plus one forced close frame (2 + 4 + 125).
        if (h.opened && was_open_before)
            FUZZ_CHECK(h.conn.buffered_output() <= cfg.max_output_bytes + 131,
                       "buffered_output " + std::to_string(h.conn.buffered_output()) + " over the bound");
        if (local_close && chunk_no == close_at && !did_local_close && mixed) h.drain();  // the events before it
        if (local_close && chunk_no == close_at && !did_local_close && h.conn.state() == ws::state::open) {
            static constexpr std::uint16_t codes[] = {1000, 4000, 1001, 0};
            static constexpr const char* reasons[] = {"", "bye", "going away", ""};
            local_code = codes[close_variant];
            local_reason = reasons[close_variant];
            FUZZ_CHECK(!h.conn.close(h.now, static_cast<ws::close_code>(local_code), local_reason),
                       "close() refused on an open connection");
            FUZZ_CHECK(h.conn.state() == ws::state::closing, "not closing after close()");
            FUZZ_CHECK(h.conn.close(h.now) == ws::error::closing, "second close() not refused");
            did_local_close = true;
            close_before_end = !h.closed_seen;
            FUZZ_CHECK(!h.drain(), "close() produced an event");
        }
        if (consume_each || raw) h.consume();
        off += n;
        ++chunk_no;
    }
    h.drain();  // what a mixed schedule left queued
    if (transport_close_at_end) {
        h.conn.handle_transport_closed(h.now);
        h.drain();
        FUZZ_CHECK(h.closed_seen, "no closed event after the transport closed");
    }
    if (timeout_at_end) {
        const auto deadline = h.conn.next_deadline();
        h.conn.handle_timeout(h.now + std::chrono::hours(1));
        h.drain();
        if (deadline != tether::never) FUZZ_CHECK(h.closed_seen, "a due deadline did not close");
    }
    if (h.closed_seen) {
        FUZZ_CHECK(h.conn.handle_bytes(h.now, std::string_view("\x81\x80\0\0\0\0", 6)) == 6,
                   "bytes after closed not taken");
        FUZZ_CHECK(!h.conn.poll_event(), "event after closed");
    }
    h.consume();

    // ---- expected events --------------------------------------------------------------
    std::vector<ev> expected;
    std::size_t frames_at = 0;
    bool handshake_ok = !raw;
    if (raw) {
        ws::http_request_parser p(cfg.max_header_bytes);
        const auto r = p.feed(std::string_view(reinterpret_cast<const char*>(stream.data()), stream.size()));
        if (r.status == ws::http_parse_status::error) {
            ev f{ws::event_type::failed};
            f.http_status = r.http_status;
            expected.push_back(f);
        } else if (r.status == ws::http_parse_status::done) {
            const auto c = ws::check_upgrade(p.request());
            if (c.ok()) {
                expected.push_back(ev{ws::event_type::upgrade_request});
                expected.push_back(ev{ws::event_type::open});
                frames_at = r.consumed;
                handshake_ok = true;
            } else {
                ev f{ws::event_type::failed};
                f.http_status = c.status;
                expected.push_back(f);
            }
        }
    }
    std::vector<ev> ref;
    if (handshake_ok) {
        ref = reference(stream.subspan(frames_at), client ? ws::role::client : ws::role::server,
                        cfg.max_message_bytes);
        expected.insert(expected.end(), ref.begin(), ref.end());
    }
    // Compare (the `closed` event is checked separately).
    std::vector<ev> got;
    for (const auto& e : h.events)
        if (e.type != ws::event_type::closed) got.push_back(e);
    FUZZ_CHECK(got.size() == expected.size(),
               "event count " + std::to_string(got.size()) + " != reference " + std::to_string(expected.size()) +
                   (got.empty() ? std::string() : "; last got " + describe(got.back())) +
                   (expected.empty() ? std::string() : "; last expected " + describe(expected.back())));
    for (std::size_t i = 0; i < got.size(); ++i) {
        const ev& a = got[i];
        const ev& b = expected[i];
        FUZZ_CHECK(a.type == b.type, "event " + std::to_string(i) + ": " + describe(a) + " vs " + describe(b));
        switch (a.type) {
            case ws::event_type::message:
                FUZZ_CHECK(a.text == b.text && a.data == b.data, "message differs: " + describe(a) + " vs " + describe(b));
                FUZZ_CHECK(a.data.size() <= cfg.max_message_bytes, "message over max_message_bytes");
                break;
            case ws::event_type::ping:
            case ws::event_type::pong:
                FUZZ_CHECK(a.data == b.data, "ping/pong payload differs");
                break;
            case ws::event_type::close_received:
                FUZZ_CHECK(a.code == b.code && a.reason == b.reason, "close_received differs");
                break;
            case ws::event_type::failed:
                if (b.http_status) {
                    FUZZ_CHECK(a.http_status == b.http_status, "handshake failure status differs");
                } else {
                    FUZZ_CHECK(a.code == b.code, "failure code " + std::to_string(a.code) + " != " + std::to_string(b.code));
                    FUZZ_CHECK(a.code == 1002 || a.code == 1007 || a.code == 1009, "failure code not 1002/1007/1009");
                }
                break;
            default:
                break;
        }
    }
    // `closed` is last, exactly when something ended the connection.
    const bool ended_by_peer = !expected.empty() && (expected.back().type == ws::event_type::failed ||
                                                     expected.back().type == ws::event_type::close_received);
    bool deadline_due = false;
    if (timeout_at_end && did_local_close) deadline_due = true;
    if (timeout_at_end && raw && !h.opened) deadline_due = true;
    const bool must_close = ended_by_peer || transport_close_at_end || deadline_due;
    FUZZ_CHECK(h.closed_seen == must_close, "closed event presence wrong (expected " + std::to_string(must_close) + ")");
    if (h.closed_seen) {
        FUZZ_CHECK(h.events.back().type == ws::event_type::closed, "closed is not the last event");
        const ev& c = h.events.back();
        if (ended_by_peer && !expected.back().http_status) {
            const ev& last = expected.back();
            const std::uint16_t want = last.type == ws::event_type::failed ? last.code : (last.code ? last.code : 1005);
            FUZZ_CHECK(c.code == want, "closed code " + std::to_string(c.code) + " != " + std::to_string(want));
        }
    }

    // ---- the output --------------------------------------------------------------------
    std::string_view out = h.output;
    if (raw) {
        const std::size_t end = out.find("\r\n\r\n");
        if (!h.opened) {
            // A refusal (or nothing): one HTTP response, nothing after its body.
            if (out.empty()) return 0;
            FUZZ_CHECK(end != std::string_view::npos && out.substr(0, 9) == "HTTP/1.1 ", "refusal is not HTTP");
            return 0;
        }
        FUZZ_CHECK(end != std::string_view::npos && out.substr(0, 13) == "HTTP/1.1 101 ", "no 101 before frames");
        out.remove_prefix(end + 4);
    }
    fuzz::frame_reader fr(client);
    std::vector<fuzz::wire_frame> frames;
    FUZZ_CHECK(fr.feed(fuzz::as_bytes(out), frames), std::string("malformed output: ") + fr.why());
    FUZZ_CHECK(fr.buffered() == 0, "output ends inside a frame");
    std::vector<std::string> pings, pongs;
    for (const auto& e : ref)
        if (e.type == ws::event_type::ping) pings.push_back(e.data);
    const fuzz::wire_frame* close = nullptr;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const auto& f = frames[i];
        FUZZ_CHECK(close == nullptr, "output after our close frame");
        if (f.opcode == 8) {
            close = &f;
        } else {
            FUZZ_CHECK(f.opcode == 10, "unexpected output frame opcode " + std::to_string(f.opcode));
            pongs.push_back(f.payload);
        }
    }
    // Pongs: a subsequence of the pings, in order; all of them when nothing could drop one.
    std::size_t j = 0;
    for (const auto& p : pongs) {
        while (j < pings.size() && pings[j] != p) ++j;
        FUZZ_CHECK(j < pings.size(), "pong that echoes no ping: " + printable(p));
        ++j;
    }
    if (!cfg.auto_pong) FUZZ_CHECK(pongs.empty(), "pong sent with auto_pong off");
    if (cfg.auto_pong && !did_local_close && cfg.max_output_bytes == k_max_output[0])
        FUZZ_CHECK(pongs.size() == pings.size(), "a ping went unanswered");
    // The close frame.
    auto body_code = [](const std::string& b) {
        return b.size() >= 2 ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(b[0]) << 8) | static_cast<std::uint8_t>(b[1]))
                             : std::uint16_t{0};
    };
    if (did_local_close && close_before_end) {
        FUZZ_CHECK(close != nullptr, "local close() sent no close frame");
        FUZZ_CHECK(body_code(close->payload) == local_code, "local close frame code wrong");
        FUZZ_CHECK(close->payload.size() == (local_code ? 2 + local_reason.size() : 0) &&
                       close->payload.substr(local_code ? 2 : 0) == local_reason,
                   "local close frame body wrong");
    } else if (ended_by_peer) {
        const ev& last = expected.back();
        FUZZ_CHECK(close != nullptr, "no close frame after the peer ended the connection");
        if (last.type == ws::event_type::failed) {
            FUZZ_CHECK(body_code(close->payload) == last.code, "failure close frame code wrong");
            FUZZ_CHECK(fuzz::valid_utf8(close->payload.substr(2)), "failure close reason not UTF-8");
        } else {
            // §5.5.1: echo the status code.
            FUZZ_CHECK(close->payload.size() == (last.code ? 2u : 0u) && body_code(close->payload) == last.code,
                       "close echo wrong");
        }
    } else {
        FUZZ_CHECK(close == nullptr, "close frame nobody asked for");
    }
    return 0;
}
