"""A local fake of Kraken's public WebSocket (trade channel), API v2 at `/v2` and v1 at `/`.

Speaks both dialects as ../shared/reference/kraken-ws.md §6 lists: status on connect (connection ids above 2^63),
one ack per pair, the real error for a pair in the wrong dialect (v2 `XBT/USD` -> "Currency pair not supported
XBT/USD"), heartbeats about every second when idle, app-level ping/pong (and protocol pings), the v2 snapshot
(last 50 trades), batched trades sharing a timestamp, prices/sizes with many decimals and trailing zeros, and faults
on demand. Trades keep happening (trade_id advances) whether or not a client is connected.

Usage (examples in the entry point's docstring, ingestion/fake_kraken.py):
    python ingestion/fake_kraken.py --help

Faults and inspection over plain HTTP on the same port (curl http://127.0.0.1:8765/control/<action>):
    drop                      abrupt TCP reset of every connection (client sees 1006)
    close?code=1001&reason=.. close frame (default 1001 "CloudFlare WebSocket proxy restarting")
    freeze                    current connections stay open but receive nothing more (no heartbeats either)
    status?system=maintenance push a status; trading pauses until status?system=online
    ratelimit?n=1             the next n subscribe requests get {"Error":"Exceeded msg rate"}
    hold?on=1 / hold?on=0     refuse (HTTP 503) / accept new WebSocket handshakes
    step?n=10                 generate n trades per pair now
    stats                     counters;  trades?api=v2   every trade sent to a client, in that dialect
    rest?fault=ratelimit&n=3  the next n REST calls: {"error":["EAPI:Rate limit exceeded"]}
    rest?fault=error&status=502&n=1 / rest?fault=slow&delay=3&n=1   HTTP 5xx / an answer after `delay` seconds
    rest?down=1 / rest?down=0 REST calls cut off without an answer (a reset connection) / served again
    rest?depth=200            REST serves only the newest 200 trades per pair (older ones: "older than REST serves")
    rest?page=50              at most 50 trades per REST reply (Kraken: 1000)

REST trades on the same port, from the same trade history as the WebSocket (kraken-rest.md):
    GET /0/public/Trades?pair=XBTUSDT&since=<ns>&count=1000 -> {"error":[],"result":{"XBTUSDT":[[price, volume,
    time, "b"|"s", "m"|"l", "", trade_id], ...],"last":"<ns>"}}: trades with an engine time after `since`, up to
    1000; the result key is Kraken's legacy name where it has one (BTC/USD -> XXBTZUSD); the time has up to 7
    decimals and truncated to the microsecond equals the trade's WebSocket timestamp.

In-process (tests): server = FakeKraken(port=0, ...).start(); server.url("v2"); server.drop_connections(); ...
"""

from __future__ import annotations

import argparse
import base64
import bisect
import collections
import datetime as dt
import hashlib
import http
import json
import logging
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
from decimal import Decimal
from typing import Any, Iterable, Optional

log = logging.getLogger("fake_kraken")

DEFAULT_PAIRS = ["BTC/USDT", "ETH/USD", "DOGE/USD"]
DEFAULT_PORT = 8765
SNAPSHOT_SIZE = 50
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V2_TO_V1 = {"BTC": "XBT", "DOGE": "XDG"}
# (start price, price decimals, size decimals) per base asset; anything else gets the default.
PROFILES = {"BTC": ("83744.3", 1, 8), "ETH": ("2011.37", 2, 8), "DOGE": ("0.1234567", 7, 8), "SOL": ("142.55", 2, 8)}
DEFAULT_PROFILE = ("10.0000", 4, 8)
CLOSE_1001_REASON = "CloudFlare WebSocket proxy restarting"
HALTED = ("maintenance", "cancel_only", "post_only")
# Kraken's REST result key for some pairs is the legacy name, not the name asked for (kraken-rest.md)
REST_LEGACY_KEYS = {"BTC/USD": "XXBTZUSD", "ETH/USD": "XETHZUSD", "BTC/EUR": "XXBTZEUR", "ETH/EUR": "XETHZEUR"}
REST_MAX_COUNT = 1000


def v1_name(v2_pair: str) -> str:
    base, quote = v2_pair.split("/")
    return f"{V2_TO_V1.get(base, base)}/{V2_TO_V1.get(quote, quote)}"


def rest_name(v2_pair: str) -> str:
    """Kraken's REST altname: BTC/USDT -> XBTUSDT, DOGE/USD -> XDGUSD."""
    return v1_name(v2_pair).replace("/", "")


