// chat_client — a terminal chat client: tether::client::ws_client (the whole
// tether v1 client stack over raw bytes) on a plain poll() loop of stdin, one
// TCP socket and the machines' timers. No third-party library.
//
//   chat_client [--host 127.0.0.1] [--port 8080] [--user NAME] [--token SECRET]
//               [--room lobby]... [--seed N] [--script FILE] [--exit-after-ms N]
//               [--record FILE]
//
// NAME goes in the upgrade query as ?user=NAME (the demo chat_server uses it
// as the principal when it runs without --token); SECRET is the client's
// bearer token. Input lines (stdin, or FILE with --script):
//
//   text          chat.message {"text":"text"} to the current room
//   //text        sends "/text" (a line that starts with a slash)
//   /join ROOM    join ROOM and make it the current room
//   /leave [ROOM] leave ROOM (default: the current room)
//   /room ROOM    switch the current room
//   /token NEW    a fresh token (after "token required")
//   /status       print the state, the rooms and their cursors
//   /quit         intentional close (1000) and exit
//
// Output, one line per event: `[room #event_id] sender: text` for messages,
// `[room] * user joined|away|reconnected|left` for presence, and status lines
// starting with `--` whenever the state, the pending count or the reconnect
// attempt change (`-- live (pending 0)`, `-- reconnecting in 1.8 s (attempt
// 2, close 1006, pending 3)`). Errors start with `!!`.
//
// Non-interactive use (a pipe, a file, --script): at the end of the input the
// client keeps running until every message it sent is acked, then closes with
// 1000 and exits 0. --exit-after-ms N exits after N ms regardless: status 0
// if nothing is pending, else 4. Other statuses: 1 the client stopped for
// good (the server closed, a protocol error, the backoff gave up, ...), 2 bad
// command line, 3 the server wants a token and the input ended without
// `/token NEW`; /quit with unacked messages also exits 4.
//
// Nothing typed is lost or sent twice across disconnects: the client
// machine's outbox keeps every message until its ack and sends it again with
// the same id after a reconnect; the server deduplicates by (sender, id).
// Input is read only while the outbox has room, so a full outbox slows the
// input down instead of refusing lines.
//
// --record FILE writes a trace of everything the client stack consumes (its
// config and seeds, every byte read, TCP connects and closes, timers, the
// commands the input lines became, how much output the socket took) to
// FILE; `replay FILE` plays it back (docs/trace.md).
//
// The loop follows the drain order of tether/client/ws_client.hpp: feed an
// input, drain events (print them), drain tcp actions (connect/close the
// socket), write the output, sleep in poll() until the next deadline.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tether/adapters/posix.hpp"
#include "tether/client/ws_client.hpp"
#include "tether/proto/envelope_writer.hpp"
#include "tether/proto/json.hpp"
#include "tether/trace/recorder.hpp"

namespace posix = tether::adapters::posix;
namespace tc = tether::client;
namespace proto = tether::proto;

namespace {

constexpr int exit_ok = 0;
constexpr int exit_stopped = 1;
constexpr int exit_usage = 2;
constexpr int exit_token = 3;
constexpr int exit_pending = 4;

// A line longer than this cannot become a message under the default 64 KiB
// limit anyway; it is reported and skipped instead of buffered without bound.
constexpr std::size_t max_line_bytes = 64u << 10;
constexpr std::size_t max_input_buffer = 256u << 10;
constexpr std::string_view chat_kind = "chat.message";

struct options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    std::string user;
    std::string token;
    std::vector<std::string> rooms;
    std::optional<std::uint64_t> seed;
    std::string script;
    long exit_after_ms = -1;
    std::string record;
};

[[noreturn]] void usage(const char* why) {
    if (why) std::fprintf(stderr, "chat_client: %s\n", why);
    std::fprintf(stderr,
                 "usage: chat_client [--host 127.0.0.1] [--port 8080] [--user NAME] [--token SECRET]\n"
                 "                   [--room lobby]... [--seed N] [--script FILE] [--exit-after-ms N]\n"
                 "                   [--record FILE]\n");
    std::exit(exit_usage);
}

