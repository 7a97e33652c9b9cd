// tether/ws/detail/base64.hpp — RFC 4648 §4 base64 (standard alphabet, '='
// padding), as RFC 6455 §4.1/§4.2.2 uses it for Sec-WebSocket-Key/-Accept.
//
// Encoding always pads. Decoding is strict on purpose, because its only job
// here is to decide whether a peer's Sec-WebSocket-Key "when decoded, is 16
// bytes in length" (RFC 6455 §4.2.1 item 5); a lenient decoder would accept
// keys a conforming client can never send. Rejected (RFC 4648 §3.1-§3.5):
// length not a multiple of 4, characters outside the alphabet (including
// whitespace, CR/LF and the URL-safe '-' '_'), '=' anywhere but the last one
// or two positions, and non-zero pad bits (non-canonical encodings, §3.5).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tether::ws::detail {

inline constexpr char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Characters base64_encode produces for `n` input bytes.
constexpr std::size_t base64_encoded_size(std::size_t n) noexcept { return (n + 2) / 3 * 4; }

/// Upper bound on the bytes a valid encoding of `n` characters decodes to.
constexpr std::size_t base64_decoded_max_size(std::size_t n) noexcept { return n / 4 * 3; }

/// Encodes `in` into `out`. Returns the number of characters written, or 0
/// (writing nothing) if `out` is smaller than base64_encoded_size(in.size()).
inline std::size_t base64_encode(std::span<const std::uint8_t> in, std::span<char> out) noexcept {
    const std::size_t need = base64_encoded_size(in.size());
    if (out.size() < need) return 0;
    std::size_t o = 0;
    std::size_t i = 0;
    for (; in.size() - i >= 3; i += 3) {
        const std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) |
                                std::uint32_t{in[i + 2]};
        out[o++] = base64_alphabet[(v >> 18) & 63];
        out[o++] = base64_alphabet[(v >> 12) & 63];
        out[o++] = base64_alphabet[(v >> 6) & 63];
        out[o++] = base64_alphabet[v & 63];
    }
    const std::size_t rest = in.size() - i;
    if (rest != 0) {
        std::uint32_t v = std::uint32_t{in[i]} << 16;
        if (rest == 2) v |= std::uint32_t{in[i + 1]} << 8;
        out[o++] = base64_alphabet[(v >> 18) & 63];
        out[o++] = base64_alphabet[(v >> 12) & 63];
        out[o++] = rest == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

/// Encodes `in` and appends it to `out`.
inline void base64_encode_append(std::span<const std::uint8_t> in, std::string& out) {
    const std::size_t at = out.size();
    out.resize(at + base64_encoded_size(in.size()));
    base64_encode(in, std::span<char>(out.data() + at, out.size() - at));
}

inline std::string base64_encode(std::span<const std::uint8_t> in) {
    std::string s;
    base64_encode_append(in, s);
    return s;
}

inline std::string base64_encode(std::string_view in) {
    return base64_encode(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(in.data()), in.size()));
}

/// Fixed-size encoding without touching the heap (e.g. 16 key bytes -> 24
/// chars, 20 digest bytes -> 28 chars).
template <std::size_t N>
std::array<char, base64_encoded_size(N)> base64_encode_fixed(
    const std::array<std::uint8_t, N>& in) noexcept {
    std::array<char, base64_encoded_size(N)> out{};
    base64_encode(std::span<const std::uint8_t>(in), std::span<char>(out));
    return out;
}

namespace base64_impl {
// 0-63 for alphabet characters, 64 for '=', 255 for anything else.
constexpr std::array<std::uint8_t, 256> make_decode_table() noexcept {
    std::array<std::uint8_t, 256> t{};
    for (auto& v : t) v = 255;
    for (std::uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(base64_alphabet[i])] = i;
    t[static_cast<unsigned char>('=')] = 64;
    return t;
}
inline constexpr std::array<std::uint8_t, 256> decode_table = make_decode_table();
}  // namespace base64_impl

/// Strict decode of `in` into `out`. Returns the number of bytes written, or
/// std::nullopt if `in` is not a canonical padded encoding or `out` is too
/// small (then `out` content is unspecified).
inline std::optional<std::size_t> base64_decode(std::string_view in,
                                                std::span<std::uint8_t> out) noexcept {
    if (in.size() % 4 != 0) return std::nullopt;
    const auto& tab = base64_impl::decode_table;
    std::size_t o = 0;
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        std::uint8_t c[4];
        for (std::size_t k = 0; k < 4; ++k) c[k] = tab[static_cast<unsigned char>(in[i + k])];
        // The first two characters of a quantum always carry data.
        if (c[0] > 63 || c[1] > 63) return std::nullopt;
        std::size_t bytes = 3;
        if (c[2] == 64) {
            // "xx==": only in the final quantum, and the 4 low bits of c[1]
            // must be zero (RFC 4648 §3.5).
            if (!last || c[3] != 64 || (c[1] & 0x0F) != 0) return std::nullopt;
            bytes = 1;
        } else if (c[2] > 63) {
            return std::nullopt;
        } else if (c[3] == 64) {
            // "xxx=": the 2 low bits of c[2] must be zero.
            if (!last || (c[2] & 0x03) != 0) return std::nullopt;
            bytes = 2;
        } else if (c[3] > 63) {
            return std::nullopt;
        }
        if (out.size() - o < bytes) return std::nullopt;
        const std::uint32_t v = (std::uint32_t{c[0]} << 18) | (std::uint32_t{c[1]} << 12) |
                                (bytes >= 2 ? std::uint32_t{c[2]} << 6 : 0u) |
                                (bytes == 3 ? std::uint32_t{c[3]} : 0u);
        out[o++] = static_cast<std::uint8_t>(v >> 16);
        if (bytes >= 2) out[o++] = static_cast<std::uint8_t>(v >> 8);
        if (bytes == 3) out[o++] = static_cast<std::uint8_t>(v);
    }
    return o;
}

/// Strict decode into a fresh vector; std::nullopt if `in` is invalid.
inline std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view in) {
    std::vector<std::uint8_t> out(base64_decoded_max_size(in.size()));
    const auto n = base64_decode(in, std::span<std::uint8_t>(out));
    if (!n) return std::nullopt;
    out.resize(*n);
    return out;
}

}  // namespace tether::ws::detail