def iso_us(ts_us: int) -> str:
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts_us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return iso_us(time.time_ns() // 1000)


class Trade:
    """One market trade. Texts are kept per dialect: v1 fixed decimals, v2 as the JSON number's wire text."""

    __slots__ = ("pair", "trade_id", "price_v1", "size_v1", "price_v2", "size_v2", "side", "ord_type", "ts_us",
                 "ts_ns")

    def __init__(self, pair: str, trade_id: int, price: Decimal, size: Decimal, side: str, ord_type: str,
                 ts_us: int, v2_style: tuple) -> None:
        self.pair, self.trade_id, self.side, self.ord_type, self.ts_us = pair, trade_id, side, ord_type, ts_us
        # v1 quotes fixed decimals, at least 5 (e.g. "5541.20000", "354.11000000")
        v1_q = Decimal(1).scaleb(min(-5, price.as_tuple().exponent))
        self.price_v1, self.size_v1 = format(price.quantize(v1_q), "f"), format(size, "f")
        self.price_v2, self.size_v2 = _v2_text(price, v2_style[0]), _v2_text(size, v2_style[1])
        self.ts_ns = ts_us * 1000  # the engine's time; trades sharing a microsecond get 100 ns steps (REST shows them)

    def rest_json(self) -> str:
        """REST /0/public/Trades element: fixed-decimal texts, time as a JSON number with up to 7 decimals (the
        engine's time to 100 ns, trailing zeros dropped), side/type letters, misc, trade_id."""
        sec, ns = divmod(self.ts_ns, 1_000_000_000)
        frac = f"{ns // 100:07d}".rstrip("0") or "0"
        return (f'["{self.price_v1}","{self.size_v1}",{sec}.{frac},"{self.side[0]}","{self.ord_type[0]}","",'
                f'{self.trade_id}]')

    def v2_json(self) -> str:
        return (f'{{"symbol":"{self.pair}","side":"{self.side}","price":{self.price_v2},"qty":{self.size_v2},'
                f'"ord_type":"{self.ord_type}","trade_id":{self.trade_id},"timestamp":"{iso_us(self.ts_us)}"}}')

    def v1_json(self) -> str:
        sec, us = divmod(self.ts_us, 1_000_000)
        return (f'["{self.price_v1}","{self.size_v1}","{sec}.{us:06d}","{self.side[0]}","{self.ord_type[0]}",""]')

    def record(self, api: str) -> dict:
        """What a faithful producer must write for this trade (minus ts_ingest)."""
        return {
            "pair_native": self.pair if api == "v2" else v1_name(self.pair),
            "price": self.price_v2 if api == "v2" else self.price_v1,
            "size": self.size_v2 if api == "v2" else self.size_v1,
            "side": self.side, "ord_type": self.ord_type,
            "trade_id": self.trade_id if api == "v2" else None,
            "ts_event": iso_us(self.ts_us),
        }


def _v2_text(value: Decimal, style: str) -> str:
    """Kraken v2 numbers keep engine precision; the fake varies the wire text to catch float round-trips."""
    text = format(value, "f")
    if style == "trim" and "." in text:
        text = text.rstrip("0")
        text = text + "0" if text.endswith(".") else text  # 40.0, never "40."
    elif style == "int" and "." in text and text.rstrip("0").endswith("."):
        text = text.split(".")[0]
    return text


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
    pass


class ControlError(ValueError):
    """A /control/ request with a bad parameter (answered 400 with this message)."""


def int_param(q: dict, name: str, default: int, lo: int, hi: int) -> int:
    text = q.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,12}", text) or not lo <= int(text) <= hi:
        raise ControlError(f"{name}={text[:40]!r}: expected an integer in {lo}..{hi}")
    return int(text)


def choice_param(q: dict, name: str, default: str, allowed: tuple) -> str:
    text = q.get(name, default)
    if text not in allowed:
        raise ControlError(f"{name}={text[:40]!r}: expected one of {', '.join(allowed)}")
    return text


class RecordingError(ValueError):
    """A recording file that cannot be replayed; the message names the file and line."""


