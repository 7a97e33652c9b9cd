// echo_server — echoes every text and binary message, over the Sans-IO
// RFC 6455 layer on a plain epoll loop (no third-party library).
//
//   echo_server [--host 127.0.0.1] [--port 9001] [--max-message-bytes N]
//
// Runs until killed. The loop is the canonical drain order of
// tether/ws/connection.hpp: feed bytes, drain events, flush output, close
// the socket once `closed` was seen and the output is gone.
#include <sys/epoll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "tether/adapters/posix.hpp"
#include "tether/ws/connection.hpp"

namespace posix = tether::adapters::posix;
namespace ws = tether::ws;

namespace {

struct session {
    int fd;
    ws::connection conn;
    bool closing = false;  // `closed` seen: close the socket once output is flushed
    bool want_write = false;
};

struct server {
    int ep = -1;
    int listener = -1;
    ws::config cfg;
    std::unordered_map<int, std::unique_ptr<session>> sessions;

    void drop(session& s) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
        ::close(s.fd);
        sessions.erase(s.fd);  // destroys s
    }

    void on_events(session& s) {
        while (auto ev = s.conn.poll_event()) {
            switch (ev->type) {
                case ws::event_type::upgrade_request:
                    (void)s.conn.accept();
                    break;
                case ws::event_type::message: {
                    // Echo; a full output queue means a peer that does not read.
                    const auto ec = ev->is_text ? s.conn.send_text(ev->text()) : s.conn.send_binary(ev->data);
                    if (ec == ws::error::output_full) (void)s.conn.close(posix::now(), ws::close_code::try_again_later);
                    break;
                }
                case ws::event_type::closed:
                    s.closing = true;
                    break;
                default:
                    break;
            }
        }
    }

    // Returns false when the session was dropped.
    bool service(session& s, bool readable) {
        if (readable) {
            int stalls = 0;
            for (;;) {
                const auto r = posix::read_once(s.conn, s.fd);
                on_events(s);
                if (r == posix::io::progress) continue;
                if (r == posix::io::full) {
                    // The machine holds a full window it cannot decode yet (only
                    // possible while it waits for the application); read later.
                    if (++stalls > 1) break;
                    continue;
                }
                if (r == posix::io::eof || r == posix::io::error) {
                    s.conn.handle_transport_closed(posix::now());
                    on_events(s);
                    if (r == posix::io::error) { drop(s); return false; }
                }
                break;
            }
        }
        const auto w = posix::flush(s.conn, s.fd);
        if (w == posix::io::error) { drop(s); return false; }
        if (s.closing && s.conn.buffered_output() == 0) {
            // Server closes TCP first (RFC 6455 §7.1.1).
            ::shutdown(s.fd, SHUT_WR);
            drop(s);
            return false;
        }
        const bool want = s.conn.buffered_output() > 0;
        if (want != s.want_write) {
            epoll_event e{};
            e.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
            e.data.fd = s.fd;
            ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &e);
            s.want_write = want;
        }
        return true;
    }

    void accept_all() {
        for (;;) {
            const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            posix::set_nodelay(fd);
            ws::config c = cfg;
            c.seed = posix::entropy_seed();
            auto s = std::make_unique<session>(session{fd, ws::connection::server(posix::now(), std::move(c))});
            epoll_event e{};
            e.events = EPOLLIN;
            e.data.fd = fd;
            ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
            sessions.emplace(fd, std::move(s));
        }
    }

    int timeout() const {
        tether::time_point next = tether::never;
        for (const auto& [fd, s] : sessions) {
            const auto d = s->conn.next_deadline();
            if (d < next) next = d;
        }
        return posix::timeout_ms(next, posix::now());
    }

    void on_timers() {
        const auto now = posix::now();
        std::vector<int> due;
        for (const auto& [fd, s] : sessions)
            if (s->conn.next_deadline() <= now) due.push_back(fd);
        for (int fd : due) {
            auto it = sessions.find(fd);
            if (it == sessions.end()) continue;
            it->second->conn.handle_timeout(now);
            on_events(*it->second);
            service(*it->second, false);
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    const char* host = "127.0.0.1";
    int port = 9001;
    server srv;
    srv.cfg.max_message_bytes = 64u << 20;
    srv.cfg.max_output_bytes = 256u << 20;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has = i + 1 < argc;
        if (a == "--host" && has) host = argv[++i];
        else if (a == "--port" && has) port = std::atoi(argv[++i]);
        else if (a == "--max-message-bytes" && has) srv.cfg.max_message_bytes = std::strtoull(argv[++i], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: echo_server [--host 127.0.0.1] [--port 9001] [--max-message-bytes N]\n");
            return 2;
        }
    }
    ::signal(SIGPIPE, SIG_IGN);
    srv.listener = posix::listen_tcp(host, static_cast<std::uint16_t>(port));
    if (srv.listener < 0) {
        std::fprintf(stderr, "echo_server: cannot listen on %s:%d: %s\n", host, port, std::strerror(errno));
        return 1;
    }
    srv.ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = srv.listener;
    ::epoll_ctl(srv.ep, EPOLL_CTL_ADD, srv.listener, &e);
    std::printf("echo_server listening on %s:%u\n", host, posix::local_port(srv.listener));
    std::fflush(stdout);

    std::array<epoll_event, 256> events;
    for (;;) {
        const int n = ::epoll_wait(srv.ep, events.data(), static_cast<int>(events.size()), srv.timeout());
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            if (fd == srv.listener) { srv.accept_all(); continue; }
            auto it = srv.sessions.find(fd);
            if (it == srv.sessions.end()) continue;
            const bool readable = (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
            srv.service(*it->second, readable);
        }
        srv.on_timers();
    }
}
