#!/usr/bin/env python3
"""A Warren client written only from docs/PROTOCOL.md: logs in, heartbeats,
echoes, and chats with a second player in a room.

    pip install websockets msgpack
    cargo run --release                      # in another terminal
    python3 examples/client.py "$(cargo run -q --release -- token --uid 1)" \
                               "$(cargo run -q --release -- token --uid 2)"
"""
import asyncio
import sys

import msgpack
import websockets

URL = "ws://127.0.0.1:7001/ws"


def frame(seq, cmd, body):
    # [seq, cmd, body]; body is MessagePack bin holding a MessagePack value.
    return msgpack.packb([seq, cmd, msgpack.packb(body)], use_bin_type=True)


def unframe(data):
    seq, cmd, body = msgpack.unpackb(data, raw=False)
    return seq, cmd, msgpack.unpackb(body, raw=False) if body else None


async def request(ws, seq, cmd, body):
    await ws.send(frame(seq, cmd, body))
    pushes = []
    while True:
        s, c, b = unframe(await asyncio.wait_for(ws.recv(), 10))
        if s == seq:
            return c, b, pushes
        pushes.append((c, b))


async def main(token_a, token_b):
    async with websockets.connect(URL) as a, websockets.connect(URL) as b:
        cmd, body, _ = await request(a, 1, 1, {"token": token_a})
        assert cmd == 1, (cmd, body)
        print("player a logged in as", body["uid"])
        cmd, body, _ = await request(b, 1, 1, {"token": token_b})
        assert cmd == 1, (cmd, body)
        print("player b logged in as", body["uid"])

        cmd, body, _ = await request(a, 2, 2, {})
        print("heartbeat:", cmd, body)
        cmd, body, _ = await request(a, 3, 1001, {"hello": "world"})
        assert (cmd, body) == (1001, {"hello": "world"}), (cmd, body)
        print("echo:", body)

        cmd, body, _ = await request(a, 4, 2001, {"room": "lobby"})
        print("a joined lobby:", body)
        cmd, body, _ = await request(b, 2, 2001, {"room": "lobby"})
        print("b joined lobby:", body)
        cmd, body, pushes = await request(a, 5, 2002, {"room": "lobby", "text": "hi from a"})
        assert cmd == 2002, (cmd, body)
        if not pushes:
            pushes = [unframe(await asyncio.wait_for(a.recv(), 10))[1:]]
        print("a heard:", pushes)
        s, c, said = unframe(await asyncio.wait_for(b.recv(), 10))
        assert (s, c) == (0, 2003) and said["text"] == "hi from a", (s, c, said)
        print("b heard:", said)

        cmd, body, _ = await request(a, 6, 5000, {})
        assert cmd == 4 and body["code"] == "unknown_cmd", (cmd, body)
        print("unknown cmd:", body)
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
