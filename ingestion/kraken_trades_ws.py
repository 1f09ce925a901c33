"""Kraken public WebSocket trades -> Kafka (one JSON message per trade, keyed by pair).

Subscribes to Kraken's `trade` channel (API v2 by default, or v1), checks every subscription ack,
and produces each trade to Kafka with an idempotent producer. Survives disconnects (watchdog,
capped exponential backoff with jitter, resubscribe) and, on v2, fills the gap from the 50-trade
snapshot Kraken sends on every subscribe while skipping trades already produced (by trade_id per pair).

Restarts (v2): at start-up the producer reads back the tail of the topic and resumes each pair after the highest
trade_id already in it (records whose key is the pair as typed here and whose value has "api": "v2"). The first
snapshot's trades up to that id are skipped and the ones after it -- trades that happened while the producer was
down, or whose delivery was cut short by a crash/kill -9 -- are produced, so a restart neither doubles nor loses a
trade when the downtime fits in the 50-trade snapshot (a longer one is logged and counted as a gap). The tail is read
backwards in growing chunks (2000, then 20000, ... records per partition) until every pair is found or
--resume-scan-limit records per partition were read; a pair not found starts with an empty memory (as with
--no-resume: the snapshot is produced again, up to 50 trades per pair twice in the topic). v1 has no trade ids, so
--api v1 never resumes: a v1 restart produces live trades from the subscription on.

Usage:
    python ingestion/kraken_trades_ws.py --pair XBT/USDT --bootstrap localhost:19092 --topic crypto.trades
    python ingestion/kraken_trades_ws.py --pair XBT/USDT --pair ETH/USD --pair DOGE/USD --api v1
    python ingestion/kraken_trades_ws.py --pair XBT/USDT --no-resume     # a restart re-sends the 50-trade snapshot
    # against the local fake Kraken (ingestion/fake_kraken.py):
    python ingestion/fake_kraken.py --port 8765 --pairs BTC/USDT,ETH/USD --rate 100 &
    python ingestion/kraken_trades_ws.py --ws-url ws://127.0.0.1:8765/v2 --pair XBT/USDT --pair ETH/USD

Kafka message (key = the pair exactly as typed on the command line, UTF-8):
    {"symbol": "XBT/USDT", "price": "83744.3", "size": "0.00044780", "side": "buy", "ord_type": "limit",
     "trade_id": 109116693, "ts_event": "2026-09-25T17:48:26.844359Z", "ts_ingest": "2026-09-25T17:48:26.901234Z",
     "api": "v2", "pair_native": "BTC/USDT"}
price/size are Kraken's decimal text (never a binary float); trade_id is null on v1 (v1 has no ids);
ts_event/ts_ingest are UTC with exactly 6 fractional digits.

Exit codes:
    0  stopped by SIGINT/SIGTERM and every produced message was delivered
    1  runtime failure: messages undelivered at shutdown, Kafka unreachable at start, unexpected error
    2  usage/config error (bad flag, malformed pair, two pairs naming the same Kraken pair)
    3  Kraken rejected a subscription (the log names the pair and Kraken's error message)
"""

from __future__ import annotations

import argparse
import calendar
import json
import logging
import random
import re
import reprlib
import signal
import socket
import sys
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Optional

log = logging.getLogger("kraken_trades_ws")

DEFAULT_PAIRS = ["XBT/USDT"]
DEFAULT_BOOTSTRAP = "localhost:19092"
DEFAULT_TOPIC = "crypto.trades"
DEFAULT_API = "v2"
DEFAULT_WS_URLS = {"v2": "wss://ws.kraken.com/v2", "v1": "wss://ws.kraken.com"}
DEFAULT_STATS_INTERVAL = 10.0
DEFAULT_WATCHDOG = 10.0
DEFAULT_ACK_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_BACKOFF_INITIAL = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_DELIVERY_TIMEOUT = 300.0
DEFAULT_FLUSH_TIMEOUT = 30.0
DEFAULT_STARTUP_TIMEOUT = 5.0
DEFAULT_COMPRESSION = "lz4"
DEFAULT_LINGER_MS = 5
DEFAULT_RESUME_SCAN_LIMIT = 200_000
DEFAULT_RESUME_TIMEOUT = 15.0
RESUME_FIRST_CHUNK = 2000  # records per partition read first; each further chunk reaches 10x further back
RESUME_GROWTH = 10

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3

# Kraken's legacy (v1 / REST wsname) asset codes and their v2 names.
_V1_TO_V2_ASSET = {"XBT": "BTC", "XDG": "DOGE"}
_V2_TO_V1_ASSET = {v: k for k, v in _V1_TO_V2_ASSET.items()}
_PAIR_RE = re.compile(r"[A-Za-z0-9.]{1,16}/[A-Za-z0-9.]{1,16}\Z")
# Bounds of what the producer accepts from the wire (README "What the producer accepts"); anything else is malformed.
MAX_INT_DIGITS = 40  # a price/size: at most 40 digits before the decimal point ...
MAX_FRAC_DIGITS = 40  # ... and 40 after it
MAX_EXPONENT = 40  # a JSON number in exponent form (1E-8): |exponent| <= 40, expanded to plain digits
MAX_TRADE_ID = 2**63 - 1  # a trade_id is an integer in 0..2^63-1 (Silver's long)
MAX_EPOCH_S = 253_402_300_800  # 10000-01-01T00:00:00Z: times are 1970-01-01 .. 9999-12-31 (UTC)
MAX_OFFSET_MIN = 14 * 60  # an RFC 3339 offset is within -14:00..+14:00
_DECIMAL_RE = re.compile(rf"[0-9]{{1,{MAX_INT_DIGITS}}}(?:\.[0-9]{{1,{MAX_FRAC_DIGITS}}})?\Z")
_EXP_DECIMAL_RE = re.compile(rf"[0-9]{{1,{MAX_INT_DIGITS}}}(?:\.[0-9]{{1,{MAX_FRAC_DIGITS}}})?[eE][+-]?0*[0-9]{{1,3}}\Z")
# The canonical form Kraken v2 sends (UTC, 6 fractional digits, 'Z'), with each field in range; days 29-31 are
# checked against the month in code.
_ISO_US_RE = re.compile(
    r"(?:19[7-9][0-9]|[2-9][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z\Z"
)
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|z|([+-])([0-9]{2}):([0-9]{2}))\Z"
)
_V1_TIME_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?\Z")
_SIDES = {"buy": "buy", "sell": "sell", "b": "buy", "s": "sell"}
_ORD_TYPES = {"limit": "limit", "market": "market", "l": "limit", "m": "market"}
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 60, 60, 3, 8, 8


