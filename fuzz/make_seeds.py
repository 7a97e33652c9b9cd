#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed).

Run from anywhere: python3 fuzz/make_seeds.py. The files are small,
hand-made, valid (or deliberately borderline) inputs; their byte layouts
follow the input formats documented at the top of each fuzz_<target>.cpp.
Re-run it after changing a harness's input decoding, then commit.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3 sample key


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


def mask(payload, key=b"\x37\xfa\x21\x3d"):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frame(first, payload, masked, key=b"\x37\xfa\x21\x3d"):
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        hdr = bytes([first, m | n])
    elif n <= 0xFFFF:
        hdr = bytes([first, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([first, m | 127]) + struct.pack(">Q", n)
    if masked:
        return hdr + key + mask(payload, key)
    return hdr + payload


# ---------------------------------------------------------------------------
# fuzz_http_request: [flags][n][n sizes][request]

def http_request():
    browser = (
        "GET /chat?session_id=abc&token=t%2Bk HTTP/1.1\r\n"
        "Host: example.com:8080\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        "Pragma: no-cache\r\n"
        "Cache-Control: no-cache\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
        "Upgrade: websocket\r\n"
        "Origin: https://example.com\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Accept-Encoding: gzip, deflate, br\r\n"
        "Accept-Language: en-US,en;q=0.9\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "Sec-WebSocket-Protocol: tether.v1, chat\r\n"
        "\r\n"
    )
    rfc = (
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
        "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    write("http_request", "browser_upgrade", bytes([0, 0]) + browser.encode())
    write("http_request", "rfc6455_1_2", bytes([0, 3, 0, 6, 40]) + rfc.encode())
    write("http_request", "absolute_form", bytes([0, 0]) + rfc.replace("GET /chat", "GET ws://server.example.com/chat?x=%20").encode())
    write("http_request", "version_8", bytes([0, 0]) + rfc.replace("Version: 13", "Version: 8").encode())
    write("http_request", "post_http10", bytes([0, 0]) + b"\r\nPOST /x HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
    write("http_request", "obs_fold", bytes([0, 0]) + b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n")
    write("http_request", "small_bounds", bytes([0b0101, 1, 0]) + rfc.encode())
    write("http_request", "byte_by_byte", bytes([0, 1, 0]) + rfc.encode())


# ---------------------------------------------------------------------------
# fuzz_http_response: [flags][seed][n][n sizes][response]; "@A" = accept, "@K" = key

def http_response():
    ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: @A\r\n"
    write("http_response", "accept", bytes([0, 1, 0]) + (ok + "\r\n").encode())
    write("http_response", "accept_subprotocol", bytes([0b0100, 2, 2, 9, 30]) + (ok + "Sec-WebSocket-Protocol: tether.v1\r\n\r\n").encode())
    write("http_response", "extension", bytes([0, 3, 0]) + (ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n").encode())
    write("http_response", "unauthorized", bytes([0, 4, 0]) + b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n")
    write("http_response", "no_reason", bytes([0, 5, 0]) + b"HTTP/1.1 101\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-accept: @A\r\n\r\n")
    write("http_response", "two_accepts", bytes([0, 6, 0]) + (ok + "Sec-WebSocket-Accept: @A\r\n\r\n").encode())
    write("http_response", "bare_lf", bytes([0, 7, 0]) + b"HTTP/1.1 101 OK\nUpgrade: websocket\n\n")


# ---------------------------------------------------------------------------
# fuzz_frame_decoder: [cfg0][cfg1][close_at][n][n sizes][stream]
#   cfg0 bit0 client role, bit1 auto_pong, bit6 consume each chunk

SERVER, CLIENT, PONG, EACH = 0, 1, 2, 64


def fd(name, cfg0, stream, cfg1=0, close_at=0, splits=(), sched=None):
    # sched: one schedule byte per split (the "mixed" bit 4 of the split count byte)
    n = len(splits) | (0x10 if sched is not None else 0)
    extra = list(sched) if sched is not None else []
    assert sched is None or len(sched) == len(splits)
    write("frame_decoder", name, bytes([cfg0, cfg1, close_at, n] + [s - 1 for s in splits] + extra) + stream)


def frame_decoder():
    # RFC 6455 §5.7 examples
    fd("5_7_single_unmasked_text", CLIENT | PONG, bytes.fromhex("810548656c6c6f"))
    fd("5_7_single_masked_text", SERVER | PONG, bytes.fromhex("818537fa213d7f9f4d5158"))
    fd("5_7_fragmented_text", CLIENT | PONG, bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"), splits=(1, 2, 3))
    fd("5_7_unmasked_ping", CLIENT | PONG | EACH, bytes.fromhex("890548656c6c6f"))
    fd("5_7_masked_pong", SERVER | PONG, bytes.fromhex("8a8537fa213d7f9f4d5158"))
    fd("5_7_256_binary", CLIENT | PONG, bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(range(256)), splits=(7, 100))
    fd("5_7_64k_binary_header", CLIENT | PONG, bytes([0x82, 0x7F]) + struct.pack(">Q", 65536) + b"\x00" * 64)
    # fragments with a control frame in between, masked
    s = frame(0x01, b"frag", True) + frame(0x89, b"ping!", True) + frame(0x80, "ment \u00e9".encode(), True)
    fd("masked_fragments_ping", SERVER | PONG | EACH, s, splits=(3, 5))
    for code in (1000, 1001, 1014, 3000, 4999, 1005):
        fd(f"close_{code}", SERVER | PONG, frame(0x88, struct.pack(">H", code) + b"bye", True))
    fd("close_empty", CLIENT, frame(0x88, b"", False))
    fd("invalid_utf8_split", SERVER | PONG, frame(0x81, b"ok \xed\xa0\x80", True), splits=(7, 1))
    fd("too_big", SERVER | (2 << 2), frame(0x82, b"x" * 200, True))  # max_message_bytes 125
    fd("streamed_small_window", SERVER | (2 << 4) | (3 << 2) | PONG, frame(0x81, b"y" * 300, True), splits=(50,))
    fd("local_close", SERVER | PONG | 128, frame(0x81, b"a", True) + frame(0x88, b"\x03\xe8", True), cfg1=1 << 6, close_at=0, splits=(7,))
    fd("ping_flood_small_output", SERVER | PONG, frame(0x89, b"p" * 60, True) * 8, cfg1=2)
    req = (
        "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    fd("raw_handshake_then_frames", SERVER | PONG, req + frame(0x81, b"Hello", True) + frame(0x89, b"", True),
       cfg1=1 << 4, splits=(20, 60, 3))
    fd("raw_bad_request", SERVER, b"GET / HTTP/1.1\r\n\r\n", cfg1=1 << 4)
    fd("transport_close", CLIENT, frame(0x81, b"abc", False)[:3], cfg1=1 << 2)
    # Mixed schedules (split count bit 4): per chunk handle_bytes or read_buffer,
    # events left queued, shrink_buffers() and read_buffer() moves between.
    text = ("h\u00e9llo \u65e5\u672c \U0001F680 " * 120).encode()[:2500]
    small = b"".join(frame(0x81, b"m%d" % i, True) for i in range(20))
    NO_DRAIN, OTHER, SHRINK, MOVE, ONE_ON_BOUND = 2, 1, 8, 16, 64
    fd("mixed_large_frame_behind_run", SERVER | PONG, small + frame(0x81, text, True) + frame(0x89, b"p", True) + small,
       splits=(100, 37, 256, 1, 200), sched=(NO_DRAIN, OTHER | NO_DRAIN, 4 | ONE_ON_BOUND, SHRINK | MOVE, 128 | 32))
    bad = bytearray(text[:2000])
    bad[1100] = 0xFF
    fd("mixed_invalid_in_tail", SERVER | PONG, small + frame(0x81, bytes(bad), True),
       splits=(150, 256, 256, 9), sched=(NO_DRAIN, NO_DRAIN, OTHER | NO_DRAIN, 6))
    fd("mixed_client_runs", CLIENT | PONG, b"".join(frame(0x82 if i % 3 else 0x81, b"x" * (i % 7), False) for i in range(300)),
       splits=(255, 13, 64), sched=(NO_DRAIN, 128 | 4, MOVE | 2))


# ---------------------------------------------------------------------------
# fuzz_envelope: the text itself

def envelope():
    seeds = {
        "hello": '{"kind":"server.hello","protocol_version":1,"session_id":"0123456789abcdef0123456789abcdef","resumed":false,"heartbeat_ms":25000,"ts":1700000000000,"caps":["replay","ack","presence"],"limits":{"max_message_bytes":65536,"replay_window":1024,"dedup_window_ms":300000,"grace_ms":30000}}',
        "join": '{"kind":"client.join","room_id":"core","resume_from":41,"epoch":"e-7f3a","correlation_id":"j1"}',
        "joined_replay": '{"kind":"room.joined","room_id":"core","resume":"replay","replay_to":42,"head":42,"epoch":"e-7f3a","members":["neo","trinity"],"correlation_id":"j1"}',
        "joined_snapshot": '{"kind":"room.joined","room_id":"core","resume":"snapshot_required","reason":"truncated","head":42,"epoch":"e-7f3a","members":[]}',
        "publish": '{"kind":"chat.message","room_id":"core","id":"c9f2-17","payload":{"text":"hi \\u00e9\\ud83d\\ude00","n":[1,2.5e3,-0,null,true]}}',
        "event": '{"kind":"chat.message","room_id":"core","event_id":42,"sender":"neo","id":"c9f2-17","payload":{"text":"hi"},"ts":1700000000000}',
        "ack": '{"kind":"server.ack","id":"c9f2-17","room_id":"core","event_id":42,"status":"duplicate"}',
        "error": '{"kind":"server.error","code":"rate_limited","message":"slow down","correlation_id":"j1","id":"c9f2-17","retry_after_ms":1830}',
        "ping_heads": '{"kind":"server.ping","ts":1700000000000,"heads":{"core":42,"room.b":4.2e1,"x_y:z-1":0}}',
        "pong": '{"kind":"client.pong","ts":1700000000000}',
        "leave": '{"kind":"client.leave","room_id":"core","correlation_id":"l1"}',
        "presence": '{"kind":"presence.away","room_id":"core","user":"neo"}',
        "close_reason": '{"reason":"restart","retry_after_ms":1830}',
        "dup_escaped": '{"kind":"a","x":{"k":1,"\\u006b":2}}',
        "lone_surrogate": '{"kind":"a","payload":"\\ud800"}',
        "dbl_max": '{"kind":"a","payload":1.7976931348623157e308,"ts":42.0}',
        "dbl_overflow": '{"kind":"a","payload":1.7976931348623159e308}',
        "whole_numbers": '{"kind":"a","event_id":4200e-2,"head":9007199254740991,"ts":-0,"replay_to":9007199254740991.5}',
        "deep": '{"kind":"a","payload":' + "[" * 70 + "]" * 70 + "}",
        "bom": '\ufeff{"kind":"a"}',
        "bad_room": '{"kind":"a","room_id":"no spaces","id":""}',
        "null_payload": ' {"kind" : "a" , "payload" : null}\r\n',
        "trailing_nul": '{"kind":"a"}\x00junk',
    }
    for k, v in seeds.items():
        write("envelope", k, v)


# ---------------------------------------------------------------------------
# fuzz_client: [config][op...] — byte meanings in fuzz_client.cpp run_op().
# Every server-message op ends with one extra byte (the binary-message choice).

def client():
    HELLO = [3, 0, 0, 0, 0, 3, 0, 1]                # pv 1, s1, resumed false, 25 s, no limits
    OPEN = [2]
    JOIN_A = [8, 1, 0]
    JOINED_A_NONE = [3, 4, 0, 1, 0, 2, 1, 1, 1, 1, 0, 0, 0, 1]
    SEND_A = [10, 0, 0, 1]
    EVENT_A_NEXT = [3, 7, 1, 0, 1, 1, 0, 0, 0, 1]
    ACK_FIRST = [3, 2, 1, 0, 0, 1, 0, 0, 1]
    STEP_1S = [0, 5]
    CLOSE = [12]
    session = [16] + OPEN + HELLO + JOIN_A + JOINED_A_NONE + SEND_A + EVENT_A_NEXT + ACK_FIRST + STEP_1S + CLOSE
    write("client", "session", session)
    # loss and resume: transport closes 1006, backoff, reconnect, resumed hello, replay
    CLOSED_1006 = [7, 5, 0, 0]
    JUMP = [15]
    HELLO_RESUMED = [3, 0, 0, 0, 1, 3, 0, 1]
    JOINED_A_REPLAY = [3, 4, 0, 1, 1, 4, 1, 1, 0, 1, 1, 0, 0, 0, 1]
    resume = ([16] + OPEN + HELLO + JOIN_A + JOINED_A_NONE + EVENT_A_NEXT + SEND_A + CLOSED_1006 + JUMP + OPEN
              + HELLO_RESUMED + JOINED_A_REPLAY + EVENT_A_NEXT + EVENT_A_NEXT + ACK_FIRST)
    write("client", "resume_replay", resume)
    # snapshot: joined snapshot_required, snapshot_loaded, events, a gap
    JOINED_A_SNAP = [3, 4, 0, 1, 3, 2, 1, 1, 1, 1, 0, 0, 0, 1]
    SNAP_LOADED = [11, 0, 3, 5, 1]
    EVENT_A_GAP = [3, 7, 1, 0, 1, 1, 4, 0, 0, 1]
    write("client", "snapshot", [16] + OPEN + HELLO + JOIN_A + JOINED_A_SNAP + SNAP_LOADED + EVENT_A_NEXT + EVENT_A_GAP)
    # rate limited: an error echoing the message id, then time passes
    ERROR_RATE = [3, 3, 0, 0, 1, 0, 3, 1]
    write("client", "rate_limited", [16] + OPEN + HELLO + JOIN_A + JOINED_A_NONE + SEND_A + ERROR_RATE + [1] + STEP_1S + JUMP)
    write("client", "garbage_first", [16] + OPEN + [3, 10, 5] + list(b"{]x\xff!") + [1])


# ---------------------------------------------------------------------------
# fuzz_server: [config][op...] — byte meanings in fuzz_server.cpp run_op().

def server():
    def open_slot(k, user=0, sess=2, session_idx=None):
        b = [0, k, 0, user, sess]
        if sess == 0:
            b.append(session_idx or 0)
        return b + [1, 1]

    def text(k, env):
        return [1, k, 4] + env + [0, 1]

    def join(room=0, rf=0, epoch=None):
        b = [room, 0, rf]
        if rf == 3:
            b.append(0)  # resume_from = head - 1 - 0 (when head > 0)
        if rf >= 2:
            b.append(epoch if epoch is not None else 2)
        return b

    LEAVE = lambda room=0: [room, 2]
    PUB = lambda room=0, mid=0, payload=0: [room, 3, 1, 1, 2, mid, payload]
    STEP = lambda idx: [5, 0, idx]
    session = (open_slot(0) + open_slot(1, user=1) + text(0, join()) + text(1, join()) + text(0, PUB()) + STEP(5)
               + text(1, LEAVE()) + [8, 0] + open_slot(2, sess=0, session_idx=0) + text(2, join(rf=2))
               + text(2, PUB(mid=1)) + [7, 0])
    write("server", "session", [0] + session)
    # deduplication: the same id twice, then after the window
    dedup = open_slot(0) + text(0, join()) + text(0, PUB()) + text(0, PUB()) + STEP(10) + text(0, PUB()) + text(0, PUB())
    write("server", "dedup", [1] + dedup)
    # slow reader: slot 1 stops reading while slot 0 publishes big payloads
    slow = (open_slot(0) + open_slot(1, user=1) + text(0, join()) + text(1, join()) + text(0, join(room=1))
            + text(1, join(room=1)) + [9, 1]
            + sum((text(0, [0, 3, 1, 1, 1, 2, 120]) for i in range(8)), []) + STEP(5))
    write("server", "slow_reader", [1] + slow)
    # takeover: slot 1 resumes slot 0's live session; then drain
    takeover = open_slot(0) + text(0, join()) + open_slot(1, sess=0, session_idx=0) + [10, 0, 0, 1] + STEP(8)
    write("server", "takeover_drain", [0] + takeover)
    # replay after a gap: slot 1 away, slot 0 publishes, slot 1 resumes from an old cursor
    replay = (open_slot(0) + open_slot(1, user=1) + text(0, join()) + text(1, join()) + [8, 1]
              + text(0, PUB(mid=0)) + text(0, PUB(mid=1)) + text(0, PUB(mid=2))
              + open_slot(1, user=1, sess=0, session_idx=1) + text(1, join(rf=3, epoch=2)) + STEP(3))
    write("server", "replay", [1] + replay)
    # truncated: more events than replay_window, then a join from 0 with the right epoch
    FRESH = [0, 3, 1, 1, 1, 0]
    trunc = open_slot(0) + text(0, join()) + sum((text(0, FRESH) for _ in range(6)), []) + text(0, join(rf=5, epoch=2))
    write("server", "replay_truncated", [1] + trunc)
    # heartbeat: nothing sent for a while, then the grace period ends
    write("server", "heartbeat_grace", [3] + open_slot(0) + text(0, join()) + STEP(7) + STEP(7) + [7, 0] * 6)


# ---- seeds from the recorded traces (tests/golden/*.trace, docs/trace.md) ----

GOLDEN = os.path.join(os.path.dirname(HERE), "tests", "golden")


def trace_string(v):
    """A trace string value: a JSON string, or hex:... for any bytes."""
    if v.startswith("hex:"):
        return bytes.fromhex(v[4:])
    import json
    return json.loads(v).encode("utf-8")


def trace_inputs(path):
    """The bytes each connection of a trace fed its machine, in order."""
    import re
    conns = {}
    for line in open(path, encoding="utf-8"):
        f = line.split(" ", 2)
        if len(f) < 3 or not f[0].isdigit() or f[1] != "bytes":
            continue
        m = re.search(r'(?:^| )conn=(\d+)', f[2])
        d = re.search(r'(?:^| )data=("(?:[^"\\]|\\.)*"|hex:[0-9a-f]*)', f[2])
        if d:
            conns.setdefault(m.group(1) if m else "0", []).append(trace_string(d.group(1)))
    return conns


def frames_of(stream):
    """(opcode, unmasked payload) of each complete frame of a stream."""
    out, i = [], 0
    while i + 2 <= len(stream):
        op, n, i2 = stream[i] & 0x0F, stream[i + 1] & 0x7F, i + 2
        if n == 126:
            n, i2 = struct.unpack(">H", stream[i2:i2 + 2])[0], i2 + 2
        elif n == 127:
            n, i2 = struct.unpack(">Q", stream[i2:i2 + 8])[0], i2 + 8
        key = stream[i2:i2 + 4] if stream[i + 1] & 0x80 else b"\0\0\0\0"
        i2 += 4 if stream[i + 1] & 0x80 else 0
        if i2 + n > len(stream):
            break
        out.append((op, bytes(b ^ key[k % 4] for k, b in enumerate(stream[i2:i2 + n]))))
        i = i2 + n
    return out


def from_traces():
    """Real sessions recorded by chat_server --record (and the hand-written
    golden traces): each connection's upgrade request seeds http_request,
    its whole byte stream (handshake included, raw mode) seeds
    frame_decoder, and every text message seeds envelope."""
    for tr in sorted(os.listdir(GOLDEN)):
        if not tr.endswith(".trace"):
            continue
        base = tr[:-len(".trace")]
        for conn, chunks in trace_inputs(os.path.join(GOLDEN, tr)).items():
            stream = b"".join(chunks)
            head_end = stream.find(b"\r\n\r\n")
            if not stream.startswith(b"GET ") or head_end < 0:
                continue
            write("http_request", f"trace_{base}_{conn}", stream[:head_end + 4])
            # cfg1 bit 4: raw (the stream starts with the upgrade request);
            # the splits are where the recording's reads ended.
            splits = [len(c) for c in chunks[:8]]
            fd(f"trace_{base}_{conn}", 0, stream, cfg1=0x10, splits=[min(s, 256) for s in splits])
            for k, (op, payload) in enumerate(frames_of(stream[head_end + 4:])):
                if op == 1:
                    write("envelope", f"trace_{base}_{conn}_{k}", payload)


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    http_request()
    http_response()
    frame_decoder()
    envelope()
    client()
    server()
    from_traces()


if __name__ == "__main__":
    main()
