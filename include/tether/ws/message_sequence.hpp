// tether/ws/message_sequence.hpp — the pure transition table for data frames.
//
// Knows nothing of roles, buffers or I/O (wsproto/h11 style): given where a
// message stands and the next frame's opcode and FIN bit, it says whether the
// frame is allowed and where the message stands after it. Control frames
// never change the state: RFC 6455 §5.4 lets them be "injected in the middle
// of a fragmented message".
#pragma once

#include <cstdint>

#include "tether/ws/frame.hpp"

namespace tether::ws {

enum class message_state : std::uint8_t {
    idle,         ///< between messages
    text,         ///< inside a fragmented text message
    binary,       ///< inside a fragmented binary message
};

struct sequence_step {
    bool allowed;
    message_state next;
    const char* why;  ///< when not allowed
};

constexpr sequence_step next_message_state(message_state s, opcode op, bool fin) noexcept {
    if (is_control(op)) return {true, s, nullptr};
    switch (op) {
        case opcode::text:
        case opcode::binary:
            // §5.4: fragments of one message are not interleaved with another.
            if (s != message_state::idle) return {false, s, "new data frame inside a fragmented message"};
            if (fin) return {true, message_state::idle, nullptr};
            return {true, op == opcode::text ? message_state::text : message_state::binary, nullptr};
        case opcode::continuation:
            if (s == message_state::idle) return {false, s, "continuation frame without a message"};
            return {true, fin ? message_state::idle : s, nullptr};
        default:
            return {false, s, "reserved opcode"};
    }
}

}  // namespace tether::ws
