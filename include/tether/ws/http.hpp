// tether/ws/http.hpp — incremental, bounded HTTP/1.1 header-block parsers
// for the WebSocket opening handshake (RFC 6455 §4, RFC 9112, RFC 9110).
//
// Theory of operation
// -------------------
// A parser only ever sees the *head* of one message: start-line, field
// lines, blank line. It never reads a body: after an upgrade the bytes that
// follow the blank line are WebSocket frames and belong to the caller.
//
// The caller passes only NEW bytes to feed(). Each byte is examined exactly
// once by a small line scanner (so feeding byte by byte is linear, not
// quadratic) and copied into an internal buffer that never holds more than
// `max_header_bytes`. Nothing is interpreted until the blank line has
// arrived; then the whole block is parsed at once. feed() reports how many
// bytes of *this* call belonged to the header block (`consumed`); on `done`
// the rest of that call's data is the caller's (e.g. the first frame).
// After `done` or `error` the parser is inert until reset().
//
// Decisions (all documented here, enforced below):
// - Line ends must be CRLF. A bare LF or a bare CR is rejected with 400.
//   RFC 9112 §2.2 only *allows* a recipient to accept bare LF; refusing it
//   removes any disagreement with a proxy in front about where the head
//   ends (request-smuggling class of bugs).
// - Empty lines before the start-line are skipped (RFC 9112 §2.2 "SHOULD
//   ignore at least one empty line"); they still count against the bound.
// - Control characters (0x00-0x1F except HTAB, and 0x7F) anywhere in the
//   head: 400, detected as soon as the byte arrives (RFC 9110 §5.5).
// - obs-fold (a field line starting with SP/HTAB), and whitespace between
//   the start-line and the first field: 400 (RFC 9112 §5.2, §2.2).
// - Field names must be tokens, with no whitespace before ':' (RFC 9112
//   §5.1): 400. Field values are trimmed of OWS; names keep their case and
//   are matched case-insensitively.
// - Head larger than max_header_bytes, or more than max_headers fields: 431.
// - Request: method must be a token; request-target in origin-form
//   ("/path?query"), absolute-form with an http/https/ws/wss scheme
//   (RFC 9112 §3.2.2 says a server MUST accept it; RFC 6455 §4.2.1 item 1
//   allows it), or "*"; any other form, characters outside RFC 3986 (incl.
//   '#', RFC 6455 §3), or a broken %-escape: 400. For absolute-form the
//   authority stays in `target` only; Host is still required (a client
//   must send it, equal to that authority, RFC 9112 §3.2).
// - HTTP-version must be "HTTP/d.d" (case-sensitive, RFC 9112 §2.3):
//   malformed is 400, a major version other than 1 is 505.
// - Host (RFC 9112 §3.2): more than one, or missing in HTTP/1.1, or an
//   invalid value: 400.
// - Transfer-Encoding in a request: 501 (we never read a request body, and
//   RFC 9112 §6.1 answers an unsupported coding with 501). Content-Length
//   that is not a single decimal number (or repeated with different values,
//   RFC 9110 §8.6): 400. Whether a body is acceptable at all is the caller's
//   decision (check_upgrade refuses one).
// - Response status-line: "HTTP/1.x ddd[ reason]" with status 100-599; the
//   missing SP before an empty reason is tolerated (common in the wild).
//   For the response parser `http_status` is informational only.
// - Query strings (http_request::query_param): split on '&', then RFC 3986
//   percent-decoding; '+' is a literal '+', not a space (see percent_decode).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tether::ws {

struct http_header {
    std::string name;
    std::string value;
};

/// One name=value pair of a query string, both percent-decoded.
struct query_parameter {
    std::string name;
    std::string value;
};

namespace detail::http_syntax {

constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

constexpr bool is_alpha(unsigned char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr bool is_digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }

/// tchar, RFC 9110 §5.6.2.
constexpr bool is_tchar(unsigned char c) noexcept {
    if (is_alpha(c) || is_digit(c)) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
        case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
            return true;
        default:
            return false;
    }
}

