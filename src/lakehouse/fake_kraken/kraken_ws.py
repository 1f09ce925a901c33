"""Kraken's WebSocket API as the fake speaks it (the trade channel, v2 and v1, ../shared/reference/kraken-ws.md §6):
the answers to a client's requests (acks, errors, pongs, the snapshot after a subscribe), and the texts of the
frames the server sends on its own (trades, status, heartbeats). The frames' transport is websocket.py's.

    api = KrakenWs(market, threading.RLock(), collections.Counter(), threading.Event())
    api.v2(conn, {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"]}})
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any

from lakehouse.fake_kraken.market import Market, now_iso, v1_name
from lakehouse.fake_kraken.websocket import Conn

SNAPSHOT_SIZE = 50
HALTED = ("maintenance", "cancel_only", "post_only")  # system statuses under which nothing trades
CLOSE_1001_REASON = "CloudFlare WebSocket proxy restarting"
HEARTBEAT = {"v2": '{"channel":"heartbeat"}', "v1": '{"event":"heartbeat"}'}


def v2_trade_frame(elements: list[str], kind: str) -> str:
    """A v2 trade frame ("snapshot" or "update") holding these element texts (JSON)."""
    return f'{{"channel":"trade","type":"{kind}","data":[{",".join(elements)}]}}'


def v1_trade_frame(channel_id: int, pair: str, elements: list[str]) -> str:
    """A v1 trade frame of `pair` (its v2 name) holding these element texts (JSON)."""
    return f'[{channel_id},[{",".join(elements)}],"trade","{v1_name(pair)}"]'


def status_frame(api: str, system: str, conn_id: int, version: str) -> str:
    """The status Kraken sends on connect and on every change of `system` ("online", "maintenance", ...)."""
    if api == "v2":
        return json.dumps({"channel": "status", "type": "update", "data": [{
            "version": version, "system": system, "api_version": "v2",
            "connection_id": conn_id, "upcoming_maintenance": [], "emergency": []}]})
    return json.dumps({"connectionID": conn_id, "event": "systemStatus", "status": system, "version": version})


class KrakenWs:
    """Answers the requests of the connections to one fake Kraken. `lock` is the server's (market and
    subscriptions change together under it), `counters` its counters; `started` is set by the first subscribe.
    A v2 subscribe without "snapshot" gets one if `v2_snapshot_default`; v1 gets one only with `v1_snapshot`."""

    def __init__(self, market: Market, lock: threading.RLock, counters: collections.Counter,
                 started: threading.Event, v1_snapshot: bool = False, v2_snapshot_default: bool = True,
                 max_subscribes_per_s: int = 20) -> None:
        self.market, self.lock, self.counters, self.started = market, lock, counters, started
        self.v1_snapshot, self.v2_snapshot_default = v1_snapshot, v2_snapshot_default
        self.max_subscribes_per_s = max_subscribes_per_s
        self.ratelimit_next = 0  # the next n subscribe requests are refused (a fault on demand)
        self.channel_ids = {p: 1000 + i * 37 for i, p in enumerate(market.pairs)}
        self.v1_to_v2 = {v1_name(p): p for p in market.pairs}

    def trade_frame(self, api: str, pair: str, elements: list[str], kind: str) -> str:
        """A trade frame of `pair` holding these element texts (JSON), in the dialect of `api`."""
        if api == "v2":
            return v2_trade_frame(elements, kind)
        return v1_trade_frame(self.channel_ids[pair], pair, elements)

    def rate_limited(self, conn: Conn) -> bool:
        """A subscribe request over the per-connection limit, or one the rate-limit fault takes: answered with
        Kraken's error (the client must back off and try again)."""
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

    def v2(self, conn: Conn, req: Any) -> None:
        """Answer one v2 request (`req`: the decoded JSON, None if it was not JSON)."""
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
        if method == "subscribe" and self.rate_limited(conn):
            return
        snapshot = params.get("snapshot", self.v2_snapshot_default)
        for symbol in params["symbol"]:
            with self.lock:  # ack, snapshot and the first update go out in this order, nothing lost between
                if not isinstance(symbol, str) or symbol not in self.market.history:
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
                    self.send_snapshot(conn, symbol, "snapshot")
        self.started.set()

    def send_snapshot(self, conn: Conn, pair: str, kind: str) -> None:
        """The pair's last SNAPSHOT_SIZE trades, in one frame."""
        last = self.market.history[pair][-SNAPSHOT_SIZE:]
        conn.send(self.trade_frame(conn.api, pair, [t.json(conn.api) for t in last], kind), trades=last)
        self.counters["snapshots"] += 1

    def v1(self, conn: Conn, req: Any) -> None:
        """Answer one v1 request (`req`: the decoded JSON, None if it was not JSON)."""
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
        if event == "subscribe" and self.rate_limited(conn):
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
                if self.v1_snapshot and self.market.history[v2]:
                    self.send_snapshot(conn, v2, "snapshot")
        self.started.set()
