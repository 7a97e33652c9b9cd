// fuzz_http_request — the server half of the opening handshake:
// ws::http_request_parser, check_upgrade(), write_accept_response() and
// write_reject_response().
//
// Input: [flags][split count n][n split sizes][request bytes...]
//   flags bits 0-1: max_header_bytes in {8192, 64, 300, 1024}
//   flags bits 2-3: max_headers in {64, 1, 4, 200}
// The request bytes are parsed twice, in one call and in chunks whose sizes
// cycle through the split sizes; the two parses must agree exactly (the
// parser's promise: results never depend on how the data was split).
//
// Invariants beyond "no crash": a `done` head is exactly the bytes up to the
// first CRLFCRLF, within max_header_bytes, with no CTL, bare CR or bare LF;
// fields are tokens with trimmed values and at most max_headers of them;
// need_more only while under the bound; error statuses are 400/431/501/505.
// check_upgrade() success implies each RFC 6455 §4.2.1 requirement,
// checked here independently; the accept response it enables parses back,
// with a Sec-WebSocket-Accept recomputed from scratch (SHA-1 in
// fuzz_util.hpp); every refusal writes a response that parses back with its
// status and Content-Length.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "tether/ws/handshake.hpp"
#include "tether/ws/http.hpp"

namespace {

namespace ws = tether::ws;
using fuzz::printable;

constexpr std::size_t k_max_bytes[] = {8192, 64, 300, 1024};
constexpr std::size_t k_max_headers[] = {64, 1, 4, 200};

bool is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}
bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(static_cast<unsigned char>(c))) return false;
    return true;
}

/// The head must be clean: CRLF line ends only, no CTL except HTAB.
void check_clean_head(std::string_view head, std::size_t max_bytes) {
    FUZZ_CHECK(head.size() <= max_bytes, "done head larger than max_header_bytes");
    FUZZ_CHECK(head.size() >= 4 && head.substr(head.size() - 4) == "\r\n\r\n", "head does not end with CRLFCRLF");
    // The first CRLFCRLF after the start-line ends it; only leading empty
    // lines may precede the start-line.
    std::size_t start = 0;
    while (head.substr(start, 2) == "\r\n") start += 2;
    FUZZ_CHECK(head.find("\r\n\r\n", start) == head.size() - 4, "head does not end at the first blank line");
    for (std::size_t i = 0; i < head.size(); ++i) {
        const auto c = static_cast<unsigned char>(head[i]);
        if (c == '\r') FUZZ_CHECK(i + 1 < head.size() && head[i + 1] == '\n', "bare CR accepted");
        if (c == '\n') FUZZ_CHECK(i > 0 && head[i - 1] == '\r', "bare LF accepted");
        FUZZ_CHECK(c >= 0x20 || c == '\t' || c == '\r' || c == '\n', "control character accepted");
        FUZZ_CHECK(c != 0x7F, "DEL accepted");
    }
}

template <class Headers>
void check_fields(const Headers& headers, std::size_t max_headers) {
    FUZZ_CHECK(headers.size() <= max_headers, "more fields than max_headers");
    for (const auto& h : headers) {
        FUZZ_CHECK(is_token(h.name), "field name not a token: " + printable(h.name));
        if (!h.value.empty()) {
            FUZZ_CHECK(h.value.front() != ' ' && h.value.front() != '\t', "value not trimmed");
            FUZZ_CHECK(h.value.back() != ' ' && h.value.back() != '\t', "value not trimmed");
        }
        for (char ch : h.value) {
            const auto c = static_cast<unsigned char>(ch);
            FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7F), "CTL in field value");
        }
    }
}

std::size_t count_fields(const ws::http_request& r, std::string_view name) {
    std::size_t n = 0;
    for (const auto& h : r.headers)
        if (h.name.size() == name.size()) {
            bool eq = true;
            for (std::size_t i = 0; i < name.size(); ++i) {
                char a = h.name[i], b = name[i];
                if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
                if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
                eq = eq && a == b;
            }
            n += eq;
        }
    return n;
}

/// Parses a response we wrote; it must be one complete, clean head.
ws::http_response parse_written(const std::string& out, std::size_t& head_size) {
    ws::http_response_parser p(1 << 16, 256);
    const auto r = p.feed(out);
    FUZZ_CHECK(r.status == ws::http_parse_status::done, "our own response does not parse: " + printable(out));
    check_clean_head(std::string_view(out).substr(0, r.consumed), 1 << 16);
    head_size = r.consumed;
    return p.response();
}

