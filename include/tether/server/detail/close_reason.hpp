// tether/server/detail/close_reason.hpp — the JSON close reasons of
// PROTOCOL.md §4: `{"reason":"restart","retry_after_ms":1830}`, at most 123
// bytes (RFC 6455 §5.5: a control frame payload is at most 125 bytes, two of
// which are the code). Written into a fixed buffer: no allocation, and the
// bound holds by construction (a short ASCII word plus at most 16 digits).
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace tether::server::detail {

struct close_reason {
    std::array<char, 123> buf{};
    std::size_t len = 0;
    std::string_view view() const noexcept { return {buf.data(), len}; }
};

/// `why` must be a short ASCII word without quotes or backslashes.
inline close_reason make_close_reason(std::string_view why, std::int64_t retry_after_ms) noexcept {
    close_reason r;
    auto put = [&](std::string_view s) {
        const std::size_t n = s.size() < r.buf.size() - r.len ? s.size() : r.buf.size() - r.len;
        std::memcpy(r.buf.data() + r.len, s.data(), n);
        r.len += n;
    };
    if (why.size() > 64) why = why.substr(0, 64);
    if (retry_after_ms < 0) retry_after_ms = 0;
    put("{\"reason\":\"");
    put(why);
    put("\",\"retry_after_ms\":");
    char num[24];
    const auto res = std::to_chars(num, num + sizeof num, retry_after_ms);
    put({num, static_cast<std::size_t>(res.ptr - num)});
    put("}");
    return r;
}

/// Milliseconds, rounded up (a client waiting that long is never early).
inline std::int64_t ceil_ms(std::int64_t ns) noexcept { return ns <= 0 ? 0 : (ns + 999'999) / 1'000'000; }

}  // namespace tether::server::detail
