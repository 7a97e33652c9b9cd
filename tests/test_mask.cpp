// Tests for tether/ws/mask.hpp: RFC 6455 §5.3 masking against a
// byte-at-a-time reference, at every alignment, phase and split.
#include <doctest/doctest.h>

#include <tether/core/random.hpp>
#include <tether/ws/mask.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

using tether::ws::apply_mask;
using tether::ws::mask_copy;
using tether::ws::mask_key;

namespace {

// The RFC's definition, literally.
void reference_mask(std::span<std::uint8_t> data, const mask_key& key, std::size_t phase) {
    for (std::size_t i = 0; i < data.size(); ++i) data[i] ^= key[(phase + i) % 4];
}

bool same(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
    return std::equal(a, a + n, b);
}

mask_key random_key(tether::rng& r) {
    const std::uint32_t k = r.next_u32();
    return {static_cast<std::uint8_t>(k), static_cast<std::uint8_t>(k >> 8),
            static_cast<std::uint8_t>(k >> 16), static_cast<std::uint8_t>(k >> 24)};
}

// A span of `size` bytes whose start address is `align` modulo 64, carved
// from `storage` (resized as needed), filled with random bytes.
std::span<std::uint8_t> aligned_window(std::vector<std::uint8_t>& storage, std::size_t size,
                                       std::size_t align, tether::rng& r) {
    storage.assign(size + 128, 0);
    const auto base = reinterpret_cast<std::uintptr_t>(storage.data());
    // At least one byte before the window, so tests can put a sentinel there.
    const std::size_t off = 1 + (align + 64 - ((base + 1) % 64)) % 64;
    std::span<std::uint8_t> w(storage.data() + off, size);
    r.fill(w);
    return w;
}

std::vector<std::size_t> test_sizes() {
    std::vector<std::size_t> sizes;
    for (std::size_t n = 0; n <= 300; ++n) sizes.push_back(n);
    for (std::size_t n : {511u, 1024u, 4093u, 65536u, 65537u + 64u})
        sizes.push_back(n);
    return sizes;
}

}  // namespace

