#!/usr/bin/env python3
"""A tiny Chinwag client (Python standard library only) for the packaging tests.

  chat-smoke.py register BASE          registers one user; prints its id
  chat-smoke.py exchange BASE STATE    registers two users, sends a message from the first to the
                                       second over the WebSocket, checks the second receives it
                                       live; writes what `find` needs to the file STATE
  chat-smoke.py find BASE STATE        finds that message in the second user's history

BASE is http://127.0.0.1:PORT (loopback only). Exits non-zero with a message on any failure.
"""

import base64
import json
import os
import socket
import struct
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT = 30


def api(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(req, data, timeout=TIMEOUT) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def register(base, name):
    status, body = api(base, "POST", "/api/auth/register",
                       {"username": name, "password": "correct horse battery", "nickname": name})
    if status != 201:
        sys.exit(f"register {name}: {status} {body}")
    return body["token"], body["user"]["id"]


class WebSocket:
    """Just enough of RFC 6455 for JSON text frames: masked sends, unmasked receives, pings."""

    def __init__(self, base, token):
        u = urlsplit(base)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /api/ws HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                sys.exit("the WebSocket upgrade was cut off")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            sys.exit(f"the WebSocket upgrade was refused: {head.decode(errors='replace')}")

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                sys.exit("the WebSocket closed")
            buf += chunk
        return buf

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv(self):
        """The next JSON text frame; answers pings on the way."""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                sys.exit(f"the server closed the WebSocket: {payload!r}")
            elif opcode == 0x1:
                return json.loads(payload)

    def wait_for(self, pred, what):
        for _ in range(200):
            frame = self.recv()
            if pred(frame):
                return frame
            if frame.get("type") == "error":
                sys.exit(f"error frame while waiting for {what}: {frame}")
        sys.exit(f"no {what} among 200 frames")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, base = sys.argv[1], sys.argv[2].rstrip("/")
    if urlsplit(base).hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("only loopback addresses")
    suffix = os.urandom(3).hex()
    if cmd == "register":
        _, uid = register(base, "arm" + suffix)
        print(f"registered user {uid}")
    elif cmd == "exchange":
        ta, a = register(base, "ann" + suffix)
        tb, b = register(base, "bob" + suffix)
        conv = f"d:{min(a, b)}:{max(a, b)}"
        text = "hello from the container test " + suffix
        wb = WebSocket(base, tb)
        wb.wait_for(lambda f: f.get("type") == "hello", "hello for bob")
        wa = WebSocket(base, ta)
        wa.wait_for(lambda f: f.get("type") == "hello", "hello for ann")
        wa.send({"type": "send", "client_id": "c-" + suffix, "conv": conv, "content": {"kind": "text", "text": text}})
        ack = wa.wait_for(lambda f: f.get("type") == "ack" and f.get("client_id") == "c-" + suffix, "ack")
        got = wb.wait_for(lambda f: f.get("type") == "message" and f["message"]["conv"] == conv, "bob's message frame")
        if got["message"]["content"].get("text") != text:
            sys.exit(f"bob received {got}")
        with open(sys.argv[3], "w") as f:
            json.dump({"token": tb, "conv": conv, "text": text}, f)
        print(f"ann sent, bob received live: {conv} seq {ack['message']['seq']}")
    elif cmd == "find":
        with open(sys.argv[3]) as f:
            state = json.load(f)
        status, body = api(base, "GET", f"/api/conversations/{state['conv']}/messages", token=state["token"])
        if status != 200:
            sys.exit(f"history: {status} {body}")
        texts = [m["content"].get("text") for m in body["messages"]]
        if state["text"] not in texts:
            sys.exit(f"the message is not in the history: {texts}")
        print(f"the message is in bob's history ({len(texts)} messages)")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
