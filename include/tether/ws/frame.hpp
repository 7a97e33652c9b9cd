// tether/ws/frame.hpp — RFC 6455 §5.2 base framing: header layout, the
// per-header validity rules, and the encoder.
//
//    0                   1                   2                   3
//   +-+-+-+-+-------+-+-------------+-------------------------------+
//   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//   +-+-+-+-+-------+-+-------------+-------------------------------+
//   | masking key (0 or 4 bytes)    |         payload ...           |
//
// parse_frame_header() never consumes anything: it either reports that more
// bytes are needed or returns the complete header and its size. That is what
// lets the decoder resume at any byte boundary with identical results.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "tether/ws/close_code.hpp"

namespace tether::ws {

enum class role : std::uint8_t { client, server };

enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

constexpr bool is_control(opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

/// Largest possible header: 2 + 8 (64-bit length) + 4 (mask).
inline constexpr std::size_t max_frame_header_size = 14;
/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
inline constexpr std::size_t max_control_payload = 125;

struct frame_header {
    bool fin = false;
    std::uint8_t rsv = 0;  ///< RSV1..3 as bits 2..0
    opcode op = opcode::continuation;
    bool masked = false;
    std::uint64_t payload_size = 0;
    std::array<std::uint8_t, 4> mask{};
    std::uint8_t header_size = 0;  ///< bytes the header occupies on the wire
};

enum class header_status : std::uint8_t { need_more, ok, invalid };

struct header_result {
    header_status status;
    close_code code = close_code::none;  ///< set when invalid
    const char* why = nullptr;           ///< set when invalid
};

/// Parse (never consume) one frame header at the front of `in`.
/// Checks only what the header alone decides and that does not depend on the
/// message sequence (see message_sequence.hpp for that):
///  - RSV bits with no negotiated extension (§5.2: "MUST be 0 unless an
///    extension is negotiated") -> 1002
///  - reserved opcodes 0x3-0x7, 0xB-0xF (§5.2) -> 1002
///  - fragmented or oversized control frames (§5.5) -> 1002
///  - masking: "a server MUST NOT mask any frames"; "the server MUST close
///    the connection upon receiving a frame that is not masked" (§5.1) -> 1002
///  - a 64-bit length with the most significant bit set, or a length not in
///    its minimal encoding (§5.2: "the minimal number of bytes MUST be used")
///    -> 1002
/// `receiver` is the role of the endpoint reading the frame.
constexpr header_result parse_frame_header(std::span<const std::uint8_t> in, role receiver,
                                           frame_header& h) noexcept {
    if (in.size() < 2) return {header_status::need_more};
    const std::uint8_t b0 = in[0];
    const std::uint8_t b1 = in[1];
    h.fin = (b0 & 0x80) != 0;
    h.rsv = static_cast<std::uint8_t>((b0 >> 4) & 0x7);
    h.op = static_cast<opcode>(b0 & 0x0F);
    h.masked = (b1 & 0x80) != 0;
    const std::uint8_t len7 = b1 & 0x7F;

    if (h.rsv != 0) return {header_status::invalid, close_code::protocol_error, "reserved bits set"};
    switch (h.op) {
        case opcode::continuation: case opcode::text: case opcode::binary:
        case opcode::close: case opcode::ping: case opcode::pong:
            break;
        default:
            return {header_status::invalid, close_code::protocol_error, "reserved opcode"};
    }
    if (is_control(h.op)) {
        if (!h.fin) return {header_status::invalid, close_code::protocol_error, "fragmented control frame"};
        if (len7 > max_control_payload)
            return {header_status::invalid, close_code::protocol_error, "control frame too long"};
    }
    if (receiver == role::server && !h.masked)
        return {header_status::invalid, close_code::protocol_error, "unmasked client frame"};
    if (receiver == role::client && h.masked)
        return {header_status::invalid, close_code::protocol_error, "masked server frame"};

    std::size_t pos = 2;
    if (len7 < 126) {
        h.payload_size = len7;
    } else if (len7 == 126) {
        if (in.size() < 4) return {header_status::need_more};
        h.payload_size = (std::uint64_t{in[2]} << 8) | in[3];
        if (h.payload_size < 126)
            return {header_status::invalid, close_code::protocol_error, "non-minimal length"};
        pos = 4;
    } else {
        if (in.size() < 10) return {header_status::need_more};
        std::uint64_t v = 0;
        for (std::size_t i = 2; i < 10; ++i) v = (v << 8) | in[i];
        if (v >> 63) return {header_status::invalid, close_code::protocol_error, "length MSB set"};
        if (v <= 0xFFFF) return {header_status::invalid, close_code::protocol_error, "non-minimal length"};
        h.payload_size = v;
        pos = 10;
    }
    if (h.masked) {
        if (in.size() < pos + 4) return {header_status::need_more};
        for (std::size_t i = 0; i < 4; ++i) h.mask[i] = in[pos + i];
        pos += 4;
    }
    h.header_size = static_cast<std::uint8_t>(pos);
    return {header_status::ok};
}

/// Size of the header write_frame_header() produces.
constexpr std::size_t frame_header_size(std::uint64_t payload_size, bool masked) noexcept {
    const std::size_t base = payload_size < 126 ? 2 : payload_size <= 0xFFFF ? 4 : 10;
    return base + (masked ? 4 : 0);
}

/// Write a header into `out` (at least max_frame_header_size bytes); returns
/// its size. `mask` non-null means a masked (client) frame.
inline std::size_t write_frame_header(std::uint8_t* out, bool fin, opcode op, std::uint64_t payload_size,
                                      const std::array<std::uint8_t, 4>* mask) noexcept {
    out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | static_cast<std::uint8_t>(op));
    const std::uint8_t mbit = mask ? 0x80 : 0;
    std::size_t pos;
    if (payload_size < 126) {
        out[1] = static_cast<std::uint8_t>(mbit | payload_size);
        pos = 2;
    } else if (payload_size <= 0xFFFF) {
        out[1] = static_cast<std::uint8_t>(mbit | 126);
        out[2] = static_cast<std::uint8_t>(payload_size >> 8);
        out[3] = static_cast<std::uint8_t>(payload_size);
        pos = 4;
    } else {
        out[1] = static_cast<std::uint8_t>(mbit | 127);
        for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(payload_size >> (56 - 8 * i));
        pos = 10;
    }
    if (mask) {
        std::memcpy(out + pos, mask->data(), 4);
        pos += 4;
    }
    return pos;
}

}  // namespace tether::ws