bool parse_u64(const char* s, std::uint64_t& out) {
    if (!s || !*s || *s == '-') return false;
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (errno != 0 || !end || *end) return false;
    out = v;
    return true;
}

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
// (checked loosely, as the client machine does: those characters and '=').
// It goes into a header and the query, so nothing else may get through.
bool is_b64token(std::string_view t) {
    if (t.empty()) return false;
    for (const char c : t) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                        c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
        if (!ok) return false;
    }
    return true;
}

options parse_options(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (i + 1 >= argc) usage("missing value");
        const char* v = argv[++i];
        std::uint64_t n = 0;
        if (a == "--host") {
            o.host = v;
        } else if (a == "--port") {
            if (!parse_u64(v, n) || n > 65535) usage("bad --port");
            o.port = static_cast<std::uint16_t>(n);
        } else if (a == "--user") {
            o.user = v;
        } else if (a == "--token") {
            if (!is_b64token(v)) usage("a token is RFC 6750 b64token characters");
            o.token = v;
        } else if (a == "--room") {
            if (!proto::is_valid_room_id(v)) usage("a room id is 1-128 bytes of [A-Za-z0-9._:-]");
            o.rooms.emplace_back(v);
        } else if (a == "--seed") {
            if (!parse_u64(v, n)) usage("bad --seed");
            o.seed = n;
        } else if (a == "--script") {
            o.script = v;
        } else if (a == "--record") {
            o.record = v;
        } else if (a == "--exit-after-ms") {
            if (!parse_u64(v, n) || n > 86400000ULL * 365) usage("bad --exit-after-ms");
            o.exit_after_ms = static_cast<long>(n);
        } else {
            usage("unknown option");
        }
    }
    if (o.rooms.empty()) o.rooms.emplace_back("lobby");
    return o;
}

// RFC 3986 §2.3: only unreserved characters go into the query as they are.
void append_query_component(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
}

// Text from the server goes to a terminal: C0/C1 controls (ESC, CSI, ...)
// are shown escaped so that a peer cannot drive the terminal.
void append_printable(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        const bool c1 = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                        static_cast<unsigned char>(s[i + 1]) <= 0x9F;
        if (c >= 0x20 && c != 0x7F && !c1) {
            out.push_back(s[i]);
            continue;
        }
        if (c == '\n') {
            out.append("\\n");
        } else if (c == '\t') {
            out.append("\\t");
        } else {
            const unsigned v = c1 ? static_cast<unsigned char>(s[++i]) : c;
            out.append("\\x");
            out.push_back(hex[v >> 4]);
            out.push_back(hex[v & 15]);
        }
    }
}

struct address {
    sockaddr_storage sa{};
    socklen_t len = 0;
    int family = AF_UNSPEC;
};

enum class sock_phase : std::uint8_t { none, connecting, open };

struct status_key {
    tc::state st = tc::state::idle;
    std::size_t pending = 0;
    unsigned attempt = 0;
    bool operator==(const status_key&) const = default;
};

class chat {
public:
    chat(options opt, tc::ws_client_config cfg, tether::trace::sink rec = {})
        : opt_(std::move(opt)), wc_(std::move(cfg), rec) {}

