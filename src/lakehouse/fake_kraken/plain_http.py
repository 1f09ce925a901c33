"""Plain HTTP/1.1 on the fake Kraken's port, as little as it needs: read a request's head, answer once and close
(REST trades, /control/ actions, refused upgrades), or cut a connection off without an answer."""

from __future__ import annotations

import http
import json
import socket
import struct
import urllib.parse
from typing import Any, NamedTuple, Optional

MAX_HEAD = 65536


class Request(NamedTuple):
    path: str
    query: dict  # the query string's parameters (the last of each name)
    headers: dict  # lower-case names
    rest: bytes  # what came after the head (a WebSocket client's first frames)


class BadRequest(ValueError):
    """A request line that is not HTTP (answered 400)."""


def read_request(sock: socket.socket) -> Optional[Request]:
    """The request's head (None if the client went away or sent more than MAX_HEAD bytes of it)."""
    head = b""
    try:
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            head += chunk
            if len(head) > MAX_HEAD:
                return None
    except OSError:
        return None
    raw, _, rest = head.partition(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    try:
        _method, target, _ = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest(f"bad HTTP request line {lines[0][:80]!r}") from None
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    url = urllib.parse.urlsplit(target)
    return Request(url.path, dict(urllib.parse.parse_qsl(url.query)), headers, rest)


def respond_json(sock: socket.socket, status: int, body: Any) -> None:
    respond(sock, status, json.dumps(body).encode())


def respond(sock: socket.socket, status: int, payload: bytes, content_type: str = "application/json") -> None:
    """One answer, then the connection is closed."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    try:
        sock.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
    except OSError:
        pass
    sock.close()


def reset(sock: socket.socket) -> None:
    """Close abruptly: a TCP reset (RST), no answer, no close handshake."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