void check_upgrade_result(const ws::http_request& req) {
    const ws::upgrade_check c = ws::check_upgrade(req);
    if (!c.ok()) {
        FUZZ_CHECK(c.status == 400 || c.status == 405 || c.status == 426, "unexpected check_upgrade status");
        FUZZ_CHECK(c.key.empty() && c.offered_subprotocols.empty(), "refusal carries a key or subprotocols");
        if (req.method != "GET") FUZZ_CHECK(c.status == 405, "non-GET not answered 405");
        std::string out;
        FUZZ_CHECK(ws::write_reject_response(out, c.status, c.why), "write_reject_response refused a valid status");
        std::size_t head = 0;
        const auto res = parse_written(out, head);
        FUZZ_CHECK(res.status == c.status, "refusal status does not round-trip");
        const std::string* len = res.find("Content-Length");
        FUZZ_CHECK(len && *len == std::to_string(out.size() - head), "refusal Content-Length wrong");
        FUZZ_CHECK(out.substr(head) == c.why, "refusal body is not the reason");
        return;
    }
    // RFC 6455 §4.2.1, checked from the request itself.
    FUZZ_CHECK(req.method == "GET", "upgrade accepted for a non-GET");
    FUZZ_CHECK(req.version_minor >= 1, "upgrade accepted for HTTP/1.0");
    FUZZ_CHECK(req.find("Host") && !req.find("Host")->empty(), "upgrade accepted without Host");
    FUZZ_CHECK(fuzz::list_has(req.headers, "Upgrade", "websocket"), "upgrade accepted without Upgrade: websocket");
    FUZZ_CHECK(fuzz::list_has(req.headers, "Connection", "Upgrade"), "upgrade accepted without Connection: upgrade");
    FUZZ_CHECK(count_fields(req, "Sec-WebSocket-Version") == 1 && *req.find("Sec-WebSocket-Version") == "13",
               "upgrade accepted without exactly one version 13");
    FUZZ_CHECK(count_fields(req, "Sec-WebSocket-Key") == 1, "upgrade accepted without exactly one key");
    FUZZ_CHECK(c.key == *req.find("Sec-WebSocket-Key"), "key view is not the request's key");
    FUZZ_CHECK(fuzz::is_canonical_key(c.key), "non-canonical key accepted: " + printable(c.key));
    const std::string* len = req.find("Content-Length");
    FUZZ_CHECK(!len || *len == "0", "upgrade accepted with a body");
    for (const auto& p : c.offered_subprotocols) FUZZ_CHECK(is_token(p), "offered subprotocol not a token");

    // The accept response: with the first offered subprotocol, if any.
    const std::string sub = c.offered_subprotocols.empty() ? std::string() : c.offered_subprotocols.front();
    FUZZ_CHECK(ws::select_subprotocol(c.offered_subprotocols, {std::string_view(sub)}) == sub,
               "select_subprotocol misses an offered subprotocol");
    std::string out;
    FUZZ_CHECK(ws::write_accept_response(out, c.key, sub), "write_accept_response refused a checked key");
    std::size_t head = 0;
    const auto res = parse_written(out, head);
    FUZZ_CHECK(head == out.size(), "bytes after the 101 head");
    FUZZ_CHECK(res.status == 101, "accept response is not 101");
    FUZZ_CHECK(fuzz::list_has(res.headers, "Upgrade", "websocket"), "101 without Upgrade");
    FUZZ_CHECK(fuzz::list_has(res.headers, "Connection", "upgrade"), "101 without Connection");
    const std::string* acc = res.find("Sec-WebSocket-Accept");
    FUZZ_CHECK(acc && *acc == fuzz::websocket_accept(c.key), "wrong Sec-WebSocket-Accept");
    const std::string* proto = res.find("Sec-WebSocket-Protocol");
    FUZZ_CHECK(sub.empty() ? proto == nullptr : (proto && *proto == sub), "101 subprotocol wrong");
}

