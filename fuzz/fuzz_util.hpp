// fuzz/fuzz_util.hpp — helpers shared by the libFuzzer targets (header-only;
// every target is still one translation unit).
//
// - FUZZ_CHECK: an invariant; on failure it prints what broke and aborts, so
//   libFuzzer records the input as a crash (an invariant is a finding, not
//   only a sanitizer report).
// - byte_source: decodes the fuzzer's bytes into choices. Running out of
//   input yields zeros, never an error, so every input is a valid program.
// - A reference UTF-8 classifier (Unicode 15 Table 3-7), written from the
//   table and independent of the library's validators.
// - Frame encoding (client frames are masked) and a strict decoder for what
//   the library writes, so outputs are checked on the wire, not by asking
//   the machine about itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

[[noreturn]] inline void fail(const char* cond, const char* file, int line, const std::string& detail) {
    std::fprintf(stderr, "\n*** invariant failed: %s\n    at %s:%d\n    %s\n", cond, file, line, detail.c_str());
    std::fflush(stderr);
    std::abort();
}

#define FUZZ_CHECK(cond, detail)                                              \
    do {                                                                      \
        if (!(cond)) ::fuzz::fail(#cond, __FILE__, __LINE__, (detail));       \
    } while (0)

inline std::string printable(std::string_view s, std::size_t max = 200) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < max; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out.append(buf);
        }
    }
    if (s.size() > max) out.append("...");
    return out;
}
inline std::string printable(std::span<const std::uint8_t> b, std::size_t max = 200) {
    return printable(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), max);
}

/// Reads choices from the fuzzer's input; past the end everything is zero.
class byte_source {
public:
    byte_source(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}

    bool empty() const noexcept { return n_ == 0; }
    std::size_t left() const noexcept { return n_; }

    std::uint8_t u8() noexcept {
        if (n_ == 0) return 0;
        --n_;
        return *p_++;
    }
    std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
    std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(u16()) | (static_cast<std::uint32_t>(u16()) << 16); }
    bool flag() noexcept { return (u8() & 1) != 0; }
    /// Uniform-ish in [0, n); n > 0.
    std::size_t below(std::size_t n) noexcept { return n <= 256 ? u8() % n : u16() % n; }
    template <class T, std::size_t N>
    const T& pick(const T (&arr)[N]) noexcept {
        return arr[below(N)];
    }
    /// Up to `n` bytes (fewer at the end of the input).
    std::span<const std::uint8_t> take(std::size_t n) noexcept {
        if (n > n_) n = n_;
        std::span<const std::uint8_t> s(p_, n);
        p_ += n;
        n_ -= n;
        return s;
    }
    std::string take_string(std::size_t n) {
        const auto s = take(n);
        return std::string(reinterpret_cast<const char*>(s.data()), s.size());
    }
    std::span<const std::uint8_t> rest() noexcept { return take(n_); }

private:
    const std::uint8_t* p_;
    std::size_t n_;
};

// ---------------------------------------------------------------------------
// Reference UTF-8 (Unicode Table 3-7, "well-formed UTF-8 byte sequences").

enum class utf8_class { valid, incomplete, invalid };

/// valid: the whole text is well-formed. incomplete: it is a proper prefix
/// of well-formed text (ends inside a sequence). invalid: no continuation
/// can make it well-formed.
inline utf8_class classify_utf8(std::span<const std::uint8_t> s) noexcept {
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n) {
        const std::uint8_t b = s[i];
        if (b < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
        if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
        } else if (b == 0xE0) {
            len = 3;
            lo = 0xA0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            len = 3;
        } else if (b == 0xED) {
            len = 3;
            hi = 0x9F;
        } else if (b == 0xF0) {
            len = 4;
            lo = 0x90;
        } else if (b >= 0xF1 && b <= 0xF3) {
            len = 4;
        } else if (b == 0xF4) {
            len = 4;
            hi = 0x8F;
        } else {
            return utf8_class::invalid;
        }
        for (std::size_t k = 1; k < len; ++k) {
            if (i + k >= n) return utf8_class::incomplete;
            const std::uint8_t c = s[i + k];
            const std::uint8_t l = k == 1 ? lo : 0x80;
            const std::uint8_t h = k == 1 ? hi : 0xBF;
            if (c < l || c > h) return utf8_class::invalid;
        }
        i += len;
    }
    return utf8_class::valid;
}
inline bool valid_utf8(std::string_view s) noexcept {
    return classify_utf8({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}) == utf8_class::valid;
}

