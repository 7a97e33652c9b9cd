#!/usr/bin/python3
"""Interop: Python's `websockets` (an independent implementation) as a client
of tether's echo_server, plus raw-socket probes of the failure paths.

usage: python_client_vs_echo_server.py PATH/TO/echo_server
Starts the server on an ephemeral port, runs every check, stops it.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""
import asyncio
import os
import re
import socket
import struct
import subprocess
import sys

import websockets

failures = []
passed = 0


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name} {detail}", flush=True)


def start_server(binary):
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+)\s*$", line)
    if not m:
        proc.kill()
        sys.exit(f"echo_server did not report its port: {line!r}")
    return proc, int(m.group(1))


def mask_frame(b0, payload, key=b"\x01\x02\x03\x04"):
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def raw_upgrade(port, request=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = request or (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n")
    s.sendall(req.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head.decode(errors="replace"), rest


def read_close(s, rest=b""):
    """Read frames until a close frame; return (code, reason) or None on EOF."""
    buf = rest
    while True:
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n = struct.unpack("!H", buf[2:4])[0]
                off = 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n = struct.unpack("!Q", buf[2:10])[0]
                off = 10
            if len(buf) < off + n:
                break
            op, payload = buf[0] & 0x0F, buf[off:off + n]
            buf = buf[off + n:]
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:]
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return None
        if not chunk:
            return None
        buf += chunk


def raw_violation(port, name, frames, expect_code):
    s, head, rest = raw_upgrade(port)
    check(f"{name}: upgrade", head.startswith("HTTP/1.1 101"), head[:40])
    s.sendall(frames)
    got = read_close(s, rest)
    check(name, got is not None and got[0] == expect_code, f"got {got}, want {expect_code}")
    # The server closes the TCP connection after failing it.
    s.settimeout(5)
    try:
        tail = s.recv(1)
    except (ConnectionResetError, socket.timeout):
        tail = b""
    check(f"{name}: tcp closed", tail == b"", repr(tail))
    s.close()


def raw_handshake_refusals(port):
    base = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    cases = [
        ("POST is 405", base.replace("GET", "POST"), "405"),
        ("version 8 is 426", base.replace("Version: 13", "Version: 8"), "426"),
        ("missing key is 400", base.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), "400"),
        ("no upgrade header is 400", base.replace("Upgrade: websocket\r\n", ""), "400"),
        ("garbage is 400", "\x16\x03\x01 not http\r\n\r\n", "400"),
    ]
    for name, req, status in cases:
        s, head, _ = raw_upgrade(port, req)
        check(name, head.startswith("HTTP/1.1 " + status), head.split("\r\n")[0])
        if status == "426":
            check("426 names version 13", "sec-websocket-version: 13" in head.lower(), head)
        s.close()


async def websockets_client(port):
    uri = f"ws://127.0.0.1:{port}/echo"
    async with websockets.connect(uri, max_size=None, compression=None) as ws:
        for n in (0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 4 << 20):
            text = "".join(chr(0x61 + i % 26) for i in range(min(n, 64))) * (n // 64) + "x" * (n % 64)
            await ws.send(text)
            echo = await ws.recv()
            check(f"text echo {n}", echo == text, f"{len(echo)} bytes")
            data = os.urandom(n)
            await ws.send(data)
            echo = await ws.recv()
            check(f"binary echo {n}", echo == data, f"{len(echo)} bytes")
        # Multi-byte UTF-8, sent fragmented (websockets sends an iterable as fragments).
        parts = ["κόσ", "με ", "🙂" * 100, "end"]
        await ws.send(iter(parts))
        check("fragmented utf-8 echo", await ws.recv() == "".join(parts))
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        check("ping answered", True)
        await ws.close(code=4000, reason="bye ✓")
        check("close code echoed", ws.close_code == 4000, str(ws.close_code))
    # Many concurrent clients.
    async def one(i):
        async with websockets.connect(uri, compression=None) as ws:
            for k in range(20):
                msg = f"client {i} message {k}"
                await ws.send(msg)
                if await ws.recv() != msg:
                    return False
        return True
    results = await asyncio.gather(*(one(i) for i in range(50)))
    check("50 concurrent clients", all(results))


def main():
    proc, port = start_server(sys.argv[1])
    try:
        asyncio.run(websockets_client(port))
        raw_handshake_refusals(port)
        raw_violation(port, "reserved bits -> 1002", mask_frame(0xC1, b"hi"), 1002)
        raw_violation(port, "reserved opcode -> 1002", mask_frame(0x83, b"hi"), 1002)
        raw_violation(port, "unmasked client frame -> 1002", b"\x81\x02hi", 1002)
        raw_violation(port, "fragmented ping -> 1002", mask_frame(0x09, b"hi"), 1002)
        raw_violation(port, "continuation out of place -> 1002", mask_frame(0x80, b"hi"), 1002)
        raw_violation(port, "invalid utf-8 -> 1007", mask_frame(0x81, b"\xce\xba\xed\xa0\x80"), 1007)
        raw_violation(port, "invalid utf-8 across fragments -> 1007",
                      mask_frame(0x01, b"ok\xf4") + mask_frame(0x80, b"\x90\x80\x80"), 1007)
        raw_violation(port, "close code 1005 -> 1002", mask_frame(0x88, struct.pack("!H", 1005)), 1002)
        raw_violation(port, "close reason not utf-8 -> 1007", mask_frame(0x88, b"\x03\xe8\xff"), 1007)
        # A clean close from a raw client gets its code echoed.
        s, head, rest = raw_upgrade(port)
        s.sendall(mask_frame(0x88, struct.pack("!H", 1000) + b"done"))
        got = read_close(s, rest)
        check("raw close echoed", got is not None and got[0] == 1000, str(got))
        s.close()
        check("server still alive", proc.poll() is None)
    finally:
        proc.kill()
        proc.wait()
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