class Num(str):
    """Marks a JSON number's exact wire text (json.loads(..., parse_float=Num)); never a binary float."""

    __slots__ = ()


class BadTrade(ValueError):
    """One element of a trade frame that cannot be turned into a record."""


# ---------------------------------------------------------------------------------------------
# Pure functions: pairs, decimals, timestamps, records
# ---------------------------------------------------------------------------------------------


def short(value: Any, limit: int = 200) -> str:
    """A bounded repr of wire data for log lines and reasons (deep or huge values cut short)."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def native_pair(pair: str, api: str) -> str:
    """The pair in the chosen API's dialect: v2 `XBT/USDT` -> `BTC/USDT`, v1 `DOGE/USD` -> `XDG/USD`."""
    table = _V1_TO_V2_ASSET if api == "v2" else _V2_TO_V1_ASSET
    base, quote = pair.upper().split("/")
    return f"{table.get(base, base)}/{table.get(quote, quote)}"


def decimal_text(value: Any) -> str:
    """Decimal text of a wire price/size, equal in value to what Kraken sent; rejects floats, junk and out-of-bound
    values (negative, more than MAX_INT_DIGITS/MAX_FRAC_DIGITS digits, |exponent| > MAX_EXPONENT).

    `Num("0.00044780")` -> "0.00044780" (trailing zeros kept), `83744` -> "83744",
    `"354.11000000"` (v1 string) -> unchanged, `Num("1E-8")` -> "0.00000001" (exponent expanded).
    """
    if type(value) is int:
        if 0 <= value < _MAX_INT:
            return str(value)
    elif isinstance(value, str):
        if _DECIMAL_RE.match(value):
            return value
        if type(value) is Num and _EXP_DECIMAL_RE.match(value):  # a JSON number in exponent form: expand exactly
            number = Decimal(value)
            if -MAX_EXPONENT <= int(value.rpartition("e" if "e" in value else "E")[2]) <= MAX_EXPONENT:
                text = format(number, "f")
                if _DECIMAL_RE.match(text):
                    return text
    raise BadTrade(f"not a decimal within bounds: {short(value, 80)}")


_MAX_INT = 10**MAX_INT_DIGITS
_NO_TIME = object()  # PairCodec's time cache before the first trade: equal to no wire value