TEST_CASE("mask: RFC 6455 §5.7 masked \"Hello\"") {
    std::array<std::uint8_t, 5> payload{0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const mask_key key{0x37, 0xfa, 0x21, 0x3d};
    CHECK(apply_mask(payload, key) == 1);
    CHECK(std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()) ==
          "Hello");

    // The integer overload reads the key as the big-endian wire field.
    std::array<std::uint8_t, 5> again{0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK(apply_mask(again, std::uint32_t{0x37fa213d}) == 1);
    CHECK(again == payload);
    CHECK(tether::ws::to_mask_key(0x37fa213d) == key);

    // And masking "Hello" gives the wire bytes, via mask_copy too.
    const std::array<std::uint8_t, 5> hello{'H', 'e', 'l', 'l', 'o'};
    std::array<std::uint8_t, 5> out{};
    CHECK(mask_copy(out, hello, key) == 1);
    CHECK(out == std::array<std::uint8_t, 5>{0x7f, 0x9f, 0x4d, 0x51, 0x58});
}

TEST_CASE("mask: empty input returns the phase unchanged") {
    const mask_key key{1, 2, 3, 4};
    for (std::size_t ph = 0; ph < 4; ++ph) {
        CHECK(apply_mask(std::span<std::uint8_t>{}, key, ph) == ph);
        CHECK(mask_copy(std::span<std::uint8_t>{}, std::span<const std::uint8_t>{}, key, ph) == ph);
    }
}

TEST_CASE("mask: apply_mask matches the reference at every size, alignment and phase") {
    tether::rng r(0x6d61736b01);
    std::vector<std::uint8_t> storage;
    std::vector<std::uint8_t> expect;
    for (const std::size_t n : test_sizes()) {
        // Large sizes: fewer alignments to keep the test quick, but still
        // every residue mod 32 for at least one phase.
        const bool big = n > 300;
        for (std::size_t align = 0; align < 32; ++align) {
            for (std::size_t phase = 0; phase < 4; ++phase) {
                if (big && phase != align % 4) continue;
                const mask_key key = random_key(r);
                auto w = aligned_window(storage, n, align, r);
                // Sentinels right outside the window must survive.
                const std::uint8_t before = w.data()[-1];
                const std::uint8_t after = w.data()[n];
                expect.assign(w.begin(), w.end());
                reference_mask(expect, key, phase);
                const std::size_t next = apply_mask(w, key, phase);
                CHECK(next == (phase + n) % 4);
                CHECK_MESSAGE(same(w.data(), expect.data(), n),
                              "n=" << n << " align=" << align << " phase=" << phase);
                CHECK(w.data()[-1] == before);
                CHECK(w.data()[n] == after);
            }
        }
    }
}

TEST_CASE("mask: chunked application equals one call") {
    tether::rng r(0x6d61736b02);
    std::vector<std::uint8_t> storage;
    for (int iter = 0; iter < 2000; ++iter) {
        const std::size_t n = static_cast<std::size_t>(r.below(iter < 1900 ? 400 : 20000));
        const std::size_t align = static_cast<std::size_t>(r.below(32));
        const std::size_t phase0 = static_cast<std::size_t>(r.below(4));
        const mask_key key = random_key(r);
        auto w = aligned_window(storage, n, align, r);
        std::vector<std::uint8_t> whole(w.begin(), w.end());
        apply_mask(whole, key, phase0);

        // Random split points, including empty chunks.
        std::size_t pos = 0;
        std::size_t phase = phase0;
        while (pos < n) {
            const std::size_t len =
                std::min<std::size_t>(n - pos, static_cast<std::size_t>(r.below(r.below(2) ? 9 : 300)));
            phase = apply_mask(w.subspan(pos, len), key, phase);
            pos += len;
        }
        CHECK(phase == (phase0 + n) % 4);
        CHECK(same(w.data(), whole.data(), n));
    }
}

TEST_CASE("mask: mask_copy equals copy + mask and leaves the source alone") {
    tether::rng r(0x6d61736b03);
    std::vector<std::uint8_t> src_store;
    std::vector<std::uint8_t> dst_store;
    for (const std::size_t n : test_sizes()) {
        for (int rep = 0; rep < (n > 300 ? 2 : 8); ++rep) {
            const std::size_t sa = static_cast<std::size_t>(r.below(32));
            const std::size_t da = static_cast<std::size_t>(r.below(32));
            const std::size_t phase = static_cast<std::size_t>(r.below(4));
            const mask_key key = random_key(r);
            auto src = aligned_window(src_store, n, sa, r);
            auto dst = aligned_window(dst_store, n, da, r);
            const std::uint8_t after = dst.data()[n];
            std::vector<std::uint8_t> orig(src.begin(), src.end());
            std::vector<std::uint8_t> expect(src.begin(), src.end());
            reference_mask(expect, key, phase);

            CHECK(mask_copy(dst, src, key, phase) == (phase + n) % 4);
            CHECK(same(dst.data(), expect.data(), n));
            CHECK(same(src.data(), orig.data(), n));
            CHECK(dst.data()[n] == after);
        }
    }
}

TEST_CASE("mask: mask_copy in place and with a short destination") {
    tether::rng r(0x6d61736b04);
    std::vector<std::uint8_t> buf(1000);
    r.fill(buf);
    std::vector<std::uint8_t> expect = buf;
    const mask_key key = random_key(r);
    reference_mask(expect, key, 3);
    CHECK(mask_copy(buf, buf, key, 3) == (3 + 1000) % 4);
    CHECK(buf == expect);

    // dst shorter than src: only dst.size() bytes are written.
    std::vector<std::uint8_t> dst(10, 0xAA);
    const std::size_t ph = mask_copy(std::span<std::uint8_t>(dst).first(7), buf, key, 1);
    CHECK(ph == (1 + 7) % 4);
    for (std::size_t i = 0; i < 7; ++i) CHECK(dst[i] == (buf[i] ^ key[(1 + i) % 4]));
    for (std::size_t i = 7; i < 10; ++i) CHECK(dst[i] == 0xAA);
}

TEST_CASE("mask: masking twice is the identity") {
    tether::rng r(0x6d61736b05);
    std::vector<std::uint8_t> storage;
    for (const std::size_t n : test_sizes()) {
        const std::size_t align = static_cast<std::size_t>(r.below(32));
        const std::size_t phase = static_cast<std::size_t>(r.below(4));
        const mask_key key = random_key(r);
        auto w = aligned_window(storage, n, align, r);
        std::vector<std::uint8_t> orig(w.begin(), w.end());
        apply_mask(w, key, phase);
        if (n >= 8 && key != mask_key{}) CHECK(!same(w.data(), orig.data(), n));  // it did something
        apply_mask(w, key, phase);
        CHECK(same(w.data(), orig.data(), n));
    }
}