def read_recording(path: str) -> list[dict]:
    """A --record/--replay JSONL file -> [{"t": epoch seconds, "frame": text}, ...]; blank lines skipped.

    Raises RecordingError("FILE:LINE: ...") for the first line that is not such an object (or FILE: for I/O)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read the recording: {exc.strerror or exc}") from exc
    frames = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise RecordingError(f"{path}:{n}: not JSON ({exc}): {line[:80]!r}") from exc
        if (not isinstance(rec, dict) or not isinstance(rec.get("frame"), str)
                or type(rec.get("t")) not in (int, float) or rec["t"] != rec["t"]):
            raise RecordingError(f'{path}:{n}: expected {{"t": epoch seconds, "frame": text}}, got {line[:80]!r}')
        frames.append(rec)
    return frames


class Conn:
    """One client connection: a reader (requests) and a writer thread (an ordered outbound queue)."""

    def __init__(self, server: "FakeKraken", sock: socket.socket, api: str, conn_id: int) -> None:
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
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
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


class FakeKraken:
    """Threaded fake Kraken server. `start()` returns self; `port` is the bound port (pass port=0 for any)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, pairs: Iterable[str] = DEFAULT_PAIRS,
                 rate: float = 100.0, count: Optional[int] = None, seed: int = 0, max_batch: int = 5,
                 history: int = 0, start: str = "subscribe", decimals: Optional[int] = None,
                 v1_snapshot: bool = False, v2_snapshot_default: bool = True, heartbeat_interval: float = 1.0,
                 idle_timeout: float = 60.0, max_subscribes_per_s: int = 20, replay: Optional[str] = None,
                 pace: str = "recorded", version_v2: str = "2.0.10", version_v1: str = "1.9.2",
                 rest_depth: int = 0) -> None:
        self.host, self.port = host, port
        self.pairs = list(pairs)
        self.v1_to_v2 = {v1_name(p): p for p in self.pairs}
        self.rate, self.count, self.max_batch = rate, count, max(1, max_batch)
        self.rng = random.Random(seed)
        self.start_mode = start
        self.decimals = decimals
        self.v1_snapshot, self.v2_snapshot_default = v1_snapshot, v2_snapshot_default
        self.heartbeat_interval, self.idle_timeout = heartbeat_interval, idle_timeout
        self.max_subscribes_per_s = max_subscribes_per_s
        self.versions = {"v2": version_v2, "v1": version_v1}
        self.replay_path, self.pace = replay, pace
        self.lock = threading.RLock()  # market + subscriptions: snapshot and updates stay consistent
        self.conns: list[Conn] = []
        self.system = "online"
        self.hold = False
        self.ratelimit_next = 0
        self.stopped = threading.Event()
        self.market_started = threading.Event()
        self.generated = 0
        self.history: dict[str, list[Trade]] = {p: [] for p in self.pairs}
        self.sent: dict[str, dict[int, Trade]] = {p: {} for p in self.pairs}  # trades sent to >= 1 client
        self.counters = collections.Counter()
        self.channel_ids = {p: 1000 + i * 37 for i, p in enumerate(self.pairs)}
        # REST /0/public/Trades: names it accepts per pair, how much history it serves, faults queued on demand
        self.rest_names = {n: p for p in self.pairs for n in (rest_name(p), p, v1_name(p), REST_LEGACY_KEYS.get(p))
                           if n}
        self.rest_depth = rest_depth  # serve only the newest N trades per pair (0: all the fake keeps)
        self.rest_page_size = REST_MAX_COUNT  # at most this many trades per reply (Kraken: 1000)
        self.rest_faults: collections.deque = collections.deque()  # ("ratelimit"|"error"|"slow", status, delay)
        self.rest_down = False
        self._state = {}
        for p in self.pairs:
            start_price, pdec, sdec = PROFILES.get(p.split("/")[0], DEFAULT_PROFILE)
            if decimals is not None:
                pdec = sdec = decimals
            q = Decimal(1).scaleb(-pdec)
            self._state[p] = {"next_id": 1 + self.rng.randrange(10_000, 5_000_000), "price": Decimal(start_price).quantize(q),
                              "pq": q, "sq": Decimal(1).scaleb(-sdec)}
        if history:
            past = time.time_ns() // 1000 - 60_000_000
            for p in self.pairs:
                for i in range(history):
                    self.history[p].append(self._new_trade(p, past + i * 1000))
        self._replay_frames: list = read_recording(replay) if replay else []

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "FakeKraken":
        self.listener = socket.create_server((self.host, self.port), reuse_port=False, backlog=64)
        self.port = self.listener.getsockname()[1]
        for target in (self._accept_loop, self._heartbeat_loop):
            threading.Thread(target=target, daemon=True, name=f"fake-kraken-{target.__name__}").start()
        if self._replay_frames:
            threading.Thread(target=self._replay_loop, daemon=True, name="fake-kraken-replay").start()
        elif self.rate > 0:
            threading.Thread(target=self._market_loop, daemon=True, name="fake-kraken-market").start()
        if self.start_mode == "now":
            self.market_started.set()
        log.info("fake Kraken listening on ws://%s:%d (v2 at /v2, v1 at /)", self.host, self.port)
        return self

    def stop(self) -> None:
        self.stopped.set()
        try:
            self.listener.close()
        except OSError:
            pass
        for c in list(self.conns):
            c.kill()

    def __enter__(self) -> "FakeKraken":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def url(self, api: str = "v2") -> str:
        return f"ws://{self.host}:{self.port}" + ("/v2" if api == "v2" else "/")

    def _forget(self, conn: Conn) -> None:
        with self.lock:
            if conn in self.conns:
                self.conns.remove(conn)

    # -- market ---------------------------------------------------------------------------------
    def _new_trade(self, pair: str, ts_us: int) -> Trade:
        st, rng = self._state[pair], self.rng
        st["price"] = max(st["pq"], st["price"] + st["pq"] * rng.randint(-3, 3))
        size = st["sq"] * rng.choice((1, 7, 44780, 10**5, 123456789, rng.randrange(1, 10**9)))
        if rng.random() < 0.1:
            size = Decimal(rng.randint(1, 50)).quantize(st["sq"])  # whole numbers, e.g. 40.00000000
        trade = Trade(pair, st["next_id"], st["price"], size, rng.choice(("buy", "sell")),
                      rng.choice(("limit", "limit", "market")), ts_us,
                      (rng.choice(("full", "trim")), rng.choice(("full", "full", "trim", "int"))))
        last_ns = st.get("last_ns", 0)
        if trade.ts_ns <= last_ns:  # strictly increasing per pair, within the same microsecond as the WS time
            trade.ts_ns = last_ns + (100 if last_ns % 1000 < 900 else 1)
        st["next_id"] += 1
        st["last_ns"] = trade.ts_ns
        return trade

    def step(self, n: int = 1, pair: Optional[str] = None) -> list[Trade]:
        """Generate n trades for each pair (or one pair) now, in batches, and send them to subscribers."""
        made = []
        for p in ([pair] if pair else self.pairs):
            left = n
            while left > 0:
                k = min(left, self.rng.randint(1, self.max_batch))
                made += self._emit_batch(p, k)
                left -= k
        return made

    def _emit_batch(self, pair: str, k: int) -> list[Trade]:
        ts = time.time_ns() // 1000
        with self.lock:
            if self.count is not None:  # the market may have been halted since the caller sized the batch
                k = min(k, self.count - self.generated)
                if k <= 0:
                    return []
            batch = [self._new_trade(pair, ts) for _ in range(k)]  # a batch shares one timestamp
            self.history[pair].extend(batch)
            if self.count is None and len(self.history[pair]) > 200_000:
                del self.history[pair][:100_000]
            self.generated += k
            self._broadcast(pair, batch, "update")
        return batch

    def _broadcast(self, pair: str, batch: list[Trade], kind: str) -> None:
        frames = {}
        for c in self.conns:
            if pair in c.subs and not c.frozen and not c.closed:
                if c.api not in frames:
                    frames[c.api] = self._trade_frame(c.api, pair, batch, kind)
                c.send(frames[c.api], trades=batch)

    def _mark_sent(self, trades: list[Trade]) -> None:
        with self.lock:
            for t in trades:
                self.sent[t.pair][t.trade_id] = t
            self.counters["trades_sent"] += len(trades)

    def _trade_frame(self, api: str, pair: str, batch: list[Trade], kind: str) -> str:
        return self._frame_of(api, pair, [t.v2_json() if api == "v2" else t.v1_json() for t in batch], kind)

    def _frame_of(self, api: str, pair: str, elements: list[str], kind: str) -> str:
        """A trade frame of `pair` holding these element texts (JSON), in the dialect of `api`."""
        if api == "v2":
            return f'{{"channel":"trade","type":"{kind}","data":[{",".join(elements)}]}}'
        return f'[{self.channel_ids[pair]},[{",".join(elements)}],"trade","{v1_name(pair)}"]'

    def emit_mixed(self, pair: str, n: int, junk: list[str], api: str = "v2") -> list[Trade]:
        """n new trades of `pair` sent in ONE update frame to `api` subscribers, with the raw JSON texts `junk` as
        extra elements between them (good, junk, good, junk, ...): every good one must still be produced."""
        with self.lock:
            ts = time.time_ns() // 1000
            batch = [self._new_trade(pair, ts) for _ in range(n)]
            self.history[pair].extend(batch)
            self.generated += n
            for c in self.conns:
                if pair in c.subs and c.api == api and not c.frozen and not c.closed:
                    goods = [t.v2_json() if api == "v2" else t.v1_json() for t in batch]
                    elements = [e for pair_ in zip(goods, junk) for e in pair_]
                    elements += goods[len(junk):] + junk[len(goods):]
                    c.send(self._frame_of(api, pair, elements, "update"), trades=batch)
        return batch

    def _market_loop(self) -> None:
        self.market_started.wait()
        t0, done = time.monotonic(), 0
        while not self.stopped.is_set():
            if self.count is not None and self.generated >= self.count:
                return
            if self.system in HALTED:
                t0, done = time.monotonic(), 0
                time.sleep(0.02)
                continue
            due = int((time.monotonic() - t0) * self.rate) - done
            if due <= 0:
                time.sleep(min(0.005, 1.0 / self.rate))
                continue
            while due > 0:
                k = self.rng.randint(1, self.max_batch)  # may run ahead of `due`: batches at any rate
                if self.count is not None:
                    k = min(k, self.count - self.generated)
                    if k <= 0:
                        return
                self._emit_batch(self.rng.choice(self.pairs), k)
                due -= k
                done += k

    def _replay_loop(self) -> None:
        """Send the recording's data frames (not status/acks/heartbeats/pongs: those are answered live)."""
        self.market_started.wait()
        frames = [r for r in self._replay_frames if not _is_protocol_frame(r["frame"])]
        t_first = frames[0]["t"] if frames else 0.0
        t0 = time.monotonic()
        for r in frames:
            if self.stopped.is_set():
                return
            speed = pace_speed(self.pace)
            if speed:
                delay = (r["t"] - t_first) / speed - (time.monotonic() - t0)
                if delay > 0:
                    time.sleep(delay)
            api = "v1" if r["frame"].lstrip().startswith("[") else "v2"
            with self.lock:
                for c in self.conns:
                    if c.api == api and c.subs and not c.frozen:
                        c.send(r["frame"])
                self.counters["replayed"] += 1
        log.info("replay finished: %d frames", len(frames))

    # -- connections ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    sock.close()
                    return
                head += chunk
                if len(head) > 65536:
                    raise OSError("request head too large")
        except OSError:
            sock.close()
            return
        raw, _, rest = head.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        try:
            _method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            return self._http(sock, 400, {"error": f"bad HTTP request line {lines[0][:80]!r}"})
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        url = urllib.parse.urlsplit(target)
        if url.path == "/0/public/Trades":
            return self._rest_trades(sock, dict(urllib.parse.parse_qsl(url.query)))
        if url.path.startswith("/control/"):
            self._control(sock, url.path[len("/control/"):], dict(urllib.parse.parse_qsl(url.query)))
            return
        if headers.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in headers:
            return self._http(sock, 400, {"error": "expected a WebSocket upgrade or /control/<action>"})
        if url.path.rstrip("/") not in ("", "/v2"):
            return self._http(sock, 404, {"error": f"no endpoint {url.path}"})
        if self.hold:
            self.counters["refused"] += 1
            return self._http(sock, 503, {"error": "held"})
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        api = "v2" if url.path.rstrip("/") == "/v2" else "v1"
        conn = Conn(self, sock, api, self.rng.randrange(2**63 + 1, 2**64))  # ids above 2^63, as Kraken's
        conn.buf = rest
        with self.lock:
            self.conns.append(conn)
            self.counters["connections"] += 1
        threading.Thread(target=conn.writer, daemon=True).start()
        conn.send(self._status_frame(api, conn.conn_id))
        conn.reader()

    def _status_frame(self, api: str, conn_id: int) -> str:
        if api == "v2":
            return json.dumps({"channel": "status", "type": "update", "data": [{
                "version": self.versions["v2"], "system": self.system, "api_version": "v2",
                "connection_id": conn_id, "upcoming_maintenance": [], "emergency": []}]})
        return json.dumps({"connectionID": conn_id, "event": "systemStatus", "status": self.system,
                           "version": self.versions["v1"]})

    def _heartbeat_loop(self) -> None:
        while not self.stopped.wait(0.1):
            now = time.monotonic()
            for c in list(self.conns):
                if c.subs and not c.frozen and now - c.last_sent >= self.heartbeat_interval:
                    c.send('{"channel":"heartbeat"}' if c.api == "v2" else '{"event":"heartbeat"}')
                    self.counters["heartbeats"] += 1
                elif not c.subs and now - c.opened > self.idle_timeout and not c.frozen:
                    c.close(1000, "no subscription")

    # -- requests -------------------------------------------------------------------------------
    def handle_request(self, conn: Conn, text: str) -> None:
        self.counters["requests"] += 1
        try:
            req = json.loads(text)
        except ValueError:
            req = None
        if conn.api == "v2":
            self._handle_v2(conn, req)
        else:
            self._handle_v1(conn, req)

    def _rate_limited(self, conn: Conn) -> bool:
        now = time.monotonic()
        conn.subscribe_times.append(now)
        while conn.subscribe_times and now - conn.subscribe_times[0] > 1.0:
            conn.subscribe_times.popleft()
        limited = len(conn.subscribe_times) > self.max_subscribes_per_s
        with self.lock:
            if self.ratelimit_next > 0:
                self.ratelimit_next -= 1
                limited = True
        if limited:
            self.counters["rate_limited"] += 1
            conn.send('{"Error":"Exceeded msg rate"}')
        return limited

    def _handle_v2(self, conn: Conn, req: Any) -> None:
        t_in = now_iso()
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            conn.send(json.dumps({"error": "Malformed request", "method": "error", "status": "error",
                                  "success": False, "time_in": t_in, "time_out": now_iso()}))
            return
        method, params, req_id = req["method"], req.get("params"), req.get("req_id")
        extra = {"req_id": req_id} if req_id is not None else {}
        if method == "ping":
            conn.send(json.dumps({"method": "pong", **extra, "time_in": t_in, "time_out": now_iso()}))
            return
        if method not in ("subscribe", "unsubscribe"):
            conn.send(json.dumps({"error": f"Method {method} not found", "method": method, "success": False,
                                  **extra, "time_in": t_in, "time_out": now_iso()}))
            return
        if (not isinstance(params, dict) or not isinstance(params.get("symbol"), list)
                or params.get("channel") != "trade"):
            conn.send(json.dumps({"error": "Malformed request", "method": method, "success": False,
                                  **extra, "time_in": t_in, "time_out": now_iso()}))
            return
        if method == "subscribe" and self._rate_limited(conn):
            return
        snapshot = params.get("snapshot", self.v2_snapshot_default)
        for symbol in params["symbol"]:
            with self.lock:  # ack, snapshot and the first update go out in this order, nothing lost between
                if not isinstance(symbol, str) or symbol not in self.history:
                    conn.send(json.dumps({"error": f"Currency pair not supported {symbol}", "method": method,
                                          "success": False, "symbol": symbol, **extra,
                                          "time_in": t_in, "time_out": now_iso()}))
                    continue
                result = {"channel": "trade", "symbol": symbol}
                if method == "subscribe":
                    result["snapshot"] = bool(snapshot)
                conn.send(json.dumps({"method": method, "req_id": req_id, "result": result, "success": True,
                                      "time_in": t_in, "time_out": now_iso()} if req_id is not None else
                                     {"method": method, "result": result, "success": True,
                                      "time_in": t_in, "time_out": now_iso()}))
                if method == "unsubscribe":
                    conn.subs.discard(symbol)
                    continue
                conn.subs.add(symbol)
                self.counters["subscriptions"] += 1
                if snapshot:
                    self._send_snapshot(conn, symbol, "snapshot")
        self.market_started.set()

    def _send_snapshot(self, conn: Conn, pair: str, kind: str) -> None:
        last = self.history[pair][-SNAPSHOT_SIZE:]
        conn.send(self._trade_frame(conn.api, pair, last, kind), trades=last)
        self.counters["snapshots"] += 1

    def _handle_v1(self, conn: Conn, req: Any) -> None:
        if not isinstance(req, dict) or not isinstance(req.get("event"), str):
            conn.send(json.dumps({"errorMessage": "Malformed request", "event": "error", "status": "error"}))
            return
        event, reqid = req["event"], req.get("reqid")
        extra = {"reqid": reqid} if reqid is not None else {}
        if event == "ping":
            conn.send(json.dumps({"event": "pong", **extra}))
            return
        if event not in ("subscribe", "unsubscribe"):
            conn.send(json.dumps({"errorMessage": "Event(s) not found", "event": "error", **extra, "status": "error"}))
            return
        sub, pairs = req.get("subscription"), req.get("pair")
        if not isinstance(sub, dict):
            conn.send(json.dumps({"errorMessage": "Subscription field must be an object", "event": "subscriptionStatus",
                                  **extra, "status": "error"}))
            return
        if sub.get("name") != "trade" or set(sub) - {"name"}:
            msg = "Subscription name invalid" if sub.get("name") != "trade" else "Malformed request"
            conn.send(json.dumps({"errorMessage": msg, "event": "subscriptionStatus", **extra, "status": "error",
                                  "subscription": sub}))
            return
        if not isinstance(pairs, list):
            conn.send(json.dumps({"errorMessage": "Malformed request", "event": "subscriptionStatus", **extra,
                                  "status": "error", "subscription": sub}))
            return
        if event == "subscribe" and self._rate_limited(conn):
            return
        for pair in pairs:
            with self.lock:
                v2 = self.v1_to_v2.get(pair) if isinstance(pair, str) else None
                base = {"channelName": "trade", "event": "subscriptionStatus", "pair": pair, **extra,
                        "subscription": {"name": "trade"}}
                if v2 is None:
                    bad_format = not (isinstance(pair, str) and "/" in pair and pair.replace("/", "").isalnum())
                    err = f"Currency pair not in ISO 4217-A3 format {pair}" if bad_format else "Pair(s) not found"
                    base.pop("channelName")
                    conn.send(json.dumps({"errorMessage": err, **base, "status": "error"}))
                    continue
                status = "subscribed" if event == "subscribe" else "unsubscribed"
                conn.send(json.dumps({"channelID": self.channel_ids[v2], **base, "status": status}))
                if event == "unsubscribe":
                    conn.subs.discard(v2)
                    continue
                conn.subs.add(v2)
                self.counters["subscriptions"] += 1
                if self.v1_snapshot and self.history[v2]:
                    self._send_snapshot(conn, v2, "snapshot")
        self.market_started.set()

    # -- faults and inspection (in-process API; the same over HTTP /control/...) ------------------
    def drop_connections(self) -> int:
        """Abrupt close of every connection (RST, no close frame): the client sees 1006."""
        conns = list(self.conns)
        for c in conns:
            c.kill()
        self.counters["dropped"] += len(conns)
        return len(conns)

    def close_connections(self, code: int = 1001, reason: str = CLOSE_1001_REASON) -> int:
        conns = list(self.conns)
        for c in conns:
            c.close(code, reason)
        return len(conns)

    def freeze_connections(self) -> int:
        """Silence: current connections stay open but get nothing more (no trades, no heartbeats)."""
        conns = list(self.conns)
        for c in conns:
            c.frozen = True
        return len(conns)

    def set_system(self, system: str) -> None:
        """Push a status change; maintenance/cancel_only/post_only halt trading (heartbeats continue)."""
        with self.lock:
            self.system = system
            for c in self.conns:
                c.send(self._status_frame(c.api, c.conn_id))

    def halt_market(self) -> int:
        """No more generated trades from now on; returns how many were generated. Returns once every frame already
        queued is written to its socket, so sent_trades() is final from then on."""
        with self.lock:
            self.count = self.generated
            conns = list(self.conns)
        deadline = time.monotonic() + 10
        for conn in conns:
            conn.wait_written(deadline)
        return self.count

    def rate_limit_next(self, n: int = 1) -> None:
        with self.lock:
            self.ratelimit_next += n

    def set_hold(self, on: bool) -> None:
        self.hold = on

    def inject(self, frames: Iterable["str | bytes"], api: Optional[str] = None) -> int:
        """Send raw frames (text opcode, even invalid UTF-8 bytes) to subscribed connections, in order."""
        n = 0
        with self.lock:
            for frame in frames:
                for c in self.conns:
                    if c.subs and (api is None or c.api == api):
                        c.send(frame)
                        n += 1
        return n

    def connection_count(self) -> int:
        return self.counters["connections"]

    def active_connections(self) -> int:
        return sum(1 for c in self.conns if c.subs and not c.frozen)

    def sent_trades(self, api: str = "v2") -> dict[str, list[dict]]:
        """Every trade written to at least one client's socket, per pair (v2 name), ascending trade_id, in `api` dialect."""
        with self.lock:
            return {p: [self.sent[p][i].record(api) for i in sorted(self.sent[p])] for p in self.pairs}

    def market_trades(self, api: str = "v2") -> dict[str, list[dict]]:
        with self.lock:
            return {p: [t.record(api) for t in self.history[p]] for p in self.pairs}

    def last_trade_id(self, pair: str) -> Optional[int]:
        with self.lock:
            h = self.history[pair]
            return h[-1].trade_id if h else None

    def _control(self, sock: socket.socket, action: str, q: dict) -> None:
        """GET /control/<action>?<params>: a bad parameter is a 400 naming it, a bug a 500 (logged), never silence."""
        try:
            body = self._control_action(action, q)
        except ControlError as exc:
            return self._http(sock, 400, {"error": str(exc)})
        except Exception as exc:  # a bug in the fake: say so to the caller, keep serving
            log.exception("control %s failed", action)
            return self._http(sock, 500, {"error": f"{type(exc).__name__}: {exc}"})
        if body is None:
            return self._http(sock, 404, {"error": f"unknown action {action!r}"})
        self._http(sock, 200, body)

    # -- REST /0/public/Trades --------------------------------------------------------------------
    def add_rest_fault(self, kind: str, n: int = 1, status: int = 502, delay: float = 2.0) -> None:
        """The next n REST calls: "ratelimit" ({"error":["EAPI:Rate limit exceeded"]}), "error" (HTTP `status`),
        or "slow" (answered after `delay` seconds)."""
        with self.lock:
            self.rest_faults.extend([(kind, status, delay)] * n)

    def set_rest_down(self, down: bool) -> None:
        """While down, every REST call is cut off without an answer (the client sees a reset connection)."""
        self.rest_down = down

    def _rest_trades(self, sock: socket.socket, q: dict) -> None:
        self.counters["rest_calls"] += 1
        if self.rest_down:
            self.counters["rest_refused"] += 1
            return self._reset(sock)
        with self.lock:
            kind, status, delay = self.rest_faults.popleft() if self.rest_faults else (None, 0, 0.0)
        if kind is not None:
            self.counters["rest_faults"] += 1
        if kind == "ratelimit":
            return self._http(sock, 200, {"error": ["EAPI:Rate limit exceeded"]})
        if kind == "error":
            return self._http_raw(sock, status, b"<html><body>upstream error</body></html>", "text/html")
        if kind == "slow":
            time.sleep(delay)
        pair = self.rest_names.get(q.get("pair", ""))
        since, count = q.get("since", "0"), q.get("count", str(REST_MAX_COUNT))
        if pair is None:
            return self._http(sock, 200, {"error": ["EQuery:Unknown asset pair"]})
        if not (since.isdigit() and len(since) <= 20 and count.isdigit() and 1 <= int(count) <= REST_MAX_COUNT):
            return self._http(sock, 200, {"error": ["EGeneral:Invalid arguments"]})
        with self.lock:
            history = self.history[pair]
            served = history[-self.rest_depth:] if self.rest_depth else history
            start = bisect.bisect_right(served, int(since), key=lambda t: t.ts_ns)
            page = served[start:start + min(int(count), self.rest_page_size)]
        last = page[-1].ts_ns if page else int(since)
        key = REST_LEGACY_KEYS.get(pair, rest_name(pair))
        body = (f'{{"error":[],"result":{{"{key}":[{",".join(t.rest_json() for t in page)}],'
                f'"last":"{last}"}}}}')
        self._http_raw(sock, 200, body.encode())

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def _control_action(self, action: str, q: dict) -> Optional[dict]:
        if action == "drop":
            return {"dropped": self.drop_connections()}
        if action == "close":
            return {"closed": self.close_connections(int_param(q, "code", 1001, 1000, 4999),
                                                     q.get("reason", CLOSE_1001_REASON)[:120])}
        if action == "freeze":
            return {"frozen": self.freeze_connections()}
        if action == "status":
            self.set_system(choice_param(q, "system", "online", ("online", *HALTED)))
            return {"system": self.system}
        if action == "ratelimit":
            self.rate_limit_next(int_param(q, "n", 1, 0, 1000))
            return {"ratelimit_next": self.ratelimit_next}
        if action == "hold":
            self.set_hold(choice_param(q, "on", "1", ("1", "0", "true", "false", "on", "off")) in ("1", "true", "on"))
            return {"hold": self.hold}
        if action == "step":
            pair = q.get("pair")
            if pair is not None and pair not in self.history:
                raise ControlError(f"pair={pair!r}: not one of {', '.join(self.pairs)}")
            return {"generated": len(self.step(int_param(q, "n", 1, 0, 100_000), pair))}
        if action == "stats":
            return {**self.counters, "generated": self.generated, "system": self.system,
                    "active_connections": self.active_connections()}
        if action == "trades":
            return self.sent_trades(choice_param(q, "api", "v2", ("v2", "v1")))
        if action == "rest":
            return self._control_rest(q)
        return None

    def _control_rest(self, q: dict) -> dict:
        """rest?fault=ratelimit|error|slow&n=1&status=502&delay=2 , rest?down=1|0 , rest?depth=N"""
        if "fault" in q:
            self.add_rest_fault(choice_param(q, "fault", "", ("ratelimit", "error", "slow")),
                                int_param(q, "n", 1, 1, 1000), int_param(q, "status", 502, 400, 599),
                                int_param(q, "delay", 2, 0, 120))
        if "down" in q:
            self.set_rest_down(choice_param(q, "down", "1", ("1", "0")) == "1")
        if "depth" in q:
            self.rest_depth = int_param(q, "depth", 0, 0, 10_000_000)
        if "page" in q:
            self.rest_page_size = int_param(q, "page", REST_MAX_COUNT, 1, REST_MAX_COUNT)
        return {"faults_queued": len(self.rest_faults), "down": self.rest_down, "depth": self.rest_depth,
                "page": self.rest_page_size}

    @classmethod
    def _http(cls, sock: socket.socket, status: int, body: Any) -> None:
        cls._http_raw(sock, status, json.dumps(body).encode())

    @staticmethod
    def _http_raw(sock: socket.socket, status: int, payload: bytes, content_type: str = "application/json") -> None:
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