def iso_from_epoch_us(seconds: int, micros: int) -> str:
    """UTC ISO-8601 with 6 fractional digits and 'Z' from integer seconds + microseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def iso_from_v1_time(text: str) -> str:
    """Epoch seconds as text -> ISO: v1 trade time "1618678142.557535" -> "2021-04-17T16:49:02.557535Z" (integer
    math; more than 6 fractional digits truncated, fewer padded). REST trade times have the same form."""
    m = _V1_TIME_RE.match(text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) >= MAX_EPOCH_S:
        raise BadTrade(f"bad epoch time: {short(text, 80)}")
    frac = ((m.group(2) or "") + "000000")[:6]
    return iso_from_epoch_us(int(m.group(1)), int(frac))


def iso_from_rfc3339(text: str) -> str:
    """v2 RFC 3339 time -> UTC, exactly 6 fractional digits, 'Z'. 1-9 digits accepted (truncated to µs).

    Only real calendar dates and times (no 25:61, no Feb 30, no leap second 60), offsets within ±14:00, and a UTC
    result in 1970..9999; anything else raises BadTrade."""
    if type(text) is str and _ISO_US_RE.match(text):  # Kraken's own form: only days 29-31 need the calendar
        if text[8:10] <= "28" or int(text[8:10]) <= calendar.monthrange(int(text[:4]), int(text[5:7]))[1]:
            return text
        raise BadTrade(f"bad timestamp: {short(text, 80)}")
    m = _RFC3339_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise BadTrade(f"bad timestamp: {short(text, 80)}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, sign, off_h, off_m = m.group(7), m.group(9), m.group(10), m.group(11)
    offset = 0
    if sign is not None:
        if int(off_m) > 59 or int(off_h) * 60 + int(off_m) > MAX_OFFSET_MIN:
            raise BadTrade(f"bad timestamp (offset beyond ±14:00): {short(text, 80)}")
        offset = (1 if sign == "+" else -1) * (int(off_h) * 3600 + int(off_m) * 60)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year or 1, month)[1] and year >= 1
            and hour <= 23 and minute <= 59 and second <= 59):
        raise BadTrade(f"bad timestamp (not a real date and time): {short(text, 80)}")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    if not 0 <= seconds < MAX_EPOCH_S:
        raise BadTrade(f"bad timestamp (outside 1970..9999): {short(text, 80)}")
    return iso_from_epoch_us(seconds, int(((frac or "") + "000000")[:6]))


def iso_now(now_ns: Optional[int] = None) -> str:
    """Receive time (time.time_ns) as UTC ISO-8601 with microseconds."""
    us = (time.time_ns() if now_ns is None else now_ns) // 1000
    return iso_from_epoch_us(us // 1_000_000, us % 1_000_000)


def trade_id(value: Any) -> int:
    """A v2/REST trade_id: an integer (not a bool, not text) in 0..MAX_TRADE_ID."""
    if type(value) is int and 0 <= value <= MAX_TRADE_ID:
        return value
    raise BadTrade(f"bad trade_id: {short(value, 80)}")


class PairCodec:
    """Turns trade elements of one pair into Kafka values (bytes) for the contract above.

    Every field is checked before use; an element that fails raises BadTrade (the caller skips and counts it)."""

    def __init__(self, user_pair: str, native: str, api: str) -> None:
        self.user_pair = user_pair
        self.native = native
        self.api = api
        self.key = user_pair.encode("utf-8")
        self._head = '{"symbol":' + json.dumps(user_pair) + ',"price":"'
        self._tail = '","api":"' + api + '","pair_native":' + json.dumps(native) + "}"
        self._last_time: tuple = (_NO_TIME, "")  # batched trades share a time: convert once (wire text, ISO)

    def _ts_event(self, ts: Any, convert: Callable[[Any], str]) -> str:
        last = self._last_time
        if ts == last[0]:  # only a text equal to one already converted (never a first "" or null)
            return last[1]
        iso = convert(ts)
        self._last_time = (ts, iso)
        return iso

    def v2_value(self, t: dict, ts_ingest: str) -> tuple[int, bytes]:
        """One v2 trade element -> (trade_id, value).

        {"symbol":"BTC/USD","side":"buy","price":83744.3,"qty":0.00044780,"ord_type":"limit",
         "trade_id":109116693,"timestamp":"2026-09-25T17:48:26.844359Z"}
        """
        try:
            tid = t["trade_id"]
            side = _SIDES[t["side"]]
            ord_type = _ORD_TYPES[t["ord_type"]]
            price, size, ts = t["price"], t["qty"], t["timestamp"]
        except (KeyError, TypeError) as exc:
            raise BadTrade(f"bad v2 trade: missing field or bad side/ord_type ({short(exc.args[0], 40)})") from exc
        if type(tid) is not int or not 0 <= tid <= MAX_TRADE_ID:
            raise BadTrade(f"bad trade_id: {short(tid, 80)}")
        last = self._last_time
        if ts == last[0]:  # inlined _ts_event (the hot path): a batch shares one timestamp
            ts_event = last[1]
        else:
            ts_event = iso_from_rfc3339(ts)
            self._last_time = (ts, ts_event)
        value = (
            f'{self._head}{decimal_text(price)}","size":"{decimal_text(size)}","side":"{side}",'
            f'"ord_type":"{ord_type}","trade_id":{tid},"ts_event":"{ts_event}",'
            f'"ts_ingest":"{ts_ingest}{self._tail}'
        )
        return tid, value.encode()

    def v1_value(self, t: list, ts_ingest: str) -> tuple[tuple, bytes]:
        """One v1 trade element -> ((time, price, size, side, ord_type) as sent, value).

        ["354.11000000","0.89594024","1618678142.557535","s","l",""]
        """
        if type(t) is not list or len(t) < 5:
            raise BadTrade("bad v1 trade: not a list of [price, volume, time, side, orderType, misc]")
        try:
            price, size, ts, side, ord_type = t[0], t[1], t[2], _SIDES[t[3]], _ORD_TYPES[t[4]]
        except (KeyError, TypeError) as exc:
            raise BadTrade("bad v1 trade: side or orderType") from exc
        ts_event = self._ts_event(ts, iso_from_v1_time)
        value = (
            f'{self._head}{decimal_text(price)}","size":"{decimal_text(size)}","side":"{side}",'
            f'"ord_type":"{ord_type}","trade_id":null,"ts_event":"{ts_event}",'
            f'"ts_ingest":"{ts_ingest}{self._tail}'
        )
        return (ts, price, size, side, ord_type), value.encode()


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


def producer_config(args: argparse.Namespace) -> dict:
    """librdkafka settings (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)."""
    return {
        "bootstrap.servers": args.bootstrap,
        "client.id": "kraken-trades-ws",
        # Retries never duplicate or reorder within a partition (implies acks=all, max.in.flight<=5).
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
        # How long a message may wait for the broker (outage ride-through) before it is reported failed.
        "message.timeout.ms": int(args.delivery_timeout * 1000),
        # Room to buffer an outage: at 1k trades/s, 5 min is 300k messages (~100 MB).
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with 'equal jitter': uniform in [d/2, d], d = min(cap, initial*2^attempt)."""
    d = min(cap, initial * (2 ** min(attempt, 30)))
    return d / 2 + rng.random() * d / 2


def scan_windows(low: int, high: int, limit: int, first: int = RESUME_FIRST_CHUNK,
                 growth: int = RESUME_GROWTH) -> list[tuple[int, int]]:
    """Offset ranges [start, end) to read a partition's tail backwards, newest first, at most `limit` records.

    low=0, high=50000, limit=200000 -> [(48000, 50000), (30000, 48000), (0, 30000)]: the first chunk holds the
    last `first` records, each next one reaches `growth` times further back, clipped at `low` and `high - limit`.
    """
    floor = max(low, high - limit)
    windows, end, reach = [], high, first
    while end > floor:
        start = max(floor, high - reach)
        windows.append((start, end))
        end, reach = start, reach * growth
    return windows


