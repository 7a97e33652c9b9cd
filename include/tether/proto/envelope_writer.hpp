// tether/proto/envelope_writer.hpp — building tether v1 envelopes.
//
// Theory of operation
// -------------------
// Frames are written straight into a std::string the caller owns and reuses:
// nothing here allocates except std::string growing past its capacity, so a
// connection that keeps one output string (and reserve()s it once) writes
// every frame without touching the heap. Strings are escaped by
// append_json_string (json.hpp), which always produces valid I-JSON;
// `field_raw` values (payload, and anything else passed raw) are copied
// verbatim and MUST already be valid JSON: on the server they are slices the
// envelope_reader validated, on the client the application's payload must be
// validated with json_scanner before it is handed over.
//
// Two layers: json_object_writer, a tiny builder for one JSON object with
// nested arrays/objects, and write_envelope() overloads, one per message of
// PROTOCOL.md §3, taking a plain aggregate so call sites read like the
// protocol (`write_envelope(out, server_ack{.id = ..., .event_id = 42})`).
// Every write_envelope() appends one complete object; clear() the string
// first to start a new frame. Optional string fields (correlation_id, id
// echoes, epoch on client.join) are omitted when empty: the reader never
// accepts an empty correlation_id or id, so empty always means absent.
#pragma once