constexpr bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(static_cast<unsigned char>(c))) return false;
    return true;
}

/// CTLs that may never appear in a message head (HTAB is allowed in values).
constexpr bool is_forbidden_ctl(unsigned char c) noexcept {
    return (c < 0x20 && c != '\t') || c == 0x7F;
}

/// field-vchar / SP / HTAB, RFC 9110 §5.5 (obs-text 0x80-0xFF is allowed).
constexpr bool is_field_value_char(unsigned char c) noexcept {
    return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7F);
}

constexpr bool is_field_value(std::string_view s) noexcept {
    for (char c : s)
        if (!is_field_value_char(static_cast<unsigned char>(c))) return false;
    return true;
}

constexpr std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3986 §2.2-§2.3.
constexpr bool is_unreserved(unsigned char c) noexcept {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
constexpr bool is_sub_delim(unsigned char c) noexcept {
    switch (c) {
        case '!': case '$': case '&': case '\'': case '(': case ')':
        case '*': case '+': case ',': case ';': case '=':
            return true;
        default:
            return false;
    }
}

/// Checks that every '%' in `s` starts a "%" HEXDIG HEXDIG triplet.
constexpr bool valid_percent_escapes(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') continue;
        if (i + 2 >= s.size() || hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0) return false;
        i += 2;
    }
    return true;
}

/// path-abempty [ "?" query ] of RFC 3986 §3.3/§3.4: pchar / "/" / "?".
/// '#' is refused: RFC 6455 §3 forbids fragments in WebSocket URIs.
constexpr bool is_path_query(std::string_view s) noexcept {
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (!(is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@' || c == '/' ||
              c == '?' || c == '%'))
            return false;
    }
    return valid_percent_escapes(s);
}

/// A Host value / URI authority: uri-host [ ":" port ] (RFC 3986 §3.2),
/// checked at the character level (reg-name, IP-literal in brackets, port).
/// Userinfo ('@') is refused: RFC 9110 §4.2.4 deprecates it in http(s) URIs.
constexpr bool is_authority(std::string_view s) noexcept {
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (!(is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '[' || c == ']' ||
              c == '%'))
            return false;
    }
    return valid_percent_escapes(s);
}

inline const std::string* find_header(const std::vector<http_header>& headers,
                                      std::string_view name) noexcept {
    for (const auto& h : headers)
        if (iequals(h.name, name)) return &h.value;
    return nullptr;
}

inline std::size_t count_header(const std::vector<http_header>& headers,
                                std::string_view name) noexcept {
    std::size_t n = 0;
    for (const auto& h : headers)
        if (iequals(h.name, name)) ++n;
    return n;
}

}  // namespace detail::http_syntax

/// Strict percent-decoding (RFC 3986 §2.1), appended to `out`. Returns false
/// (with `out` partially appended) on a '%' not followed by two hex digits.
/// '+' is NOT turned into a space: that is an HTML form-encoding rule, not a
/// URI one, and keeping it literal preserves unescaped base64 tokens. Clients
/// must send a space as %20. Decoded bytes are raw: they may be NUL or
/// invalid UTF-8, and the application must validate what it uses.
inline bool percent_decode(std::string_view in, std::string& out) {
    using detail::http_syntax::hex_value;
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size()) return false;
        const int hi = hex_value(in[i + 1]);
        const int lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return true;
}

struct http_request {
    std::string method;
    std::string target;  ///< as received
    std::string path;    ///< "/..." (from the target; "/" for an empty absolute-form path)
    std::string query;   ///< after the first '?', without it; still percent-encoded
    int version_minor = 1;
    std::vector<http_header> headers;

    /// First field named `name` (ASCII case-insensitive), nullptr if none.
    const std::string* find(std::string_view name) const noexcept {
        return detail::http_syntax::find_header(headers, name);
    }
    /// Number of field lines named `name`.
    std::size_t count(std::string_view name) const noexcept {
        return detail::http_syntax::count_header(headers, name);
    }