def latest_trade_ids(records: Any, keys: dict[bytes, str], into: Optional[dict[str, int]] = None) -> dict[str, int]:
    """Highest v2 trade_id per pair among Kafka records (key bytes, value bytes), merged into `into`.

    Only records whose key is one of `keys` (key bytes -> pair) are decoded; a value counts when it is a JSON
    object with "api": "v2" and an integer trade_id. Anything else (v1 records, other pairs, junk) is ignored.
    """
    found = {} if into is None else into
    for key, value in records:
        pair = keys.get(key)
        if pair is None or value is None:
            continue
        try:
            v = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if type(v) is not dict or v.get("api") != "v2":
            continue
        tid = v.get("trade_id")
        if type(tid) is int and (pair not in found or tid > found[pair]):
            found[pair] = tid
    return found


# ---------------------------------------------------------------------------------------------
# I/O: the running producer
# ---------------------------------------------------------------------------------------------


class Reconnect(Exception):
    """Drop this connection and reconnect (with backoff)."""


class PairRejected(Exception):
    """Kraken refused a subscription: fatal."""


class RateLimitedLog:
    """At most `burst` log lines per `interval` seconds per category; the rest are only counted."""

    def __init__(self, burst: int = 5, interval: float = 10.0) -> None:
        self.burst, self.interval = burst, interval
        self._window: dict[str, list] = {}

    def warning(self, category: str, fmt: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        w = self._window.get(category)
        if w is None or now - w[0] >= self.interval:
            if w is not None and w[2]:
                log.warning("%s: %d more suppressed in the last %.0fs", category, w[2], now - w[0])
            w = self._window[category] = [now, 0, 0]
        if w[1] < self.burst:
            w[1] += 1
            log.warning(fmt, *args, exc_info=exc_info)
        else:
            w[2] += 1

    def exception(self, category: str, fmt: str, *args: Any) -> None:
        """warning() with the current exception's traceback."""
        self.warning(category, fmt, *args, exc_info=True)


class RateLimitFilter(logging.Filter):
    """librdkafka repeats connection failures every second during an outage: keep `burst` lines per window."""

    def __init__(self, burst: int = 3, interval: float = 30.0) -> None:
        super().__init__()
        self.burst, self.interval, self.start, self.seen = burst, interval, 0.0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.start >= self.interval:
            self.start, self.seen = now, 0
        self.seen += 1
        return self.seen <= self.burst


class Stats:
    __slots__ = (
        "frames", "trades", "produced", "delivered", "failed", "dups", "gaps", "missing", "reconnects",
        "malformed", "unknown", "unexpected", "heartbeats", "queue_full",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def line(self, queue: int) -> str:
        return " ".join(f"{n}={getattr(self, n)}" for n in self.__slots__) + f" queue={queue}"


class TradeProducer:
    """WebSocket session loop + Kafka producer; `run()` returns the exit code."""

    def __init__(self, args: argparse.Namespace, producer: Any, ws_connect: Callable[..., Any]) -> None:
        self.args = args
        self.api = args.api
        self.url = args.ws_url or DEFAULT_WS_URLS[args.api]
        self.topic = args.topic
        self.producer = producer
        self.ws_connect = ws_connect
        self.codecs = {native_pair(p, self.api): PairCodec(p, native_pair(p, self.api), self.api) for p in args.pair}
        self.stats = Stats()
        self.gaps_by_pair: dict[str, list[int]] = {c.user_pair: [0, 0] for c in self.codecs.values()}
        self.last_id: dict[str, int] = {}  # v2: last produced trade_id per native pair
        self.resumed: dict[str, int] = {}  # v2: trade_id read back from the topic, until the pair's first snapshot
        self.v1_guard: dict[str, tuple] = {}  # v1: (last time, rows at that time) to drop resubscribe overlap
        self.v1_last: dict[str, tuple] = {}
        self.stop = threading.Event()
        self.ws: Any = None
        self.rlog = RateLimitedLog(interval=max(args.stats_interval, 1.0))
        self.rng = random.Random()
        self.req_id = 0
        self.record = open(args.record, "a", encoding="utf-8") if args.record else None
        self._system = None
        self._next_stats = 0.0
        self.subscribed_ok = False

    # -- Kafka ---------------------------------------------------------------------------------

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.rlog.warning("delivery", "delivery failed for key %s: %s", msg.key(), err)

    def produce(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value, key)
                self.stats.produced += 1
                return
            except BufferError:  # local queue full (broker down for long): wait for room
                self.stats.queue_full += 1
                self.rlog.warning("queue", "producer queue full (%d messages); waiting", len(self.producer))
                self.producer.poll(0.1)
                if self.stop.is_set():
                    self.stats.failed += 1  # never queued: counts as undelivered
                    return

    # -- trades ----------------------------------------------------------------------------------

    def resume_from(self, points: dict[str, int]) -> None:
        """Seed the last produced trade_id per pair (user spelling -> id) with what the topic already holds."""
        for codec in self.codecs.values():
            tid = points.get(codec.user_pair)
            if tid is not None:
                self.last_id[codec.native] = tid
                self.resumed[codec.native] = tid

    def check_resumed(self, records: list) -> None:
        """First snapshot after a resume: the newest trade Kraken has cannot be older than one we produced.

        If it is, the topic's ids come from another id sequence (e.g. an earlier run against the fake Kraken):
        forget the resume point rather than skip every trade until Kraken's ids catch up.
        """
        newest: dict[str, int] = {}
        for codec, tid, _ in records:
            newest[codec.native] = max(tid, newest.get(codec.native, tid))
        for native, tid in newest.items():
            seed = self.resumed.pop(native, None)
            if seed is not None and tid < seed and self.last_id.get(native) == seed:
                del self.last_id[native]
                log.warning("resume point of %s (trade_id %d, read from the topic) is ahead of Kraken's newest "
                            "trade_id %d: ignored, producing the snapshot as if started without memory",
                            self.codecs[native].user_pair, seed, tid)

    def handle_v2_trades(self, records: list, snapshot: bool = False) -> None:
        """Produce in order; skip trade_ids already produced; count a jump in trade_id as a gap."""
        if snapshot and self.resumed:
            self.check_resumed(records)
        last_id, produce, stats = self.last_id, self.produce, self.stats
        codec, last = None, None
        for c, tid, value in records:
            if c is not codec:
                if codec is not None and last is not None:
                    last_id[codec.native] = last
                codec, last = c, last_id.get(c.native)
            if last is not None:
                if tid <= last:
                    stats.dups += 1
                    continue
                if tid != last + 1:
                    self.record_gap(codec, last + 1, tid - 1)
            produce(codec.key, value)
            last = tid
        if codec is not None and last is not None:
            last_id[codec.native] = last

    def record_gap(self, codec: PairCodec, first: int, last: int) -> None:
        n = last - first + 1
        self.stats.gaps += 1
        self.stats.missing += n
        g = self.gaps_by_pair[codec.user_pair]
        g[0] += 1
        g[1] += n
        log.warning("gap on %s: trade_ids %d..%d missing (%d trades)", codec.user_pair, first, last, n)

    def handle_v1_trades(self, records: list) -> None:
        """v1 has no ids: right after a resubscribe, skip trades not newer than the last produced one
        (same time: only rows identical to ones already produced at that time). Heuristic by necessity."""
        for codec, row, value in records:
            native = codec.native
            tkey = _v1_time_key(row[0])
            guard = self.v1_guard.get(native)
            if guard is not None:
                if tkey < guard[0] or (tkey == guard[0] and row in guard[1]):
                    if tkey == guard[0]:
                        guard[1].remove(row)
                    self.stats.dups += 1
                    continue
                del self.v1_guard[native]
            self.produce(codec.key, value)
            last = self.v1_last.get(native)
            if last is not None and last[0] == tkey:
                last[1].append(row)
            else:
                self.v1_last[native] = (tkey, [row])

    # -- session ---------------------------------------------------------------------------------

    def run(self) -> int:
        attempt = 0
        try:
            while not self.stop.is_set():
                try:
                    self.session()
                except Reconnect as exc:
                    log.log(logging.INFO if self.stop.is_set() else logging.WARNING, "connection lost: %s", exc)
                except PairRejected as exc:
                    log.error("%s", exc)
                    return EXIT_REJECTED
                finally:
                    self.close_ws()
                if self.stop.is_set():
                    break
                if self.subscribed_ok:
                    attempt = 0
                delay = backoff_delay(attempt, self.args.backoff_initial, self.args.backoff_max, self.rng)
                attempt += 1
                self.stats.reconnects += 1
                log.info("reconnecting in %.2fs (attempt %d)", delay, attempt)
                self.wait(delay)
            return EXIT_OK
        finally:
            if self.record:
                self.record.close()

    def wait(self, seconds: float) -> None:
        """Sleep while serving delivery reports; wakes up on stop."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.producer.poll(min(left, 0.2))
            self.maybe_stats(time.monotonic())

    def close_ws(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:  # closing a broken socket: nothing to save
                log.debug("close failed", exc_info=True)

    def session(self) -> None:
        self.subscribed_ok = False
        log.info("connecting to %s", self.url)
        try:
            self.ws = self.ws_connect(self.url, self.args.connect_timeout)
        except Exception as exc:
            raise Reconnect(f"connect to {self.url} failed: {exc}") from exc
        if self.stop.is_set():
            return
        self.ws.settimeout(min(1.0, self.args.watchdog / 4))  # wake-ups for watchdog, stats and delivery reports
        self.req_id += 1
        pending = set(self.codecs)
        self.ws.send(subscribe_request(self.api, list(self.codecs), self.req_id))
        ack_deadline = time.monotonic() + self.args.ack_timeout
        self.pump(pending, ack_deadline)

    def pump(self, pending: set, ack_deadline: float) -> None:
        """Receive loop of one connection (the hot path)."""
        import websocket  # websocket-client
        from confluent_kafka import KafkaException

        ws, stats, codecs, api, args = self.ws, self.stats, self.codecs, self.api, self.args
        poll = self.producer.poll
        last_frame = time.monotonic()
        pinged = False
        while not self.stop.is_set():
            try:
                opcode, frame = ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                poll(0)
                self.maybe_stats(now)
                if pending and now > ack_deadline:
                    raise Reconnect(f"no subscription ack within {args.ack_timeout}s for {sorted(pending)}")
                if now - last_frame > args.watchdog:
                    raise Reconnect(f"watchdog: no frame for {now - last_frame:.1f}s")
                if not pinged and now - last_frame > args.watchdog / 2:
                    self.req_id += 1
                    pinged = True
                    self._send(ping_request(api, self.req_id))
                continue
            except (websocket.WebSocketException, OSError) as exc:
                raise Reconnect(f"{type(exc).__name__}: {exc or 'connection closed'}") from exc
            now_ns = time.time_ns()
            last_frame = time.monotonic()
            pinged = False
            if opcode == 1:
                stats.frames += 1
                try:
                    self.handle_text(frame.data, now_ns, pending)
                except (Reconnect, PairRejected, KafkaException):
                    raise
                except Exception:  # a bug, not bad input (that is counted as malformed): never stops the feed
                    stats.unexpected += 1
                    self.rlog.exception("unexpected", "unexpected error on frame %s (skipped, feed goes on)",
                                        short(frame.data, 300))
                if pending is not None and not pending and not self.subscribed_ok:
                    self.subscribed_ok = True
                    log.info("subscribed to %s on %s", ", ".join(c.user_pair for c in codecs.values()), self.url)
            elif opcode == 8:
                data = frame.data
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                raise Reconnect(f"server closed the connection: code={code} reason={data[2:].decode('utf-8', 'replace')!r}")
            elif opcode == 2:
                stats.frames += 1
                stats.malformed += 1
                self.rlog.warning("malformed", "malformed frame: binary frame of %d bytes", len(frame.data))
            poll(0)
            if last_frame >= self._next_stats:
                self.maybe_stats(last_frame)
            if pending and last_frame > ack_deadline:
                raise Reconnect(f"no subscription ack within {args.ack_timeout}s for {sorted(pending)}")

    def _send(self, text: str) -> None:
        try:
            self.ws.send(text)
        except Exception as exc:
            raise Reconnect(f"send failed: {exc}") from exc

    def handle_text(self, data: bytes, now_ns: int, pending: set) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.record:
                self.write_record(now_ns, data.decode("utf-8", "surrogateescape"))
            self.stats.malformed += 1
            self.rlog.warning("malformed", "malformed frame (invalid UTF-8: %s): %r", exc, data[:200])
            return
        if self.record:
            self.write_record(now_ns, text)
        parsed = parse_frame(text, iso_now(now_ns), self.codecs, self.api)
        kind = parsed[0]
        if kind is TRADES:
            _, snapshot, records, bad = parsed
            if bad:
                self.stats.malformed += len(bad)
                self.rlog.warning("malformed", "%d malformed trade element(s) skipped, the rest of the frame "
                                  "produced: %s", len(bad), "; ".join(bad)[:600])
            self.stats.trades += len(records)
            if self.api == "v2":
                self.handle_v2_trades(records, snapshot)
            else:
                self.handle_v1_trades(records)
        elif kind is HEARTBEAT:
            self.stats.heartbeats += 1
        elif kind is ACK:
            self.handle_ack(parsed, pending)
        elif kind is STATUS:
            self.handle_status(parsed)
        elif kind is PONG:
            pass
        elif kind is ERROR:
            # {"Error":"Exceeded msg rate"}: Kraken throttled us; back off and try again.
            raise Reconnect(f"Kraken error: {parsed[1]}")
        elif kind is UNKNOWN:
            self.stats.unknown += 1
            self.rlog.warning("unknown", "unknown frame (%s): %.200s", parsed[1], text)
        else:
            self.stats.malformed += 1
            self.rlog.warning("malformed", "malformed frame (%s): %.200s", parsed[1], text)

    def handle_ack(self, parsed: tuple, pending: set) -> None:
        _, native, ok, error, method = parsed
        codec = self.codecs.get(native)
        if method == "unsubscribe":
            raise Reconnect(f"Kraken unsubscribed {native}")
        if ok:
            if codec is None:
                self.stats.unknown += 1
                self.rlog.warning("unknown", "ack for a pair we did not ask for: %r", native)
                return
            pending.discard(native)
            if self.api == "v1" and native in self.v1_last:
                tkey, rows = self.v1_last[native]
                self.v1_guard[native] = (tkey, list(rows))
            return
        if error and "rate" in error.lower():
            raise Reconnect(f"Kraken rate-limited the subscription: {error}")
        if error and "already subscribed" in error.lower() and codec is not None:
            pending.discard(native)
            return
        if not pending or (codec is not None and native not in pending):
            # not an answer to a subscribe request still open: an odd frame, never a reason to stop
            self.stats.unknown += 1
            self.rlog.warning("unknown", "error ack outside a subscription (ignored): %s %s", native, error)
            return
        if codec is None:
            raise PairRejected(f"Kraken rejected the subscribe request ({self.api}): {error}")
        raise PairRejected(
            f"Kraken rejected pair {codec.user_pair!r} (sent as {native!r} on {self.api}): {error}"
        )

    def handle_status(self, parsed: tuple) -> None:
        _, system, conn_id, version = parsed
        level = logging.INFO if system == "online" else logging.WARNING
        if system != self._system or level == logging.WARNING:
            log.log(level, "Kraken system status: %s (version %s, connection %s)", system, version, conn_id)
        self._system = system

    def write_record(self, now_ns: int, text: str) -> None:
        self.record.write(json.dumps({"t": now_ns / 1e9, "frame": text}) + "\n")

    def maybe_stats(self, now: float) -> None:
        if now < self._next_stats:
            return
        if self._next_stats:
            log.info("stats %s", self.stats.line(len(self.producer)))
            if self.record:
                self.record.flush()
        self._next_stats = now + self.args.stats_interval

    # -- shutdown -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop.set()
        ws = self.ws
        if ws is not None and ws.sock is not None:
            try:
                ws.sock.shutdown(socket.SHUT_RDWR)  # wakes up a blocked recv at once
            except OSError:
                pass

    def finish(self, flush_timeout: float) -> int:
        """Flush, report, and return how many produced messages were not delivered."""
        remaining = self.producer.flush(flush_timeout)
        undelivered = remaining + self.stats.failed
        log.info("final stats %s", self.stats.line(remaining))
        for pair, (n, missing) in self.gaps_by_pair.items():
            if n:
                log.warning("gaps on %s: %d gap(s), %d trade(s) missing", pair, n, missing)
        if undelivered:
            log.error("%d message(s) NOT delivered (%d still queued after %.0fs flush, %d failed)",
                      undelivered, remaining, flush_timeout, self.stats.failed)
        else:
            log.info("all %d produced message(s) delivered", self.stats.produced)
        return undelivered


def _v1_time_key(ts: str) -> tuple:
    sec, _, frac = ts.partition(".")
    return (int(sec), (frac + "000000")[:6])


def connect_ws(url: str, timeout: float) -> Any:
    import websocket  # websocket-client (+ wsaccel when installed)

    # skip_utf8_validation: recv path decodes every text frame with strict UTF-8 itself (handle_text),
    # so the library's own per-frame validation would only do the same work twice.
    return websocket.create_connection(
        url, timeout=timeout, skip_utf8_validation=True, enable_multithread=True,
        sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )


def check_broker(producer: Any, bootstrap: str, timeout: float) -> Optional[str]:
    """None if the cluster answers metadata within `timeout`, else an error text."""
    from confluent_kafka import KafkaException

    try:
        md = producer.list_topics(timeout=timeout)
    except KafkaException as exc:
        return f"Kafka broker unreachable at {bootstrap} within {timeout:.0f}s: {exc.args[0]}"
    if not md.brokers:
        return f"Kafka at {bootstrap} answered with no brokers"
    return None


def read_resume_points(bootstrap: str, topic: str, pairs: list[str], limit: int, timeout: float) -> dict[str, int]:
    """Highest v2 trade_id already in `topic` per pair (key = pair as typed), from each partition's tail.

    A short-lived consumer with assign() (no group membership, no commits) reads every partition backwards in
    chunks (scan_windows), all partitions chunk by chunk, until each pair is found or `limit` records per partition
    were read. Values are decoded only for records whose key is one of `pairs`. Gives up after `timeout` seconds
    with what it found so far (a chunk read only in part can only yield an older trade_id than the newest one in
    the topic: some snapshot trades are produced twice, none is lost).
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    t0 = time.monotonic()
    deadline = t0 + timeout
    keys = {p.encode("utf-8"): p for p in pairs}
    found: dict[str, int] = {}
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"kraken-trades-ws-resume-{random.getrandbits(64):016x}",
        "client.id": "kraken-trades-ws-resume", "enable.auto.commit": False, "enable.auto.offset.store": False,
        "enable.partition.eof": True, "auto.offset.reset": "earliest", "allow.auto.create.topics": False,
        "fetch.wait.max.ms": 50,
    })
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            log.info("resume: topic %s does not exist yet: nothing to resume from", topic)
            return found
        windows = {}
        for p in sorted(meta.partitions):
            left = max(0.1, deadline - time.monotonic())
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=left)
            windows[p] = scan_windows(low, high, limit)
        read, level = 0, 0
        while len(found) < len(keys) and any(level < len(w) for w in windows.values()):
            chunk = {p: w[level] for p, w in windows.items() if level < len(w)}
            unknown = {k: v for k, v in keys.items() if v not in found}
            level_found: dict[str, int] = {}
            consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in chunk.items()])
            open_parts = set(chunk)
            while open_parts:
                if time.monotonic() > deadline:
                    found.update({p: t for p, t in level_found.items() if p not in found})
                    log.warning("resume: gave up reading %s after %.1fs (%d records read)", topic, timeout, read)
                    return found
                batch = []
                for msg in consumer.consume(num_messages=5000, timeout=0.2):
                    part = msg.partition()
                    if part not in open_parts:
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            open_parts.discard(part)
                            continue
                        raise RuntimeError(f"reading {topic} [{part}]: {err}")
                    offset, end = msg.offset(), chunk[part][1]
                    if offset >= end:
                        open_parts.discard(part)
                        continue
                    read += 1
                    key = msg.key()
                    if key in unknown:
                        batch.append((key, msg.value()))
                    if offset == end - 1:
                        open_parts.discard(part)
                latest_trade_ids(batch, unknown, level_found)
            consumer.unassign()
            found.update(level_found)
            level += 1
        log.info("resume: read %d record(s) of %s (%d partition(s), %d chunk(s) deep) in %.2fs",
                 read, topic, len(windows), level, time.monotonic() - t0)
        return found
    finally:
        consumer.close()