def _is_protocol_frame(text: str) -> bool:
    """Status, acks, heartbeats, pongs: answered live by the server, not replayed."""
    try:
        msg = json.loads(text)
    except ValueError:
        return False  # junk is data too: replay it as recorded
    if isinstance(msg, dict):
        return (msg.get("channel") in ("status", "heartbeat") or msg.get("method") in ("subscribe", "unsubscribe", "pong")
                or msg.get("event") in ("systemStatus", "subscriptionStatus", "heartbeat", "pong"))
    return False


def pace_speed(pace: str) -> float:
    """How many times faster than recorded a replay goes: "recorded" 1, "10x" 10; 0 for "fast" (no waiting)."""
    if pace == "fast":
        return 0.0
    if pace == "recorded":
        return 1.0
    return float(pace[:-1])


def checked_pace(text: str) -> str:
    """--pace: "recorded", "fast" or "<speed>x" with a speed > 0."""
    try:
        if text in ("recorded", "fast") or (text.endswith("x") and float(text[:-1]) > 0):
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r}: use recorded, fast or a speed-up such as 10x")


def simulated_recording(pairs: list[str], minutes: float, rate: float, seed: int, start_us: int,
                        max_batch: int = 5) -> Iterable[dict]:
    """A recording of `minutes` of market without serving or waiting: v2 trade frames (batches sharing a timestamp,
    of one pair each) at about `rate` trades per second over all pairs, stamped from `start_us` on; lines as
    the producer's --record writes them ({"t": epoch seconds, "frame": text})."""
    market = FakeKraken(pairs=pairs, rate=rate, seed=seed, max_batch=max_batch)
    rng = random.Random(seed + 1)
    now_us, end_us = start_us, start_us + int(minutes * 60_000_000)
    while True:
        k = rng.randint(1, market.max_batch)
        now_us += max(1, int(rng.expovariate(rate / k) * 1_000_000))
        if now_us >= end_us:
            return
        pair = rng.choice(market.pairs)
        batch = [market._new_trade(pair, now_us) for _ in range(k)]
        yield {"t": now_us / 1e6, "frame": market._trade_frame("v2", pair, batch, "update")}


def write_recording(path: str, pairs: list[str], minutes: float, rate: float, seed: int) -> int:
    """simulated_recording() of the last `minutes` before now, to `path`; the number of frames written."""
    start_us = (time.time_ns() // 1000 // 60_000_000 - int(minutes) - 1) * 60_000_000  # on a minute
    frames = 0
    with open(path, "w", encoding="utf-8") as out:
        for line in simulated_recording(pairs, minutes, rate, seed, start_us):
            out.write(json.dumps(line) + "\n")
            frames += 1
    return frames
