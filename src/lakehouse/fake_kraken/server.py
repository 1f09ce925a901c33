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

This module is the server: it listens, routes each connection (WebSocket, REST, /control/), keeps the connections,
sends the market's trades to their subscribers, and holds the faults. The rest lives by concern:
    market.py      the simulated market: trades, prices, ids, the history
    kraken_ws.py   Kraken's WebSocket API: answers to requests, the frames' texts
    websocket.py   RFC 6455: the handshake, frames, one connection's reader and writer
    rest.py        REST /0/public/Trades and its faults
    control.py     the /control/ actions
    plain_http.py  reading an HTTP request, answering it
    recording.py   recordings: read, replayed at a pace, simulated and written
"""

from __future__ import annotations

import collections
import json
import logging
import random
import socket
import threading
import time
from typing import Any, Iterable, Optional

from lakehouse.fake_kraken.control import ControlError, control_action
from lakehouse.fake_kraken.kraken_ws import CLOSE_1001_REASON, HALTED, HEARTBEAT, KrakenWs, status_frame
from lakehouse.fake_kraken.market import Market, Trade, now_us, trade_at_rate
from lakehouse.fake_kraken.plain_http import BadRequest, read_request, reset, respond, respond_json
from lakehouse.fake_kraken.recording import (
    RecordingError, checked_pace, pace_speed, read_recording, replay, simulated_recording, write_recording,
)
from lakehouse.fake_kraken.rest import RestTrades
from lakehouse.fake_kraken.websocket import Conn, encode_frame, handshake_response

# The fake's names as its users (tests, benchmarks, the pipeline runner) import them from here.
__all__ = ["DEFAULT_PAIRS", "DEFAULT_PORT", "FakeKraken", "RecordingError", "Trade", "checked_pace", "encode_frame",
           "pace_speed", "read_recording", "simulated_recording", "write_recording"]

log = logging.getLogger("fake_kraken")

DEFAULT_PAIRS = ["BTC/USDT", "ETH/USD", "DOGE/USD"]
DEFAULT_PORT = 8765


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
        self.rate = rate
        self.rng = random.Random(seed)  # the market's draws, batch sizes and connection ids: one seeded sequence
        self.start_mode = start
        self.heartbeat_interval, self.idle_timeout = heartbeat_interval, idle_timeout
        self.versions = {"v2": version_v2, "v1": version_v1}
        self.pace = pace
        self.lock = threading.RLock()  # market + subscriptions: snapshot and updates stay consistent
        self.conns: list[Conn] = []
        self.system = "online"
        self.hold = False
        self.stopped = threading.Event()
        self.market_started = threading.Event()
        self.counters: collections.Counter = collections.Counter()
        self.sent: dict[str, dict[int, Trade]] = {p: {} for p in self.pairs}  # trades sent to >= 1 client
        self.market = Market(self.pairs, self.rng, decimals, history, count, max_batch)
        self.kraken_ws = KrakenWs(self.market, self.lock, self.counters, self.market_started, v1_snapshot,
                                  v2_snapshot_default, max_subscribes_per_s)
        self.rest = RestTrades(self.market, self.lock, self.counters, rest_depth)
        self._replay_frames: list = read_recording(replay) if replay else []

    # -- the market's state, as tests read it -----------------------------------------------------
    @property
    def history(self) -> dict[str, list[Trade]]:
        return self.market.history

    @property
    def generated(self) -> int:
        return self.market.generated

    @property
    def rest_page_size(self) -> int:
        """At most this many trades per REST reply (Kraken: 1000); tests lower it."""
        return self.rest.page_size

    @rest_page_size.setter
    def rest_page_size(self, size: int) -> None:
        self.rest.page_size = size

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

    # -- trades to subscribers --------------------------------------------------------------------
    def step(self, n: int = 1, pair: Optional[str] = None) -> list[Trade]:
        """Generate n trades for each pair (or one pair) now, in batches, and send them to subscribers."""
        made = []
        for p in ([pair] if pair else self.pairs):
            left = n
            while left > 0:
                k = min(left, self.market.batch_size())
                made += self._emit_batch(p, k)
                left -= k
        return made

    def _emit_batch(self, pair: str, k: int) -> list[Trade]:
        ts = now_us()
        with self.lock:
            batch = self.market.add_within_count(pair, k, ts)  # a batch shares one timestamp
            if batch:
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
        """A connection's writer wrote a frame carrying these trades to its socket."""
        with self.lock:
            for t in trades:
                self.sent[t.pair][t.trade_id] = t
            self.counters["trades_sent"] += len(trades)

    def _new_trade(self, pair: str, ts_us: int) -> Trade:
        """The market's next trade of `pair`, not sent (tests and benchmarks build frames of their own with it)."""
        return self.market.new_trade(pair, ts_us)

    def _trade_frame(self, api: str, pair: str, batch: list[Trade], kind: str) -> str:
        return self._frame_of(api, pair, [t.json(api) for t in batch], kind)

    def _frame_of(self, api: str, pair: str, elements: list[str], kind: str) -> str:
        """A trade frame of `pair` holding these element texts (JSON), in the dialect of `api`."""
        return self.kraken_ws.trade_frame(api, pair, elements, kind)

    def emit_mixed(self, pair: str, n: int, junk: list[str], api: str = "v2") -> list[Trade]:
        """n new trades of `pair` sent in ONE update frame to `api` subscribers, with the raw JSON texts `junk` as
        extra elements between them (good, junk, good, junk, ...): every good one must still be produced."""
        with self.lock:
            batch = self.market.add(pair, n, now_us())
            for c in self.conns:
                if pair in c.subs and c.api == api and not c.frozen and not c.closed:
                    goods = [t.json(api) for t in batch]
                    elements = [e for pair_ in zip(goods, junk) for e in pair_]
                    elements += goods[len(junk):] + junk[len(goods):]
                    c.send(self._frame_of(api, pair, elements, "update"), trades=batch)
        return batch

    def _market_loop(self) -> None:
        """Trades at `rate` per second from the first subscription on; none while the system status halts them."""
        self.market_started.wait()
        trade_at_rate(self.market, self.rate, self._emit_batch, lambda: self.system in HALTED, self.stopped)

    def _replay_loop(self) -> None:
        """The recording's data frames, to the subscribers of their dialect, at --pace."""
        self.market_started.wait()
        sent = replay(self._replay_frames, self.pace, self.stopped, self._send_replayed)
        if sent is not None:
            log.info("replay finished: %d frames", sent)

    def _send_replayed(self, api: str, frame: str) -> None:
        with self.lock:
            for c in self.conns:
                if c.api == api and c.subs and not c.frozen:
                    c.send(frame)
            self.counters["replayed"] += 1

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
        """One connection: REST, /control/, or a WebSocket upgrade served until the connection ends."""
        sock.settimeout(10)
        try:
            request = read_request(sock)
        except BadRequest as exc:
            return respond_json(sock, 400, {"error": str(exc)})
        if request is None:
            sock.close()
            return
        if request.path == "/0/public/Trades":
            return self._rest_trades(sock, request.query)
        if request.path.startswith("/control/"):
            return self._control(sock, request.path[len("/control/"):], request.query)
        headers = request.headers
        if headers.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in headers:
            return respond_json(sock, 400, {"error": "expected a WebSocket upgrade or /control/<action>"})
        if request.path.rstrip("/") not in ("", "/v2"):
            return respond_json(sock, 404, {"error": f"no endpoint {request.path}"})
        if self.hold:
            self.counters["refused"] += 1
            return respond_json(sock, 503, {"error": "held"})
        sock.sendall(handshake_response(headers["sec-websocket-key"]))
        api = "v2" if request.path.rstrip("/") == "/v2" else "v1"
        conn = Conn(self, sock, api, self.rng.randrange(2**63 + 1, 2**64))  # ids above 2^63, as Kraken's
        conn.buf = request.rest
        with self.lock:
            self.conns.append(conn)
            self.counters["connections"] += 1
        threading.Thread(target=conn.writer, daemon=True).start()
        conn.send(self._status_frame(api, conn.conn_id))
        conn.reader()

    def _status_frame(self, api: str, conn_id: int) -> str:
        return status_frame(api, self.system, conn_id, self.versions[api])

    def _heartbeat_loop(self) -> None:
        while not self.stopped.wait(0.1):
            now = time.monotonic()
            for c in list(self.conns):
                if c.subs and not c.frozen and now - c.last_sent >= self.heartbeat_interval:
                    c.send(HEARTBEAT[c.api])
                    self.counters["heartbeats"] += 1
                elif not c.subs and now - c.opened > self.idle_timeout and not c.frozen:
                    c.close(1000, "no subscription")

    # -- requests (Kraken's WebSocket API: kraken_ws.py) --------------------------------------------
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

    def _handle_v2(self, conn: Conn, req: Any) -> None:
        """A v2 request (a subclass may hook in here: bench/producer_ingest.py)."""
        self.kraken_ws.v2(conn, req)

    def _handle_v1(self, conn: Conn, req: Any) -> None:
        self.kraken_ws.v1(conn, req)

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
            made = self.market.halt()
            conns = list(self.conns)
        deadline = time.monotonic() + 10
        for conn in conns:
            conn.wait_written(deadline)
        return made

    def rate_limit_next(self, n: int = 1) -> None:
        with self.lock:
            self.kraken_ws.ratelimit_next += n

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
        """Every trade written to at least one client's socket, per pair (v2 name), ascending trade_id, in the dialect
        of `api`."""
        with self.lock:
            return {p: [self.sent[p][i].record(api) for i in sorted(self.sent[p])] for p in self.pairs}

    def market_trades(self, api: str = "v2") -> dict[str, list[dict]]:
        with self.lock:
            return self.market.records(api)

    def last_trade_id(self, pair: str) -> Optional[int]:
        with self.lock:
            return self.market.last_trade_id(pair)

    def add_rest_fault(self, kind: str, n: int = 1, status: int = 502, delay: float = 2.0) -> None:
        """The next n REST calls: "ratelimit" ({"error":["EAPI:Rate limit exceeded"]}), "error" (HTTP `status`),
        or "slow" (answered after `delay` seconds)."""
        self.rest.add_fault(kind, n, status, delay)

    def set_rest_down(self, down: bool) -> None:
        """While down, every REST call is cut off without an answer (the client sees a reset connection)."""
        self.rest.down = down

    def _rest_trades(self, sock: socket.socket, q: dict) -> None:
        answer = self.rest.answer(q)
        if answer is None:
            return reset(sock)
        respond(sock, *answer)

    def _control(self, sock: socket.socket, action: str, q: dict) -> None:
        """GET /control/<action>?<params>: a bad parameter is a 400 naming it, a bug a 500 (logged), never silence."""
        try:
            body = control_action(self, action, q)
        except ControlError as exc:
            return respond_json(sock, 400, {"error": str(exc)})
        except Exception as exc:  # a bug in the fake: say so to the caller, keep serving
            log.exception("control %s failed", action)
            return respond_json(sock, 500, {"error": f"{type(exc).__name__}: {exc}"})
        if body is None:
            return respond_json(sock, 404, {"error": f"unknown action {action!r}"})
        respond_json(sock, 200, body)