    /// All "name[=value]" pairs of the query, split on '&', empty segments
    /// skipped, both parts percent-decoded (see percent_decode: '+' stays
    /// '+'). std::nullopt if any segment has a malformed %-escape.
    std::optional<std::vector<query_parameter>> query_params() const {
        std::vector<query_parameter> out;
        bool ok = true;
        for_each_segment([&](std::string_view name, std::string_view value) {
            query_parameter p;
            if (!percent_decode(name, p.name) || !percent_decode(value, p.value)) {
                ok = false;
                return false;
            }
            out.push_back(std::move(p));
            return true;
        });
        if (!ok) return std::nullopt;
        return out;
    }

    /// Decoded value of the first parameter whose decoded name equals `name`
    /// (case-sensitive); "" for a bare "name" without '='. std::nullopt if
    /// absent or if that parameter's value has a malformed %-escape.
    /// Segments whose name does not decode can never match and are skipped.
    std::optional<std::string> query_param(std::string_view name) const {
        std::optional<std::string> result;
        std::string decoded;
        for_each_segment([&](std::string_view n, std::string_view v) {
            decoded.clear();
            if (!percent_decode(n, decoded) || decoded != name) return true;
            std::string value;
            if (percent_decode(v, value)) result = std::move(value);
            return false;
        });
        return result;
    }

private:
    template <class F>
    void for_each_segment(F&& f) const {
        std::string_view q = query;
        while (!q.empty()) {
            const std::size_t amp = q.find('&');
            const std::string_view seg = q.substr(0, amp);
            q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
            if (seg.empty()) continue;
            const std::size_t eq = seg.find('=');
            const std::string_view n = seg.substr(0, eq);
            const std::string_view v =
                eq == std::string_view::npos ? std::string_view{} : seg.substr(eq + 1);
            if (!f(n, v)) return;
        }
    }
};

struct http_response {
    int version_minor = 1;
    int status = 0;
    std::string reason;
    std::vector<http_header> headers;

    const std::string* find(std::string_view name) const noexcept {
        return detail::http_syntax::find_header(headers, name);
    }
    std::size_t count(std::string_view name) const noexcept {
        return detail::http_syntax::count_header(headers, name);
    }
};

enum class http_parse_status { need_more, done, error };

struct http_parse_result {
    http_parse_status status = http_parse_status::need_more;
    /// Bytes of THIS call's data taken by the parser. need_more: all of it.
    /// done: up to and including the blank line; data.substr(consumed) is the
    /// caller's. error: up to and including the byte where the error was
    /// detected (for 431: up to the bound). The sum over all calls never
    /// depends on how the data was split.
    std::size_t consumed = 0;
    /// On error: the status to answer with (400, 431, 501, 505); else 0.
    int http_status = 0;
};

namespace detail {

/// Line scanner + bounded buffer shared by both parsers. `Derived` supplies
/// `int parse_head(std::string_view block, std::string_view& why)`.
template <class Derived>
class http_head_parser {
public:
    static constexpr std::size_t default_max_header_bytes = 8192;
    static constexpr std::size_t default_max_headers = 64;

    explicit http_head_parser(std::size_t max_header_bytes, std::size_t max_headers) noexcept
        : max_bytes_(max_header_bytes), max_fields_(max_headers) {}

