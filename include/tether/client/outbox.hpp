// tether/client/outbox.hpp — the client's bounded offline outbox
// (PROTOCOL.md §6: kept while disconnected, bounded, never a silent drop;
// unacked messages are sent again with the same id).
//
// Theory of operation
// -------------------
// The outbox is a ring of entries in submission order. Each entry owns the
// message's id, its room and the complete serialized envelope, built once
// by the caller straight into the entry's string and resent verbatim, so a
// resend after a reconnect is byte-identical and the server's deduplication
// by (sender, id) makes it harmless.
//
// Entries are either `queued` (must go out on the current connection) or
// `in_flight` (went out at `sent_at`, awaiting server.ack). An ack or a
// refusal turns an entry into a tombstone (`done`); tombstones at the head
// are popped at once, ones in the middle are squeezed out by compaction when
// the ring runs out of slots. Entries never move otherwise, and a slot's
// strings keep their capacity when the slot is reused, so once the ring has
// grown to its working size a send allocates nothing (unless a message is
// longer than any the slot held before).
//
// Two bounds, both configurable, both counting only live entries: a number
// of messages and a number of bytes (the serialized text). push() refuses
// past either; the client turns that into client_error::outbox_full.
//
// The flush cursor (`flush_off_`) is an offset from the head before which no
// entry is queued, so finding the next message to send is amortised O(1) in
// the common case where sends only append; requeue() moves it back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tether/core/time.hpp"

namespace tether::client {

struct outbox_config {
    std::size_t max_messages = 1000;
    std::size_t max_bytes = std::size_t{1} << 20;  ///< sum of the serialized texts
};

enum class entry_state : std::uint8_t {
    queued,     ///< to be sent on the current (or next) connection
    in_flight,  ///< sent at sent_at on the current connection, no ack yet
    done,       ///< acked or refused: a tombstone awaiting reuse
};

struct outbox_entry {
    std::string id;
    std::string room;
    std::string text;            ///< the complete envelope, sent verbatim
    time_point sent_at{};        ///< last transmission (meaningful when in_flight)
    std::uint64_t seq = 0;       ///< submission order, strictly increasing
    entry_state state = entry_state::done;
};

class outbox {
public:
    explicit outbox(outbox_config cfg = {}) : cfg_(cfg) {}

    const outbox_config& config() const noexcept { return cfg_; }
    /// Messages not yet acked (queued + in flight).
    std::size_t size() const noexcept { return live_; }
    bool empty() const noexcept { return live_ == 0; }
    std::size_t bytes() const noexcept { return bytes_; }
    std::size_t in_flight() const noexcept { return in_flight_; }
    /// The seq the next push() will get.
    std::uint64_t next_seq() const noexcept { return next_seq_; }

    /// Would a message of `text_bytes` fit right now?
    bool fits(std::size_t text_bytes) const noexcept {
        return live_ < cfg_.max_messages && text_bytes <= cfg_.max_bytes - bytes_;
    }

    /// Appends a queued entry whose text `build(std::string&)` writes into
    /// the (cleared) slot string. Returns the entry, or nullptr when either
    /// bound would be passed (nothing is stored then).
    template <class Build>
    outbox_entry* push(std::string_view id, std::string_view room, Build&& build) {
        if (live_ >= cfg_.max_messages) return nullptr;
        if (used_ == slots_.size()) {
            if (used_ > live_)
                compact();
            else
                grow();
        }
        outbox_entry& e = at(used_);
        e.text.clear();
        build(e.text);
        if (e.text.size() > cfg_.max_bytes - bytes_) return nullptr;  // slot stays free
        e.id.assign(id);
        e.room.assign(room);
        e.seq = next_seq_++;
        e.state = entry_state::queued;
        e.sent_at = time_point{};
        ++used_;
        ++live_;
        bytes_ += e.text.size();
        return &e;
    }

    /// The live entry with this id, or nullptr. Acks nearly always name the
    /// oldest entry, so the scan from the head stops at once.
    outbox_entry* find(std::string_view id) noexcept {
        for (std::size_t i = 0; i < used_; ++i) {
            outbox_entry& e = at(i);
            if (e.state != entry_state::done && e.id == id) return &e;
        }
        return nullptr;
    }

    /// The oldest queued entry (nullptr if none). Does not change its state.
    outbox_entry* next_queued() noexcept {
        for (; flush_off_ < used_; ++flush_off_) {
            outbox_entry& e = at(flush_off_);
            if (e.state == entry_state::queued) return &e;
        }
        return nullptr;
    }

    /// The entry went out now.
    void mark_sent(outbox_entry& e, time_point now) noexcept {
        if (e.state == entry_state::queued) ++in_flight_;
        e.state = entry_state::in_flight;
        e.sent_at = now;
    }

