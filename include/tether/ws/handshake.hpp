// tether/ws/handshake.hpp — the RFC 6455 §4 opening handshake, Sans-IO.
//
// Theory of operation
// -------------------
// Server: feed bytes to an http_request_parser until `done`, then
// check_upgrade(request). If it fails, write_reject_response(out, status)
// and close after sending. If it succeeds, decide (auth, origin, subprotocol
// via select_subprotocol) and either reject (401/403/...) or
// write_accept_response(out, check.key, chosen). Bytes that followed the
// request head in the same read are WebSocket frames.
//
// Client: client_handshake::build_request() draws the 16-byte nonce from the
// caller's tether::rng (RFC 6455 §4.1 item 7 wants it random per
// connection: seed the rng from OS entropy in production) and remembers the
// expected Sec-WebSocket-Accept. Feed the reply to an http_response_parser,
// then validate(response); anything but success means _Fail the WebSocket
// Connection_ (RFC 6455 §4.1). On bad_status the caller reads
// response.status to tell 401/403 (do not retry) from 5xx (retry).
//
// Nothing here allocates per message; the few strings are once per
// connection. Writers validate what they are given and append nothing when
// an argument would produce an invalid or injectable head.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../core/random.hpp"
#include "detail/base64.hpp"
#include "detail/sha1.hpp"
#include "http.hpp"

namespace tether::ws {

/// RFC 6455 §1.3 / §4.2.2 item 5.4.
inline constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// base64(SHA-1(key + GUID)), RFC 6455 §4.2.2 item 5.4. `key` is used as
/// received (already OWS-trimmed by the parser), not decoded.
inline std::array<char, 28> compute_accept(std::string_view key) noexcept {
    detail::sha1_hasher h;
    h.update(key);
    h.update(websocket_guid);
    return detail::base64_encode_fixed(h.finish());
}

namespace detail::handshake_impl {

/// Calls f(element) for every non-empty element of the comma-separated
/// lists in all field lines named `name` (RFC 9110 §5.3: several lines are
/// one list; §5.6.1: empty elements are ignored). f returns false to stop.
template <class F>
bool for_each_list_element(std::span<const http_header> headers, std::string_view name, F&& f) {
    for (const auto& h : headers) {
        if (!http_syntax::iequals(h.name, name)) continue;
        std::string_view v = h.value;
        for (;;) {
            const std::size_t comma = v.find(',');
            const std::string_view elem = http_syntax::trim_ows(v.substr(0, comma));
            if (!elem.empty() && !f(elem)) return false;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return true;
}

/// RFC 6455 §4.2.1 item 5: base64 of exactly 16 bytes (always 24 chars).
inline bool is_valid_key(std::string_view key) noexcept {
    std::array<std::uint8_t, 18> raw{};  // 24 chars could hold 18 bytes
    const auto n = base64_decode(key, std::span<std::uint8_t>(raw));
    return n && *n == 16;
}

/// A header a caller may add: token name, value without CTLs (so no CR/LF
/// injection), not one of the names the writer owns.
inline bool is_valid_extra(const http_header& h, std::initializer_list<std::string_view> reserved) noexcept {
    if (!http_syntax::is_token(h.name) || !http_syntax::is_field_value(h.value)) return false;
    if (http_syntax::trim_ows(h.value).size() != h.value.size()) return false;
    for (auto r : reserved)
        if (http_syntax::iequals(h.name, r)) return false;
    return true;
}

inline bool has_header(std::span<const http_header> headers, std::string_view name) noexcept {
    for (const auto& h : headers)
        if (http_syntax::iequals(h.name, name)) return true;
    return false;
}

inline void append_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
}

inline void append_extra(std::string& out, std::span<const http_header> extra) {
    for (const auto& h : extra) append_field(out, h.name, h.value);
}

inline void append_decimal(std::string& out, std::size_t v) {
    char tmp[20];
    std::size_t n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n != 0) out.push_back(tmp[--n]);
}

}  // namespace detail::handshake_impl

/// Is `token` (ASCII case-insensitive) an element of the comma-separated
/// list formed by all `name` field lines? E.g. "Connection: keep-alive,
/// Upgrade" has the token "upgrade" (RFC 6455 §4.2.1 items 3-4).
inline bool header_has_token(std::span<const http_header> headers, std::string_view name,
                             std::string_view token) noexcept {
    return !detail::handshake_impl::for_each_list_element(
        headers, name, [&](std::string_view e) { return !detail::http_syntax::iequals(e, token); });
}
inline bool header_has_token(const http_request& r, std::string_view name,
                             std::string_view token) noexcept {
    return header_has_token(std::span<const http_header>(r.headers), name, token);
}
inline bool header_has_token(const http_response& r, std::string_view name,
                             std::string_view token) noexcept {
    return header_has_token(std::span<const http_header>(r.headers), name, token);
}

/// Result of check_upgrade. Views point into the http_request checked.
struct upgrade_check {
    int status = 0;         ///< 0 = valid upgrade; else 400, 405 or 426 to answer with
    std::string_view why;   ///< static text, for logs
    std::string_view key;   ///< Sec-WebSocket-Key, when status == 0
    std::vector<std::string> offered_subprotocols;  ///< client's order, when status == 0