    http_parse_result feed(std::string_view data) {
        if (state_ == http_parse_status::done) return {state_, 0, 0};
        if (state_ == http_parse_status::error) return {state_, 0, error_status_};
        for (std::size_t i = 0; i < data.size(); ++i) {
            if (total_ == max_bytes_) {
                return fail(i, 431, "header block larger than max_header_bytes");
            }
            ++total_;
            const auto c = static_cast<unsigned char>(data[i]);
            if (cr_) {
                // RFC 9112 §2.2: CRLF only; a bare CR is invalid.
                if (c != '\n') return fail(i + 1, 400, "bare CR in header block");
                cr_ = false;
                if (line_len_ != 0) {
                    line_len_ = 0;
                    started_ = true;
                } else if (started_) {
                    append(data.substr(0, i + 1));
                    return finish(i + 1);
                }
                // else: empty line before the start-line, ignored.
            } else if (c == '\r') {
                cr_ = true;
            } else if (c == '\n') {
                return fail(i + 1, 400, "bare LF in header block (CRLF required)");
            } else if (http_syntax::is_forbidden_ctl(c)) {
                return fail(i + 1, 400, "control character in header block");
            } else {
                ++line_len_;
            }
        }
        append(data);
        return {http_parse_status::need_more, data.size(), 0};
    }

    bool done() const noexcept { return state_ == http_parse_status::done; }
    bool failed() const noexcept { return state_ == http_parse_status::error; }
    http_parse_status status() const noexcept { return state_; }
    /// Why the head was rejected (static text), empty if it was not.
    std::string_view error_reason() const noexcept { return why_; }
    /// The status to answer a failed request with, 0 if not failed.
    int error_status() const noexcept { return error_status_; }
    /// Bytes of the head taken so far (a complete head: its exact size).
    std::size_t bytes_consumed() const noexcept { return total_; }
    std::size_t max_header_bytes() const noexcept { return max_bytes_; }
    std::size_t max_headers() const noexcept { return max_fields_; }

protected:
    void reset_scanner() noexcept {
        std::string().swap(buf_);
        state_ = http_parse_status::need_more;
        why_ = {};
        error_status_ = 0;
        total_ = 0;
        line_len_ = 0;
        cr_ = false;
        started_ = false;
    }

    /// Splits a complete head into lines; all end in CRLF (the scanner saw to it).
    class line_reader {
    public:
        explicit line_reader(std::string_view block) noexcept : rest_(block) {}
        std::string_view next() noexcept {
            const std::size_t eol = rest_.find("\r\n");
            if (eol == std::string_view::npos) {
                const auto line = rest_;
                rest_ = {};
                return line;
            }
            const auto line = rest_.substr(0, eol);
            rest_.remove_prefix(eol + 2);
            return line;
        }
        bool at_end() const noexcept { return rest_.empty(); }

    private:
        std::string_view rest_;
    };

    /// Field lines up to the blank line (RFC 9112 §5). Returns 0 or a status.
    int parse_fields(line_reader& lines, std::vector<http_header>& out,
                     std::string_view& why) const {
        using namespace http_syntax;
        for (;;) {
            const std::string_view line = lines.next();
            if (line.empty()) return 0;
            if (line.front() == ' ' || line.front() == '\t') {
                why = "obsolete line folding or whitespace before a field line";
                return 400;
            }
            const std::size_t colon = line.find(':');
            if (colon == std::string_view::npos) {
                why = "field line without ':'";
                return 400;
            }
            const std::string_view name = line.substr(0, colon);
            if (!is_token(name)) {
                why = "field name is not a token";
                return 400;
            }
            const std::string_view value = trim_ows(line.substr(colon + 1));
            if (!is_field_value(value)) {
                why = "invalid character in field value";
                return 400;
            }
            if (out.size() == max_fields_) {
                why = "too many header fields";
                return 431;
            }
            out.push_back(http_header{std::string(name), std::string(value)});
        }
    }