// ---------------------------------------------------------------------------
// Frames

/// Appends one frame. `mask` set: a client frame, masked with that key.
inline void append_frame(std::string& out, std::uint8_t first_byte, std::string_view payload,
                         std::optional<std::uint32_t> mask) {
    out.push_back(static_cast<char>(first_byte));
    const std::uint8_t m = mask ? 0x80 : 0;
    const std::uint64_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<char>(m | n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(m | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n));
    } else {
        out.push_back(static_cast<char>(m | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(n >> (8 * i)));
    }
    if (!mask) {
        out.append(payload);
        return;
    }
    const std::uint8_t key[4] = {static_cast<std::uint8_t>(*mask >> 24), static_cast<std::uint8_t>(*mask >> 16),
                                 static_cast<std::uint8_t>(*mask >> 8), static_cast<std::uint8_t>(*mask)};
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(key[i]));
    for (std::size_t i = 0; i < payload.size(); ++i)
        out.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ key[i % 4]));
}

struct wire_frame {
    bool fin = false;
    std::uint8_t opcode = 0;
    std::string payload;  ///< unmasked
};

/// Incremental strict decoder of what a tether endpoint writes: no RSV
/// bits, known opcodes, minimal lengths, control frames final and <= 125,
/// masked exactly when `expect_masked`. feed() returns false (with why())
/// on the first violation; complete frames are appended to `out`.
class frame_reader {
public:
    explicit frame_reader(bool expect_masked) : masked_(expect_masked) {}

    bool feed(std::span<const std::uint8_t> bytes, std::vector<wire_frame>& out) {
        buf_.insert(buf_.end(), bytes.begin(), bytes.end());
        std::size_t pos = 0;
        for (;;) {
            const std::size_t avail = buf_.size() - pos;
            if (avail < 2) break;
            const std::uint8_t b0 = buf_[pos], b1 = buf_[pos + 1];
            if (b0 & 0x70) return bad("RSV bit set in output");
            const std::uint8_t op = b0 & 0x0F;
            if (!(op <= 2 || (op >= 8 && op <= 10))) return bad("reserved opcode in output");
            if (((b1 & 0x80) != 0) != masked_) return bad("wrong masking in output");
            std::uint64_t len = b1 & 0x7F;
            std::size_t hdr = 2;
            if (len == 126) {
                if (avail < 4) break;
                len = (std::uint64_t{buf_[pos + 2]} << 8) | buf_[pos + 3];
                if (len < 126) return bad("non-minimal 16-bit length in output");
                hdr = 4;
            } else if (len == 127) {
                if (avail < 10) break;
                len = 0;
                for (int i = 0; i < 8; ++i) len = (len << 8) | buf_[pos + 2 + static_cast<std::size_t>(i)];
                if (len <= 0xFFFF || (len >> 63)) return bad("bad 64-bit length in output");
                hdr = 10;
            }
            if ((op & 8) && (!(b0 & 0x80) || len > 125)) return bad("bad control frame in output");
            std::uint8_t key[4] = {0, 0, 0, 0};
            if (masked_) {
                if (avail < hdr + 4) break;
                for (int i = 0; i < 4; ++i) key[i] = buf_[pos + hdr + static_cast<std::size_t>(i)];
                hdr += 4;
            }
            if (avail - hdr < len) break;
            wire_frame f;
            f.fin = (b0 & 0x80) != 0;
            f.opcode = op;
            f.payload.resize(static_cast<std::size_t>(len));
            for (std::size_t i = 0; i < len; ++i)
                f.payload[i] = static_cast<char>(buf_[pos + hdr + i] ^ key[i % 4]);
            out.push_back(std::move(f));
            pos += hdr + static_cast<std::size_t>(len);
        }
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos));
        return true;
    }
    std::size_t buffered() const noexcept { return buf_.size(); }
    const char* why() const noexcept { return why_; }

