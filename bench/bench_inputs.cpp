// The inputs every contender is given (see bench_common.hpp). Frames are
// built with tether's own header writer and masking; the decode benchmarks
// check that every contender hands back the exact text, so a wrong frame
// would show up as an error, not as a fast run.
#include <algorithm>
#include <array>
#include <string_view>

#include "bench_common.hpp"
#include "tether/core/random.hpp"
#include "tether/ws/frame.hpp"
#include "tether/ws/mask.hpp"

namespace bench {

std::string sample_text(std::size_t size, std::uint64_t seed) {
    static const char* const words[] = {"hello ", "tether ", "κόσμε ", "frame ", "room ", "replay ", "ack ", "über "};
    tether::rng r(seed);
    std::string s;
    while (s.size() < size) s += words[r.below(8)];
    // Trim back to a code point boundary, pad with ASCII to the exact size.
    s.resize(size);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0x80)) s.pop_back();
    s.append(size - s.size(), '.');
    return s;
}

std::vector<std::uint8_t> masked_text_frames(std::size_t size, std::size_t count, std::uint64_t seed) {
    const std::string text = sample_text(size, seed);
    tether::rng r(seed + 1);
    std::vector<std::uint8_t> out;
    out.reserve(count * (size + tether::ws::max_frame_header_size));
    for (std::size_t i = 0; i < count; ++i) {
        std::uint8_t head[tether::ws::max_frame_header_size];
        std::array<std::uint8_t, 4> key;
        r.fill(key);
        const std::size_t hs = tether::ws::write_frame_header(head, true, tether::ws::opcode::text, size, &key);
        out.insert(out.end(), head, head + hs);
        const std::size_t at = out.size();
        out.insert(out.end(), text.begin(), text.end());
        tether::ws::apply_mask(std::span<std::uint8_t>(out.data() + at, size), key, 0);
    }
    return out;
}

std::size_t decode_frames_for(std::size_t size) {
    const std::size_t n = (1u << 20) / (size + 14);
    return n ? n : 1;
}

std::size_t encode_frames_for(std::size_t size) {
    const std::size_t n = (256u << 10) / size;
    return n ? n : 1;
}

const std::string& browser_upgrade_request() {
    static const std::string r =
        "GET /chat?session_id=9f86d081884c7d659a2feaa0c55ad015 HTTP/1.1\r\n"
        "Host: chat.example.com\r\n"
        "Connection: Upgrade\r\n"
        "Pragma: no-cache\r\n"
        "Cache-Control: no-cache\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36\r\n"
        "Upgrade: websocket\r\n"
        "Origin: https://chat.example.com\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Accept-Encoding: gzip, deflate, br\r\n"
        "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
        "Cookie: _ga=GA1.2.1234567890.1700000000; theme=dark; sid=s%3Aabcdef0123456789\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "Sec-WebSocket-Protocol: tether.v1\r\n"
        "\r\n";
    return r;
}

bool is_valid_101(const std::string& response) {
    std::string lower;
    for (char c : response) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return lower.rfind("http/1.1 101", 0) == 0 &&
           response.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos &&
           lower.find("sec-websocket-protocol: tether.v1\r\n") != std::string::npos;
}

namespace {

// Chat text as it appears inside a JSON string (already escaped).
constexpr std::string_view phrases[] = {
    "see you at 10:30 ",     "ça marche, à demain ",      "привет всем ",
    "ship it \\\"today\\\" ", "line one\\nline two ",      "tabs\\tand \\\\ backslashes ",
    "κόσμε ",                "日本語のテキスト ",         "deploy done 🚀 ",
    "who broke the build? ", "lgtm, merging ",            "caf\\u00e9 au lait ",
    "the quick brown fox ",  "jumps over the lazy dog ",  "über-fast ",
};

std::string envelope(tether::rng& r, std::size_t i) {
    const std::size_t target = 160 + r.below(231);  // 160..390 before the closing braces
    const bool relayed = i % 3 != 2;                // 2 of 3 are server events, 1 of 3 client publishes
    const bool reaction = i % 7 == 3;
    const std::string room = "team-" + std::to_string(r.below(1000)) + (r.below(2) ? ".general" : ":random");
    const std::string id = "c" + std::to_string(0x7f3a9e20 + r.below(1u << 20)) + "-" + std::to_string(i);
    std::string s = "{\"kind\":\"";
    s += reaction ? "chat.reaction" : "chat.message";
    s += "\",\"room_id\":\"" + room + "\"";
    if (relayed) {
        s += ",\"event_id\":" + std::to_string(1'000'000 + r.below(1'000'000));
        s += ",\"sender\":\"user-" + std::to_string(r.below(100'000)) + "\"";
    }
    s += ",\"id\":\"" + id + "\"";
    if (relayed) s += ",\"ts\":" + std::to_string(1'732'270'000'000 + r.below(1'000'000));
    if (reaction) {
        s += ",\"payload\":{\"target\":" + std::to_string(1'000'000 + r.below(1'000'000)) +
             ",\"emoji\":\"\\ud83d\\udc4d\",\"note\":\"";
        while (s.size() < target) s += phrases[r.below(std::size(phrases))];
        s += "\"}}";
        return s;
    }
    s += ",\"payload\":{\"text\":\"";
    while (s.size() + 60 < target) s += phrases[r.below(std::size(phrases))];
    s += "\",\"mentions\":[\"user-" + std::to_string(r.below(100'000)) + "\"]";
    if (r.below(2)) s += ",\"reply_to\":" + std::to_string(1'000'000 + r.below(1'000'000));
    s += ",\"attachments\":[";
    if (s.size() + 40 < target) s += "{\"type\":\"image\",\"w\":640,\"h\":480,\"ratio\":1.333}";
    s += "]}}";
    return s;
}

}  // namespace

const std::vector<std::string>& sample_envelopes() {
    static const std::vector<std::string> v = [] {
        tether::rng r(42);
        std::vector<std::string> out;
        for (std::size_t i = 0; out.size() < 64; ++i) {
            std::string e = envelope(r, i);
            if (e.size() >= 150 && e.size() <= 400) out.push_back(std::move(e));
        }
        return out;
    }();
    return v;
}

const std::vector<envelope_fields>& expected_envelope_fields() {
    static const std::vector<envelope_fields> v = [] {
        // The generator writes kind, room_id and id without escapes, and the
        // payload last: a string search is exact for these texts.
        const auto str = [](const std::string& s, const std::string& key) {
            const std::string k = "\"" + key + "\":\"";
            const std::size_t a = s.find(k) + k.size();
            return s.substr(a, s.find('"', a) - a);
        };
        std::vector<envelope_fields> out;
        for (const auto& s : sample_envelopes()) {
            envelope_fields f;
            f.kind = str(s, "kind");
            f.room_id = str(s, "room_id");
            f.id = str(s, "id");
            const std::size_t e = s.find("\"event_id\":");
            if (e != std::string::npos) f.event_id = std::stoll(s.substr(e + 11));
            const std::size_t p = s.find("\"payload\":") + 10;
            f.payload = s.substr(p, s.size() - 1 - p);
            out.push_back(std::move(f));
        }
        return out;
    }();
    return v;
}

std::size_t sample_envelope_bytes() {
    std::size_t n = 0;
    for (const auto& e : sample_envelopes()) n += e.size();
    return n;
}

}  // namespace bench