    /// "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3). 0 if ok, else 400 / 505.
    static int parse_version(std::string_view v, int& minor, std::string_view& why) noexcept {
        using http_syntax::is_digit;
        if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is_digit(static_cast<unsigned char>(v[5])) ||
            v[6] != '.' || !is_digit(static_cast<unsigned char>(v[7]))) {
            why = "malformed HTTP version";
            return 400;
        }
        if (v[5] != '1') {
            why = "HTTP major version is not 1";
            return 505;
        }
        minor = v[7] - '0';
        return 0;
    }

private:
    void append(std::string_view s) {
        // Grow geometrically but never past the bound: the buffer's
        // capacity stays <= max_header_bytes (plus allocator rounding).
        const std::size_t need = buf_.size() + s.size();
        if (need > buf_.capacity()) {
            const std::size_t grow = std::max<std::size_t>(need, std::max<std::size_t>(256, buf_.capacity() * 2));
            buf_.reserve(std::min(max_bytes_, grow));
        }
        buf_.append(s);
    }

    http_parse_result fail(std::size_t consumed, int status, std::string_view why) {
        state_ = http_parse_status::error;
        error_status_ = status;
        why_ = why;
        std::string().swap(buf_);
        return {state_, consumed, status};
    }

    http_parse_result finish(std::size_t consumed) {
        std::string_view why;
        const int status = static_cast<Derived*>(this)->parse_head(buf_, why);
        std::string().swap(buf_);  // the parsed message owns what it needs
        if (status != 0) return fail(consumed, status, why);
        state_ = http_parse_status::done;
        return {state_, consumed, 0};
    }

    std::string buf_;
    std::size_t max_bytes_;
    std::size_t max_fields_;
    http_parse_status state_ = http_parse_status::need_more;
    std::string_view why_;
    int error_status_ = 0;
    std::size_t total_ = 0;     // bytes taken, including skipped leading CRLFs
    std::size_t line_len_ = 0;  // bytes of the current line, excluding CR
    bool cr_ = false;           // the previous byte was CR
    bool started_ = false;      // a non-empty line has been completed
};

}  // namespace detail

/// Server side: parses one request head (see the top of this file).
class http_request_parser : public detail::http_head_parser<http_request_parser> {
    using base = detail::http_head_parser<http_request_parser>;
    friend base;

public:
    explicit http_request_parser(std::size_t max_header_bytes = default_max_header_bytes,
                                 std::size_t max_headers = default_max_headers) noexcept
        : base(max_header_bytes, max_headers) {}

    /// The parsed request; meaningful once feed() returned done.
    const http_request& request() const noexcept { return req_; }
    http_request& request() noexcept { return req_; }

    void reset() {
        reset_scanner();
        req_ = http_request{};
    }

private:
    int parse_head(std::string_view block, std::string_view& why) {
        using namespace detail::http_syntax;
        line_reader lines(block);
        std::string_view start = lines.next();
        while (start.empty() && !lines.at_end()) start = lines.next();  // RFC 9112 §2.2

        // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
        const std::size_t sp1 = start.find(' ');
        const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : start.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos) {
            why = "malformed request line";
            return 400;
        }
        const std::string_view method = start.substr(0, sp1);
        const std::string_view target = start.substr(sp1 + 1, sp2 - sp1 - 1);
        const std::string_view version = start.substr(sp2 + 1);
        if (!is_token(method)) {
            why = "method is not a token";
            return 400;
        }
        if (int s = parse_version(version, req_.version_minor, why)) return s;
        if (int s = split_target(target, why)) return s;
        req_.method = std::string(method);
        req_.target = std::string(target);

        if (int s = parse_fields(lines, req_.headers, why)) return s;