    int run() {
        if (!opt_.script.empty()) {
            in_fd_ = ::open(opt_.script.c_str(), O_RDONLY | O_CLOEXEC);
            if (in_fd_ < 0) {
                std::fprintf(stderr, "chat_client: cannot open %s: %s\n", opt_.script.c_str(), std::strerror(errno));
                return exit_usage;
            }
        }
        const auto start = posix::now();
        if (opt_.exit_after_ms >= 0) exit_at_ = start + std::chrono::milliseconds(opt_.exit_after_ms);
        for (const auto& r : opt_.rooms) (void)wc_.join(start, r);  // validated: queued until server.hello
        room_ = opt_.rooms.front();
        (void)wc_.connect(start);
        drain();
        print_status();

        while (exit_code_ < 0) {
            std::array<pollfd, 2> fds{};
            nfds_t n = 0;
            int sock_slot = -1, in_slot = -1;
            if (fd_ >= 0 && !sock_eof_) {
                short ev = 0;
                if (phase_ == sock_phase::connecting) ev = POLLOUT;
                else ev = static_cast<short>(POLLIN | (wc_.buffered_output() > 0 ? POLLOUT : 0));
                sock_slot = static_cast<int>(n);
                fds[n++] = pollfd{fd_, ev, 0};
            }
            if (want_input()) {
                in_slot = static_cast<int>(n);
                fds[n++] = pollfd{in_fd_, POLLIN, 0};
            }
            tether::time_point deadline = wc_.next_deadline();
            if (exit_at_ < deadline) deadline = exit_at_;
            if (quit_deadline_ < deadline) deadline = quit_deadline_;
            const int rc = ::poll(fds.data(), n, posix::timeout_ms(deadline, posix::now()));
            if (rc < 0 && errno != EINTR) {
                std::fprintf(stderr, "chat_client: poll: %s\n", std::strerror(errno));
                return exit_stopped;
            }
            if (rc > 0 && sock_slot >= 0 && fds[static_cast<std::size_t>(sock_slot)].revents != 0)
                on_socket(fds[static_cast<std::size_t>(sock_slot)].revents);
            if (rc > 0 && in_slot >= 0 && fds[static_cast<std::size_t>(in_slot)].revents != 0) on_input();
            const auto now = posix::now();
            if (now >= wc_.next_deadline()) wc_.handle_timeout(now);
            drain();
            process_lines();
            drain();  // what the lines' commands produced (a `left` offline, output)
            check_exit(posix::now());
            if (exit_code_ < 0) print_status();
        }
        if (fd_ >= 0) {
            if (phase_ == sock_phase::open && !sock_eof_) (void)posix::flush(wc_, fd_);
            close_socket();
        }
        return exit_code_;
    }

private:
    // ---- the socket -------------------------------------------------------------

