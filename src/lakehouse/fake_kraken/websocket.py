"""The WebSocket side of the fake Kraken (RFC 6455, server end): the opening handshake's answer, frames encoded and
decoded, and one connection's reader and writer threads. What the frames say is Kraken's protocol (kraken_ws.py).

    sock.sendall(handshake_response(headers["sec-websocket-key"]))
    conn = Conn(server, sock, "v2", conn_id); threading.Thread(target=conn.writer).start(); conn.reader()
"""

from __future__ import annotations

import base64
import collections
import hashlib
import socket
import struct
import threading
import time
from typing import Any, Optional

from lakehouse.fake_kraken.plain_http import reset

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def handshake_response(key: str) -> bytes:
    """The server's answer to a WebSocket upgrade request with this Sec-WebSocket-Key."""
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def _unmask(mask: bytes, data: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


class Closed(Exception):
    """The connection is gone (or closing): the reader stops."""


class Conn:
    """One client connection: a reader (requests) and a writer thread (an ordered outbound queue).

    `server` is told of what happens on it: server.handle_request(conn, text) for each text frame received,
    server._mark_sent(trades) once a frame carrying trades is written to the socket, server._forget(conn) at the end.
    `subs` (the v2 names of the pairs subscribed), `frozen` and `subscribe_times` belong to the Kraken protocol
    (kraken_ws.py) and the server's faults; this class only moves frames."""

    def __init__(self, server: Any, sock: socket.socket, api: str, conn_id: int) -> None:
        self.server, self.sock, self.api, self.conn_id = server, sock, api, conn_id
        self.subs: set[str] = set()  # v2 pair names
        self.frozen = False
        self.closed = False
        self.out: collections.deque = collections.deque()
        self.unwritten = 0  # frames queued and not yet written to the socket (or dropped)
        self.cv = threading.Condition()
        self.last_sent = time.monotonic()
        self.opened = time.monotonic()
        self.subscribe_times: collections.deque = collections.deque()
        self.buf = b""

    # -- output ---------------------------------------------------------------------------------
    def send(self, text: "str | bytes", opcode: int = 1, trades: Optional[list] = None) -> None:
        """Queue a frame; `trades` (if any) count as sent once the frame is written to the socket."""
        if self.frozen or self.closed:
            return
        payload = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        with self.cv:
            self.out.append((encode_frame(opcode, payload), trades))
            self.unwritten += 1
            self.last_sent = time.monotonic()
            self.cv.notify()

    def writer(self) -> None:
        while True:
            with self.cv:
                while not self.out and not self.closed:
                    self.cv.wait(0.5)
                if self.closed and not self.out:
                    return
                items = list(self.out)
                self.out.clear()
            try:
                self.sock.sendall(b"".join(frame for frame, _ in items))
            except OSError:
                self.kill()
                return
            for _, trades in items:
                if trades:
                    self.server._mark_sent(trades)
            with self.cv:
                self.unwritten = max(0, self.unwritten - len(items))
                self.cv.notify_all()

    def wait_written(self, deadline: float) -> None:
        """Until every frame queued so far is written to the socket (or the connection is gone), or `deadline`."""
        with self.cv:
            while self.unwritten and not self.closed and time.monotonic() < deadline:
                self.cv.wait(0.05)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Graceful: close frame after everything queued, then the socket."""
        self.send(struct.pack("!H", code) + reason.encode(), opcode=8)
        with self.cv:
            self.closed = True
            self.cv.notify()
        threading.Timer(0.5, self.kill).start()

    def kill(self) -> None:
        """Abrupt: RST, no close frame."""
        with self.cv:
            self.closed = True
            self.out.clear()
            self.unwritten = 0
            self.cv.notify_all()
        reset(self.sock)
        self.server._forget(self)

    # -- input ----------------------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                if self.closed:
                    raise Closed()
                continue
            except OSError as exc:
                raise Closed() from exc
            if not chunk:
                raise Closed()
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        opcode, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        mask = self._read(4) if b1 & 0x80 else b""
        data = self._read(n)
        return opcode, (_unmask(mask, data) if mask else data)

    def reader(self) -> None:
        self.sock.settimeout(1.0)
        try:
            while not self.closed:
                opcode, data = self.read_frame()
                if opcode == 8:
                    if not self.frozen:
                        self.close(int.from_bytes(data[:2], "big") if len(data) >= 2 else 1000)
                    return
                if opcode == 9:
                    self.send(data, opcode=10)
                    continue
                if opcode == 1 and not self.frozen:  # clients send small, unfragmented requests
                    self.server.handle_request(self, data.decode("utf-8", "replace"))
        except Closed:
            pass
        finally:
            self.kill()
