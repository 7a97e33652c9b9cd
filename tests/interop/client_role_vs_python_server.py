#!/usr/bin/python3
"""Interop: tether's client role (ws_client_probe) against a server written
with Python's `websockets`, an independent implementation.

usage: client_role_vs_python_server.py PATH/TO/ws_client_probe
"""
import asyncio
import sys

import websockets

seen = {"messages": 0, "subprotocol": None, "close_code": None}


async def echo(ws, path=None):
    seen["subprotocol"] = ws.subprotocol
    try:
        async for message in ws:
            seen["messages"] += 1
            await ws.send(message)
    finally:
        seen["close_code"] = ws.close_code


async def main(probe):
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, compression=None,
                                subprotocols=["tether.v1"]) as server:
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(probe, "127.0.0.1", str(port), "/probe")
        rc = await asyncio.wait_for(proc.wait(), 60)
        await asyncio.sleep(0.2)
    checks = [
        ("probe exited 0", rc == 0),
        ("server echoed every message", seen["messages"] == 15),
        ("subprotocol negotiated", seen["subprotocol"] == "tether.v1"),
        ("clean close 1000 seen by the server", seen["close_code"] == 1000),
    ]
    failed = [name for name, ok in checks if not ok]
    for name in failed:
        print("FAIL", name, seen)
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
