"""Kraken's public WebSocket protocol (API v2 and v1): decode a text frame, dispatch it by kind, build requests.

`parse_frame(text, ts_ingest, codecs, api)` is pure: tests and benchmarks call it without a socket or a broker.
Frames as they look on the wire: ../../../shared/reference/kraken-ws.md (a copy of each kind is in the docstrings).
"""

from __future__ import annotations

import json
from typing import Any

from lakehouse.producer.records import BadTrade, Num, PairCodec, short

DEFAULT_WS_URLS = {"v2": "wss://ws.kraken.com/v2", "v1": "wss://ws.kraken.com"}

# Parsed frame kinds (first element of what parse_frame returns).
TRADES, HEARTBEAT, STATUS, ACK, PONG, ERROR, UNKNOWN, MALFORMED = (
    "trades", "heartbeat", "status", "ack", "pong", "error", "unknown", "malformed",
)


try:  # optional C decoder (msgspec, if installed): hands each float literal over as its text, so Num stays exact
    import msgspec as _msgspec
except ImportError:  # the standard library gives the same values, ~1 µs/trade slower (bench/producer_ingest.py)
    _msgspec = None
_FAST_LOADS = _msgspec.json.Decoder(float_hook=Num).decode if _msgspec is not None else None


def load_frame(text: str) -> Any:
    """JSON with numbers kept as exact text (Num) except integers (exact as int).

    With msgspec installed it decodes (its DecodeError is a ValueError, as json's errors are); the one difference
    is that it refuses the non-standard NaN/Infinity literals that json.loads accepts: with json only such a trade
    element is skipped as malformed, with msgspec the whole frame is (Kraken sends decimal numbers only)."""
    if _FAST_LOADS is not None:
        return _FAST_LOADS(text)
    return json.loads(text, parse_float=Num)


def parse_frame(text: str, ts_ingest: str, codecs: dict[str, PairCodec], api: str) -> tuple:
    """Dispatch one text frame. Returns a tuple whose first element is the kind:

    (TRADES, is_snapshot, [(codec, trade_id (v2) or v1 row tuple, value_bytes), ...], [bad element errors])
    (HEARTBEAT,) (STATUS, system, connection_id, version) (PONG,)
    (ACK, native_pair_or_None, ok, error_message_or_None, method)
    (ERROR, message) (UNKNOWN, reason) (MALFORMED, reason)
    `codecs` maps the native pair name to its PairCodec.
    """
    try:
        msg = load_frame(text)
    except (ValueError, RecursionError) as exc:
        return (MALFORMED, f"not JSON: {exc}")
    if api == "v2" and type(msg) is dict and msg.get("channel") == "trade":
        return _v2_trades(msg, ts_ingest, codecs)
    if type(msg) is list:
        return _v1_trades(msg, ts_ingest, codecs)
    if type(msg) is not dict:
        return (MALFORMED, f"unexpected JSON {type(msg).__name__}")
    if "Error" in msg or ("error" in msg and "method" not in msg and "event" not in msg):
        return (ERROR, message_text(msg.get("Error", msg.get("error"))))  # {"Error":"Exceeded msg rate"}
    if "channel" in msg:
        return _v2_channel(msg)
    if "method" in msg:
        return _v2_method(msg)
    if "event" in msg:
        return _v1_event(msg)
    return (UNKNOWN, "no channel/method/event")


def _v2_trades(msg: dict, ts_ingest: str, codecs: dict[str, PairCodec]) -> tuple:
    """{"channel":"trade","type":"update","data":[{...}, ...]} — every element, in order, symbol per element."""
    data = msg.get("data")
    kind = msg.get("type")
    if type(data) is not list or kind not in ("snapshot", "update"):
        return (MALFORMED, "trade frame without data list or type")
    records, bad = [], []
    codec = None
    for t in data:
        try:
            if type(t) is not dict:
                raise BadTrade("bad v2 trade: not an object")
            if codec is None or t.get("symbol") != codec.native:
                symbol = t.get("symbol")
                codec = codecs.get(symbol) if type(symbol) is str else None
                if codec is None:
                    raise BadTrade(f"trade for unsubscribed symbol {short(symbol, 40)}")
            tid, value = codec.v2_value(t, ts_ingest)
            records.append((codec, tid, value))
        except BadTrade as exc:
            bad.append(f"{exc} in {short(t)}")
    return (TRADES, kind == "snapshot", records, bad)


