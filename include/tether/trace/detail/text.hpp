// tether/trace/detail/text.hpp — the two spellings of a byte string in a
// trace: a JSON string (RFC 8259 §7) for UTF-8 text, `hex:…` for the rest.
//
// Why two: a trace must hold any bytes exactly (masked frames, invalid
// UTF-8 a peer sent), yet stay readable and hand-editable where the bytes
// are text (HTTP heads, JSON envelopes). JSON strings cannot carry invalid
// UTF-8 (a \u escape names a code point, not a byte), so those go in hex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tether/ws/utf8.hpp"

namespace tether::trace::detail {

inline void append_hex(std::string& out, std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    out.append("hex:");
    for (const char ch : bytes) {
        const auto c = static_cast<unsigned char>(ch);
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
}

/// Is `s` a C1 control (U+0080..U+009F) starting at s[i]? Its UTF-8 is C2 80..C2 9F.
inline bool is_c1_at(std::string_view s, std::size_t i) noexcept {
    return static_cast<unsigned char>(s[i]) == 0xC2 && i + 1 < s.size() &&
           static_cast<unsigned char>(s[i + 1]) >= 0x80 && static_cast<unsigned char>(s[i + 1]) <= 0x9F;
}

/// Text a reader would recognise as text: valid UTF-8 with no control
/// characters except tab, CR and LF (HTTP heads qualify; masked frames
/// practically never do).
inline bool is_printable_text(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7F || is_c1_at(s, i)) return false;
    }
    return ws::is_valid_utf8(s);
}

/// `s` must be valid UTF-8. Controls (C0, DEL, C1) are escaped so that a
/// trace line never carries one raw — it stays one line, and safe to cat.
inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    out.push_back('"');
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        switch (c) {
            case '"': out.append("\\\""); continue;
            case '\\': out.append("\\\\"); continue;
            case '\n': out.append("\\n"); continue;
            case '\r': out.append("\\r"); continue;
            case '\t': out.append("\\t"); continue;
            case '\b': out.append("\\b"); continue;
            case '\f': out.append("\\f"); continue;
            default: break;
        }
        unsigned cp = 0;
        if (c < 0x20 || c == 0x7F) {
            cp = c;
        } else if (is_c1_at(s, i)) {
            cp = static_cast<unsigned char>(s[++i]);
        } else {
            out.push_back(s[i]);  // ASCII, or a byte of a longer UTF-8 sequence
            continue;
        }
        out.append("\\u00");
        out.push_back(digits[cp >> 4]);
        out.push_back(digits[cp & 15]);
    }
    out.push_back('"');
}

/// The spelling a writer picks: JSON when the bytes are text (`printable`:
/// the stricter test, for byte streams), hex otherwise.
inline void append_bytes(std::string& out, std::string_view bytes, bool require_printable) {
    const bool text = require_printable ? is_printable_text(bytes) : ws::is_valid_utf8(bytes);
    if (text)
        append_json_string(out, bytes);
    else
        append_hex(out, bytes);
}

inline int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

/// Parse the JSON string that starts at s[pos] (the opening quote); on
/// success pos is just past the closing quote. Returns an error text or
/// nullptr. The caller has checked that the whole line is valid UTF-8.
inline const char* parse_json_string(std::string_view s, std::size_t& pos, std::string& out) {
    out.clear();
    std::size_t i = pos + 1;
    auto read4 = [&](std::uint32_t& v) {
        if (i + 4 > s.size()) return false;
        v = 0;
        for (int k = 0; k < 4; ++k) {
            const int d = hex_digit(s[i++]);
            if (d < 0) return false;
            v = (v << 4) | static_cast<std::uint32_t>(d);
        }
        return true;
    };
    while (i < s.size()) {
        const char c = s[i++];
        if (c == '"') {
            pos = i;
            return nullptr;
        }
        if (static_cast<unsigned char>(c) < 0x20) return "raw control character in string (escape it)";
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (i >= s.size()) break;
        switch (s[i++]) {
            case '"': out.push_back('"'); break;
            case '\\': out.push_back('\\'); break;
            case '/': out.push_back('/'); break;
            case 'b': out.push_back('\b'); break;
            case 'f': out.push_back('\f'); break;
            case 'n': out.push_back('\n'); break;
            case 'r': out.push_back('\r'); break;
            case 't': out.push_back('\t'); break;
            case 'u': {
                std::uint32_t cp = 0;
                if (!read4(cp)) return "bad \\u escape";
                if (cp >= 0xDC00 && cp <= 0xDFFF) return "lone low surrogate in \\u escape";
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    std::uint32_t lo = 0;
                    if (i + 2 > s.size() || s[i] != '\\' || s[i + 1] != 'u') return "lone high surrogate in \\u escape";
                    i += 2;
                    if (!read4(lo) || lo < 0xDC00 || lo > 0xDFFF) return "bad surrogate pair in \\u escape";
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                append_utf8(out, cp);
                break;
            }
            default: return "unknown escape in string";
        }
    }
    return "unterminated string";
}

inline bool parse_hex(std::string_view digits, std::string& out) {
    out.clear();
    if (digits.size() % 2 != 0) return false;
    for (std::size_t i = 0; i < digits.size(); i += 2) {
        const int hi = hex_digit(digits[i]);
        const int lo = hex_digit(digits[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>((hi << 4) | lo));
    }
    return true;
}

}  // namespace tether::trace::detail
