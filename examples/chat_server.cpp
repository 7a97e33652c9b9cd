// chat_server — the tether v1 protocol server (tether::server::endpoint) on a
// plain epoll loop. Its command line is a contract used by tests outside the
// project:
//
//   chat_server [--host 127.0.0.1] [--port 8080] [--heartbeat-ms 25000]
//               [--grace-ms 30000] [--replay-window 1024]
//               [--max-message-bytes 65536] [--token NAME=SECRET]...
//               [--record FILE]
//
// Without --token the principal is the `user` query parameter (default
// "anonymous"). With --token (repeatable) only `Authorization: Bearer SECRET`
// or `?token=SECRET` is accepted, as principal NAME; anything else gets HTTP
// 401. The upgrade is accepted on any path. One log line per connection,
// join, leave and close (with its code). SIGTERM/SIGINT drain: every session
// is closed with 1012 and a retry_after_ms spread over 5 s, then the process
// exits.
//
// --record FILE writes a trace of everything the endpoint consumes (its
// config and entropy seed, the wall-clock origin, every byte read, every
// close, timer and drain, the authentication answers, how much output each
// socket took) to FILE; `replay FILE` plays it back (docs/trace.md).
//
// The loop is the endpoint's drain order: feed bytes, drain events (flush,
// close_transport, log lines), write output, arm the timer for
// next_deadline().
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tether/adapters/posix.hpp"
#include "tether/server/endpoint.hpp"
#include "tether/trace/recorder.hpp"

namespace posix = tether::adapters::posix;
namespace server = tether::server;
using recorded_endpoint = tether::trace::recorded<server::endpoint>;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct token_entry {
    std::string name, secret;
};

struct loop {
    int ep = -1;
    int listener = -1;
    recorded_endpoint* endpoint = nullptr;  // records only with --record
    std::unordered_map<int, server::conn_id> by_fd;
    std::unordered_map<std::uint64_t, int> fd_of;  // conn_id key -> fd
    std::unordered_map<int, bool> want_write;

    static std::uint64_t key(server::conn_id id) { return (std::uint64_t{id.index} << 32) | id.generation; }

    void close_fd(int fd) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        auto it = by_fd.find(fd);
        if (it != by_fd.end()) {
            fd_of.erase(key(it->second));
            by_fd.erase(it);
        }
        want_write.erase(fd);
    }

    // Write what the socket takes; keep EPOLLOUT interest while output remains.
    void flush(int fd, server::conn_id id) {
        for (;;) {
            std::array<std::span<const std::uint8_t>, 16> runs;
            const std::size_t n = endpoint->gather_output(id, runs);
            if (n == 0) break;
            std::array<iovec, 16> iov;
            for (std::size_t i = 0; i < n; ++i) iov[i] = {const_cast<std::uint8_t*>(runs[i].data()), runs[i].size()};
            const ssize_t w = ::writev(fd, iov.data(), static_cast<int>(n));
            if (w > 0) {
                endpoint->consume_output(id, static_cast<std::size_t>(w));
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            break;  // EAGAIN (wait for EPOLLOUT) or an error (EPOLLERR will tell)
        }
        const bool want = endpoint->buffered_output(id) > 0;
        bool& cur = want_write[fd];
        if (want != cur) {
            epoll_event e{};
            e.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
            e.data.fd = fd;
            ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
            cur = want;
        }
    }

    void drain_events() {
        while (auto ev = endpoint->poll_event()) {
            const auto it = fd_of.find(key(ev->conn));
            const int fd = it == fd_of.end() ? -1 : it->second;
            switch (ev->type) {
                case server::event_type::flush:
                    if (fd >= 0) flush(fd, ev->conn);
                    break;
                case server::event_type::close_transport:
                    if (fd >= 0) {
                        flush(fd, ev->conn);  // best effort: the close frame or HTTP answer
                        ::shutdown(fd, SHUT_WR);
                        close_fd(fd);
                    }
                    endpoint->handle_transport_closed(posix::now(), ev->conn);
                    break;
                case server::event_type::connected:
                    std::printf("connected principal=%s session=%s resumed=%d\n", ev->principal.c_str(),
                                ev->session_id.c_str(), ev->resumed ? 1 : 0);
                    break;
                case server::event_type::joined:
                    std::printf("joined principal=%s room=%s\n", ev->principal.c_str(), ev->room_id.c_str());
                    break;
                case server::event_type::left:
                    std::printf("left principal=%s room=%s\n", ev->principal.c_str(), ev->room_id.c_str());
                    break;
                case server::event_type::closed:
                    if (ev->http_status)
                        std::printf("refused http=%d\n", ev->http_status);
                    else
                        std::printf("closed principal=%s code=%u\n", ev->principal.c_str(), unsigned{ev->code});
                    break;
            }
            std::fflush(stdout);
        }
    }

    void accept_all() {
        for (;;) {
            const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            posix::set_nodelay(fd);
            const server::conn_id id = endpoint->open_connection(posix::now());
            by_fd[fd] = id;
            fd_of[key(id)] = fd;
            want_write[fd] = false;
            epoll_event e{};
            e.events = EPOLLIN;
            e.data.fd = fd;
            ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
    }

    void on_readable(int fd) {
        for (;;) {
            auto it = by_fd.find(fd);
            if (it == by_fd.end()) return;  // closed while draining events
            const server::conn_id id = it->second;
            auto buf = endpoint->read_buffer(id, 64u << 10);
            if (buf.empty()) return;  // input bound reached: the endpoint decodes first
            const ssize_t n = ::read(fd, buf.data(), buf.size());
            if (n > 0) {
                endpoint->handle_read(posix::now(), id, static_cast<std::size_t>(n));
                drain_events();
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            // EOF or reset: the transport is gone.
            close_fd(fd);
            endpoint->handle_transport_closed(posix::now(), id);
            drain_events();
            return;
        }
    }
};

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: chat_server [--host 127.0.0.1] [--port 8080] [--heartbeat-ms 25000] [--grace-ms 30000]\n"
                 "                   [--replay-window 1024] [--max-message-bytes 65536] [--token NAME=SECRET]...\n"
                 "                   [--record FILE]\n");
    std::exit(2);
}

