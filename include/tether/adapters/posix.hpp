// tether/adapters/posix.hpp — drive any tether machine over a non-blocking
// POSIX socket. This is the only layer (with examples/) that touches
// sockets, clocks and entropy; the machines stay Sans-IO.
//
// A "machine" here is anything with the byte-stream shape every tether
// machine has:
//   std::span<uint8_t> read_buffer(size_t);  void handle_read(time_point, size_t);
//   size_t gather_output(std::span<std::span<const uint8_t>>) const;  void consume_output(size_t);
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>

#include "tether/core/time.hpp"

namespace tether::adapters::posix {

/// The machines' `now`: steady time since the first call in this process.
inline time_point now() noexcept {
    static const auto origin = std::chrono::steady_clock::now();
    return time_point{std::chrono::duration_cast<duration>(std::chrono::steady_clock::now() - origin)};
}

/// 64 bits of OS entropy, to seed a machine's rng in production.
inline std::uint64_t entropy_seed() noexcept {
    std::uint64_t v = 0;
    if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
        v = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
            (static_cast<std::uint64_t>(::getpid()) << 32);
    }
    return v;
}

/// Wall-clock milliseconds since the Unix epoch (for the protocol's `ts`).
inline std::int64_t unix_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline bool set_nonblocking(int fd) noexcept {
    const int fl = ::fcntl(fd, F_GETFL, 0);
    return fl >= 0 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

inline void set_nodelay(int fd) noexcept {
    int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// A non-blocking listening socket on host:port (IPv4 or IPv6 literal or
/// name); -1 on failure (errno set).
inline int listen_tcp(const char* host, std::uint16_t port, int backlog = 512) noexcept {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    std::snprintf(portstr, sizeof portstr, "%u", static_cast<unsigned>(port));
    addrinfo* res = nullptr;
    if (::getaddrinfo(host, portstr, &hints, &res) != 0) return -1;
    int fd = -1;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, backlog) == 0 && set_nonblocking(fd)) break;
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(res);
    return fd;
}

/// Port a bound socket listens on (useful with port 0).
inline std::uint16_t local_port(int fd) noexcept {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

/// A connected, non-blocking TCP socket (the connect itself blocks; fine for
/// clients and tests). -1 on failure.
inline int connect_tcp(const char* host, std::uint16_t port) noexcept {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char portstr[8];
    std::snprintf(portstr, sizeof portstr, "%u", static_cast<unsigned>(port));
    addrinfo* res = nullptr;
    if (::getaddrinfo(host, portstr, &hints, &res) != 0) return -1;
    int fd = -1;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 && set_nonblocking(fd)) break;
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd >= 0) set_nodelay(fd);
    return fd;
}

enum class io : std::uint8_t {
    progress,     ///< moved some bytes, try again
    would_block,  ///< the socket has nothing (read) or no room (write)
    full,         ///< read: the machine's input bound is reached; drain its events
    eof,          ///< read: the peer closed its side
    error,        ///< errno says why
};

/// One read() into the machine's own buffer (no intermediate copy).
template <class Machine>
io read_once(Machine& m, int fd, std::size_t chunk = 64u << 10) noexcept {
    auto buf = m.read_buffer(chunk);
    if (buf.empty()) return io::full;
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
        m.handle_read(now(), static_cast<std::size_t>(n));
        return io::progress;
    }
    if (n == 0) return io::eof;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? io::would_block : io::error;
}

/// Write as much queued output as the socket takes, with writev.
template <class Machine>
io flush(Machine& m, int fd) noexcept {
    for (;;) {
        std::array<std::span<const std::uint8_t>, 16> runs;
        const std::size_t n = m.gather_output(runs);
        if (n == 0) return io::progress;
        std::array<iovec, 16> iov;
        for (std::size_t i = 0; i < n; ++i)
            iov[i] = {const_cast<std::uint8_t*>(runs[i].data()), runs[i].size()};
        const ssize_t w = ::writev(fd, iov.data(), static_cast<int>(n));
        if (w > 0) {
            m.consume_output(static_cast<std::size_t>(w));
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        return (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? io::would_block : io::error;
    }
}

/// Milliseconds from now until `deadline`, clamped for poll()/epoll_wait().
inline int timeout_ms(time_point deadline, time_point now_, int cap = 1000) noexcept {
    if (deadline == never) return cap;
    if (deadline <= now_) return 0;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now_).count() + 1;
    return ms > cap ? cap : static_cast<int>(ms);
}

}  // namespace tether::adapters::posix