    bool ok() const noexcept { return status == 0; }
};

/// RFC 6455 §4.2.1: is this request a valid WebSocket opening handshake?
/// The order of checks decides which status a request with several faults
/// gets: method (405), version, target, Host, Upgrade, Connection (400),
/// Sec-WebSocket-Version (426: missing or not 13, so that old clients learn
/// what we speak, §4.2.2), Sec-WebSocket-Key (400), body, subprotocols.
/// Origin, authentication and the path are the application's business.
inline upgrade_check check_upgrade(const http_request& r) {
    using namespace detail::http_syntax;
    upgrade_check c;
    auto fail = [&c](int status, std::string_view why) {
        c.status = status;
        c.why = why;
        c.key = {};
        c.offered_subprotocols.clear();
        return c;
    };
    // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if (r.method != "GET") return fail(405, "method is not GET");
    if (r.version_minor < 1) return fail(400, "HTTP/1.1 or higher required");
    if (r.path.empty() || r.path.front() != '/') return fail(400, "request-target has no absolute path");
    // Item 2: a Host header field with the server's authority.
    const std::string* host = r.find("Host");
    if (host == nullptr || host->empty()) return fail(400, "missing Host");
    // Items 3-4.
    if (!header_has_token(r, "Upgrade", "websocket")) return fail(400, "no Upgrade: websocket");
    if (!header_has_token(r, "Connection", "upgrade")) return fail(400, "no Connection: upgrade");
    // Item 6; §11.3.5: at most once in a request.
    const std::size_t versions = r.count("Sec-WebSocket-Version");
    if (versions > 1) return fail(400, "duplicate Sec-WebSocket-Version");
    if (versions == 0) return fail(426, "missing Sec-WebSocket-Version");
    if (*r.find("Sec-WebSocket-Version") != "13") return fail(426, "Sec-WebSocket-Version is not 13");
    // Item 5; §11.3.1: at most once in a request.
    const std::size_t keys = r.count("Sec-WebSocket-Key");
    if (keys == 0) return fail(400, "missing Sec-WebSocket-Key");
    if (keys > 1) return fail(400, "duplicate Sec-WebSocket-Key");
    const std::string& key = *r.find("Sec-WebSocket-Key");
    if (!detail::handshake_impl::is_valid_key(key))
        return fail(400, "Sec-WebSocket-Key is not base64 of 16 bytes");
    // Anything after the head is WebSocket frames; a body would be misread.
    if (const std::string* len = r.find("Content-Length"); len && *len != "0")
        return fail(400, "upgrade request with a body");
    // Item 8 / §4.1 item 10: a list of tokens, possibly over several lines.
    bool tokens_ok = true;
    detail::handshake_impl::for_each_list_element(
        std::span<const http_header>(r.headers), "Sec-WebSocket-Protocol", [&](std::string_view e) {
            if (!is_token(e)) return tokens_ok = false;
            c.offered_subprotocols.emplace_back(e);
            return true;
        });
    if (!tokens_ok) return fail(400, "Sec-WebSocket-Protocol element is not a token");
    c.key = key;
    c.why = {};
    return c;
}

/// The first of `supported` (server preference order) that the client
/// offered; empty if none. Subprotocol names compare case-sensitively
/// (RFC 6455 §11.3.4, RFC 7936 §2). The view points into `supported`.
inline std::string_view select_subprotocol(std::span<const std::string> offered,
                                           std::span<const std::string_view> supported) noexcept {
    for (std::string_view s : supported)
        for (const auto& o : offered)
            if (o == s) return s;
    return {};
}
inline std::string_view select_subprotocol(std::span<const std::string> offered,
                                           std::span<const std::string> supported) noexcept {
    for (const std::string& s : supported)
        for (const auto& o : offered)
            if (o == s) return s;
    return {};
}
inline std::string_view select_subprotocol(std::span<const std::string> offered,
                                           std::initializer_list<std::string_view> supported) noexcept {
    return select_subprotocol(offered, std::span<const std::string_view>(supported.begin(), supported.size()));
}

/// RFC 9110 §15 reason phrases; "" for codes without one here (an empty
/// reason-phrase is valid, RFC 9112 §4).
constexpr std::string_view reason_phrase(int status) noexcept {
    switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 200: return "OK";
        case 204: return "No Content";
        case 300: return "Multiple Choices";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 303: return "See Other";
        case 304: return "Not Modified";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 402: return "Payment Required";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 407: return "Proxy Authentication Required";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 412: return "Precondition Failed";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 416: return "Range Not Satisfiable";
        case 417: return "Expectation Failed";
        case 421: return "Misdirected Request";
        case 422: return "Unprocessable Content";
        case 426: return "Upgrade Required";
        case 428: return "Precondition Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 451: return "Unavailable For Legal Reasons";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: return {};
    }
}

