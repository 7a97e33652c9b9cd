// The RFC 6455 decoder as seen through a connection: golden vectors (RFC
// 6455 §5.7) and every failure path, each re-run at every split point and
// byte by byte with identical events and output.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "ws_test_util.hpp"

using namespace tt;

namespace {

auto server_maker(ws::config cfg = {}) {
    return [cfg] { return open_server(cfg); };
}
auto client_maker() {
    return [] { return open_client(); };
}

const bytes hello = b("Hello");

std::vector<std::string> events_of(const bytes& input, ws::config cfg = {}) {
    return feed_all_splits(server_maker(cfg), input).events;
}

}  // namespace

TEST_CASE("RFC 6455 §5.7: a single-frame masked text message") {
    const bytes wire{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK(wire == masked_frame(0x81, hello));
    CHECK(events_of(wire) == std::vector<std::string>{"text:Hello"});
}

TEST_CASE("RFC 6455 §5.7: unmasked frames, as a client receives them") {
    SUBCASE("single-frame text") {
        const bytes wire{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
        CHECK(feed_all_splits(client_maker(), wire).events == std::vector<std::string>{"text:Hello"});
    }
    SUBCASE("fragmented text: Hel + lo") {
        const bytes wire{0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
        CHECK(feed_all_splits(client_maker(), wire).events == std::vector<std::string>{"text:Hello"});
    }
    SUBCASE("unmasked ping is answered with a masked pong carrying the same payload") {
        const bytes wire{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
        const auto t = feed_all_splits(client_maker(), wire);
        CHECK(t.events == std::vector<std::string>{"ping:Hello"});
        REQUIRE(t.output.size() == 2 + 4 + 5);
        CHECK(t.output[0] == 0x8a);
        CHECK(t.output[1] == 0x85);
        for (std::size_t i = 0; i < 5; ++i) CHECK((t.output[6 + i] ^ t.output[2 + i % 4]) == hello[i]);
    }
    SUBCASE("256 bytes and 64 KiB binary with 16- and 64-bit lengths") {
        bytes p256(256), p64k(65536);
        for (std::size_t i = 0; i < p256.size(); ++i) p256[i] = static_cast<std::uint8_t>(i);
        for (std::size_t i = 0; i < p64k.size(); ++i) p64k[i] = static_cast<std::uint8_t>(i * 7);
        const bytes w256 = plain_frame(0x82, p256);
        CHECK(bytes(w256.begin(), w256.begin() + 4) == bytes{0x82, 0x7E, 0x01, 0x00});
        const bytes w64k = plain_frame(0x82, p64k);
        CHECK(bytes(w64k.begin(), w64k.begin() + 10) == bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0});
        const auto t = feed_split(open_client(), cat({w256, w64k}), {});
        REQUIRE(t.events.size() == 2);
        CHECK(t.events[0] == "binary:" + std::string(p256.begin(), p256.end()));
        CHECK(t.events[1] == "binary:" + std::string(p64k.begin(), p64k.end()));
    }
}

TEST_CASE("masked text in one frame is delivered in place, without a copy") {
    auto c = open_server();
    const bytes wire = masked_frame(0x81, b("zero copy"));
    auto buf = c.read_buffer(wire.size());
    std::memcpy(buf.data(), wire.data(), wire.size());
    c.handle_read(t0, wire.size());
    auto e = c.poll_event();
    REQUIRE(e);
    CHECK(e->text() == "zero copy");
    CHECK(e->data.data() == buf.data() + 6);
}

TEST_CASE("control frames between fragments; messages of every size path") {
    bytes big(200000);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>('a' + i % 26);
    ws::config cfg;
    cfg.max_frame_buffer = 1024;  // force the streamed path for the big frame
    const bytes wire = cat({masked_frame(0x01, b("frag-")), masked_frame(0x89, b("p1")), masked_frame(0x00, b("ment")),
                            masked_frame(0x8A, b("unsolicited")), masked_frame(0x80, b("ed")),
                            masked_frame(0x82, big)});
    // The input bound is small: feed_split loops the way an event loop would.
    const auto t = feed_split(open_server(cfg), wire, {});
    REQUIRE(t.events.size() == 4);
    CHECK(t.events[0] == "ping:p1");
    CHECK(t.events[1] == "pong:unsolicited");
    CHECK(t.events[2] == "text:frag-mented");
    CHECK(t.events[3] == "binary:" + std::string(big.begin(), big.end()));
}

TEST_CASE("every split point: fragmented message with interleaved ping") {
    const bytes wire = cat({masked_frame(0x01, b("a")), masked_frame(0x89, b("!")), masked_frame(0x80, b("b")),
                            masked_frame(0x82, bytes(300, 0x5a))});
    const auto t = feed_all_splits(server_maker(), wire);
    REQUIRE(t.events.size() == 3);
    CHECK(t.events[0] == "ping:!");
    CHECK(t.events[1] == "text:ab");
    // The pong went out unmasked with the ping's payload.
    CHECK(t.output == plain_frame(0x8A, b("!")));
}

TEST_CASE("protocol violations fail the connection with 1002") {
    const std::vector<std::pair<const char*, bytes>> cases{
        {"RSV1 set", masked_frame(0xC1, hello)},
        {"RSV2 set", masked_frame(0xA1, hello)},
        {"RSV3 set", masked_frame(0x91, hello)},
        {"reserved opcode 3", masked_frame(0x83, hello)},
        {"reserved opcode 7", masked_frame(0x87, hello)},
        {"reserved control opcode B", masked_frame(0x8B, hello)},
        {"reserved control opcode F", masked_frame(0x8F, hello)},
        {"unmasked client frame", plain_frame(0x81, hello)},
        {"fragmented ping", masked_frame(0x09, hello)},
        {"control frame of 126 bytes", masked_frame(0x89, bytes(126, 'x'))},
        {"continuation without a message", masked_frame(0x80, hello)},
        {"text inside a fragmented message", cat({masked_frame(0x01, hello), masked_frame(0x81, hello)})},
        {"binary inside a fragmented message", cat({masked_frame(0x02, hello), masked_frame(0x02, hello)})},
        {"non-minimal 16-bit length", bytes{0x81, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4}},
        {"non-minimal 64-bit length", bytes{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}},
        {"64-bit length with MSB set", bytes{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}},
        {"close with a 1-byte body", masked_frame(0x88, bytes{0x03})},
        {"close code 1005", masked_frame(0x88, bytes{0x03, 0xED})},
        {"close code 1006", masked_frame(0x88, bytes{0x03, 0xEE})},
        {"close code 1004", masked_frame(0x88, bytes{0x03, 0xEC})},
        {"close code 999", masked_frame(0x88, bytes{0x03, 0xE7})},
        {"close code 1016", masked_frame(0x88, bytes{0x03, 0xF8})},
        {"close code 2000", masked_frame(0x88, bytes{0x07, 0xD0})},
        {"close code 5000", masked_frame(0x88, bytes{0x13, 0x88})},
    };
    for (const auto& kase : cases) {
        INFO(kase.first);
        const auto t = feed_all_splits(server_maker(), kase.second);
        REQUIRE(t.events.size() >= 2);
        CHECK(t.events[t.events.size() - 2] == "failed:1002:0");
        CHECK(t.events.back() == "closed:1002");
        // Our close frame carries 1002 (0x03EA).
        REQUIRE(t.output.size() >= 4);
        CHECK(t.output[t.output.size() - (t.output[1] & 0x7F) - 2] == 0x88);
    }
    SUBCASE("a masked frame sent to a client") {
        const auto t = feed_all_splits(client_maker(), masked_frame(0x81, hello));
        CHECK(t.events == std::vector<std::string>{"failed:1002:0", "closed:1002"});
    }
}

TEST_CASE("invalid UTF-8 fails with 1007, as soon as it cannot be completed") {
    const bytes kosme = b("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5");
    SUBCASE("one frame") {
        const auto ev = events_of(masked_frame(0x81, cat({kosme, bytes{0xED, 0xA0, 0x80}, b("edited")})));
        CHECK(ev == std::vector<std::string>{"failed:1007:0", "closed:1007"});
    }
    SUBCASE("split across fragments") {
        const auto ev = events_of(cat({masked_frame(0x01, cat({kosme, bytes{0xF4}})), masked_frame(0x80, bytes{0x90, 0x80, 0x80})}));
        CHECK(ev == std::vector<std::string>{"failed:1007:0", "closed:1007"});
    }
    SUBCASE("truncated at the end of the message") {
        const auto ev = events_of(cat({masked_frame(0x01, kosme), masked_frame(0x80, bytes{0xE2, 0x82})}));
        CHECK(ev == std::vector<std::string>{"failed:1007:0", "closed:1007"});
    }
    SUBCASE("valid sequences split across fragments") {
        const auto ev = events_of(cat({masked_frame(0x01, bytes{0xF0, 0x9F}), masked_frame(0x00, bytes{0x98}),
                                       masked_frame(0x80, bytes{0x80})}));
        CHECK(ev == std::vector<std::string>{"text:\xF0\x9F\x98\x80"});
    }
    SUBCASE("fail fast: the first fragment already fails, the message is never finished") {
        auto c = open_server();
        c.handle_bytes(t0, masked_frame(0x01, cat({kosme, bytes{0xC0}})));
        auto e = c.poll_event();
        REQUIRE(e);
        CHECK(describe(*e) == "failed:1007:0");
    }
    SUBCASE("fail fast inside a single frame whose tail has not arrived") {
        auto c = open_server();
        bytes wire = masked_frame(0x81, cat({kosme, bytes{0xED, 0xA0, 0x80}, bytes(1000, 'x')}));
        wire.resize(30);  // the invalid bytes are here, the rest is still in flight
        c.handle_bytes(t0, wire);
        auto e = c.poll_event();
        REQUIRE(e);
        CHECK(describe(*e) == "failed:1007:0");
    }
    SUBCASE("close reason that is not UTF-8") {
        const auto ev = events_of(masked_frame(0x88, bytes{0x03, 0xE8, 0xFF}));
        CHECK(ev == std::vector<std::string>{"failed:1007:0", "closed:1007"});
    }
    SUBCASE("binary messages are not checked") {
        CHECK(events_of(masked_frame(0x82, bytes{0xFF})).size() == 1);
    }
}

TEST_CASE("message size bound: 1009 from the header, before buffering") {
    ws::config cfg;
    cfg.max_message_bytes = 100;
    SUBCASE("exactly the limit is accepted") {
        const auto ev = events_of(masked_frame(0x82, bytes(100, 1)), cfg);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].rfind("binary:", 0) == 0);
    }
    SUBCASE("one byte more fails on the header alone") {
        auto c = open_server(cfg);
        const bytes wire = masked_frame(0x82, bytes(101, 1));
        c.handle_bytes(t0, std::span<const std::uint8_t>(wire.data(), 8));  // header only
        auto e = c.poll_event();
        REQUIRE(e);
        CHECK(describe(*e) == "failed:1009:0");
    }
    SUBCASE("fragments adding up past the limit") {
        const auto ev = events_of(cat({masked_frame(0x02, bytes(60, 1)), masked_frame(0x80, bytes(41, 1))}), cfg);
        CHECK(ev == std::vector<std::string>{"failed:1009:0", "closed:1009"});
    }
    SUBCASE("a 2^62 byte length") {
        const bytes wire{0x82, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
        CHECK(events_of(wire, cfg) == std::vector<std::string>{"failed:1009:0", "closed:1009"});
    }
}

TEST_CASE("close frames from the peer are echoed and end the connection") {
    SUBCASE("with code and reason") {
        const auto t = feed_all_splits(server_maker(), masked_frame(0x88, cat({bytes{0x03, 0xE8}, b("bye")})));
        CHECK(t.events == std::vector<std::string>{"close_received:1000:bye", "closed:1000"});
        CHECK(t.output == plain_frame(0x88, bytes{0x03, 0xE8}));
    }
    SUBCASE("empty close") {
        const auto t = feed_all_splits(server_maker(), masked_frame(0x88, {}));
        CHECK(t.events == std::vector<std::string>{"close_received:0:", "closed:1005"});
        CHECK(t.output == plain_frame(0x88, {}));
    }
    SUBCASE("application code 3000 and 4999 are valid") {
        CHECK(events_of(masked_frame(0x88, bytes{0x0B, 0xB8}))[0] == "close_received:3000:");
        CHECK(events_of(masked_frame(0x88, bytes{0x13, 0x87}))[0] == "close_received:4999:");
    }
    SUBCASE("bytes after the close frame are ignored") {
        const auto ev = events_of(cat({masked_frame(0x88, bytes{0x03, 0xE8}), masked_frame(0x81, hello)}));
        CHECK(ev == std::vector<std::string>{"close_received:1000:", "closed:1000"});
    }
}

TEST_CASE("whole frames in one read (the one-step path) and split frames (the general path) agree") {
    // Text and binary of every size up to 300 (7- and 16-bit lengths),
    // valid and invalid UTF-8, non-ASCII code points across the 32-byte
    // blocks; each stream fed whole (every frame complete in the buffer)
    // and at every split point, which must give the same events and output.
    tether::rng r(99);
    const bytes cp4{0xF0, 0x9F, 0x98, 0x80};
    for (std::size_t n = 0; n <= 300; n += 7) {
        bytes text;
        while (text.size() + 4 <= n) {
            if (r.below(3) == 0) text.insert(text.end(), cp4.begin(), cp4.end());
            else text.push_back(static_cast<std::uint8_t>('a' + r.below(26)));
        }
        text.resize(n, '.');
        bytes bad = text;
        if (n > 0) bad[static_cast<std::size_t>(r.below(n))] = 0xFF;
        const std::array<std::uint8_t, 4> key{static_cast<std::uint8_t>(n), 0x80, 0x7f, 0xC3};
        CAPTURE(n);
        const bytes good_wire = cat({masked_frame(0x81, text, key), masked_frame(0x82, bad, key),
                                     masked_frame(0x81, hello, key)});
        std::vector<std::string> expect{"text:" + std::string(text.begin(), text.end()),
                                        "binary:" + std::string(bad.begin(), bad.end()), "text:Hello"};
        CHECK(events_of(good_wire) == expect);
        if (n > 0) {
            const auto ev = events_of(cat({masked_frame(0x81, hello, key), masked_frame(0x81, bad, key)}));
            REQUIRE(ev.size() >= 2);
            CHECK(ev[0] == "text:Hello");
            CHECK(ev[1].rfind("failed:1007", 0) == 0);
        }
        // The client role: unmasked frames from the server.
        const bytes plain = cat({plain_frame(0x81, text), plain_frame(0x82, bad)});
        CHECK(feed_all_splits(client_maker(), plain).events ==
              std::vector<std::string>{expect[0], expect[1]});
    }
}

TEST_CASE("the one-step path leaves every violation to the general path") {
    // Each of these is complete in the buffer and looks like a data frame
    // at first glance; the result must be the general path's 1002 / 1009.
    ws::config small;
    small.max_message_bytes = 10;
    CHECK(events_of(masked_frame(0x81, bytes(11, 'x')), small).front().rfind("failed:1009", 0) == 0);
    CHECK(events_of(masked_frame(0x81, bytes(10, 'x')), small).front() == "text:" + std::string(10, 'x'));
    bytes nonminimal{0x81, 0xFE, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'};
    CHECK(events_of(nonminimal).front().rfind("failed:1002", 0) == 0);
    CHECK(events_of(plain_frame(0x81, hello)).front().rfind("failed:1002", 0) == 0);
    // A frame bigger than the zero-copy window is streamed, still one event.
    ws::config window;
    window.max_frame_buffer = 64;
    const bytes big(100, 'q');
    CHECK(events_of(masked_frame(0x81, big), window) == std::vector<std::string>{"text:" + std::string(100, 'q')});
}

// ---------------------------------------------------------------------------
// Runs of small whole messages (detail::small_frames_avx512 where the CPU
// has AVX-512BW): whatever the level, every split and byte by byte, the
// same transcript as the scalar-only decoder, and the one derived here
// from the frames: the messages before the first bad frame, then its
// failure.

namespace {

namespace simd = tether::ws::detail::utf8_simd;

// Forces a kernel level for its lifetime (the test hook), then the best.
struct level_scope {
    explicit level_scope(simd::level l) { simd::set_max_level(l); }
    ~level_scope() { simd::set_max_level(simd::level::avx512); }
    level_scope(const level_scope&) = delete;
    level_scope& operator=(const level_scope&) = delete;
};

bytes chat_text(tether::rng& r, std::size_t n) {
    static const char* const words[] = {"hi ", "κόσμε ", "über ", "日本 ", "ok ", "🚀 ", "room ", "x"};
    std::string s;
    while (s.size() < n) s += words[r.below(8)];
    s.resize(n);  // may cut a code point: invalid at the end
    return b(s);
}

struct stream_case {
    bytes wire;
    std::vector<std::string> expect;
};

// Frames of 0..70 bytes, text and binary, a ping now and then, sometimes
// a 126..200-byte frame; text cut mid code point or mutated is invalid
// and ends the expected transcript with 1007.
stream_case make_stream(tether::rng& r, bool server, std::size_t frames, std::size_t max_message) {
    stream_case sc;
    bool over = false;
    for (std::size_t i = 0; i < frames && !over; ++i) {
        const std::size_t kind = r.below(20);
        std::array<std::uint8_t, 4> key;
        r.fill(key);
        auto frame = [&](std::uint8_t b0, const bytes& p) {
            sc.wire = cat({sc.wire, server ? masked_frame(b0, p, key) : plain_frame(b0, p)});
        };
        if (kind == 0) {
            const bytes p = b("pp");
            frame(0x89, p);
            sc.expect.push_back("ping:pp");
            continue;
        }
        const std::size_t n = kind == 1 ? 126 + r.below(75) : r.below(71);
        const bool text = kind % 5 != 2;
        bytes p = text ? chat_text(r, n) : bytes(n, static_cast<std::uint8_t>(r.below(256)));
        if (text && n > 0 && r.below(25) == 0) p[r.below(n)] = static_cast<std::uint8_t>(0xC0 + r.below(2));
        frame(text ? 0x81 : 0x82, p);
        if (n > max_message) {
            sc.expect.insert(sc.expect.end(), {"failed:1009:0", "closed:1009"});
            over = true;
        } else if (text && !ws::is_valid_utf8(p)) {
            sc.expect.insert(sc.expect.end(), {"failed:1007:0", "closed:1007"});
            over = true;
        } else {
            sc.expect.push_back(std::string(text ? "text:" : "binary:") + std::string(p.begin(), p.end()));
        }
    }
    return sc;
}

}  // namespace

TEST_CASE("runs of small messages: same events at every level, every split, as derived from the frames") {
    tether::rng r(0x72756e73);
    for (int iter = 0; iter < 24; ++iter) {
        CAPTURE(iter);
        const bool server = iter % 4 != 3;
        ws::config cfg;
        if (iter % 6 == 5) cfg.max_message_bytes = 40;  // the run must stop before a bigger one
        const stream_case sc = make_stream(r, server, 6 + static_cast<std::size_t>(r.below(20)), cfg.max_message_bytes);
        auto make = [&] { return server ? open_server(cfg) : open_client(cfg); };
        const transcript best = feed_all_splits(make, sc.wire);
        CHECK(best.events == sc.expect);
        {
            const level_scope scalar(simd::level::none);
            const transcript plain = feed_split(make(), sc.wire, {});
            CHECK(plain == best);
        }
        // Many messages in one read, then a read that ends mid-frame.
        const std::size_t cut = static_cast<std::size_t>(r.below(sc.wire.size() + 1));
        CHECK(feed_split(make(), sc.wire, {cut}) == best);
    }
}

TEST_CASE("runs of small messages: runs longer than the length table, with other calls between the messages") {
    // Hundreds of tiny messages in one read: a run stops at its table's
    // bound (256, or the bytes already handed out in front of it, where
    // the table lives; none at the start of the buffer) and at its byte
    // bound, and the next one starts where it stopped. Between the
    // messages of a run the caller may give back idle buffers or ask for
    // read room (which moves the unread bytes over the table): neither may
    // disturb the run. The transcript must equal the one
    // derived from the frames, and the scalar level's.
    tether::rng r(0x7461626c);
    for (const bool server : {true, false}) {
        CAPTURE(server);
        bytes wire;
        std::vector<std::string> expect;
        for (int i = 0; i < 1500; ++i) {
            std::array<std::uint8_t, 4> key;
            r.fill(key);
            const std::size_t n = static_cast<std::size_t>(r.below(i < 1200 ? 4 : 70));
            const bool text = r.below(3) != 0;
            bytes p(n);
            for (auto& c : p) c = static_cast<std::uint8_t>(text ? 'a' + r.below(26) : r.below(256));
            const std::uint8_t b0 = i == 1100 ? 0x89 : text ? 0x81 : 0x82;  // one ping ends a run
            wire = cat({wire, server ? masked_frame(b0, p, key) : plain_frame(b0, p)});
            expect.push_back(std::string(b0 == 0x89 ? "ping:" : text ? "text:" : "binary:") + std::string(p.begin(), p.end()));
        }
        auto make = [&] { return server ? open_server() : open_client(); };
        // Disturbed: after every k-th event, shrink_buffers() or read_buffer().
        auto disturbed = [&](std::size_t every, bool shrink) {
            ws::connection c = make();
            std::vector<std::string> got;
            std::size_t pos = 0;
            const std::size_t cuts[] = {wire.size() / 3, wire.size() / 3 + 7, wire.size()};
            for (const std::size_t end : cuts) {
                while (pos < end) pos += c.handle_bytes(t0, std::span<const std::uint8_t>(wire.data() + pos, end - pos));
                while (auto e = c.poll_event()) {
                    if (e->type == ws::event_type::message || e->type == ws::event_type::ping) got.push_back(describe(*e));
                    if (got.size() % every == 0) {
                        if (shrink)
                            c.shrink_buffers();
                        else
                            (void)c.read_buffer(c.read_buffer(0).size() + 1);  // more room: moves what is unread
                    }
                }
            }
            return got;
        };
        const transcript best = feed_split(make(), wire, {});
        std::vector<std::string> msgs;
        for (const auto& e : best.events)
            if (e.rfind("text:", 0) == 0 || e.rfind("binary:", 0) == 0 || e.rfind("ping:", 0) == 0) msgs.push_back(e);
        CHECK(msgs == expect);
        CHECK(best.events.size() == expect.size());
        {
            const level_scope scalar(simd::level::none);
            CHECK(feed_split(make(), wire, {}) == best);
        }
        for (const std::size_t every : {std::size_t{1}, std::size_t{7}, std::size_t{300}}) {
            CAPTURE(every);
            CHECK(disturbed(every, true) == expect);
            CHECK(disturbed(every, false) == expect);
        }
    }
}

TEST_CASE("runs of small messages: the 64-byte edge, open code points at the end, and an error after a run") {
    // Payloads of 60..70 bytes ending in every prefix of a 4-byte code
    // point: complete is valid, cut is 1007, at every length around the
    // one-vector limit.
    const bytes cp{0xF0, 0x9F, 0x98, 0x80};
    for (std::size_t n = 58; n <= 70; ++n) {
        for (std::size_t k = 1; k <= 4; ++k) {
            CAPTURE(n);
            CAPTURE(k);
            bytes p(n - k, 'a');
            p.insert(p.end(), cp.begin(), cp.begin() + static_cast<std::ptrdiff_t>(k));
            const bytes ok = masked_frame(0x81, b("fine"));
            const bytes wire = cat({ok, ok, masked_frame(0x81, p), ok});
            const std::vector<std::string> expect =
                k == 4 ? std::vector<std::string>{"text:fine", "text:fine", "text:" + std::string(p.begin(), p.end()), "text:fine"}
                       : std::vector<std::string>{"text:fine", "text:fine", "failed:1007:0", "closed:1007"};
            CHECK(events_of(wire) == expect);
        }
    }
    // After a run: the connection stays usable; a close frame behind a run
    // of messages is answered after them.
    const bytes wire = cat({masked_frame(0x81, b("a")), masked_frame(0x82, bytes(64, 0xFF)),
                            masked_frame(0x88, bytes{0x03, 0xE8})});
    const auto ev = events_of(wire);
    CHECK(ev == std::vector<std::string>{"text:a", std::string("binary:") + std::string(64, '\xFF'),
                                         "close_received:1000:", "closed:1000"});
}

// ---------------------------------------------------------------------------
// Decoding while copying (handle_bytes -> copy_decode) against the lazy path.
// handle_bytes() unmasks and checks data frames during the copy: it hands
// them to a run of ready messages, continues the in-place message under way
// and may leave a partly arrived last frame (the tail) for start_frame().
// None of it may be visible: for any mix of handle_bytes() and
// read_buffer()+handle_read() (short reads into bigger buffers included),
// poll_event() drained fully, partly or not at all between inputs,
// shrink_buffers() and read_buffer() moves while a run, a tail or a frame
// under way exists, the events and the output bytes are exactly those of
// the lazy path (bytes only stored by read_buffer()+handle_read(), decoded
// in poll_event()), at every SIMD level. The lazy transcript is itself
// checked against the one derived here from the frames. The wires mix runs
// of tiny messages longer than the 1 KiB length table, 16- and 64-bit
// lengths with a large window, frames at the window and message bounds,
// control frames and fragments between runs, both roles, and end with at
// most one way out: invalid UTF-8 around the 4 KiB / 64-byte block edges
// of a large frame, text ending inside a code point, 1009, 1002, a close
// frame, or a cut frame. The schedules also cut near frame starts, payload
// starts and bad bytes, so the bad bytes land in a tail's first part or in
// the part that completes it.

namespace {

struct diff_case {
    bool server = true;
    ws::config cfg;
    bytes wire;
    std::vector<std::string> expect;  // derived from the frames
    std::vector<std::size_t> marks;   // offsets worth a cut: frame and payload starts, bad bytes
};

// Valid UTF-8 of exactly n bytes, code points of every length anywhere.
bytes valid_text(tether::rng& r, std::size_t n) {
    static const char* const pieces[] = {"a", "hi ", "\xce\xba", "\xc3\xbc", "\xe6\x97\xa5", "\xf0\x9f\x9a\x80",
                                         "\xe2\x82\xac", " ", "\x7f", "room 42 "};
    bytes s;
    s.reserve(n);
    while (s.size() < n) {
        const char* p = pieces[r.below(10)];
        const std::size_t len = std::strlen(p);
        if (s.size() + len > n) {
            s.push_back('.');
            continue;
        }
        s.insert(s.end(), p, p + len);
    }
    return s;
}

std::size_t header_bytes(std::size_t n, bool masked) { return (n < 126 ? 2 : n <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0); }

std::string message_str(bool text, const bytes& p) {
    return std::string(text ? "text:" : "binary:") + std::string(p.begin(), p.end());
}

diff_case make_diff_case(tether::rng& r, int which) {
    diff_case dc;
    dc.server = which % 3 != 2;
    switch (which % 4) {
        case 0: break;  // 64 KiB window, 16 MiB messages
        case 1: dc.cfg.max_frame_buffer = 1u << 20; break;  // 64-bit lengths in place
        case 2:
            dc.cfg.max_frame_buffer = 4096 + 14;  // larger frames stream
            dc.cfg.max_message_bytes = 100000;
            break;
        default:
            dc.cfg.max_frame_buffer = 200;
            dc.cfg.max_message_bytes = 300;
            break;
    }
    const std::size_t window = dc.cfg.max_frame_buffer, max_msg = dc.cfg.max_message_bytes;
    const std::size_t budget = 700000;  // wire bytes, for the runtime
    auto cap = [&](std::size_t n) { return std::min(n, max_msg); };
    auto payload = [&](bool text, std::size_t n) {
        if (text) return valid_text(r, n);
        bytes p(n);
        r.fill(p);
        return p;
    };
    // Appends a frame; returns where its payload starts.
    auto put = [&](std::uint8_t b0, const bytes& p) {
        std::array<std::uint8_t, 4> key;
        r.fill(key);
        const std::size_t at = dc.wire.size();
        const bytes f = dc.server ? masked_frame(b0, p, key) : plain_frame(b0, p);
        dc.wire.insert(dc.wire.end(), f.begin(), f.end());
        dc.marks.push_back(at);
        dc.marks.push_back(at + f.size() - p.size());
        return at + f.size() - p.size();
    };
    // (The type is drawn before the size: argument order is unspecified.)
    auto message = [&](std::uint64_t odds, auto size) {
        const bool text = r.below(odds) != 0;
        const bytes p = payload(text, size());
        put(text ? 0x81 : 0x82, p);
        dc.expect.push_back(message_str(text, p));
    };
    auto failure = [&](int code) {
        dc.expect.push_back("failed:" + std::to_string(code) + ":0");
        dc.expect.push_back("closed:" + std::to_string(code));
    };
    // Overwrites p at about `pos` with an invalid sequence (cut by the end of p: then incomplete).
    auto spoil = [&](bytes& p, std::size_t pos) {
        static const std::vector<bytes> bad{{0xFF}, {0xC0, 0x80}, {0xED, 0xA0, 0x80}, {0xF4, 0x90, 0x80, 0x80}, {0xE2, 0x82, 'a'}};
        const bytes& s = bad[r.below(bad.size())];
        for (std::size_t i = 0; i < s.size() && pos + i < p.size(); ++i) p[pos + i] = s[i];
    };
    auto bad_pos = [&](std::size_t n) {
        std::size_t pos = 0;
        switch (r.below(4)) {
            case 0: pos = 4096 * r.below(n / 4096 + 1); break;
            case 1: pos = 64 * r.below(n / 64 + 1); break;
            case 2: pos = r.below(n); break;
            default: pos = n - 1 - r.below(std::min<std::size_t>(n, 8)); break;
        }
        const std::size_t d = r.below(7);  // -3..+3
        pos = pos + d < 3 ? 0 : pos + d - 3;
        return pos < n ? pos : n - 1;
    };
    auto some_size = [&] {  // small, 16-bit or 64-bit, within the message bound
        switch (r.below(4)) {
            case 0: return cap(r.below(126));
            case 1: return cap(126 + r.below(4000));
            case 2: return cap(126 + r.below(65536 - 126));
            default: return cap(65536 + r.below(window > 65536 ? 300000 : 100000));
        }
    };

    const std::size_t elements = 4 + r.below(16);
    for (std::size_t i = 0; i < elements; ++i) {
        const bool roomy = dc.wire.size() < budget;
        switch (r.below(11)) {
            case 0:
            case 1: {  // a run of small messages, sometimes longer than the length table
                const std::size_t k = r.below(5) == 0 ? 1030 + r.below(400) : 1 + r.below(60);
                const std::size_t most = r.below(2) ? 5 : 126;
                for (std::size_t j = 0; j < k; ++j) message(3, [&] { return cap(r.below(most)); });
                break;
            }
            case 2: message(3, [&] { return cap(126 + r.below(65536 - 126)); }); break;  // 16-bit length
            case 3:  // 64-bit length
                if (roomy) message(3, [&] { return cap(65536 + r.below(window > 65536 ? 300000 : 100000)); });
                break;
            case 4: {  // header + payload at the window: one less, equal, one more
                const std::size_t total = window + r.below(5) - 2;
                if (total > 300000 && (!roomy || r.below(3) != 0)) break;
                for (const std::size_t hs : {2, 4, 10}) {
                    const std::size_t mhs = hs + (dc.server ? 4 : 0);
                    if (total < mhs || header_bytes(total - mhs, dc.server) != mhs) continue;
                    message(2, [&] { return cap(total - mhs); });
                    break;
                }
                break;
            }
            case 5:  // exactly the message bound
                if (max_msg <= 300000 && roomy) message(2, [&] { return max_msg - r.below(2); });
                break;
            case 6: {  // control frames between runs
                const bool ping = r.below(3) != 0;
                bytes p(r.below(126));
                r.fill(p);
                put(ping ? 0x89 : 0x8A, p);
                dc.expect.push_back(std::string(ping ? "ping:" : "pong:") + std::string(p.begin(), p.end()));
                break;
            }
            case 7: {  // a fragmented message, pings between the fragments, code points cut across them
                const bool text = r.below(3) != 0;
                const bytes whole = payload(text, roomy ? some_size() : cap(r.below(300)));
                const std::size_t parts = 1 + r.below(4);
                std::vector<std::size_t> cuts{0, whole.size()};
                for (std::size_t j = 1; j < parts; ++j) cuts.push_back(r.below(whole.size() + 1));
                std::sort(cuts.begin(), cuts.end());
                for (std::size_t j = 0; j + 1 < cuts.size(); ++j) {
                    const bool last = j + 2 == cuts.size();
                    const std::uint8_t b0 = static_cast<std::uint8_t>((last ? 0x80 : 0) | (j == 0 ? (text ? 1 : 2) : 0));
                    put(b0, bytes(whole.begin() + static_cast<std::ptrdiff_t>(cuts[j]),
                                  whole.begin() + static_cast<std::ptrdiff_t>(cuts[j + 1])));
                    if (!last && r.below(3) == 0) {
                        put(0x89, b("mid"));
                        dc.expect.push_back("ping:mid");
                    }
                }
                dc.expect.push_back(message_str(text, whole));
                break;
            }
            case 8: message(2, [] { return std::size_t{0}; }); break;
            default: message(~std::uint64_t{0}, [&] { return cap(1000 + r.below(9000)); }); break;  // mostly not ASCII
        }
    }
    // At most one way out.
    bool ended = true;
    switch (r.below(9)) {
        case 0: ended = false; break;
        case 1: {  // the last frame cut short: no event for it
            const bool text = r.below(2) != 0;
            const bytes p = payload(text, dc.wire.size() < budget ? some_size() : cap(r.below(126)));
            put(text ? 0x81 : 0x82, p);
            dc.wire.resize(dc.wire.size() - 1 - r.below(std::min<std::size_t>(p.size() + 2, 5000)));
            ended = false;
            break;
        }
        case 2:
        case 3: {  // invalid UTF-8 somewhere in a text frame of any size
            const std::size_t n = std::max<std::size_t>(1, dc.wire.size() < budget ? some_size() : cap(r.below(4000)));
            bytes p = valid_text(r, n);
            const std::size_t pos = bad_pos(n);
            spoil(p, pos);
            const std::size_t at = put(0x81, p);
            dc.marks.insert(dc.marks.end(), {at + pos, at + pos + 1});
            failure(n > max_msg ? 1009 : 1007);
            break;
        }
        case 4: {  // text that ends inside a code point
            const std::size_t k = 1 + r.below(3);
            bytes p = valid_text(r, cap(r.below(2) ? r.below(200) : 65000 + r.below(2000)) - k);
            const bytes cp{0xF0, 0x9F, 0x98, 0x80};
            p.insert(p.end(), cp.begin(), cp.begin() + static_cast<std::ptrdiff_t>(k));
            put(0x81, p);
            failure(1007);
            break;
        }
        case 5: {  // one byte over the message bound: refused from the header
            const std::size_t n = max_msg + 1;
            bytes f{0x82};
            const std::uint8_t m = dc.server ? 0x80 : 0;
            if (n < 126) {
                f.push_back(static_cast<std::uint8_t>(m | n));
            } else if (n <= 0xFFFF) {
                f.insert(f.end(), {static_cast<std::uint8_t>(m | 126), static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)});
            } else {
                f.push_back(m | 127);
                for (int s = 7; s >= 0; --s) f.push_back(static_cast<std::uint8_t>(std::uint64_t{n} >> (8 * s)));
            }
            if (dc.server) f.insert(f.end(), {1, 2, 3, 4});
            dc.marks.push_back(dc.wire.size());
            dc.wire.insert(dc.wire.end(), f.begin(), f.end());
            failure(1009);
            break;
        }
        case 6:  // the peer closes
            put(0x88, b("\x03\xe8" "bye"));
            dc.expect.insert(dc.expect.end(), {"close_received:1000:bye", "closed:1000"});
            break;
        case 7: {  // a violation: RSV1, a masking the role forbids, a stray continuation
            const bytes p = valid_text(r, r.below(100));
            const std::uint8_t kinds[] = {0xC1, 0x81, 0x80};
            const std::uint8_t b0 = kinds[r.below(3)];
            dc.marks.push_back(dc.wire.size());
            const bytes f = b0 != 0x81 ? (dc.server ? masked_frame(b0, p) : plain_frame(b0, p))
                                       : (dc.server ? plain_frame(b0, p) : masked_frame(b0, p));
            dc.wire.insert(dc.wire.end(), f.begin(), f.end());
            failure(1002);
            break;
        }
        default: {  // invalid UTF-8 in a later fragment of a text message
            const bytes first = valid_text(r, cap(r.below(3000)) / 2);
            bytes second = valid_text(r, std::max<std::size_t>(1, cap(r.below(3000)) / 2));
            const std::size_t pos = bad_pos(second.size());
            spoil(second, pos);
            put(0x01, first);
            const std::size_t at = put(0x80, second);
            dc.marks.push_back(at + pos);
            failure(1007);
            break;
        }
    }
    // Bytes after the end are ignored.
    if (ended && r.below(2) == 0) {
        const bytes p = valid_text(r, r.below(3000));
        put(0x81, p);
    }
    std::sort(dc.marks.begin(), dc.marks.end());
    return dc;
}

// The lazy path: bytes only stored (read_buffer + handle_read), decoded by
// poll_event(), drained after every read as feed_split does.
transcript feed_lazy(ws::connection c, const bytes& w) {
    transcript t;
    std::size_t pos = 0;
    while (pos < w.size()) {
        if (c.state() == ws::state::closed) {
            pos += c.handle_bytes(t0, std::span<const std::uint8_t>(w.data() + pos, w.size() - pos));
        } else {
            auto room = c.read_buffer(w.size() - pos);
            const std::size_t n = std::min(room.size(), w.size() - pos);
            if (n) std::memcpy(room.data(), w.data() + pos, n);
            c.handle_read(t0, n);
            pos += n;
        }
        drain_events(c, t);
    }
    drain_events(c, t);
    t.output = drain_output(c, 1u << 20);
    return t;
}

std::size_t pick_chunk(tether::rng& r, const diff_case& dc, std::size_t pos) {
    const std::size_t left = dc.wire.size() - pos;
    std::size_t n = 1;
    const auto kind = r.below(8);
    if (kind <= 1) {  // end near a frame start, a payload start or a bad byte ahead
        auto it = std::upper_bound(dc.marks.begin(), dc.marks.end(), pos);
        const std::size_t idx = static_cast<std::size_t>(it - dc.marks.begin()) + r.below(3);
        if (idx < dc.marks.size()) {
            const std::size_t target = dc.marks[idx] + r.below(5);
            n = target > pos + 2 ? target - pos - 2 : 1;
        } else {
            n = left;
        }
    } else if (kind <= 3) {
        n = 1 + r.below(16);
    } else {  // log-uniform up to 100 KiB
        const std::size_t e = std::size_t{1} << r.below(17);
        n = std::min<std::size_t>(e + r.below(e), 100u << 10);
    }
    return std::max<std::size_t>(1, std::min(n, left));
}

// One random schedule over the wire. Its habits are drawn first (how
// often it uses handle_bytes, how much it drains), then every step.
transcript feed_random(ws::connection c, const diff_case& dc, tether::rng& r) {
    transcript t;
    const std::uint64_t copy_odds = r.below(3);    // handle_bytes: always, half the time, 1 in 8
    const std::uint64_t drain_habit = r.below(4);  // never, rarely, at random, always (unless stalled)
    auto poll_one = [&] {
        auto e = c.poll_event();
        if (!e) return false;
        t.events.push_back(describe(*e));  // views end with the next call
        return true;
    };
    auto poll_all = [&] {
        std::size_t n = 0;
        while (poll_one()) ++n;
        return n;
    };
    auto poll_some = [&] {
        std::uint64_t k = drain_habit == 0 ? 0 : drain_habit == 3 ? 3 : r.below(drain_habit == 1 ? 8 : 4);
        if (drain_habit == 1 && k > 1) k = 0;
        switch (k) {
            case 0: break;
            case 1: poll_one(); break;
            case 2:
                for (std::uint64_t i = 0, m = 2 + r.below(20); i < m; ++i) poll_one();
                break;
            default: poll_all(); break;
        }
    };
    auto disturb = [&] {
        switch (r.below(12)) {
            case 0: c.shrink_buffers(); break;
            case 1: (void)c.read_buffer(c.read_buffer(0).size() + 1 + r.below(4096)); break;  // moves what is unread
            case 2: (void)c.read_buffer(static_cast<std::size_t>(r.below(1u << 18))); break;
            case 3: {
                const bytes o = drain_output(c, 1 + static_cast<std::size_t>(r.below(64)));
                t.output.insert(t.output.end(), o.begin(), o.end());
                break;
            }
            default: break;
        }
    };
    const bytes& w = dc.wire;
    std::size_t pos = 0;
    int stalls = 0;
    while (pos < w.size()) {
        const std::size_t end = pos + pick_chunk(r, dc, pos);
        while (pos < end) {
            std::size_t took = 0;
            if (c.state() == ws::state::closed || r.below(8) < (copy_odds == 0 ? 8u : copy_odds == 1 ? 4u : 1u)) {
                took = c.handle_bytes(t0, std::span<const std::uint8_t>(w.data() + pos, end - pos));
            } else {
                std::size_t want = end - pos;
                if (r.below(3) == 0) want += static_cast<std::size_t>(r.below(1u << 16));  // more room than the read fills
                auto room = c.read_buffer(want);
                took = std::min(room.size(), end - pos);
                if (took > 1 && r.below(8) == 0) took = 1 + static_cast<std::size_t>(r.below(took));  // a short read
                if (took) std::memcpy(room.data(), w.data() + pos, took);
                c.handle_read(t0, took);
            }
            pos += took;
            if (pos == end) break;
            if (took == 0) {
                // The input bound: only draining makes room (a streamed
                // fragment may move on without an event).
                stalls = poll_all() == 0 ? stalls + 1 : 0;
                REQUIRE_MESSAGE(stalls < 3, "no progress at " << pos);
            } else {
                stalls = 0;
                poll_some();
            }
            if (r.below(4) == 0) disturb();
        }
        poll_some();
        if (r.below(3) == 0) disturb();
    }
    poll_all();
    const bytes o = drain_output(c, 1u << 20);
    t.output.insert(t.output.end(), o.begin(), o.end());
    return t;
}

std::string clip(const std::string& s) {
    return s.size() <= 48 ? s : s.substr(0, 48) + "...(" + std::to_string(s.size()) + " bytes)";
}

// Empty when equal; else where they first differ, briefly (messages are large).
std::string first_difference(const std::vector<std::string>& got, const std::vector<std::string>& want) {
    for (std::size_t i = 0; i < got.size() && i < want.size(); ++i)
        if (got[i] != want[i]) return "event " + std::to_string(i) + ": " + clip(got[i]) + " vs " + clip(want[i]);
    if (got.size() != want.size())
        return "event count " + std::to_string(got.size()) + " vs " + std::to_string(want.size()) +
               (got.size() > want.size() ? ", extra " + clip(got[want.size()]) : ", missing " + clip(want[got.size()]));
    return {};
}
std::string first_difference(const transcript& got, const transcript& want) {
    std::string d = first_difference(got.events, want.events);
    if (d.empty() && got.output != want.output)
        d = "output " + std::to_string(got.output.size()) + " vs " + std::to_string(want.output.size()) + " bytes";
    return d;
}

}  // namespace

TEST_CASE("decoding while copying: any mix of calls gives the lazy path's events and output, at every level") {
    tether::rng r(0x636f7079);
    const simd::level levels[] = {simd::level::none, simd::level::ssse3, simd::level::avx2, simd::level::avx512};
    constexpr int cases = 80;
    constexpr int schedules = 6;
    for (int i = 0; i < cases; ++i) {
        CAPTURE(i);
        const diff_case dc = make_diff_case(r, i);
        auto make = [&] { return dc.server ? open_server(dc.cfg) : open_client(dc.cfg); };
        transcript lazy;
        {
            const level_scope scalar(simd::level::none);
            lazy = feed_lazy(make(), dc.wire);
        }
        CHECK(first_difference(lazy.events, dc.expect) == "");
        for (const simd::level l : levels) {
            const level_scope scope(l);
            CAPTURE(static_cast<int>(l));
            CHECK(first_difference(feed_lazy(make(), dc.wire), lazy) == "");
            for (int k = 0; k < schedules; ++k) {
                const std::uint64_t seed = static_cast<std::uint64_t>(i) * 1000 + static_cast<std::uint64_t>(l) * 10 + k;
                CAPTURE(seed);
                tether::rng sr(seed);
                CHECK(first_difference(feed_random(make(), dc, sr), lazy) == "");
            }
        }
    }
}

TEST_CASE("shrink_buffers() while a single-frame message streams into the message buffer keeps it") {
    // A frame bigger than the window is streamed into the message buffer;
    // as a single frame (FIN set) it leaves the fragment state idle, yet
    // the message buffer holds its first part: giving it back then loses
    // that part. (Found by the differential test above.)
    ws::config cfg;
    cfg.max_frame_buffer = 1024;
    auto c = open_server(cfg);
    const bytes wire = masked_frame(0x82, bytes(2000, 'x'));
    c.handle_bytes(t0, std::span<const std::uint8_t>(wire.data(), 1500));
    CHECK(!c.poll_event());  // streamed, no event yet
    c.shrink_buffers();
    c.handle_bytes(t0, std::span<const std::uint8_t>(wire.data() + 1500, wire.size() - 1500));
    auto e = c.poll_event();
    REQUIRE(e);
    CHECK(describe(*e) == "binary:" + std::string(2000, 'x'));
}

TEST_CASE("bytes read in after closed are ignored: read_buffer() keeps its room") {
    // A caller that goes on reading after `closed` (say, until its socket
    // reports EOF) must not fill the buffer up to the bound for nothing.
    auto c = open_server();
    const bytes bad = masked_frame(0x81, bytes{0xFF});
    c.handle_bytes(t0, std::span<const std::uint8_t>(bad.data(), bad.size()));
    transcript t;
    drain_events(c, t);
    REQUIRE(c.state() == ws::state::closed);
    const std::size_t room = c.read_buffer(4096).size();
    REQUIRE(room >= 4096);
    for (int i = 0; i < 100; ++i) {
        auto buf = c.read_buffer(4096);
        CHECK(buf.size() == room);
        c.handle_read(t0, buf.size());
        CHECK(!c.poll_event());
    }
}