void check_query(const ws::http_request& req) {
    const auto all = req.query_params();
    if (!all) return;
    for (const auto& p : *all) {
        // query_param() finds the first parameter of that name.
        std::string first;
        for (const auto& q : *all)
            if (q.name == p.name) {
                first = q.value;
                break;
            }
        const auto v = req.query_param(p.name);
        FUZZ_CHECK(v && *v == first, "query_param disagrees with query_params for " + printable(p.name));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::byte_source src(data, size);
    const std::uint8_t flags = src.u8();
    const std::size_t max_bytes = k_max_bytes[flags & 3];
    const std::size_t max_headers = k_max_headers[(flags >> 2) & 3];
    std::vector<std::size_t> splits;
    const std::size_t nsplits = src.u8() % 16;
    for (std::size_t i = 0; i < nsplits; ++i) splits.push_back(static_cast<std::size_t>(src.u8()) + 1);
    const auto body = src.rest();
    const std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());

    // Whole.
    ws::http_request_parser whole(max_bytes, max_headers);
    const auto rw = whole.feed(text);
    // Chunked.
    ws::http_request_parser parts(max_bytes, max_headers);
    ws::http_parse_result last{};
    std::size_t consumed = 0, off = 0, k = 0;
    while (off < text.size() || off == 0) {
        const std::size_t n = splits.empty() ? text.size() : std::min(splits[k++ % splits.size()], text.size() - off);
        last = parts.feed(text.substr(off, n));
        consumed += last.consumed;
        FUZZ_CHECK(last.consumed <= n, "consumed more than given");
        if (last.status != ws::http_parse_status::need_more) {
            FUZZ_CHECK(last.status != ws::http_parse_status::done || last.consumed >= 1, "done with nothing consumed");
            break;
        }
        FUZZ_CHECK(last.consumed == n, "need_more without taking everything");
        off += n;
        if (n == 0) break;
    }
    FUZZ_CHECK(last.status == rw.status, "split changes the status");
    FUZZ_CHECK(consumed == rw.consumed, "split changes the bytes consumed");
    FUZZ_CHECK(last.http_status == rw.http_status, "split changes the error status");
    FUZZ_CHECK(whole.bytes_consumed() == parts.bytes_consumed(), "split changes bytes_consumed()");
    // Inert after the end: no more bytes are taken.
    if (rw.status != ws::http_parse_status::need_more) {
        const auto again = whole.feed("GET / HTTP/1.1\r\n\r\n");
        FUZZ_CHECK(again.consumed == 0 && again.status == rw.status, "parser not inert after the end");
    }

    switch (rw.status) {
        case ws::http_parse_status::need_more:
            FUZZ_CHECK(rw.consumed == text.size(), "need_more without taking everything");
            FUZZ_CHECK(text.size() <= max_bytes, "need_more past max_header_bytes");
            return 0;
        case ws::http_parse_status::error:
            FUZZ_CHECK(rw.http_status == 400 || rw.http_status == 431 || rw.http_status == 501 || rw.http_status == 505,
                       "unexpected error status " + std::to_string(rw.http_status));
            FUZZ_CHECK(rw.consumed <= text.size() && rw.consumed <= max_bytes, "error consumed too much");
            return 0;
        case ws::http_parse_status::done:
            break;
    }
    check_clean_head(text.substr(0, rw.consumed), max_bytes);
    const ws::http_request& a = whole.request();
    const ws::http_request& b = parts.request();
    FUZZ_CHECK(a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query &&
                   a.version_minor == b.version_minor && a.headers.size() == b.headers.size(),
               "split changes the request");
    for (std::size_t i = 0; i < a.headers.size(); ++i)
        FUZZ_CHECK(a.headers[i].name == b.headers[i].name && a.headers[i].value == b.headers[i].value,
                   "split changes a field");
    FUZZ_CHECK(is_token(a.method), "method not a token");
    FUZZ_CHECK(a.path == "*" || (!a.path.empty() && a.path.front() == '/'), "path is neither * nor absolute");
    FUZZ_CHECK(a.version_minor >= 0 && a.version_minor <= 9, "version out of range");
    FUZZ_CHECK(a.target.find('#') == std::string::npos, "fragment accepted in the target");
    FUZZ_CHECK(count_fields(a, "Host") <= 1, "several Host fields accepted");
    FUZZ_CHECK(count_fields(a, "Transfer-Encoding") == 0, "Transfer-Encoding accepted");
    check_fields(a.headers, max_headers);
    check_query(a);
    check_upgrade_result(a);
    return 0;
}