/// Appends the 101 response (RFC 6455 §4.2.2 item 5). `key` is the
/// client's Sec-WebSocket-Key (upgrade_check::key); `subprotocol` one of the
/// offered ones or empty for none. `extra` may add e.g. Set-Cookie; it may
/// not contain the fields written here. Returns false and appends nothing
/// if the key is not a valid key, the subprotocol is not a token, or an
/// extra field is invalid.
inline bool write_accept_response(std::string& out, std::string_view key,
                                  std::string_view subprotocol = {},
                                  std::span<const http_header> extra = {}) {
    using namespace detail::handshake_impl;
    if (!is_valid_key(key)) return false;
    if (!subprotocol.empty() && !detail::http_syntax::is_token(subprotocol)) return false;
    for (const auto& h : extra)
        if (!is_valid_extra(h, {"Upgrade", "Connection", "Sec-WebSocket-Accept",
                                "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
                                "Sec-WebSocket-Version", "Content-Length", "Transfer-Encoding"}))
            return false;
    const auto accept = compute_accept(key);
    out.append("HTTP/1.1 101 Switching Protocols\r\n");
    append_field(out, "Upgrade", "websocket");
    append_field(out, "Connection", "Upgrade");
    append_field(out, "Sec-WebSocket-Accept", std::string_view(accept.data(), accept.size()));
    if (!subprotocol.empty()) append_field(out, "Sec-WebSocket-Protocol", subprotocol);
    append_extra(out, extra);
    out.append("\r\n");
    return true;
}