private:
    bool bad(const char* w) {
        why_ = w;
        return false;
    }
    bool masked_;
    std::vector<std::uint8_t> buf_;
    const char* why_ = "";
};

inline std::span<const std::uint8_t> as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// Minimal JSON string quoting for harness-built envelopes (inputs are from
/// small fixed sets or hex, so only quote and backslash need care).
inline std::string quote(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20) {
            out.append("\\u00");
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
    return out;
}

// ---------------------------------------------------------------------------
// RFC 6455 §4.2.2 item 5.4, computed here from scratch (FIPS 180-4 SHA-1,
// RFC 4648 base64) so the library's accept value is checked, not trusted.

inline std::string sha1_base64(std::string_view msg) {
    std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    std::string m(msg);
    const std::uint64_t bits = static_cast<std::uint64_t>(msg.size()) * 8;
    m.push_back(static_cast<char>(0x80));
    while (m.size() % 64 != 56) m.push_back('\0');
    for (int i = 7; i >= 0; --i) m.push_back(static_cast<char>(bits >> (8 * i)));
    auto rol = [](std::uint32_t x, int k) { return (x << k) | (x >> (32 - k)); };
    for (std::size_t off = 0; off < m.size(); off += 64) {
        std::uint32_t w[80];
        for (int t = 0; t < 16; ++t) {
            const auto* b = reinterpret_cast<const unsigned char*>(m.data() + off + 4 * static_cast<std::size_t>(t));
            w[t] = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
        }
        for (int t = 16; t < 80; ++t) w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int t = 0; t < 80; ++t) {
            std::uint32_t f, k;
            if (t < 20) { f = (b & c) | (~b & d); k = 0x5A827999u; }
            else if (t < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1u; }
            else if (t < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDCu; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6u; }
            const std::uint32_t tmp = rol(a, 5) + f + e + k + w[t];
            e = d; d = c; c = rol(b, 30); b = a; a = tmp;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    unsigned char digest[20];
    for (int i = 0; i < 20; ++i) digest[i] = static_cast<unsigned char>(h[i / 4] >> (24 - 8 * (i % 4)));
    static constexpr char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (int i = 0; i < 20; i += 3) {
        const std::uint32_t v = (std::uint32_t{digest[i]} << 16) | (i + 1 < 20 ? std::uint32_t{digest[i + 1]} << 8 : 0) |
                                (i + 2 < 20 ? std::uint32_t{digest[i + 2]} : 0);
        out.push_back(alpha[(v >> 18) & 63]);
        out.push_back(alpha[(v >> 12) & 63]);
        out.push_back(i + 1 < 20 ? alpha[(v >> 6) & 63] : '=');
        out.push_back(i + 2 < 20 ? alpha[v & 63] : '=');
    }
    return out;
}

inline std::string websocket_accept(std::string_view key) {
    std::string s(key);
    s.append("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    return sha1_base64(s);
}

/// RFC 6455 §4.2.1 item 5 / RFC 4648: the canonical padded base64 of 16
/// bytes is 22 alphabet characters, the last with its 4 low bits zero, "==".
inline bool is_canonical_key(std::string_view k) {
    static constexpr std::string_view alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (k.size() != 24 || k[22] != '=' || k[23] != '=') return false;
    for (std::size_t i = 0; i < 22; ++i)
        if (alpha.find(k[i]) == std::string_view::npos) return false;
    return (alpha.find(k[21]) & 0x0F) == 0;
}

/// Is `token` an element (ASCII case-insensitive, OWS-trimmed) of the
/// comma-separated lists of every `name` field? RFC 9110 §5.3/§5.6.1.
template <class Headers>
bool list_has(const Headers& headers, std::string_view name, std::string_view token) {
    auto lower = [](std::string_view s) {
        std::string o(s);
        for (char& c : o)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        return o;
    };
    const std::string lname = lower(name), ltok = lower(token);
    for (const auto& h : headers) {
        if (lower(h.name) != lname) continue;
        std::string_view v = h.value;
        while (true) {
            const std::size_t comma = v.find(',');
            std::string_view e = v.substr(0, comma);
            while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
            while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
            if (lower(e) == ltok) return true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

}  // namespace fuzz
