// Compiled with -fno-exceptions -fno-rtti: every public header must build so.
#include "tether/core/random.hpp"
#include "tether/core/time.hpp"
#include "tether/ws/close_code.hpp"
#include "tether/ws/connection.hpp"
#include "tether/ws/error.hpp"
#include "tether/ws/frame.hpp"
#include "tether/ws/handshake.hpp"
#include "tether/ws/http.hpp"
#include "tether/ws/mask.hpp"
#include "tether/ws/message_sequence.hpp"
#include "tether/ws/output_queue.hpp"
#include "tether/ws/shared_frame.hpp"
#include "tether/ws/utf8.hpp"

int main() {
    auto c = tether::ws::connection::server(tether::at_ms(0), {});
    c.handle_bytes(tether::at_ms(0), std::string_view("GET / HTTP/1.1\r\n\r\n"));
    while (c.poll_event()) {
    }
    return c.state() == tether::ws::state::closed ? 0 : 1;
}