/// Appends a complete refusal (status 300-599) with `body` as text/plain,
/// always with Content-Length and "Connection: close" (the caller closes
/// after sending). Fields a status requires are added unless `extra` has
/// them: 405 -> "Allow: GET" (RFC 9110 §15.5.6); 426 -> "Upgrade:
/// websocket" (RFC 9110 §15.5.22) with "Connection: Upgrade, close" and
/// "Sec-WebSocket-Version: 13" (RFC 6455 §4.2.2); 401 ->
/// "WWW-Authenticate: Bearer" (RFC 9110 §11.6.1, RFC 6750 §3). Returns
/// false and appends nothing on a bad status or an invalid extra field.
inline bool write_reject_response(std::string& out, int status, std::string_view body = {},
                                  std::span<const http_header> extra = {}) {
    using namespace detail::handshake_impl;
    if (status < 300 || status > 599) return false;
    for (const auto& h : extra)
        if (!is_valid_extra(h, {"Connection", "Content-Length", "Transfer-Encoding", "Upgrade"}))
            return false;
    out.append("HTTP/1.1 ");
    append_decimal(out, static_cast<std::size_t>(status));
    out.push_back(' ');
    out.append(reason_phrase(status));
    out.append("\r\n");
    if (status == 405 && !has_header(extra, "Allow")) append_field(out, "Allow", "GET");
    if (status == 401 && !has_header(extra, "WWW-Authenticate"))
        append_field(out, "WWW-Authenticate", "Bearer");
    if (status == 426) {
        append_field(out, "Upgrade", "websocket");
        if (!has_header(extra, "Sec-WebSocket-Version")) append_field(out, "Sec-WebSocket-Version", "13");
        append_field(out, "Connection", "Upgrade, close");
    } else {
        append_field(out, "Connection", "close");
    }
    if (!body.empty() && !has_header(extra, "Content-Type"))
        append_field(out, "Content-Type", "text/plain; charset=utf-8");
    out.append("Content-Length: ");
    append_decimal(out, body.size());
    out.append("\r\n");
    append_extra(out, extra);
    out.append("\r\n");
    out.append(body);
    return true;
}

/// Why a client handshake failed (RFC 6455 §4.1, "the client MUST _Fail
/// the WebSocket Connection_").
enum class handshake_error {
    ok = 0,
    not_started,           ///< validate() before build_request()
    bad_status,            ///< not 101; see http_response::status (401/403: don't retry)
    no_upgrade,            ///< no "Upgrade: websocket"
    no_connection,         ///< no "Connection: upgrade"
    no_accept,             ///< Sec-WebSocket-Accept missing
    bad_accept,            ///< Sec-WebSocket-Accept wrong or repeated
    bad_subprotocol,       ///< a subprotocol we did not offer, or several
    unexpected_extension,  ///< Sec-WebSocket-Extensions in use (we offer none)
};

namespace detail {
class handshake_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tether.ws.handshake"; }
    std::string message(int ev) const override {
        switch (static_cast<handshake_error>(ev)) {
            case handshake_error::ok: return "success";
            case handshake_error::not_started: return "no handshake request was built";
            case handshake_error::bad_status: return "server did not answer 101 Switching Protocols";
            case handshake_error::no_upgrade: return "response lacks Upgrade: websocket";
            case handshake_error::no_connection: return "response lacks Connection: upgrade";
            case handshake_error::no_accept: return "response lacks Sec-WebSocket-Accept";
            case handshake_error::bad_accept: return "Sec-WebSocket-Accept does not match the key";
            case handshake_error::bad_subprotocol: return "server selected a subprotocol that was not offered";
            case handshake_error::unexpected_extension: return "server selected an extension that was not offered";
        }
        return "unknown tether.ws.handshake error";
    }
};
}  // namespace detail

inline const std::error_category& handshake_error_category() noexcept {
    static const detail::handshake_error_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(handshake_error e) noexcept {
    return {static_cast<int>(e), handshake_error_category()};
}

}  // namespace tether::ws

template <>
struct std::is_error_code_enum<tether::ws::handshake_error> : std::true_type {};