#include "envelope.hpp"
#include "json.hpp"

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tether::proto {

class json_object_writer {
public:
    /// Deepest nesting below the top-level object; deeper begin_* calls are
    /// refused (ok() turns false) instead of producing broken JSON, as are
    /// an end_* that does not match the open container and a begin_* after
    /// close(). Keys are for objects, element*() for arrays: mixing them up
    /// is a programming error the writer does not check.
    static constexpr unsigned k_max_depth = 62;

    /// Appends '{' to `out`; the object is finished by close().
    explicit json_object_writer(std::string& out) : out_(out) {
        out_.push_back('{');
        empty_ = 1;
    }
    json_object_writer(const json_object_writer&) = delete;
    json_object_writer& operator=(const json_object_writer&) = delete;

    /// "key":"escaped value"
    json_object_writer& field(std::string_view key, std::string_view value) {
        write_key(key);
        append_json_string(out_, value);
        return *this;
    }
    json_object_writer& field_int(std::string_view key, std::int64_t v) {
        char buf[k_stage + 24];
        std::size_t n = 0;
        if (stage_key(key, buf, n)) {
            n = static_cast<std::size_t>(std::to_chars(buf + n, buf + sizeof buf, v).ptr - buf);
            out_.append(buf, n);
        } else {
            write_key(key);
            append_int(v);
        }
        return *this;
    }
    json_object_writer& field_bool(std::string_view key, bool v) {
        write_key(key);
        out_.append(v ? "true" : "false");
        return *this;
    }
    json_object_writer& field_null(std::string_view key) {
        write_key(key);
        out_.append("null");
        return *this;
    }
    /// "key":<raw>, raw copied verbatim: it must be valid JSON.
    json_object_writer& field_raw(std::string_view key, std::string_view raw_json) {
        write_key(key);
        out_.append(raw_json);
        return *this;
    }
    /// "key":["a","b",...]
    json_object_writer& field_string_array(std::string_view key,
                                           std::span<const std::string_view> items) {
        begin_array(key);
        for (const std::string_view s : items) element(s);
        return end_array();
    }

    json_object_writer& begin_object(std::string_view key) { return open(key, '{'); }
    json_object_writer& end_object() { return close_one('}'); }
    json_object_writer& begin_array(std::string_view key) { return open(key, '['); }
    json_object_writer& end_array() { return close_one(']'); }

    /// Array elements (inside begin_array / end_array).
    json_object_writer& element(std::string_view s) {
        separator();
        append_json_string(out_, s);
        return *this;
    }
    json_object_writer& element_int(std::int64_t v) {
        separator();
        append_int(v);
        return *this;
    }
    json_object_writer& element_raw(std::string_view raw_json) {
        separator();
        out_.append(raw_json);
        return *this;
    }

    /// Closes any nested containers still open, then the object. Idempotent.
    void close() {
        if (closed_) return;
        while (depth_ > 0) close_one((arrays_ >> depth_) & 1u ? ']' : '}');
        out_.push_back('}');
        closed_ = true;
    }

    bool ok() const noexcept { return !failed_; }

private:
    void separator() {
        const std::uint64_t bit = std::uint64_t{1} << depth_;
        if (empty_ & bit)
            empty_ &= ~bit;
        else
            out_.push_back(',');
    }
    static constexpr std::size_t k_stage = 64;

    /// Puts `[,]"key":` into buf when the key needs no escaping and fits;
    /// staging it lets a field cost one append instead of four.
    bool stage_key(std::string_view key, char* buf, std::size_t& n) {
        if (key.size() > k_stage - 4 ||
            detail::find_string_special(key.data(), key.data() + key.size()) !=
                key.data() + key.size())
            return false;
        const std::uint64_t bit = std::uint64_t{1} << depth_;
        n = 0;
        if (empty_ & bit)
            empty_ &= ~bit;
        else
            buf[n++] = ',';
        buf[n++] = '"';
        if (!key.empty()) std::memcpy(buf + n, key.data(), key.size());
        n += key.size();
        buf[n++] = '"';
        buf[n++] = ':';
        return true;
    }
    void write_key(std::string_view key) {
        char buf[k_stage];
        std::size_t n = 0;
        if (stage_key(key, buf, n)) {
            out_.append(buf, n);
            return;
        }
        separator();
        append_json_string(out_, key);
        out_.push_back(':');
    }
    void append_int(std::int64_t v) {
        char buf[24];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        out_.append(buf, static_cast<std::size_t>(r.ptr - buf));
    }
    json_object_writer& open(std::string_view key, char c) {
        if (depth_ >= k_max_depth || closed_) {
            failed_ = true;
            return *this;
        }
        write_key(key);
        out_.push_back(c);
        ++depth_;
        const std::uint64_t bit = std::uint64_t{1} << depth_;
        empty_ |= bit;
        if (c == '[')
            arrays_ |= bit;
        else
            arrays_ &= ~bit;
        return *this;
    }
    json_object_writer& close_one(char c) {
        const bool is_array = ((arrays_ >> depth_) & 1u) != 0;
        if (depth_ == 0 || is_array != (c == ']')) {
            failed_ = true;
            return *this;
        }
        out_.push_back(c);
        --depth_;
        return *this;
    }

    std::string& out_;
    std::uint64_t empty_ = 0;   ///< bit d: the container at depth d has no element yet
    std::uint64_t arrays_ = 0;  ///< bit d: the container at depth d is an array
    unsigned depth_ = 0;
    bool closed_ = false;
    bool failed_ = false;
};

// ---------------------------------------------------------------------------
// Messages (PROTOCOL.md §3). Field order follows the protocol's examples.

/// The windows server.hello advertises (PROTOCOL.md §3, defaults of §7).
struct server_limits {
    std::int64_t max_message_bytes = 65536;
    std::int64_t replay_window = 1024;
    std::int64_t dedup_window_ms = 300000;
    std::int64_t grace_ms = 30000;
    /// tether extension (docs/protocol.md): the per-connection rate limit,
    /// so clients can pace themselves. 0: not advertised.
    std::int64_t rate_per_s = 0;
    std::int64_t rate_burst = 0;
};

struct server_hello {
    std::int64_t protocol_version = 1;
    std::string_view session_id{};
    bool resumed = false;
    std::int64_t heartbeat_ms = 25000;
    std::int64_t ts = 0;
    std::span<const std::string_view> caps{};
    server_limits limits{};
};

struct room_joined {
    std::string_view room_id{};
    resume_mode resume = resume_mode::none;
    std::int64_t replay_to = 0;                       ///< written when resume == replay
    resume_reason reason = resume_reason::truncated;  ///< written when snapshot_required
    std::int64_t head = 0;
    std::string_view epoch{};
    std::span<const std::string_view> members{};
    std::string_view correlation_id{};  ///< echo; omitted when empty
    std::string_view id{};              ///< echo; omitted when empty
};

struct room_left {
    std::string_view room_id{};
    std::string_view correlation_id{};
    std::string_view id{};
};

struct server_ack {
    std::string_view id{};
    std::string_view room_id{};
    std::int64_t event_id = 0;
    ack_status status = ack_status::accepted;
    std::string_view correlation_id{};
};

struct server_error {
    error_code code = error_code::bad_request;
    std::string_view message{};
    std::optional<std::int64_t> retry_after_ms{};  ///< with rate_limited
    std::string_view correlation_id{};
    std::string_view id{};
    std::string_view room_id{};  ///< optional context (an addition; omitted when empty)
};

struct room_head {
    std::string_view room_id{};
    std::int64_t event_id = 0;
};

struct server_ping {
    std::int64_t ts = 0;
    std::span<const room_head> heads{};  ///< omitted when empty
};

struct presence_event {
    presence_kind kind = presence_kind::joined;
    std::string_view room_id{};
    std::string_view user{};
};

/// An application event as the server broadcasts it to room members.
struct room_event {
    std::string_view kind{};
    std::string_view room_id{};
    std::int64_t event_id = 0;
    std::string_view sender{};
    std::string_view id{};
    std::string_view payload{};  ///< raw JSON ("null" is relayed); omitted when empty
    std::int64_t ts = 0;
};

struct client_join {
    std::string_view room_id{};
    std::optional<std::int64_t> resume_from{};
    std::string_view epoch{};  ///< omitted when empty
    std::string_view correlation_id{};
};

struct client_leave {
    std::string_view room_id{};
    std::string_view correlation_id{};
};

struct client_pong {
    std::int64_t ts = 0;
};

/// An application event as a client sends it.
struct client_event {
    std::string_view kind{};
    std::string_view room_id{};
    std::string_view id{};
    std::string_view payload{};  ///< raw JSON; omitted when empty
    std::string_view correlation_id{};
};

namespace detail {
inline void echo(json_object_writer& w, std::string_view correlation_id, std::string_view id) {
    if (!correlation_id.empty()) w.field("correlation_id", correlation_id);
    if (!id.empty()) w.field("id", id);
}
}  // namespace detail

inline void write_envelope(std::string& out, const server_hello& m) {
    json_object_writer w(out);
    w.field("kind", "server.hello")
        .field_int("protocol_version", m.protocol_version)
        .field("session_id", m.session_id)
        .field_bool("resumed", m.resumed)
        .field_int("heartbeat_ms", m.heartbeat_ms)
        .field_int("ts", m.ts)
        .field_string_array("caps", m.caps)
        .begin_object("limits")
        .field_int("max_message_bytes", m.limits.max_message_bytes)
        .field_int("replay_window", m.limits.replay_window)
        .field_int("dedup_window_ms", m.limits.dedup_window_ms)
        .field_int("grace_ms", m.limits.grace_ms);
    if (m.limits.rate_per_s > 0) {
        w.field_int("rate_per_s", m.limits.rate_per_s).field_int("rate_burst", m.limits.rate_burst);
    }
    w.end_object();
    w.close();
}

inline void write_envelope(std::string& out, const room_joined& m) {
    json_object_writer w(out);
    w.field("kind", "room.joined").field("room_id", m.room_id).field("resume", to_string(m.resume));
    if (m.resume == resume_mode::replay) w.field_int("replay_to", m.replay_to);
    if (m.resume == resume_mode::snapshot_required) w.field("reason", to_string(m.reason));
    w.field_int("head", m.head).field("epoch", m.epoch).field_string_array("members", m.members);
    detail::echo(w, m.correlation_id, m.id);
    w.close();
}

inline void write_envelope(std::string& out, const room_left& m) {
    json_object_writer w(out);
    w.field("kind", "room.left").field("room_id", m.room_id);
    detail::echo(w, m.correlation_id, m.id);
    w.close();
}

inline void write_envelope(std::string& out, const server_ack& m) {
    json_object_writer w(out);
    w.field("kind", "server.ack")
        .field("id", m.id)
        .field("room_id", m.room_id)
        .field_int("event_id", m.event_id)
        .field("status", to_string(m.status));
    if (!m.correlation_id.empty()) w.field("correlation_id", m.correlation_id);
    w.close();
}

inline void write_envelope(std::string& out, const server_error& m) {
    json_object_writer w(out);
    w.field("kind", "server.error").field("code", to_string(m.code)).field("message", m.message);
    if (m.retry_after_ms) w.field_int("retry_after_ms", *m.retry_after_ms);
    if (!m.room_id.empty()) w.field("room_id", m.room_id);
    detail::echo(w, m.correlation_id, m.id);
    w.close();
}

inline void write_envelope(std::string& out, const server_ping& m) {
    json_object_writer w(out);
    w.field("kind", "server.ping").field_int("ts", m.ts);
    if (!m.heads.empty()) {
        w.begin_object("heads");
        for (const room_head& h : m.heads) w.field_int(h.room_id, h.event_id);
        w.end_object();
    }
    w.close();
}

inline void write_envelope(std::string& out, const presence_event& m) {
    json_object_writer w(out);
    w.field("kind", to_string(m.kind)).field("room_id", m.room_id).field("user", m.user);
    w.close();
}

inline void write_envelope(std::string& out, const room_event& m) {
    json_object_writer w(out);
    w.field("kind", m.kind)
        .field("room_id", m.room_id)
        .field_int("event_id", m.event_id)
        .field("sender", m.sender)
        .field("id", m.id);
    if (!m.payload.empty()) w.field_raw("payload", m.payload);
    w.field_int("ts", m.ts);
    w.close();
}

inline void write_envelope(std::string& out, const client_join& m) {
    json_object_writer w(out);
    w.field("kind", "client.join").field("room_id", m.room_id);
    if (m.resume_from) w.field_int("resume_from", *m.resume_from);
    if (!m.epoch.empty()) w.field("epoch", m.epoch);
    if (!m.correlation_id.empty()) w.field("correlation_id", m.correlation_id);
    w.close();
}

inline void write_envelope(std::string& out, const client_leave& m) {
    json_object_writer w(out);
    w.field("kind", "client.leave").field("room_id", m.room_id);
    if (!m.correlation_id.empty()) w.field("correlation_id", m.correlation_id);
    w.close();
}

inline void write_envelope(std::string& out, const client_pong& m) {
    json_object_writer w(out);
    w.field("kind", "client.pong").field_int("ts", m.ts);
    w.close();
}

inline void write_envelope(std::string& out, const client_event& m) {
    json_object_writer w(out);
    w.field("kind", m.kind).field("room_id", m.room_id).field("id", m.id);
    if (!m.payload.empty()) w.field_raw("payload", m.payload);
    if (!m.correlation_id.empty()) w.field("correlation_id", m.correlation_id);
    w.close();
}

}  // namespace tether::proto