    /// Send the entry again (ack timeout, rate limit). It keeps its place.
    void requeue(outbox_entry& e) noexcept {
        if (e.state != entry_state::in_flight) return;
        e.state = entry_state::queued;
        --in_flight_;
        const std::size_t off = offset_of(e);
        if (off < flush_off_) flush_off_ = off;
    }

    /// The connection is gone: everything in flight must be sent again.
    void requeue_all() noexcept {
        for (std::size_t i = 0; i < used_ && in_flight_ > 0; ++i) {
            outbox_entry& e = at(i);
            if (e.state == entry_state::in_flight) {
                e.state = entry_state::queued;
                --in_flight_;
            }
        }
        flush_off_ = 0;
    }

    /// Requeues every in-flight entry sent at or before `cutoff`; returns how many.
    std::size_t requeue_sent_before(time_point cutoff) noexcept {
        std::size_t n = 0;
        std::size_t seen = 0;
        const std::size_t total = in_flight_;
        for (std::size_t i = 0; i < used_ && seen < total; ++i) {
            outbox_entry& e = at(i);
            if (e.state != entry_state::in_flight) continue;
            ++seen;
            if (e.sent_at <= cutoff) {
                requeue(e);
                ++n;
            }
        }
        return n;
    }

    /// Earliest sent_at among in-flight entries (tether::never if none). The
    /// scan stops once every in-flight entry was seen; they sit near the head.
    time_point earliest_in_flight() const noexcept {
        time_point t = never;
        std::size_t seen = 0;
        for (std::size_t i = 0; i < used_ && seen < in_flight_; ++i) {
            const outbox_entry& e = at(i);
            if (e.state != entry_state::in_flight) continue;
            ++seen;
            if (e.sent_at < t) t = e.sent_at;
        }
        return t;
    }

    /// Acked or refused: the entry leaves the outbox. Its strings stay
    /// readable until the next push().
    void remove(outbox_entry& e) noexcept {
        if (e.state == entry_state::done) return;
        if (e.state == entry_state::in_flight) --in_flight_;
        e.state = entry_state::done;
        --live_;
        bytes_ -= e.text.size();
        while (used_ > 0 && at(0).state == entry_state::done) {
            head_ = (head_ + 1) % slots_.size();
            --used_;
            if (flush_off_ > 0) --flush_off_;
        }
    }

    /// Calls f(entry) for each live entry, oldest first. f must not push or
    /// remove.
    template <class F>
    void for_each(F&& f) const {
        for (std::size_t i = 0; i < used_; ++i)
            if (at(i).state != entry_state::done) f(at(i));
    }
    template <class F>
    void for_each(F&& f) {
        for (std::size_t i = 0; i < used_; ++i)
            if (at(i).state != entry_state::done) f(at(i));
    }

    /// Slots allocated so far (for tests of the reuse).
    std::size_t capacity() const noexcept { return slots_.size(); }

private:
    outbox_entry& at(std::size_t off) noexcept { return slots_[(head_ + off) % slots_.size()]; }
    const outbox_entry& at(std::size_t off) const noexcept { return slots_[(head_ + off) % slots_.size()]; }

    std::size_t offset_of(const outbox_entry& e) const noexcept {
        const auto idx = static_cast<std::size_t>(&e - slots_.data());
        return (idx + slots_.size() - head_) % slots_.size();
    }

    // Squeeze tombstones out, keeping order; swapping keeps every string's
    // capacity in the ring.
    void compact() noexcept {
        std::size_t w = 0;
        for (std::size_t i = 0; i < used_; ++i) {
            if (at(i).state == entry_state::done) continue;
            if (w != i) std::swap(at(w), at(i));
            ++w;
        }
        used_ = w;
        flush_off_ = 0;
        while (flush_off_ < used_ && at(flush_off_).state != entry_state::queued) ++flush_off_;
    }

    // Only called when every slot holds a live entry and live_ < max_messages.
    void grow() {
        std::size_t n = slots_.empty() ? 8 : slots_.size() * 2;
        if (n > cfg_.max_messages) n = cfg_.max_messages;
        if (n <= slots_.size()) n = slots_.size() + 1;
        std::vector<outbox_entry> next(n);
        for (std::size_t i = 0; i < used_; ++i) next[i] = std::move(at(i));
        slots_ = std::move(next);
        head_ = 0;
    }

    outbox_config cfg_;
    std::vector<outbox_entry> slots_;
    std::size_t head_ = 0;       ///< slot index of the oldest entry
    std::size_t used_ = 0;       ///< slots in use from the head, tombstones included
    std::size_t live_ = 0;       ///< queued + in flight
    std::size_t in_flight_ = 0;
    std::size_t bytes_ = 0;
    std::size_t flush_off_ = 0;  ///< no queued entry before this offset
    std::uint64_t next_seq_ = 1;
};

}  // namespace tether::client