namespace tether::ws {

/// The client half of the opening handshake (RFC 6455 §4.1).
class client_handshake {
public:
    /// Builds the GET upgrade request. `host` is "host[:port]" (the Host
    /// field, RFC 6455 §4.1 item 4), `target` "/path[?query]" (already
    /// percent-encoded), `subprotocols` offered in preference order (tokens,
    /// unique), `extra` e.g. Origin, Authorization (not the fields written
    /// here). Returns "" if an argument is invalid; nothing is remembered.
    std::string build_request(std::string_view host, std::string_view target,
                              std::span<const std::string> subprotocols,
                              std::span<const http_header> extra, tether::rng& rng) {
        using namespace detail::http_syntax;
        using detail::handshake_impl::append_field;
        if (host.empty() || !is_authority(host)) return {};
        if (target.empty() || target.front() != '/' || !is_path_query(target)) return {};
        for (std::size_t i = 0; i < subprotocols.size(); ++i) {
            if (!is_token(subprotocols[i])) return {};
            for (std::size_t j = 0; j < i; ++j)
                if (subprotocols[j] == subprotocols[i]) return {};  // §4.1 item 10: unique
        }
        for (const auto& h : extra)
            if (!detail::handshake_impl::is_valid_extra(
                    h, {"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                        "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Sec-WebSocket-Accept",
                        "Content-Length", "Transfer-Encoding"}))
                return {};

        // §4.1 item 7: a nonce of 16 random bytes, base64-encoded.
        std::array<std::uint8_t, 16> nonce{};
        rng.fill(std::span<std::uint8_t>(nonce));
        key_ = detail::base64_encode_fixed(nonce);
        const std::string_view key(key_.data(), key_.size());
        accept_ = compute_accept(key);
        offered_.assign(subprotocols.begin(), subprotocols.end());
        selected_.clear();
        started_ = true;

        std::string out;
        out.append("GET ");
        out.append(target);
        out.append(" HTTP/1.1\r\n");
        append_field(out, "Host", host);
        append_field(out, "Upgrade", "websocket");
        append_field(out, "Connection", "Upgrade");
        append_field(out, "Sec-WebSocket-Key", key);
        append_field(out, "Sec-WebSocket-Version", "13");
        if (!offered_.empty()) {
            out.append("Sec-WebSocket-Protocol: ");
            for (std::size_t i = 0; i < offered_.size(); ++i) {
                if (i != 0) out.append(", ");
                out.append(offered_[i]);
            }
            out.append("\r\n");
        }
        detail::handshake_impl::append_extra(out, extra);
        out.append("\r\n");
        return out;
    }

    std::string build_request(std::string_view host, std::string_view target, tether::rng& rng) {
        return build_request(host, target, {}, {}, rng);
    }

    /// RFC 6455 §4.1, the client's checks of the server's response, in the
    /// RFC's order. On success selected_subprotocol() is set.
    std::error_code validate(const http_response& res) {
        using namespace detail::http_syntax;
        selected_.clear();
        if (!started_) return handshake_error::not_started;
        // Item 1: 101; any other status is handled "per HTTP procedures".
        if (res.status != 101) return handshake_error::bad_status;
        // Items 2-3.
        if (!header_has_token(res, "Upgrade", "websocket")) return handshake_error::no_upgrade;
        if (!header_has_token(res, "Connection", "upgrade")) return handshake_error::no_connection;
        // Item 4; §11.3.3: at most once in a response.
        const std::size_t accepts = res.count("Sec-WebSocket-Accept");
        if (accepts == 0) return handshake_error::no_accept;
        if (accepts > 1 || *res.find("Sec-WebSocket-Accept") != expected_accept())
            return handshake_error::bad_accept;
        // Item 5: we never offer extensions, so any in use is a failure.
        if (!detail::handshake_impl::for_each_list_element(
                std::span<const http_header>(res.headers), "Sec-WebSocket-Extensions",
                [](std::string_view) { return false; }))
            return handshake_error::unexpected_extension;
        // Item 6; §11.3.4: at most once in a response, one offered value.
        const std::size_t protos = res.count("Sec-WebSocket-Protocol");
        if (protos > 1) return handshake_error::bad_subprotocol;
        if (protos == 1) {
            const std::string& p = *res.find("Sec-WebSocket-Protocol");
            bool offered = false;
            for (const auto& o : offered_) offered = offered || o == p;
            if (!offered) return handshake_error::bad_subprotocol;
            selected_ = p;
        }
        return handshake_error::ok;
    }

    /// The subprotocol the server selected; empty if none (or not validated).
    std::string_view selected_subprotocol() const noexcept { return selected_; }
    /// Sec-WebSocket-Key sent by the last build_request().
    std::string_view key() const noexcept {
        return started_ ? std::string_view(key_.data(), key_.size()) : std::string_view{};
    }
    /// The Sec-WebSocket-Accept value the server must return.
    std::string_view expected_accept() const noexcept {
        return started_ ? std::string_view(accept_.data(), accept_.size()) : std::string_view{};
    }

private:
    std::array<char, 24> key_{};
    std::array<char, 28> accept_{};
    std::vector<std::string> offered_;
    std::string selected_;
    bool started_ = false;
};

}  // namespace tether::ws