def _v1_trades(msg: list, ts_ingest: str, codecs: dict[str, PairCodec]) -> tuple:
    """[channelID, [[price, volume, time, side, orderType, misc], ...], "trade", "XBT/USD"]"""
    if len(msg) < 4 or msg[-2] != "trade":
        return (UNKNOWN, f"array frame for channel {short(msg[-2], 40) if len(msg) >= 2 else None}")
    pair = msg[-1]
    codec = codecs.get(pair) if type(pair) is str else None
    if codec is None:
        return (MALFORMED, f"trade for unsubscribed pair {short(pair, 40)}")
    if type(msg[1]) is not list:
        return (MALFORMED, "v1 trade frame without a list of trades")
    records, bad = [], []
    for t in msg[1]:
        try:
            row, value = codec.v1_value(t, ts_ingest)
            records.append((codec, row, value))
        except BadTrade as exc:
            bad.append(f"{exc} in {short(t)}")
    return (TRADES, False, records, bad)


def message_text(value: Any) -> str:
    """An error message from the wire as text for logs and exceptions: text as is (cut at 300), else a short repr."""
    return value[:300] if type(value) is str else short(value)


def _text_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def _v2_channel(msg: dict) -> tuple:
    channel = msg.get("channel")
    if channel == "heartbeat":
        return (HEARTBEAT,)
    if channel == "status":
        data = msg.get("data")
        d = data[0] if type(data) is list and data and type(data[0]) is dict else {}
        system, conn_id, version = d.get("system"), d.get("connection_id"), d.get("version")
        if type(system) is not str or not _text_or_none(version) or not (conn_id is None or type(conn_id) is int):
            return (MALFORMED, "status frame without a system text")
        return (STATUS, system, conn_id, version)
    return (UNKNOWN, f"channel {short(channel, 40)}")


def _v2_method(msg: dict) -> tuple:
    method = msg.get("method")
    if method == "pong":
        return (PONG,)
    if method in ("subscribe", "unsubscribe"):
        result = msg.get("result") if type(msg.get("result")) is dict else {}
        symbol = result.get("symbol", msg.get("symbol"))
        if not _text_or_none(symbol):
            return (MALFORMED, f"{method} ack with a symbol that is not text: {short(symbol, 40)}")
        ok = msg.get("success") is True
        return (ACK, symbol, ok, None if ok else message_text(msg.get("error")), method)
    if method == "error":  # {"error":"Malformed request","method":"error",...}
        symbol = msg.get("symbol")
        return (ACK, symbol if type(symbol) is str else None, False, message_text(msg.get("error")), method)
    return (UNKNOWN, f"method {short(method, 40)}")


def _v1_event(msg: dict) -> tuple:
    event = msg.get("event")
    if event == "heartbeat":
        return (HEARTBEAT,)
    if event == "systemStatus":
        status, conn_id, version = msg.get("status"), msg.get("connectionID"), msg.get("version")
        if type(status) is not str or not _text_or_none(version) or not (conn_id is None or type(conn_id) is int):
            return (MALFORMED, "systemStatus without a status text")
        return (STATUS, status, conn_id, version)
    if event == "pong":
        return (PONG,)
    if event == "subscriptionStatus":
        status, pair = msg.get("status"), msg.get("pair")
        if not _text_or_none(pair):
            return (MALFORMED, f"subscriptionStatus with a pair that is not text: {short(pair, 40)}")
        if status == "subscribed":
            return (ACK, pair, True, None, "subscribe")
        if status == "unsubscribed":
            return (ACK, pair, True, None, "unsubscribe")
        if status == "error":
            return (ACK, pair, False, message_text(msg.get("errorMessage")), "subscribe")
        return (UNKNOWN, f"subscriptionStatus {short(status, 40)}")
    if event == "error":
        return (ERROR, message_text(msg.get("errorMessage")))
    return (UNKNOWN, f"event {short(event, 40)}")


def subscribe_request(api: str, natives: list[str], req_id: int) -> str:
    """One subscribe request for all pairs (batched: Kraken rate-limits subscribe messages)."""
    if api == "v2":
        # snapshot always explicit: the docs disagree on its default; it is how gaps get filled.
        params = {"channel": "trade", "symbol": natives, "snapshot": True}
        return json.dumps({"method": "subscribe", "params": params, "req_id": req_id})
    return json.dumps({"event": "subscribe", "pair": natives, "subscription": {"name": "trade"}, "reqid": req_id})


def ping_request(api: str, req_id: int) -> str:
    if api == "v2":
        return json.dumps({"method": "ping", "req_id": req_id})
    return json.dumps({"event": "ping", "reqid": req_id})
