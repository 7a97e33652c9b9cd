// The RFC 6455 decoder as seen through a connection: golden vectors (RFC
// 6455 §5.7) and every failure path, each re-run at every split point and
// byte by byte with identical events and output.
#include <doctest/doctest.h>

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
