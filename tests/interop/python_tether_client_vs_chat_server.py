#!/usr/bin/python3
"""Interop: an independent tether v1 client written here in Python (on the
`websockets` library) against examples/chat_server, checking the wire
contract of PROTOCOL.md as another team's client would see it.

usage: python_tether_client_vs_chat_server.py PATH/TO/chat_server
Prints 'N passed, M failed'; exits non-zero on any failure.
"""
import asyncio
import json
import re
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
        failures.append(name)
        print(f"FAIL {name} {detail}", flush=True)


def start(binary, *args):
    proc = subprocess.Popen([binary, "--port", "0", *args], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+)\s*$", line)
    if not m:
        proc.kill()
        sys.exit(f"chat_server did not report its port: {line!r}")
    return proc, int(m.group(1))


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_kind(ws, kind, timeout=5):
    """Next frame of this kind, skipping pings and presence noise."""
    while True:
        msg = await recv_json(ws, timeout)
        if msg["kind"] == kind:
            return msg
        if msg["kind"] == "server.ping":
            await ws.send(json.dumps({"kind": "client.pong", "ts": msg["ts"]}))


async def connect(port, query="user=neo", **kw):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/chat?{query}", subprotocols=["tether.v1"],
                                  compression=None, **kw)
    hello = await recv_json(ws)
    return ws, hello


async def open_mode(port):
    ws, hello = await connect(port)
    check("subprotocol echoed", ws.subprotocol == "tether.v1", ws.subprotocol)
    check("hello first", hello["kind"] == "server.hello", hello)
    check("protocol_version 1", hello.get("protocol_version") == 1)
    check("session_id 128 bits hex", re.fullmatch(r"[0-9a-f]{32}", hello.get("session_id", "")) is not None)
    check("fresh session", hello.get("resumed") is False)
    check("limits advertised", hello["limits"]["replay_window"] == 1024 and hello["limits"]["grace_ms"] == 2000,
          hello.get("limits"))
    check("heartbeat advertised", hello.get("heartbeat_ms") == 700)
    session = hello["session_id"]

    await ws.send(json.dumps({"kind": "client.join", "room_id": "core", "correlation_id": "j1"}))
    joined = await recv_kind(ws, "room.joined")
    check("fresh join", joined.get("resume") == "none" and joined.get("head") == 0, joined)
    check("join echoes correlation_id", joined.get("correlation_id") == "j1")
    check("members include joiner", joined.get("members") == ["neo"], joined)
    epoch = joined["epoch"]

    # A second client sees presence and broadcasts.
    ws2, _ = await connect(port, "user=trinity")
    await ws2.send(json.dumps({"kind": "client.join", "room_id": "core"}))
    j2 = await recv_kind(ws2, "room.joined")
    check("members sorted, both", j2.get("members") == ["neo", "trinity"], j2)
    pj = await recv_kind(ws, "presence.joined")
    check("presence.joined to peers", pj == {"kind": "presence.joined", "room_id": "core", "user": "trinity"}, pj)

    await ws.send(json.dumps({"kind": "chat.message", "room_id": "core", "id": "m-1",
                              "payload": {"text": "héllo", "n": [1, 2.5, None]}, "correlation_id": "c9"}))
    ev = await recv_kind(ws, "chat.message")
    ack = await recv_kind(ws, "server.ack")
    ev2 = await recv_kind(ws2, "chat.message")
    check("broadcast to sender", ev.get("event_id") == 1 and ev.get("sender") == "neo" and ev.get("id") == "m-1", ev)
    check("payload relayed intact", ev.get("payload") == {"text": "héllo", "n": [1, 2.5, None]}, ev)
    check("broadcast to peer, same bytes", ev2 == ev, (ev, ev2))
    check("ts is an integer", isinstance(ev.get("ts"), int))
    check("ack accepted", ack.get("status") == "accepted" and ack.get("event_id") == 1 and ack.get("id") == "m-1", ack)
    check("ack echoes correlation_id", ack.get("correlation_id") == "c9", ack)

    await ws.send(json.dumps({"kind": "chat.message", "room_id": "core", "id": "m-1", "payload": {"text": "again"}}))
    dup = await recv_kind(ws, "server.ack")
    check("duplicate acked with original event_id", dup.get("status") == "duplicate" and dup.get("event_id") == 1, dup)
    await ws.send(json.dumps({"kind": "chat.message", "room_id": "core", "id": "m-2", "payload": None}))
    ev = await recv_kind(ws, "chat.message")
    check("null payload relayed as null", "payload" in ev and ev["payload"] is None and ev["event_id"] == 2, ev)

    errors = [
        ('{"kind":"chat.message","room_id":"core","payload":1}', "bad_request"),
        ('{"kind":"chat.message","room_id":"core","id":"x","id":"y"}', "bad_request"),
        ('{"kind":"chat.message","room_id":"no spaces","id":"x"}', "bad_room_id"),
        ('{"kind":"chat.message","room_id":"elsewhere","id":"x","correlation_id":"k"}', "not_member"),
        ('{"kind":"room.joined","room_id":"core"}', "unknown_kind"),
        ('{"kind":"client.whatever"}', "unknown_kind"),
        ('{"kind":"client.join","room_id":"core","resume_from":9007199254740992}', "bad_request"),
        ('{"kind":"client.pong","ts":"soon"}', "bad_request"),
        ('[1,2]', "bad_request"),
    ]
    for text, code in errors:
        await ws.send(text)
        err = await recv_kind(ws, "server.error")
        check(f"error {code} for {text}", err.get("code") == code, err)
        if '"correlation_id":"k"' in text:
            check("error echoes correlation_id and id", err.get("correlation_id") == "k" and err.get("id") == "x", err)

    # Heartbeat: a ping carries heads; an answered ping keeps us alive.
    ping = await recv_kind(ws, "server.ping", timeout=3)
    check("ping carries heads", ping.get("heads") == {"core": 2}, ping)
    await ws.send(json.dumps({"kind": "client.pong", "ts": ping["ts"]}))

    # Abnormal disconnect, then resume within grace: replay of what was missed.
    ws.transport.abort()
    away = await recv_kind(ws2, "presence.away")
    check("presence.away on abnormal close", away.get("user") == "neo", away)
    for k in range(3):
        await ws2.send(json.dumps({"kind": "chat.message", "room_id": "core", "id": f"t-{k}", "payload": k}))
        await recv_kind(ws2, "server.ack")
    ws, hello = await connect(port, f"user=neo&session_id={session}")
    check("resumed within grace", hello.get("resumed") is True and hello.get("session_id") == session, hello)
    back = await recv_kind(ws2, "presence.reconnected")
    check("presence.reconnected", back.get("user") == "neo", back)
    await ws.send(json.dumps({"kind": "client.join", "room_id": "core", "resume_from": 2, "epoch": epoch}))
    joined = await recv_kind(ws, "room.joined")
    check("replay answer", joined.get("resume") == "replay" and joined.get("replay_to") == 5, joined)
    replayed = [await recv_kind(ws, "chat.message") for _ in range(3)]
    check("replayed in order", [e["event_id"] for e in replayed] == [3, 4, 5], replayed)

    # Snapshot paths.
    await ws.send(json.dumps({"kind": "client.join", "room_id": "core", "resume_from": 2}))
    j = await recv_kind(ws, "room.joined")
    check("resume_from without epoch -> epoch_changed",
          j.get("resume") == "snapshot_required" and j.get("reason") == "epoch_changed", j)
    await ws.send(json.dumps({"kind": "client.join", "room_id": "core", "resume_from": 99, "epoch": epoch}))
    j = await recv_kind(ws, "room.joined")
    check("ahead", j.get("resume") == "snapshot_required" and j.get("reason") == "ahead" and j.get("head") == 5, j)

    # Leave is idempotent; normal close gives presence.left at once.
    await ws.send(json.dumps({"kind": "client.leave", "room_id": "nowhere", "correlation_id": "l1"}))
    left = await recv_kind(ws, "room.left")
    check("leave of a room not in is answered", left.get("room_id") == "nowhere" and left.get("correlation_id") == "l1", left)
    await ws.close(code=1000)
    gone = await recv_kind(ws2, "presence.left")
    check("presence.left on normal close", gone.get("user") == "neo", gone)

    # Binary frames are refused with 1003.
    await ws2.send(b"\x00\x01")
    try:
        await asyncio.wait_for(ws2.recv(), 5)
        while True:
            await asyncio.wait_for(ws2.recv(), 5)
    except websockets.exceptions.ConnectionClosed as e:
        check("binary frame closes 1003", e.rcvd is not None and e.rcvd.code == 1003, str(e))


