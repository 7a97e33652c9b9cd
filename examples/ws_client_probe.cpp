// ws_client_probe — the client role of the RFC 6455 layer against any echo
// server: handshake, text and binary of several sizes, a fragmented
// message, a ping, then the closing handshake. Exit status 0 when every echo
// came back intact. Used by the interop tests against Python's websockets.
//
//   ws_client_probe HOST PORT [PATH]
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tether/adapters/posix.hpp"
#include "tether/ws/connection.hpp"

namespace posix = tether::adapters::posix;
namespace ws = tether::ws;

namespace {

struct probe {
    probe(int f, ws::connection c) : fd(f), conn(std::move(c)) {}
    int fd;
    ws::connection conn;
    std::vector<std::string> received;
    bool open = false, closed = false, got_pong = false;
    ws::close_code close_code = ws::close_code::none;

    // Pump the socket until `done()` or a 10 s deadline.
    template <class Done>
    bool run_until(Done done) {
        const auto deadline = posix::now() + std::chrono::seconds(10);
        while (!done()) {
            if (posix::flush(conn, fd) == posix::io::error) return false;
            if (closed && conn.buffered_output() == 0) return done();
            const auto now = posix::now();
            if (now >= deadline) return false;
            pollfd p{fd, static_cast<short>(POLLIN | (conn.buffered_output() ? POLLOUT : 0)), 0};
            ::poll(&p, 1, posix::timeout_ms(std::min(deadline, conn.next_deadline()), now, 100));
            conn.handle_timeout(posix::now());
            for (;;) {
                const auto r = posix::read_once(conn, fd);
                drain();
                if (r == posix::io::eof || r == posix::io::error) {
                    conn.handle_transport_closed(posix::now());
                    drain();
                    return done();
                }
                if (r == posix::io::would_block) break;
            }
        }
        return true;
    }

    void drain() {
        while (auto e = conn.poll_event()) {
            switch (e->type) {
                case ws::event_type::open: open = true; break;
                case ws::event_type::message:
                    received.emplace_back((e->is_text ? "T" : "B") + std::string(e->text()));
                    break;
                case ws::event_type::pong: got_pong = true; break;
                case ws::event_type::failed:
                    std::fprintf(stderr, "probe: failed: code %u http %d: %.*s\n", ws::to_int(e->code),
                                 e->http_status, static_cast<int>(e->reason.size()), e->reason.data());
                    break;
                case ws::event_type::closed:
                    closed = true;
                    close_code = e->code;
                    break;
                default: break;
            }
        }
    }
};

std::string pattern(std::size_t n, char base) {
    std::string s(n, ' ');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(base + i % 23);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: ws_client_probe HOST PORT [PATH]\n");
        return 2;
    }
    ::signal(SIGPIPE, SIG_IGN);
    const std::string host = argv[1];
    const auto port = static_cast<std::uint16_t>(std::atoi(argv[2]));
    const std::string path = argc > 3 ? argv[3] : "/";
    const int fd = posix::connect_tcp(host.c_str(), port);
    if (fd < 0) {
        std::perror("connect");
        return 1;
    }
    ws::config cfg;
    cfg.seed = posix::entropy_seed();
    cfg.subprotocols = {"tether.v1"};
    probe p(fd, ws::connection::client(posix::now(), cfg, host + ":" + argv[2], path));
    if (!p.run_until([&] { return p.open; })) {
        std::fprintf(stderr, "probe: handshake did not complete\n");
        return 1;
    }
    std::vector<std::string> expect;
    for (std::size_t n : {0u, 1u, 125u, 126u, 65535u, 65536u, 1u << 20}) {
        const std::string t = pattern(n, 'a');
        (void)p.conn.send_text(t);
        expect.push_back("T" + t);
        std::vector<std::uint8_t> bin(n);
        for (std::size_t i = 0; i < n; ++i) bin[i] = static_cast<std::uint8_t>(i * 31);
        (void)p.conn.send_binary(bin);
        expect.push_back("B" + std::string(bin.begin(), bin.end()));
    }
    const std::string utf8 = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    (void)p.conn.send_frame(ws::opcode::text, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(utf8.data()), 3), false);
    (void)p.conn.ping();
    (void)p.conn.send_frame(ws::opcode::continuation, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(utf8.data()) + 3, utf8.size() - 3), true);
    expect.push_back("T" + utf8);

    if (!p.run_until([&] { return p.received.size() >= expect.size() && p.got_pong; })) {
        std::fprintf(stderr, "probe: got %zu of %zu echoes, pong %d\n", p.received.size(), expect.size(), p.got_pong);
        return 1;
    }
    for (std::size_t i = 0; i < expect.size(); ++i) {
        if (p.received[i] != expect[i]) {
            std::fprintf(stderr, "probe: echo %zu differs (%zu vs %zu bytes)\n", i, p.received[i].size(), expect[i].size());
            return 1;
        }
    }
    (void)p.conn.close(posix::now(), ws::close_code::normal, "done");
    if (!p.run_until([&] { return p.closed; }) || p.close_code != ws::close_code::normal) {
        std::fprintf(stderr, "probe: closing handshake failed (code %u)\n", ws::to_int(p.close_code));
        return 1;
    }
    ::close(fd);
    std::printf("probe: %zu echoes ok, pong ok, closed 1000\n", expect.size());
    return 0;
}
