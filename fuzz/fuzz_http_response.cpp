// fuzz_http_response — the client half of the opening handshake:
// ws::http_response_parser and client_handshake::validate().
//
// Input: [flags][seed][split count n][n split sizes][response bytes...]
//   flags bits 0-1: max_header_bytes in {8192, 64, 300, 1024}
//   flags bits 2-3: subprotocols offered: none, {tether.v1}, {a, b}, {x}
//   flags bits 4-5: max_headers in {64, 1, 4, 200}
// In the response bytes the two-byte marker "@A" is replaced by the
// Sec-WebSocket-Accept the handshake expects (and "@K" by its key), so the
// fuzzer can reach every branch of validate(), success included.
//
// Invariants: split-independence of the parser (as in fuzz_http_request),
// a clean `done` head, and validate() equal to a reference implementation of
// RFC 6455 §4.1's client checks written here from the RFC (same order of
// checks, so the same error), with the expected accept value recomputed
// from scratch.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "tether/core/random.hpp"
#include "tether/ws/handshake.hpp"
#include "tether/ws/http.hpp"

namespace {

namespace ws = tether::ws;
using fuzz::printable;

constexpr std::size_t k_max_bytes[] = {8192, 64, 300, 1024};
constexpr std::size_t k_max_headers[] = {64, 1, 4, 200};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::size_t count_fields(const ws::http_response& r, std::string_view name) {
    std::size_t n = 0;
    for (const auto& h : r.headers) n += iequals(h.name, name);
    return n;
}

const std::string* first_field(const ws::http_response& r, std::string_view name) {
    for (const auto& h : r.headers)
        if (iequals(h.name, name)) return &h.value;
    return nullptr;
}

bool any_list_element(const ws::http_response& r, std::string_view name) {
    for (const auto& h : r.headers) {
        if (!iequals(h.name, name)) continue;
        std::string_view v = h.value;
        while (true) {
            const std::size_t comma = v.find(',');
            std::string_view e = v.substr(0, comma);
            while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
            while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
            if (!e.empty()) return true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

/// RFC 6455 §4.1 "If the server's response does not conform ...", items 1-6.
ws::handshake_error reference_validate(const ws::http_response& r, std::string_view expected_accept,
                                       const std::vector<std::string>& offered) {
    using E = ws::handshake_error;
    if (r.status != 101) return E::bad_status;
    if (!fuzz::list_has(r.headers, "Upgrade", "websocket")) return E::no_upgrade;
    if (!fuzz::list_has(r.headers, "Connection", "upgrade")) return E::no_connection;
    const std::size_t accepts = count_fields(r, "Sec-WebSocket-Accept");
    if (accepts == 0) return E::no_accept;
    if (accepts > 1 || *first_field(r, "Sec-WebSocket-Accept") != expected_accept) return E::bad_accept;
    if (any_list_element(r, "Sec-WebSocket-Extensions")) return E::unexpected_extension;
    const std::size_t protos = count_fields(r, "Sec-WebSocket-Protocol");
    if (protos > 1) return E::bad_subprotocol;
    if (protos == 1) {
        const std::string& p = *first_field(r, "Sec-WebSocket-Protocol");
        bool found = false;
        for (const auto& o : offered) found = found || o == p;
        if (!found) return E::bad_subprotocol;
    }
    return E::ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::byte_source src(data, size);
    const std::uint8_t flags = src.u8();
    const std::size_t max_bytes = k_max_bytes[flags & 3];
    const std::size_t max_headers = k_max_headers[(flags >> 4) & 3];
    std::vector<std::string> offered;
    switch ((flags >> 2) & 3) {
        case 1: offered = {"tether.v1"}; break;
        case 2: offered = {"a", "b"}; break;
        case 3: offered = {"x"}; break;
        default: break;
    }
    tether::rng rng(src.u8());
    std::vector<std::size_t> splits;
    const std::size_t nsplits = src.u8() % 16;
    for (std::size_t i = 0; i < nsplits; ++i) splits.push_back(static_cast<std::size_t>(src.u8()) + 1);

    ws::client_handshake hs;
    {
        ws::http_response none;
        FUZZ_CHECK(hs.validate(none) == ws::handshake_error::not_started, "validate() before build_request()");
    }
    const std::string req = hs.build_request("example.com:8080", "/chat?x=1", offered, {}, rng);
    FUZZ_CHECK(!req.empty(), "build_request refused valid arguments");
    const std::string key(hs.key());
    FUZZ_CHECK(fuzz::is_canonical_key(key), "generated key is not base64 of 16 bytes");
    const std::string accept = fuzz::websocket_accept(key);
    FUZZ_CHECK(hs.expected_accept() == accept, "expected_accept() is not SHA-1(key + GUID)");
    {
        // Our own request must be a valid upgrade for a server.
        ws::http_request_parser p;
        FUZZ_CHECK(p.feed(req).status == ws::http_parse_status::done, "our request does not parse");
        const auto c = ws::check_upgrade(p.request());
        FUZZ_CHECK(c.ok() && c.key == key && c.offered_subprotocols == offered, "our request is not a valid upgrade");
    }

    // Substitute the markers.
    const auto raw = src.rest();
    std::string text;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '@' && i + 1 < raw.size() && (raw[i + 1] == 'A' || raw[i + 1] == 'K')) {
            text.append(raw[i + 1] == 'A' ? accept : key);
            ++i;
        } else {
            text.push_back(static_cast<char>(raw[i]));
        }
    }

    ws::http_response_parser whole(max_bytes, max_headers);
    const auto rw = whole.feed(text);
    ws::http_response_parser parts(max_bytes, max_headers);
    ws::http_parse_result last{};
    std::size_t consumed = 0, off = 0, k = 0;
    while (true) {
        const std::size_t n = splits.empty() ? text.size() : std::min(splits[k++ % splits.size()], text.size() - off);
        last = parts.feed(std::string_view(text).substr(off, n));
        consumed += last.consumed;
        if (last.status != ws::http_parse_status::need_more) break;
        FUZZ_CHECK(last.consumed == n, "need_more without taking everything");
        off += n;
        if (n == 0 || off >= text.size()) break;
    }
    FUZZ_CHECK(last.status == rw.status && consumed == rw.consumed && last.http_status == rw.http_status,
               "split changes the result");

    if (rw.status == ws::http_parse_status::need_more) {
        FUZZ_CHECK(text.size() <= max_bytes, "need_more past max_header_bytes");
        return 0;
    }
    if (rw.status == ws::http_parse_status::error) {
        FUZZ_CHECK(rw.http_status == 400 || rw.http_status == 431 || rw.http_status == 505, "unexpected error status");
        return 0;
    }
    const std::string_view head = std::string_view(text).substr(0, rw.consumed);
    FUZZ_CHECK(head.size() <= max_bytes && head.size() >= 4 && head.substr(head.size() - 4) == "\r\n\r\n",
               "done head malformed: " + printable(head));
    for (std::size_t i = 0; i < head.size(); ++i) {
        const auto c = static_cast<unsigned char>(head[i]);
        if (c == '\r') FUZZ_CHECK(i + 1 < head.size() && head[i + 1] == '\n', "bare CR accepted");
        if (c == '\n') FUZZ_CHECK(i > 0 && head[i - 1] == '\r', "bare LF accepted");
        FUZZ_CHECK(c >= 0x20 || c == '\t' || c == '\r' || c == '\n', "CTL accepted");
    }
    const ws::http_response& res = whole.response();
    const ws::http_response& res2 = parts.response();
    FUZZ_CHECK(res.status == res2.status && res.reason == res2.reason && res.headers.size() == res2.headers.size(),
               "split changes the response");
    for (std::size_t i = 0; i < res.headers.size(); ++i)
        FUZZ_CHECK(res.headers[i].name == res2.headers[i].name && res.headers[i].value == res2.headers[i].value,
                   "split changes a field");
    FUZZ_CHECK(res.status >= 100 && res.status <= 599, "status out of range");
    FUZZ_CHECK(res.headers.size() <= max_headers, "more fields than max_headers");

    const auto expected = reference_validate(res, accept, offered);
    const std::error_code got = hs.validate(res);
    FUZZ_CHECK(got == ws::make_error_code(expected),
               "validate() = " + got.message() + ", reference = " + ws::make_error_code(expected).message());
    if (expected == ws::handshake_error::ok) {
        const std::string* p = first_field(res, "Sec-WebSocket-Protocol");
        FUZZ_CHECK(hs.selected_subprotocol() == (p ? std::string_view(*p) : std::string_view()),
                   "selected_subprotocol() wrong");
    } else {
        FUZZ_CHECK(hs.selected_subprotocol().empty(), "a subprotocol selected on failure");
    }
    return 0;
}