def resume_points(args: argparse.Namespace) -> dict[str, int]:
    """--api v2: what the topic already holds per pair (logged pair by pair); {} for v1 or --no-resume."""
    if args.api != "v2":
        log.info("resume: not available with --api v1 (v1 trades have no trade_id); producing live trades only")
        return {}
    if args.no_resume:
        log.info("resume: disabled (--no-resume): the first snapshot is produced in full")
        return {}
    found = read_resume_points(args.bootstrap, args.topic, args.pair, args.resume_scan_limit, args.resume_timeout)
    for pair in args.pair:
        if pair in found:
            log.info("resuming %s after trade_id %d", pair, found[pair])
        else:
            log.info("resume: no earlier v2 trade of %s in the last %d record(s) of each partition of %s: "
                     "starting without memory (the first snapshot is produced in full)",
                     pair, args.resume_scan_limit, args.topic)
    return found


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Kraken public WebSocket trades -> Kafka (JSON per trade, key = pair).",
        epilog="Restarts (v2): at start the producer reads the topic's tail back and resumes each pair after the "
        "highest trade_id already there, so a restart (even kill -9) neither doubles nor loses a trade when the "
        "downtime fits in Kraken's 50-trade snapshot. v1 has no trade ids and never resumes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--pair", action="append", help="pair as BASE/QUOTE; repeatable; XBT/BTC and XDG/DOGE both "
                   f"accepted and translated to the API's dialect (default {DEFAULT_PAIRS[0]})")
    p.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="Kafka bootstrap servers")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help="Kafka topic")
    p.add_argument("--api", choices=["v2", "v1"], default=DEFAULT_API, help="Kraken WebSocket API version")
    p.add_argument("--ws-url", help="WebSocket URL (default: Kraken's public URL for --api: "
                   f"{DEFAULT_WS_URLS['v2']} or {DEFAULT_WS_URLS['v1']})")
    p.add_argument("--stats-interval", type=float, default=DEFAULT_STATS_INTERVAL, help="seconds between stats lines")
    p.add_argument("--watchdog", type=float, default=DEFAULT_WATCHDOG,
                   help="reconnect after this many seconds without any frame (Kraken heartbeats ~1/s)")
    p.add_argument("--ack-timeout", type=float, default=DEFAULT_ACK_TIMEOUT,
                   help="reconnect if subscription acks do not all arrive within this many seconds")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT, help="WebSocket connect timeout")
    p.add_argument("--backoff-initial", type=float, default=DEFAULT_BACKOFF_INITIAL, help="first reconnect delay (s)")
    p.add_argument("--backoff-max", type=float, default=DEFAULT_BACKOFF_MAX, help="reconnect delay cap (s)")
    p.add_argument("--delivery-timeout", type=float, default=DEFAULT_DELIVERY_TIMEOUT,
                   help="seconds a message may wait for Kafka (broker outage ride-through) before it fails")
    p.add_argument("--flush-timeout", type=float, default=DEFAULT_FLUSH_TIMEOUT, help="flush timeout at shutdown (s)")
    p.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT,
                   help="fail if the Kafka cluster does not answer within this many seconds at start")
    p.add_argument("--compression", default=DEFAULT_COMPRESSION, choices=["none", "gzip", "snappy", "lz4", "zstd"],
                   help="Kafka compression codec")
    p.add_argument("--linger-ms", type=int, default=DEFAULT_LINGER_MS, help="Kafka producer linger.ms")
    p.add_argument("--no-resume", action="store_true",
                   help="v2: do not read the topic back at start; a restart then produces the 50-trade snapshot "
                   "again (up to 50 trades per pair twice in the topic)")
    p.add_argument("--resume-scan-limit", type=int, default=DEFAULT_RESUME_SCAN_LIMIT,
                   help="v2: at start, read at most this many records per partition (newest first) to find each "
                   "pair's last produced trade_id")
    p.add_argument("--resume-timeout", type=float, default=DEFAULT_RESUME_TIMEOUT,
                   help="v2: stop reading the topic back after this many seconds and resume with what was found")
    p.add_argument("--record", metavar="FILE", help='append every received text frame as JSONL {"t": epoch_s, "frame": text}')
    p.add_argument("--log-level", default="INFO", help="logging level")
    args = p.parse_args(argv)
    args.pair = args.pair or list(DEFAULT_PAIRS)
    seen: dict[str, str] = {}
    for pair in args.pair:
        if not _PAIR_RE.match(pair):
            p.error(f"--pair {pair!r}: expected BASE/QUOTE, e.g. XBT/USDT")
        native = native_pair(pair, args.api)
        if native in seen:
            p.error(f"--pair {seen[native]!r} and {pair!r} are the same Kraken pair ({native})")
        seen[native] = pair
    for name in ("stats_interval", "watchdog", "ack_timeout", "connect_timeout", "backoff_initial", "backoff_max",
                 "delivery_timeout", "flush_timeout", "startup_timeout", "resume_scan_limit", "resume_timeout"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from confluent_kafka import Producer

    kafka_errors = RateLimitedLog(burst=3, interval=30.0)
    conf = producer_config(args)
    conf["error_cb"] = lambda err: kafka_errors.warning("kafka", "Kafka: %s", err)
    rdkafka_log = logging.getLogger("kraken_trades_ws.librdkafka")
    rdkafka_log.addFilter(RateLimitFilter())
    conf["logger"] = rdkafka_log  # librdkafka's own log lines, rate-limited, instead of raw stderr
    app = TradeProducer(args, None, connect_ws)
    conf["on_delivery"] = app.on_delivery  # one delivery report per message, served by poll()/flush()
    producer = Producer(conf)
    problem = check_broker(producer, args.bootstrap, args.startup_timeout)
    if problem:
        log.error("%s", problem)
        return EXIT_FAILURE
    try:
        app.resume_from(resume_points(args))
    except Exception as exc:  # reading back is an optimisation: never a reason not to produce
        log.warning("resume: could not read %s back (%s): starting without memory", args.topic, exc)
    app.producer = producer

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        app.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("producing %s from %s (%s) to %s @ %s", ", ".join(args.pair), app.url, args.api, args.topic, args.bootstrap)
    code = EXIT_FAILURE
    try:
        code = app.run()
    except Exception:
        log.exception("unexpected error")
        code = EXIT_FAILURE
    finally:
        app.close_ws()
        undelivered = app.finish(args.flush_timeout)
    if undelivered and code == EXIT_OK:
        code = EXIT_FAILURE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