long number(const char* s) {
    char* end = nullptr;
    const long v = std::strtol(s, &end, 10);
    if (!end || *end || v < 0) usage();
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 8080;
    server::config cfg;
    std::vector<token_entry> tokens;
    const char* record_path = nullptr;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "--host") host = v;
        else if (a == "--port") port = number(v);
        else if (a == "--heartbeat-ms") cfg.heartbeat = std::chrono::milliseconds(number(v));
        else if (a == "--grace-ms") cfg.grace = std::chrono::milliseconds(number(v));
        else if (a == "--replay-window") cfg.replay_window = static_cast<std::size_t>(number(v));
        else if (a == "--max-message-bytes") cfg.max_message_bytes = static_cast<std::size_t>(number(v));
        else if (a == "--record") record_path = v;
        else if (a == "--token") {
            const std::string t = v;
            const auto eq = t.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == t.size()) usage();
            tokens.push_back({t.substr(0, eq), t.substr(eq + 1)});
        } else {
            usage();
        }
    }
    if (port > 65535) usage();

    cfg.seed = posix::entropy_seed();
    cfg.authenticate = [tokens](const tether::ws::http_request& req) {
        server::auth_result r;
        if (tokens.empty()) {
            r.principal = req.query_param("user").value_or("anonymous");
            if (r.principal.empty()) r.principal = "anonymous";
            return r;
        }
        std::string presented;
        if (const std::string* h = req.find("Authorization"); h && h->size() > 7 &&
                                                             (h->compare(0, 7, "Bearer ") == 0 ||
                                                              h->compare(0, 7, "bearer ") == 0)) {
            presented = h->substr(7);
        } else if (auto q = req.query_param("token")) {
            presented = *q;
        }
        for (const auto& t : tokens) {
            if (!presented.empty() && presented == t.secret) {
                r.principal = t.name;
                return r;
            }
        }
        r.status = 401;
        return r;
    };

    ::signal(SIGPIPE, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);

    std::FILE* record_file = nullptr;
    if (record_path) {
        record_file = std::fopen(record_path, "w");
        if (!record_file) {
            std::fprintf(stderr, "chat_server: cannot write %s: %s\n", record_path, std::strerror(errno));
            return 1;
        }
        std::setvbuf(record_file, nullptr, _IOLBF, 0);  // every record on disk at once
    }
    recorded_endpoint endpoint(std::move(cfg), tether::trace::sink(record_file));
    endpoint.set_unix_ms_at_origin(posix::unix_ms() - tether::to_ms(posix::now()));

    loop lp;
    lp.endpoint = &endpoint;
    lp.listener = posix::listen_tcp(host.c_str(), static_cast<std::uint16_t>(port));
    if (lp.listener < 0) {
        std::fprintf(stderr, "chat_server: cannot listen on %s:%ld: %s\n", host.c_str(), port, std::strerror(errno));
        return 1;
    }
    lp.ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event le{};
    le.events = EPOLLIN;
    le.data.fd = lp.listener;
    ::epoll_ctl(lp.ep, EPOLL_CTL_ADD, lp.listener, &le);
    std::printf("chat_server listening on %s:%u\n", host.c_str(), posix::local_port(lp.listener));
    std::fflush(stdout);

    bool draining = false;
    tether::time_point drain_deadline = tether::never;
    std::array<epoll_event, 256> events;
    for (;;) {
        if (g_stop && !draining) {
            draining = true;
            std::printf("draining %zu connections\n", endpoint.connection_count());
            std::fflush(stdout);
            endpoint.drain(posix::now(), std::chrono::seconds(5));
            lp.drain_events();
            drain_deadline = posix::now() + std::chrono::seconds(2);
        }
        if (draining && (endpoint.connection_count() == 0 || posix::now() >= drain_deadline)) break;
        const auto now = posix::now();
        const int timeout = posix::timeout_ms(std::min(endpoint.next_deadline(), drain_deadline), now);
        const int n = ::epoll_wait(lp.ep, events.data(), static_cast<int>(events.size()), timeout);
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            if (fd == lp.listener) {
                lp.accept_all();
                continue;
            }
            const auto it = lp.by_fd.find(fd);
            if (it == lp.by_fd.end()) continue;
            if (events[i].events & EPOLLOUT) lp.flush(fd, it->second);
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) lp.on_readable(fd);
        }
        if (endpoint.next_deadline() <= posix::now()) {
            endpoint.handle_timeout(posix::now());
            lp.drain_events();
        }
    }
    std::printf("chat_server stopped\n");
    if (record_file) std::fclose(record_file);
    return 0;
}
