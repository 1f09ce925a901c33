"""Trade records: the value contract, and the checks every wire field passes before it is used.

A Kafka value (key = the pair as the user typed it, UTF-8), fields always in this order:
    {"symbol": "XBT/USDT", "price": "83744.3", "size": "0.00044780", "side": "buy", "ord_type": "limit",
     "trade_id": 109116693, "ts_event": "2026-09-25T17:48:26.844359Z", "ts_ingest": "2026-09-25T17:48:26.901234Z",
     "api": "v2", "pair_native": "BTC/USDT", "source": "ws"}
price/size are Kraken's decimal text (never a binary float); trade_id is null on v1 (v1 has no ids);
ts_event/ts_ingest are UTC with exactly 6 fractional digits; source is "ws" (the WebSocket) or "rest" (backfilled
from Kraken's REST trades). PairCodec builds these values from v2, v1 and REST trade elements.
"""

from __future__ import annotations

import calendar
import json
import re
import reprlib
import time
from decimal import Decimal
from typing import Any, Callable, Optional

# Kraken's legacy (v1 / REST wsname) asset codes and their v2 names.
_V1_TO_V2_ASSET = {"XBT": "BTC", "XDG": "DOGE"}
_V2_TO_V1_ASSET = {v: k for k, v in _V1_TO_V2_ASSET.items()}
PAIR_RE = re.compile(r"[A-Za-z0-9.]{1,16}/[A-Za-z0-9.]{1,16}\Z")
# Bounds of what the producer accepts from the wire (README "What the producer accepts"); anything else is malformed.
MAX_INT_DIGITS = 40  # a price/size: at most 40 digits before the decimal point ...
MAX_FRAC_DIGITS = 40  # ... and 40 after it
MAX_EXPONENT = 40  # a JSON number in exponent form (1E-8): |exponent| <= 40, expanded to plain digits
MAX_TRADE_ID = 2**63 - 1  # a trade_id is an integer in 0..2^63-1 (Silver's long)
MAX_EPOCH_S = 253_402_300_800  # 10000-01-01T00:00:00Z: times are 1970-01-01 .. 9999-12-31 (UTC)
MAX_OFFSET_MIN = 14 * 60  # an RFC 3339 offset is within -14:00..+14:00
_DECIMAL_RE = re.compile(rf"[0-9]{{1,{MAX_INT_DIGITS}}}(?:\.[0-9]{{1,{MAX_FRAC_DIGITS}}})?\Z")
_EXP_DECIMAL_RE = re.compile(
    rf"[0-9]{{1,{MAX_INT_DIGITS}}}(?:\.[0-9]{{1,{MAX_FRAC_DIGITS}}})?[eE][+-]?0*[0-9]{{1,3}}\Z")
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
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29: leap years only (checked)
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
        if text[8:10] <= "28":
            return text
        day, month = int(text[8:10]), int(text[5:7])
        if day <= _MONTH_DAYS[month] and (month != 2 or calendar.isleap(int(text[:4]))):
            return text
        raise BadTrade(f"bad timestamp (not a real date and time): {short(text, 80)}")
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


def epoch_ns_from_iso(text: str) -> int:
    """The producer's own ts_event ("2026-09-25T17:48:26.844359Z") -> nanoseconds since the epoch."""
    seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int(text[20:26]) * 1000


def rest_pair_name(pair: str) -> str:
    """The pair as Kraken's REST API names it (altname): XBT/USDT or BTC/USDT -> XBTUSDT, DOGE/USD -> XDGUSD."""
    return native_pair(pair, "v1").replace("/", "")


class PairCodec:
    """Turns trade elements of one pair into Kafka values (bytes) for the contract above.

    Every field is checked before use; an element that fails raises BadTrade (the caller skips and counts it)."""

    def __init__(self, user_pair: str, native: str, api: str) -> None:
        self.user_pair = user_pair
        self.native = native
        self.key = user_pair.encode("utf-8")
        self._head = '{"symbol":' + json.dumps(user_pair) + ',"price":"'
        self._tail = '","api":"' + api + '","pair_native":' + json.dumps(native) + ',"source":"ws"}'
        self._rest_tail = self._tail[: -len('"ws"}')] + '"rest"}'  # trades backfilled from REST (v2 only)
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

    def rest_value(self, t: list, ts_ingest: str) -> tuple[int, bytes]:
        """One trade of Kraken's REST /0/public/Trades -> (trade_id, value with "source":"rest").

        ["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952]: price, volume, time (epoch seconds,
        a JSON number read as its text: truncated to the microsecond, so the same trade gets the same ts_event as on
        the WebSocket), side, order type, misc, trade_id.
        """
        if type(t) is not list or len(t) < 7:
            raise BadTrade("bad REST trade: not a list of [price, volume, time, side, ordertype, misc, trade_id]")
        try:
            side, ord_type = _SIDES[t[3]], _ORD_TYPES[t[4]]
        except (KeyError, TypeError) as exc:
            raise BadTrade("bad REST trade: side or ordertype") from exc
        tid, ts = t[6], t[2]
        if type(tid) is not int or not 0 <= tid <= MAX_TRADE_ID:
            raise BadTrade(f"bad trade_id: {short(tid, 80)}")
        ts_event = iso_from_v1_time(str(ts) if type(ts) is int else ts)
        value = (
            f'{self._head}{decimal_text(t[0])}","size":"{decimal_text(t[1])}","side":"{side}",'
            f'"ord_type":"{ord_type}","trade_id":{tid},"ts_event":"{ts_event}",'
            f'"ts_ingest":"{ts_ingest}{self._rest_tail}'
        )
        return tid, value.encode()