    void close_socket() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        phase_ = sock_phase::none;
        sock_eof_ = false;
    }

    bool resolve() {
        addrs_.clear();
        next_addr_ = 0;
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        char port[8];
        std::snprintf(port, sizeof port, "%u", static_cast<unsigned>(opt_.port));
        addrinfo* res = nullptr;
        // getaddrinfo blocks; a numeric host (the default) answers at once.
        if (::getaddrinfo(opt_.host.c_str(), port, &hints, &res) != 0) return false;
        for (addrinfo* ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
            address a;
            std::memcpy(&a.sa, ai->ai_addr, ai->ai_addrlen);
            a.len = static_cast<socklen_t>(ai->ai_addrlen);
            a.family = ai->ai_family;
            addrs_.push_back(a);
        }
        ::freeaddrinfo(res);
        return !addrs_.empty();
    }

    // Non-blocking connect to the next address; every address failing is a
    // transport failure for the machine (1006), which then backs off.
    void try_next_address() {
        while (next_addr_ < addrs_.size()) {
            const address& a = addrs_[next_addr_++];
            const int fd = ::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) continue;
            if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.sa), a.len) == 0) {
                fd_ = fd;
                return on_connected();
            }
            if (errno == EINPROGRESS || errno == EINTR) {
                fd_ = fd;
                phase_ = sock_phase::connecting;
                return;
            }
            ::close(fd);  // ECONNREFUSED & co: next address
        }
        wc_.handle_tcp_closed(posix::now());
    }

    void on_connected() {
        phase_ = sock_phase::open;
        sock_eof_ = false;
        posix::set_nodelay(fd_);
        wc_.handle_tcp_connected(posix::now());
    }

    void on_socket(short revents) {
        if (phase_ == sock_phase::connecting) {
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
            if (err == 0 && (revents & POLLOUT)) return on_connected();
            close_socket();  // refused, unreachable, ...: the next address, or back off
            return try_next_address();
        }
        if (phase_ != sock_phase::open) return;
        if (revents & (POLLIN | POLLHUP | POLLERR)) {
            int stalls = 0;
            for (;;) {
                const auto r = posix::read_once(wc_, fd_);
                if (r == posix::io::progress) {
                    drain_events_and_actions();
                    if (fd_ < 0 || phase_ != sock_phase::open) return;  // closed while draining
                    continue;
                }
                if (r == posix::io::full) {
                    // No connection to read into (abandoned) or a window the
                    // machine must decode first: drain, then try once more.
                    drain_events_and_actions();
                    if (fd_ < 0 || ++stalls > 1) return;
                    continue;
                }
                if (r == posix::io::eof || r == posix::io::error) {
                    sock_eof_ = true;  // the close_tcp action that follows closes the fd
                    wc_.handle_tcp_closed(posix::now());
                }
                break;
            }
        }
        if ((revents & POLLOUT) && fd_ >= 0 && !sock_eof_) flush_output();
    }

    void flush_output() {
        if (fd_ < 0 || phase_ != sock_phase::open || sock_eof_) return;
        if (posix::flush(wc_, fd_) == posix::io::error) {
            sock_eof_ = true;
            wc_.handle_tcp_closed(posix::now());
        }
    }

    void on_action(const tc::tcp_action& a) {
        switch (a.type) {
            case tc::tcp_action_type::connect_tcp:
                close_socket();
                if (!resolve()) {
                    print_line("!! cannot resolve %s", opt_.host.c_str());
                    wc_.handle_tcp_closed(posix::now());
                    return;
                }
                return try_next_address();
            case tc::tcp_action_type::close_tcp:
                if (fd_ >= 0 && phase_ == sock_phase::open && !sock_eof_) (void)posix::flush(wc_, fd_);
                close_socket();
                return;
        }
    }

    void drain_events_and_actions() {
        // Every input may produce events, then tcp actions; performing an
        // action (a refused connect) is an input again: loop until quiet.
        for (int rounds = 0; rounds < 64; ++rounds) {
            bool any = false;
            while (auto e = wc_.poll_event()) {
                any = true;
                on_event(*e);
            }
            while (auto a = wc_.poll_action()) {
                any = true;
                on_action(*a);
            }
            if (!any) break;
        }
    }

    void drain() {
        for (int rounds = 0; rounds < 64; ++rounds) {
            drain_events_and_actions();
            const bool was_eof = sock_eof_;
            flush_output();
            if (sock_eof_ == was_eof) break;  // no write error: done
        }
        // A socket at EOF has nothing more to give; ws_client normally asks
        // for its close (close_tcp) in the same drain.
        if (fd_ >= 0 && sock_eof_) close_socket();
        // The machine gave up on a transport whose TCP connect is still
        // running (connect timeout, close()): ws_client has no socket to
        // close for it, so abort it here.
        if (phase_ == sock_phase::connecting && wc_.machine().state() != tc::state::connecting) close_socket();
    }

    // ---- events -----------------------------------------------------------------

    // One output line (stdout is line buffered, so a pipe sees it at once).
    __attribute__((format(printf, 2, 3))) void print_line(const char* fmt, ...) {
        std::va_list ap;
        va_start(ap, fmt);
        std::vprintf(fmt, ap);
        va_end(ap);
        std::fputc('\n', stdout);
    }

    void print_text(const std::string& s) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fputc('\n', stdout);
    }

    void on_event(const tc::event& e) {
        out_.clear();
        switch (e.type) {
            case tc::event_type::connected:
                token_untried_ = false;
                out_.append("-- connected (session ");
                append_printable(out_, e.session_id);
                out_.append(e.resumed ? ", resumed)" : ", new)");
                return print_text(out_);
            case tc::event_type::joined: {
                out_.append("[").append(e.room).append("] joined (resume ");
                out_.append(proto::to_string(e.resume));
                out_.append(", head ").append(std::to_string(e.head)).append(", members:");
                (void)proto::for_each_string(e.members, scratch_, [&](std::string_view m) {
                    out_.push_back(' ');
                    append_printable(out_, m);
                });
                out_.push_back(')');
                return print_text(out_);
            }
            case tc::event_type::message: return print_message(e);
            case tc::event_type::presence: {
                out_.append("[").append(e.room).append("] * ");
                append_printable(out_, e.user);
                switch (e.presence) {
                    case proto::presence_kind::joined: out_.append(" joined"); break;
                    case proto::presence_kind::away: out_.append(" away"); break;
                    case proto::presence_kind::reconnected: out_.append(" reconnected"); break;
                    case proto::presence_kind::left: out_.append(" left"); break;
                }
                return print_text(out_);
            }
            case tc::event_type::ack:
                // Not printed: the status line's pending count shows acks.
                return;
            case tc::event_type::server_error:
            {
                // rate_limited: the machine keeps the message (or join) and
                // sends it again after the hold; any other code is final for
                // that request, and a refused message leaves the outbox.
                const bool held = proto::parse_error_code(e.code) == proto::error_code::rate_limited;
                out_.append("!! server error ");
                append_printable(out_, e.code);
                if (!e.room.empty()) out_.append(" [").append(e.room).append("]");
                if (!e.id.empty()) out_.append(" message ").append(e.id).append(held ? " held" : " dropped");
                if (e.retry_after_ms)
                    out_.append(", retry after ").append(std::to_string(*e.retry_after_ms)).append(" ms");
                if (!e.message.empty()) {
                    out_.append(": ");
                    append_printable(out_, e.message);
                }
                return print_text(out_);
            }
            case tc::event_type::snapshot_required: return on_snapshot_required(e);
            case tc::event_type::left: {
                const std::string room(e.room);
                print_line("[%s] left", room.c_str());
                if (room == room_) pick_current_room();
                return;
            }
            case tc::event_type::reconnecting: {
                const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.delay).count();
                char buf[160];
                std::snprintf(buf, sizeof buf, "-- reconnecting in %lld.%lld s (attempt %u, %s %d, pending %zu)",
                              static_cast<long long>(ms / 1000), static_cast<long long>((ms % 1000) / 100),
                              e.attempt, e.http_status ? "http" : "close",
                              e.http_status ? e.http_status : static_cast<int>(e.close_code),
                              wc_.machine().pending());
                print_line("%s", buf);
                remember_status();
                return;
            }
            case tc::event_type::token_required:
                if (e.http_status)
                    print_line("-- token required (http %d): type /token NEW", e.http_status);
                else
                    print_line("-- token required (close %u): type /token NEW", static_cast<unsigned>(e.close_code));
                remember_status();
                if (token_untried_) {
                    // `/token NEW` came while this attempt was under way (a
                    // script gives it up front): try it now.
                    token_untried_ = false;
                    (void)wc_.set_token(posix::now(), token_);
                    return;
                }
                if (in_eof_ && lines_left() == 0) finish(exit_token);
                return;
            case tc::event_type::upgrade_required:
                print_line("!! the server speaks another protocol version (upgrade required)");
                return;
            case tc::event_type::gave_up:
                print_line("-- gave up after %u attempts (last close %u, http %d)", e.attempt,
                           static_cast<unsigned>(e.close_code), e.http_status);
                return;
            case tc::event_type::stopped:
                if (e.stop == tc::stop_reason::app_closed) return;  // our own close: quitting
                print_line("-- stopped: %s (close %u, http %d, pending %zu)",
                           std::string(tc::to_string(e.stop)).c_str(), static_cast<unsigned>(e.close_code),
                           e.http_status, wc_.machine().pending());
                remember_status();
                if (!quitting_) finish(exit_stopped);
                return;
        }
    }

    void print_message(const tc::event& e) {
        out_.append("[").append(e.room).append(" #").append(std::to_string(e.event_id)).append("] ");
        append_printable(out_, e.sender.empty() ? std::string_view("?") : e.sender);
        if (e.kind != chat_kind) {
            out_.append(" <");
            append_printable(out_, e.kind);
            out_.append(">");
        }
        out_.append(": ");
        if (extract_text(e.payload, text_))
            append_printable(out_, text_);
        else
            append_printable(out_, e.payload);
        print_text(out_);
    }

    // The payload's "text" string, if the payload is an object that has one.
    bool extract_text(std::string_view payload, std::string& out) {
        if (payload.empty() || scanner_.begin_object(payload) != proto::json_error::ok) return false;
        proto::json_member m;
        while (scanner_.next_member(m))
            if (m.key == "text" && m.type == proto::json_type::string)
                return proto::decode_json_string(m.string_body(), out);
        return false;
    }

    // PROTOCOL.md §3: after snapshot_required the application fetches the
    // room's state over HTTP and tells the machine the snapshot's cursor.
    // The demo server has no HTTP snapshot service, so this client does what
    // it can without one:
    //   - epoch_changed (the server restarted without durable history): the
    //     new history started at the restart and is young, so ask for all of
    //     it by replay — snapshot_loaded(room, 0, epoch) makes the machine
    //     rejoin with resume_from = 0 in the new epoch. Without this, a
    //     client that reconnects after a peer already resent its queued
    //     messages to the new server would skip them.
    //   - truncated / ahead, or a replay from 0 that came back truncated:
    //     snapshot_loaded(room, head) — the history up to head is skipped,
    //     and said so; live events after head follow.
    void on_snapshot_required(const tc::event& e) {
        const std::string room(e.room), epoch(e.epoch);
        const std::int64_t head = e.head;
        const auto reason = e.reason;
        print_line("[%s] snapshot required (%s, head %lld, epoch %s)", room.c_str(),
                   std::string(proto::to_string(reason)).c_str(), static_cast<long long>(head), epoch.c_str());
        std::string* tried = nullptr;
        for (auto& [r, ep] : replay_tried_)
            if (r == room) tried = &ep;
        if (reason == proto::resume_reason::epoch_changed && (!tried || *tried != epoch)) {
            if (tried) *tried = epoch;
            else replay_tried_.emplace_back(room, epoch);
            if (head > 0)
                print_line("[%s] no snapshot service in this demo: replaying the new history from #1", room.c_str());
            (void)wc_.snapshot_loaded(posix::now(), room, 0, epoch);
            return;
        }
        if (head > 0)
            print_line("[%s] no snapshot service in this demo: events up to #%lld are skipped", room.c_str(),
                       static_cast<long long>(head));
        (void)wc_.snapshot_loaded(posix::now(), room, head, epoch);
    }

    void pick_current_room() {
        room_.clear();
        for (const auto& r : wc_.machine().rooms()) {
            if (!r.leaving) {
                room_ = r.id;
                break;
            }
        }
        if (room_.empty())
            print_line("(no current room: /join ROOM)");
        else
            print_line("(current room: %s)", room_.c_str());
    }

    // ---- status line ------------------------------------------------------------

    status_key current_status() const {
        const auto& m = wc_.machine();
        return status_key{m.state(), m.pending(), m.attempt()};
    }

    void remember_status() { last_status_ = current_status(); }

    void print_status() {
        const status_key k = current_status();
        if (k == last_status_) return;
        last_status_ = k;
        const std::string st(tc::to_string(k.st));
        if (k.attempt != 0 && (k.st == tc::state::connecting || k.st == tc::state::backoff ||
                               k.st == tc::state::syncing))
            print_line("-- %s (attempt %u, pending %zu)", st.c_str(), k.attempt, k.pending);
        else
            print_line("-- %s (pending %zu)", st.c_str(), k.pending);
    }

    // ---- input ------------------------------------------------------------------

    std::size_t lines_left() const { return in_buf_.size() - in_head_; }

    bool want_input() const {
        return !in_eof_ && !quitting_ && !input_blocked_ && lines_left() < max_input_buffer;
    }

    void on_input() {
        char buf[16384];
        const ssize_t n = ::read(in_fd_, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) return;
            in_eof_ = true;
        } else if (n == 0) {
            in_eof_ = true;
        } else {
            std::size_t i = 0;
            const auto len = static_cast<std::size_t>(n);
            if (discarding_) {
                // Skip the rest of an over-long line.
                while (i < len && buf[i] != '\n') ++i;
                if (i == len) return;
                ++i;
                discarding_ = false;
            }
            in_buf_.append(buf + i, len - i);
        }
        if (in_head_ > 0 && in_head_ * 2 > in_buf_.size()) {
            in_buf_.erase(0, in_head_);
            in_head_ = 0;
        }
        // An unterminated last line still counts.
        if (in_eof_ && lines_left() > 0 && in_buf_.back() != '\n') in_buf_.push_back('\n');
    }

    void process_lines() {
        if (input_blocked_ && wc_.machine().pending() < blocked_pending_) input_blocked_ = false;
        while (!input_blocked_ && !quitting_ && exit_code_ < 0) {
            const std::size_t nl = in_buf_.find('\n', in_head_);
            if (nl == std::string::npos) {
                if (lines_left() > max_line_bytes) {
                    print_line("!! line longer than %zu bytes skipped", max_line_bytes);
                    in_buf_.clear();
                    in_head_ = 0;
                    discarding_ = true;
                }
                return;
            }
            std::string_view line(in_buf_.data() + in_head_, nl - in_head_);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (!handle_line(std::string(line))) {
                // The outbox is full: keep the line and stop reading until an
                // ack makes room (§5 bound, never a silent drop).
                input_blocked_ = true;
                blocked_pending_ = wc_.machine().pending();
                return;
            }
            in_head_ = nl + 1;
            drain();  // print what this line caused before the next one's output
        }
    }

    static std::pair<std::string_view, std::string_view> split_command(std::string_view line) {
        const std::size_t sp = line.find(' ');
        std::string_view cmd = line.substr(0, sp);
        std::string_view arg = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
        while (!arg.empty() && (arg.front() == ' ' || arg.front() == '\t')) arg.remove_prefix(1);
        while (!arg.empty() && (arg.back() == ' ' || arg.back() == '\t')) arg.remove_suffix(1);
        return {cmd, arg};
    }

    // False: the line could not be taken now (outbox full); try again later.
    bool handle_line(const std::string& line) {
        if (line.empty()) return true;
        if (line.size() >= 2 && line[0] == '/' && line[1] == '/') return send_text(std::string_view(line).substr(1));
        if (line[0] != '/') return send_text(line);
        const auto [cmd, arg] = split_command(line);
        const auto now = posix::now();
        if (cmd == "/join" && !arg.empty()) {
            const std::string room(arg);
            if (const auto ec = wc_.join(now, room)) {
                print_line("!! cannot join %s: %s", room.c_str(), ec.message().c_str());
            } else {
                room_ = room;
                print_line("(current room: %s)", room_.c_str());
            }
        } else if (cmd == "/leave") {
            const std::string room(arg.empty() ? std::string_view(room_) : arg);
            if (const auto ec = wc_.leave(now, room)) {
                print_line("!! cannot leave %s: %s", room.c_str(), ec.message().c_str());
            } else if (room == room_) {
                pick_current_room();
            }
        } else if (cmd == "/room" && !arg.empty()) {
            const tc::room_state* r = wc_.machine().find_room(arg);
            if (!r || r->leaving) {
                print_line("!! not in room %s: /join it first", std::string(arg).c_str());
            } else {
                room_ = std::string(arg);
                print_line("(current room: %s)", room_.c_str());
            }
        } else if (cmd == "/token" && !arg.empty()) {
            // While connecting, the attempt under way was built with the old
            // token; remember the new one in case that attempt ends in a 401.
            const bool attempt_running = wc_.machine().state() == tc::state::connecting;
            if (const auto ec = wc_.set_token(now, arg)) {
                print_line("!! bad token: %s", ec.message().c_str());
            } else {
                token_.assign(arg);
                token_untried_ = attempt_running;
            }
        } else if (cmd == "/status") {
            print_rooms();
        } else if (cmd == "/quit") {
            const std::size_t pending = wc_.machine().pending();
            if (pending > 0) print_line("!! quitting with %zu unacked message(s)", pending);
            begin_quit(pending > 0 ? exit_pending : exit_ok);
        } else {
            print_line("!! commands: /join ROOM, /leave [ROOM], /room ROOM, /token NEW, /status, /quit "
                       "(//text sends /text)");
        }
        return true;
    }

    bool send_text(std::string_view text) {
        if (room_.empty()) {
            print_line("!! no current room: /join ROOM first");
            return true;
        }
        // {"text": ...}: the writer escapes quotes, backslashes and controls,
        // and replaces invalid UTF-8, so the payload is always I-JSON.
        payload_.clear();
        {
            proto::json_object_writer w(payload_);
            w.field("text", text);
            w.close();
        }
        const auto r = wc_.send(posix::now(), room_, chat_kind, payload_);
        if (!r) {
            if (r.error == tc::client_error::outbox_full && wc_.machine().pending() > 0) return false;
            print_line("!! not sent (%s)", r.error.message().c_str());
            return true;
        }
        if (wc_.machine().state() != tc::state::live) {
            print_line("(queued, pending %zu)", wc_.machine().pending());
            remember_status();
        }
        return true;
    }

    void print_rooms() {
        const auto& m = wc_.machine();
        print_line("-- %s, pending %zu, attempt %u, current room %s", std::string(tc::to_string(m.state())).c_str(),
                   m.pending(), m.attempt(), room_.empty() ? "(none)" : room_.c_str());
        for (const auto& r : m.rooms()) {
            const std::string cursor = r.has_cursor ? "#" + std::to_string(r.cursor) : std::string("-");
            print_line("--   %s: cursor %s, epoch %s%s%s", r.id.c_str(), cursor.c_str(),
                       r.epoch.empty() ? "-" : r.epoch.c_str(), r.awaiting_snapshot ? ", awaiting snapshot" : "",
                       r.leaving ? ", leaving" : "");
        }
    }

    // ---- exit -------------------------------------------------------------------

    void finish(int code) {
        if (exit_code_ < 0) exit_code_ = code;
    }

    void begin_quit(int code) {
        if (quitting_) return;
        quitting_ = true;
        quit_code_ = code;
        (void)wc_.close(posix::now());  // 1000: the session ends, no reconnect
        drain();
        // Wait for the closing handshake, but not forever.
        quit_deadline_ = posix::now() + std::chrono::seconds(3);
    }

    void check_exit(tether::time_point now) {
        if (exit_code_ >= 0) return;
        if (now >= exit_at_) {
            const std::size_t pending = wc_.machine().pending();
            if (pending > 0)
                print_line("-- exit after %ld ms with %zu unacked message(s)", opt_.exit_after_ms, pending);
            (void)wc_.close(now);
            drain();
            return finish(pending > 0 ? exit_pending : exit_ok);
        }
        if (quitting_) {
            if (fd_ < 0 || now >= quit_deadline_) finish(quit_code_);
            return;
        }
        if (in_eof_ && lines_left() == 0 && !input_blocked_) {
            if (wc_.machine().state() == tc::state::waiting_for_token) {
                print_line("!! the input ended without /token NEW");
                return finish(exit_token);
            }
            if (wc_.machine().pending() == 0) begin_quit(exit_ok);
        }
    }

    options opt_;
    tether::trace::recorded<tc::ws_client> wc_;  // records only with --record

    int fd_ = -1;
    sock_phase phase_ = sock_phase::none;
    bool sock_eof_ = false;
    std::vector<address> addrs_;
    std::size_t next_addr_ = 0;

    int in_fd_ = 0;
    bool in_eof_ = false;
    bool discarding_ = false;
    bool input_blocked_ = false;
    std::size_t blocked_pending_ = 0;
    std::string in_buf_;
    std::size_t in_head_ = 0;

    std::string room_;
    std::string token_;           // the last /token
    bool token_untried_ = false;  // given while a connection attempt was under way
    std::vector<std::pair<std::string, std::string>> replay_tried_;  // room -> epoch replayed from 0
    status_key last_status_{};

    bool quitting_ = false;
    int quit_code_ = exit_ok;
    tether::time_point quit_deadline_ = tether::never;
    tether::time_point exit_at_ = tether::never;
    int exit_code_ = -1;

    std::string out_, scratch_, text_, payload_;
    proto::json_scanner scanner_;
};

}  // namespace

