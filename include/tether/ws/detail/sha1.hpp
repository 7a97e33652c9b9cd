// tether/ws/detail/sha1.hpp — SHA-1 (FIPS 180-4 §6.1), only for the opening
// handshake's Sec-WebSocket-Accept (RFC 6455 §4.2.2 item 5.4).
//
// SHA-1 is broken for collision resistance; RFC 6455 uses it only to prove
// that the server read the client's key (not for security), so that is
// irrelevant here. Never use this for anything else.
//
// Theory of operation: the classic Merkle–Damgård loop. `sha1_hasher`
// buffers at most one 64-byte block, so hashing "key + GUID" needs no
// concatenated temporary: update(key); update(guid); finish().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace tether::ws::detail {

class sha1_hasher {
public:
    using digest_type = std::array<std::uint8_t, 20>;

    sha1_hasher() noexcept { reset(); }

    void reset() noexcept {
        // FIPS 180-4 §5.3.1 initial hash value.
        h_[0] = 0x67452301u;
        h_[1] = 0xEFCDAB89u;
        h_[2] = 0x98BADCFEu;
        h_[3] = 0x10325476u;
        h_[4] = 0xC3D2E1F0u;
        total_bytes_ = 0;
        used_ = 0;
    }

    void update(std::span<const std::uint8_t> data) noexcept {
        std::size_t i = 0;
        total_bytes_ += data.size();
        if (used_ != 0) {
            while (i < data.size() && used_ < 64) block_[used_++] = data[i++];
            if (used_ < 64) return;
            compress(block_.data());
            used_ = 0;
        }
        for (; data.size() - i >= 64; i += 64) compress(data.data() + i);
        while (i < data.size()) block_[used_++] = data[i++];
    }

    void update(std::string_view s) noexcept {
        update(std::span<const std::uint8_t>(
            reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
    }

    /// Pads (FIPS 180-4 §5.1.1), returns the digest, and resets the hasher.
    digest_type finish() noexcept {
        const std::uint64_t bit_len = total_bytes_ * 8u;
        block_[used_++] = 0x80;
        if (used_ > 56) {
            while (used_ < 64) block_[used_++] = 0;
            compress(block_.data());
            used_ = 0;
        }
        while (used_ < 56) block_[used_++] = 0;
        for (int k = 7; k >= 0; --k)
            block_[used_++] = static_cast<std::uint8_t>(bit_len >> (8 * k));
        compress(block_.data());

        digest_type out{};
        for (std::size_t w = 0; w < 5; ++w)
            for (std::size_t b = 0; b < 4; ++b)
                out[w * 4 + b] = static_cast<std::uint8_t>(h_[w] >> (24 - 8 * b));
        reset();
        return out;
    }

private:
    static constexpr std::uint32_t rotl(std::uint32_t x, int n) noexcept {
        return (x << n) | (x >> (32 - n));
    }

    // FIPS 180-4 §6.1.2, with the 16-word rolling schedule (§6.1.3).
    void compress(const std::uint8_t* p) noexcept {
        std::uint32_t w[16];
        for (std::size_t t = 0; t < 16; ++t)
            w[t] = (std::uint32_t{p[4 * t]} << 24) | (std::uint32_t{p[4 * t + 1]} << 16) |
                   (std::uint32_t{p[4 * t + 2]} << 8) | std::uint32_t{p[4 * t + 3]};
        std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4];
        for (std::size_t t = 0; t < 80; ++t) {
            std::uint32_t wt;
            if (t < 16) {
                wt = w[t];
            } else {
                wt = rotl(w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15], 1);
                w[t & 15] = wt;
            }
            std::uint32_t f, k;
            if (t < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999u;
            } else if (t < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1u;
            } else if (t < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDCu;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6u;
            }
            const std::uint32_t tmp = rotl(a, 5) + f + e + k + wt;
            e = d;
            d = c;
            c = rotl(b, 30);
            b = a;
            a = tmp;
        }
        h_[0] += a;
        h_[1] += b;
        h_[2] += c;
        h_[3] += d;
        h_[4] += e;
    }

    std::uint32_t h_[5]{};
    std::array<std::uint8_t, 64> block_{};
    std::uint64_t total_bytes_ = 0;
    std::size_t used_ = 0;
};

inline std::array<std::uint8_t, 20> sha1(std::span<const std::uint8_t> data) noexcept {
    sha1_hasher h;
    h.update(data);
    return h.finish();
}

inline std::array<std::uint8_t, 20> sha1(std::string_view data) noexcept {
    sha1_hasher h;
    h.update(data);
    return h.finish();
}

}  // namespace tether::ws::detail
