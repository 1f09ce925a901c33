"""Kraken's REST trades as the fake serves them (kraken-rest.md), from the same history as its WebSocket:

    GET /0/public/Trades?pair=XBTUSDT&since=<ns>&count=1000 -> {"error":[],"result":{"XBTUSDT":[[price, volume,
    time, "b"|"s", "m"|"l", "", trade_id], ...],"last":"<ns>"}}

trades with an engine time after `since`, up to `count` (at most 1000); the result key is Kraken's legacy name where
it has one (BTC/USD -> XXBTZUSD); the time has up to 7 decimals and, truncated to the microsecond, equals the
trade's WebSocket timestamp. Faults on demand: rate-limit errors, HTTP errors, slow answers, no answer at all, and a
shallower history or smaller pages than Kraken's.

    rest = RestTrades(market, threading.RLock(), collections.Counter())
    rest.answer({"pair": "XBTUSDT", "since": "0"})   # (200, b'{"error":[],"result":{"XBTUSDT":[...]...}}', ...)
"""

from __future__ import annotations

import bisect
import collections
import json
import threading
import time
from typing import NamedTuple, Optional

from lakehouse.fake_kraken.market import Market, rest_name, v1_name

# Kraken's REST result key for some pairs is the legacy name, not the name asked for (kraken-rest.md)
REST_LEGACY_KEYS = {"BTC/USD": "XXBTZUSD", "ETH/USD": "XETHZUSD", "BTC/EUR": "XXBTZEUR", "ETH/EUR": "XETHZEUR"}
REST_MAX_COUNT = 1000
FAULTS = ("ratelimit", "error", "slow")


class Answer(NamedTuple):
    status: int
    payload: bytes
    content_type: str = "application/json"


def json_answer(body: object) -> Answer:
    return Answer(200, json.dumps(body).encode())


class RestTrades:
    """/0/public/Trades over `market`'s history (read under `lock`); counts rest_calls, rest_refused and
    rest_faults in `counters`."""

    def __init__(self, market: Market, lock: threading.RLock, counters: collections.Counter, depth: int = 0) -> None:
        self.market, self.lock, self.counters = market, lock, counters
        # the names it accepts per pair: REST's altname, the v2 and v1 names, the legacy key
        self.names = {n: p for p in market.pairs for n in (rest_name(p), p, v1_name(p), REST_LEGACY_KEYS.get(p)) if n}
        self.depth = depth  # serve only the newest N trades per pair (0: all the fake keeps)
        self.page_size = REST_MAX_COUNT  # at most this many trades per reply (Kraken: 1000)
        self.faults: collections.deque = collections.deque()  # (kind, status, delay) per call to come
        self.down = False  # every call cut off without an answer

    def add_fault(self, kind: str, n: int = 1, status: int = 502, delay: float = 2.0) -> None:
        """The next n calls: "ratelimit" ({"error":["EAPI:Rate limit exceeded"]}), "error" (HTTP `status`), or
        "slow" (answered after `delay` seconds)."""
        with self.lock:
            self.faults.extend([(kind, status, delay)] * n)

    def answer(self, q: dict) -> Optional[Answer]:
        """The answer to one call with these query parameters; None: cut the connection off (REST is down)."""
        self.counters["rest_calls"] += 1
        if self.down:
            self.counters["rest_refused"] += 1
            return None
        with self.lock:
            kind, status, delay = self.faults.popleft() if self.faults else (None, 0, 0.0)
        if kind is not None:
            self.counters["rest_faults"] += 1
        if kind == "ratelimit":
            return json_answer({"error": ["EAPI:Rate limit exceeded"]})
        if kind == "error":
            return Answer(status, b"<html><body>upstream error</body></html>", "text/html")
        if kind == "slow":
            time.sleep(delay)
        pair = self.names.get(q.get("pair", ""))
        since, count = q.get("since", "0"), q.get("count", str(REST_MAX_COUNT))
        if pair is None:
            return json_answer({"error": ["EQuery:Unknown asset pair"]})
        if not (since.isdigit() and len(since) <= 20 and count.isdigit() and 1 <= int(count) <= REST_MAX_COUNT):
            return json_answer({"error": ["EGeneral:Invalid arguments"]})
        with self.lock:
            history = self.market.history[pair]
            served = history[-self.depth:] if self.depth else history
            start = bisect.bisect_right(served, int(since), key=lambda t: t.ts_ns)
            page = served[start:start + min(int(count), self.page_size)]
        last = page[-1].ts_ns if page else int(since)
        key = REST_LEGACY_KEYS.get(pair, rest_name(pair))
        body = (f'{{"error":[],"result":{{"{key}":[{",".join(t.rest_json() for t in page)}],'
                f'"last":"{last}"}}}}')
        return Answer(200, body.encode())
