#!/usr/bin/python3
"""Record a real chat_server session (tests/golden/endpoint_chat_server.trace).

usage: record_chat_server.py PATH/TO/chat_server PATH/TO/replay OUT.trace

Two Python `websockets` clients (alice, bob) talk to `chat_server --record`
through a logging TCP proxy: join, presence, publish, a duplicate, a ping,
a heartbeat, a leave, then SIGTERM (drain, 1012). The script then replays
OUT.trace and checks that the bytes of every `out conn=N` line are exactly
what the server sent on connection N, and that the trace's input bytes are
exactly what the clients sent. Exit status 0 when both hold.

To refresh the golden file after a deliberate change of the server's
output: run this, prepend the comment lines, and regenerate the .expected
with `replay OUT.trace > OUT.expected`."""
import asyncio, json, re, signal, subprocess, sys

server_bin, replay_bin, trace_path = sys.argv[1], sys.argv[2], sys.argv[3]
import websockets

logs = []  # per connection: [c2s bytearray, s2c bytearray]

async def main():
    proc = subprocess.Popen([server_bin, "--port", "0", "--heartbeat-ms", "400", "--record", trace_path],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    port = int(re.search(r":(\d+)\s*$", line).group(1))

    async def pump(r, w, buf):
        try:
            while True:
                d = await r.read(65536)
                if not d:
                    break
                buf.extend(d)
                w.write(d)
                await w.drain()
        except Exception:
            pass
        try:
            w.close()
        except Exception:
            pass

    async def on_client(cr, cw):
        idx = len(logs)
        logs.append([bytearray(), bytearray()])
        sr, sw = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pump(cr, sw, logs[idx][0]), pump(sr, cw, logs[idx][1]))

    proxy = await asyncio.start_server(on_client, "127.0.0.1", 0)
    pport = proxy.sockets[0].getsockname()[1]

    async def connect(user):
        ws = await websockets.connect(f"ws://127.0.0.1:{pport}/chat?user={user}", subprotocols=["tether.v1"],
                                      compression=None, ping_interval=None)
        hello = json.loads(await ws.recv())
        assert hello["kind"] == "server.hello", hello
        return ws

    async def recv_until(ws, kind):
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if m["kind"] == "server.ping":
                await ws.send(json.dumps({"kind": "client.pong", "ts": m["ts"]}))
                continue
            if m["kind"] == kind:
                return m

    alice = await connect("alice")
    await alice.send(json.dumps({"kind": "client.join", "room_id": "lobby", "correlation_id": "a1"}))
    j = await recv_until(alice, "room.joined")
    bob = await connect("bob")
    await bob.send(json.dumps({"kind": "client.join", "room_id": "lobby", "correlation_id": "b1"}))
    await recv_until(bob, "room.joined")
    await recv_until(alice, "presence.joined")
    await alice.send(json.dumps({"kind": "chat.message", "room_id": "lobby", "id": "a-1", "payload": {"text": "hi bob"}}))
    await recv_until(alice, "server.ack")
    await recv_until(bob, "chat.message")
    for _ in range(2):  # the second is a duplicate
        await bob.send(json.dumps({"kind": "chat.message", "room_id": "lobby", "id": "b-1", "payload": {"text": "hi ☃ alice"}}))
        await recv_until(bob, "server.ack")
    await recv_until(alice, "chat.message")
    pong = await bob.ping(b"are you there")
    await asyncio.wait_for(pong, 5)
    await asyncio.sleep(0.5)  # one heartbeat: server.ping / client.pong
    await alice.send(json.dumps({"kind": "client.leave", "room_id": "lobby", "correlation_id": "a2"}))
    await recv_until(alice, "room.left")
    await recv_until(bob, "presence.left")
    proc.send_signal(signal.SIGTERM)  # drain: 1012 to both
    for ws in (alice, bob):
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as e:
            print("closed", e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None)
    proc.wait(10)
    print(proc.stdout.read(), end="")
    await asyncio.sleep(0.2)
    proxy.close()

asyncio.run(main())

# Replay and compare.
out = subprocess.run([replay_bin, trace_path], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
sent = {}
for l in out.stdout.splitlines():
    m = re.match(r'out conn=(\d+) n=(\d+) data=(.*)$', l)
    if not m:
        continue
    d = m.group(3)
    b = bytes.fromhex(d[4:]) if d.startswith("hex:") else json.loads(d).encode()
    assert len(b) == int(m.group(2))
    sent.setdefault(int(m.group(1)), bytearray()).extend(b)
recvd = {}
for l in open(trace_path):
    m = re.match(r'\d+ bytes conn=(\d+) data=(.*)$', l.rstrip("\n"))
    if m:
        d = m.group(2)
        recvd.setdefault(int(m.group(1)), bytearray()).extend(bytes.fromhex(d[4:]) if d.startswith("hex:") else json.loads(d).encode())
ok = True
for i, (c2s, s2c) in enumerate(logs):
    same_out = bytes(sent.get(i, b"")) == bytes(s2c)
    same_in = bytes(recvd.get(i, b"")) == bytes(c2s)
    print(f"conn {i}: server sent {len(s2c)} bytes, replay printed {len(sent.get(i, b''))}: {'SAME' if same_out else 'DIFFERENT'}; "
          f"client sent {len(c2s)}, trace holds {len(recvd.get(i, b''))}: {'SAME' if same_in else 'DIFFERENT'}")
    ok = ok and same_out and same_in
print("OK" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
