#!/usr/bin/env python3
"""A Warren client written only from docs/PROTOCOL.md: two guests log in over
HTTP, open websockets, heartbeat, echo, chat in a room, claim the daily
reward and buy a potion; then a third one opens a resumable session, loses
its connection, and resumes it with what was said meanwhile (PROTOCOL.md
§5).

    pip install websockets msgpack
    cargo run --release                      # in another terminal
    python3 examples/client.py [--login http://127.0.0.1:7000] [--ws ws://127.0.0.1:7001/ws]
"""
import argparse
import asyncio
import json
import urllib.request
import uuid

import msgpack
import websockets


def guest_login(login_url, device_id):
    req = urllib.request.Request(
        f"{login_url}/v1/guest",
        data=json.dumps({"device_id": device_id}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def frame(seq, cmd, body):
    # [seq, cmd, body]; body is MessagePack bin holding a MessagePack value.
    return msgpack.packb([seq, cmd, msgpack.packb(body)], use_bin_type=True)


def unframe(data):
    # [seq, cmd, body], or [seq, cmd, body, n] in a resumable session.
    seq, cmd, body, *n = msgpack.unpackb(data, raw=False)
    return seq, cmd, msgpack.unpackb(body, raw=False) if body else None


def number(data):
    """The frame's number in a resumable session (None: not numbered)."""
    parts = msgpack.unpackb(data, raw=False)
    return parts[3] if len(parts) == 4 else None


async def resume_after_a_drop(login_url, ws_url, run, speaker):
    """c opens a resumable session, joins the lobby, loses its connection
    (no close frame: a phone in a lift), `speaker` talks, and c resumes
    with the last frame number it got: the line arrives, numbered next."""
    c_login = guest_login(login_url, f"example-c-{run}")
    token = c_login["token"]
    c = await websockets.connect(ws_url)
    cmd, reply, _ = await request(c, 1, 1, {"token": token, "resumable": True})
    session, last = reply["session"], 0
    print("resumable session, grace ms:", reply["grace_ms"])
    await c.send(frame(2, 2001, {"room": "lobby"}))
    while True:
        data = await asyncio.wait_for(c.recv(), 10)
        last = number(data) or last
        if unframe(data)[0] == 2:
            break
    c.transport.abort()  # the connection drops: no websocket close
    await request(speaker, 20, 2002, {"room": "lobby", "text": "while c was away"})
    async with websockets.connect(ws_url) as c:
        login = {"token": token, "resumable": True, "resume": session, "last": last}
        cmd, reply, _ = await request(c, 3, 1, login)
        assert reply["resumed"], reply
        data = await asyncio.wait_for(c.recv(), 10)
        s, cmd, said = unframe(data)
        assert cmd == 2003 and said["text"] == "while c was away", (cmd, said)
        assert number(data) == last + 1, (number(data), last)
        print("c resumed and heard:", said["text"], "as frame", number(data))


async def request(ws, seq, cmd, body):
    await ws.send(frame(seq, cmd, body))
    pushes = []
    while True:
        s, c, b = unframe(await asyncio.wait_for(ws.recv(), 10))
        if s == seq:
            return c, b, pushes
        pushes.append((c, b))


async def main(login_url, ws_url):
    run = uuid.uuid4().hex[:8]
    a_login = guest_login(login_url, f"example-a-{run}")
    b_login = guest_login(login_url, f"example-b-{run}")
    print("guest logins:", a_login["uid"], b_login["uid"])
    async with websockets.connect(ws_url) as a, websockets.connect(ws_url) as b:
        cmd, body, _ = await request(a, 1, 1, {"token": a_login["token"]})
        assert (cmd, body["uid"]) == (1, a_login["uid"]), (cmd, body)
        cmd, body, _ = await request(b, 1, 1, {"token": b_login["token"]})
        assert cmd == 1, (cmd, body)

        cmd, body, _ = await request(a, 2, 2, {})
        print("heartbeat:", body)
        cmd, body, _ = await request(a, 3, 1001, {"hello": "world"})
        assert (cmd, body) == (1001, {"hello": "world"}), (cmd, body)
        print("echo:", body)

        await request(a, 4, 2001, {"room": "lobby"})
        cmd, body, _ = await request(b, 2, 2001, {"room": "lobby"})
        print("members of lobby:", body["members"])
        cmd, body, _ = await request(a, 5, 2002, {"room": "lobby", "text": "hi from a"})
        assert cmd == 2002, (cmd, body)
        s, c, said = unframe(await asyncio.wait_for(b.recv(), 10))
        assert (s, c) == (0, 2003) and said["text"] == "hi from a", (s, c, said)
        print("b heard:", said)

        cmd, body, _ = await request(a, 6, 3002, {})
        print("daily reward:", body)
        cmd, body, _ = await request(a, 7, 3002, {})
        assert cmd == 4 and body["code"] == "already_claimed", (cmd, body)
        print("second claim:", body["code"])
        cmd, body, _ = await request(a, 8, 3003, {"item": "potion"})
        print("bought:", body)
        cmd, body, _ = await request(a, 9, 3001, {})
        print("balance:", body)

        cmd, body, _ = await request(a, 10, 5000, {})
        assert cmd == 4 and body["code"] == "unknown_cmd", (cmd, body)

        await resume_after_a_drop(login_url, ws_url, run, a)
    print("ok")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--login", default="http://127.0.0.1:7000")
    p.add_argument("--ws", default="ws://127.0.0.1:7001/ws")
    args = p.parse_args()
    asyncio.run(main(args.login, args.ws))