async def token_mode(port):
    try:
        await connect(port, "user=neo")
        check("no token -> 401", False, "accepted")
    except websockets.exceptions.InvalidStatusCode as e:
        check("no token -> 401", e.status_code == 401, str(e))
    try:
        await connect(port, "token=nope")
        check("wrong token -> 401", False, "accepted")
    except websockets.exceptions.InvalidStatusCode as e:
        check("wrong token -> 401", e.status_code == 401, str(e))
    ws, hello = await connect(port, "token=s3cret")
    await ws.send(json.dumps({"kind": "client.join", "room_id": "r"}))
    j = await recv_kind(ws, "room.joined")
    check("?token= gives principal NAME", j.get("members") == ["alice"], j)
    await ws.close()
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/", extra_headers={"Authorization": "Bearer other"},
                                  compression=None)
    await recv_json(ws)
    await ws.send(json.dumps({"kind": "client.join", "room_id": "r"}))
    j = await recv_kind(ws, "room.joined")
    check("Bearer header gives principal NAME", "bob" in j.get("members", []), j)
    await ws.close()


def main():
    binary = sys.argv[1]
    proc, port = start(binary, "--heartbeat-ms", "700", "--grace-ms", "2000")
    try:
        asyncio.run(open_mode(port))
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    check("server logs connections", "connected principal=neo" in out, out[-500:])
    check("server logs joins", "joined principal=neo room=core" in out)
    check("server logs closes with codes", re.search(r"closed .*code=1003", out) is not None, out[-500:])

    proc, port = start(binary, "--token", "alice=s3cret", "--token", "bob=other")
    try:
        asyncio.run(token_mode(port))
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