        // RFC 9112 §3.2: exactly one Host in HTTP/1.1, with a valid value.
        const std::size_t hosts = req_.count("Host");
        if (hosts > 1) {
            why = "more than one Host field";
            return 400;
        }
        if (hosts == 0 && req_.version_minor >= 1) {
            why = "missing Host field";
            return 400;
        }
        if (hosts == 1 && !is_authority(*req_.find("Host"))) {
            why = "invalid Host field";
            return 400;
        }
        // We never read a request body; RFC 9112 §6.1: unsupported coding -> 501.
        if (req_.count("Transfer-Encoding") != 0) {
            why = "Transfer-Encoding in request not supported";
            return 501;
        }
        // RFC 9110 §8.6: a list or differing repeats are invalid.
        const std::string* first_length = nullptr;
        for (const auto& h : req_.headers) {
            if (!iequals(h.name, "Content-Length")) continue;
            bool digits = !h.value.empty() && h.value.size() <= 18;
            for (char c : h.value) digits = digits && is_digit(static_cast<unsigned char>(c));
            if (!digits || (first_length && *first_length != h.value)) {
                why = "invalid Content-Length";
                return 400;
            }
            first_length = &h.value;
        }
        return 0;
    }

    // RFC 9112 §3.2 request-target forms.
    int split_target(std::string_view t, std::string_view& why) {
        using namespace detail::http_syntax;
        std::string_view path_query;
        if (!t.empty() && t.front() == '/') {
            path_query = t;  // origin-form
        } else if (t == "*") {
            req_.path.assign(1, '*');  // asterisk-form (assign(): GCC 12 -Wrestrict false positive on = "*")
            return 0;
        } else {
            // absolute-form: scheme "://" authority path-abempty [ "?" query ]
            const std::size_t sep = t.find("://");
            const std::string_view scheme = sep == std::string_view::npos ? t : t.substr(0, sep);
            if (sep == std::string_view::npos ||
                !(iequals(scheme, "http") || iequals(scheme, "https") || iequals(scheme, "ws") ||
                  iequals(scheme, "wss"))) {
                why = "unsupported request-target form";
                return 400;
            }
            const std::string_view rest = t.substr(sep + 3);
            const std::size_t end = std::min(rest.find('/'), rest.find('?'));
            const std::string_view authority = rest.substr(0, end);
            if (authority.empty() || !is_authority(authority)) {
                why = "invalid authority in request-target";
                return 400;
            }
            path_query = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
        }
        if (!is_path_query(path_query)) {
            why = "invalid character or %-escape in request-target";
            return 400;
        }
        const std::size_t q = path_query.find('?');
        const std::string_view path = path_query.substr(0, q);
        req_.path = path.empty() ? std::string("/") : std::string(path);
        if (q != std::string_view::npos) req_.query = std::string(path_query.substr(q + 1));
        return 0;
    }

    http_request req_;
};

/// Client side: parses one response head (see the top of this file).
class http_response_parser : public detail::http_head_parser<http_response_parser> {
    using base = detail::http_head_parser<http_response_parser>;
    friend base;

public:
    explicit http_response_parser(std::size_t max_header_bytes = default_max_header_bytes,
                                  std::size_t max_headers = default_max_headers) noexcept
        : base(max_header_bytes, max_headers) {}

    const http_response& response() const noexcept { return res_; }
    http_response& response() noexcept { return res_; }

    void reset() {
        reset_scanner();
        res_ = http_response{};
    }

private:
    int parse_head(std::string_view block, std::string_view& why) {
        using namespace detail::http_syntax;
        line_reader lines(block);
        std::string_view start = lines.next();
        while (start.empty() && !lines.at_end()) start = lines.next();

        // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
        if (start.size() < 12 || start[8] != ' ') {
            why = "malformed status line";
            return 400;
        }
        if (int s = parse_version(start.substr(0, 8), res_.version_minor, why)) return s;
        int code = 0;
        for (std::size_t i = 9; i < 12; ++i) {
            const auto c = static_cast<unsigned char>(start[i]);
            if (!is_digit(c)) {
                why = "malformed status code";
                return 400;
            }
            code = code * 10 + (c - '0');
        }
        if (code < 100 || code > 599) {
            why = "status code out of range";
            return 400;
        }
        if (start.size() > 12 && start[12] != ' ') {
            why = "malformed status line";
            return 400;
        }
        res_.status = code;
        res_.reason = start.size() > 13 ? std::string(start.substr(13)) : std::string();
        return parse_fields(lines, res_.headers, why);
    }

    http_response res_;
};

}  // namespace tether::ws