int main(int argc, char** argv) {
    options opt = parse_options(argc, argv);
    ::signal(SIGPIPE, SIG_IGN);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one event per line, also into a pipe

    tc::ws_client_config cfg;
    const std::uint64_t seed = opt.seed ? *opt.seed : posix::entropy_seed();
    cfg.client.seed = seed;
    cfg.ws.seed = seed ^ 0x9e3779b97f4a7c15ULL;
    cfg.client.token = opt.token;
    cfg.client.path = "/";
    if (!opt.user.empty()) {
        cfg.client.path.append("?user=");
        append_query_component(cfg.client.path, opt.user);
    }
    const bool v6 = opt.host.find(':') != std::string::npos;
    cfg.host = (v6 ? "[" + opt.host + "]" : opt.host) + ":" + std::to_string(opt.port);

    std::FILE* record_file = nullptr;
    if (!opt.record.empty()) {
        record_file = std::fopen(opt.record.c_str(), "w");
        if (!record_file) {
            std::fprintf(stderr, "chat_client: cannot write %s: %s\n", opt.record.c_str(), std::strerror(errno));
            return exit_usage;
        }
        std::setvbuf(record_file, nullptr, _IOLBF, 0);  // every record on disk at once
    }
    int status;
    {
        chat c(std::move(opt), std::move(cfg), tether::trace::sink(record_file));
        status = c.run();
    }
    if (record_file) std::fclose(record_file);
    return status;
}
