"""A Kafka record's value -> a trade, or the reason it is not one: Silver's rules, in plain Python, so that the page's
live bars take exactly the trades Silver and Gold take.

Silver's rules (its constants imported from lakehouse.silver.parse, which imports no Spark at its top), in the order
Silver checks them:
  - the value is valid UTF-8, and a JSON object;
  - symbol, price, size, side, ord_type, ts_event, ts_ingest are present and not null; symbol is not blank;
  - price and size are exact decimal(38,18): digits with an optional fraction (no sign, no exponent in a string),
    at most 20 significant integer digits, nothing but zeros past the 18th decimal place. A JSON number (rather than
    a string) is read from its own digits (json hands parse_float its text), its exponent within +-40, and then
    checked the same way; a price or size that appears twice is refused;
  - side is buy or sell, ord_type limit or market, source (optional) ws or rest;
  - trade_id, when present, is a non-negative integer that fits a long;
  - ts_event and ts_ingest are ISO-8601 with a zone (Z or +hh:mm) and at most 6 fractional digits, real dates;
  - ts_event is at most 1 hour after ts_ingest (or after Kafka's timestamp, when ts_ingest is itself more than an
    hour ahead of Kafka's): one trade dated 2099 would otherwise freeze its pair's bars.
A JSON field that appears twice is refused whichever it is (Silver refuses a doubled price or size, and reads other
doubled fields as Spark's JSON reader does): a record a producer never writes.

Pure functions; parse_trade() never raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from lakehouse.gold.bars import to_micros
from lakehouse.silver import parse as silver_rules

REQUIRED_FIELDS = silver_rules.REQUIRED_FIELDS
MONEY_FIELDS = silver_rules.MONEY_FIELDS
SIDES, ORD_TYPES, SOURCES = silver_rules.SIDES, silver_rules.ORD_TYPES, silver_rules.SOURCES
DECIMAL_RE = re.compile(silver_rules.DECIMAL_RE)
DECIMAL_FITS_RE = re.compile(silver_rules.DECIMAL_FITS_RE)
INTEGER_RE = re.compile(silver_rules.INTEGER_RE)
TIMESTAMP_RE = re.compile(silver_rules.TIMESTAMP_RE)
MAX_EXPONENT = silver_rules.MAX_EXPONENT
FUTURE_TOLERANCE_US = silver_rules.DEFAULT_FUTURE_TOLERANCE_S * 1_000_000
LONG_MAX = 2 ** 63 - 1


@dataclass(frozen=True)
class Trade:
    """One valid trade as Silver would hold it, with its Kafka position (the order key's tie-breakers)."""

    symbol: str
    price: Decimal
    size: Decimal
    side: str
    ord_type: str
    trade_id: int | None
    ts_event_us: int
    ts_ingest_us: int
    partition: int
    offset: int

    @property
    def order_key(self) -> tuple[int, int | None, int, int]:
        """(ts_event, trade_id, partition, offset): lakehouse.gold.bars' OrderKey."""
        return self.ts_event_us, self.trade_id, self.partition, self.offset


class Refused(ValueError):
    """A record that is not a valid trade; the message is the reason, as Silver's quarantine would say it."""


def _no_doubles(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refused(f"{key} appears more than once in the record")
        seen[key] = value
    return seen


def field_text(value: Any) -> str | None:
    """A JSON value as the text Spark's JSON reader gives a string column: a string as it is, a number as its digits,
    true/false, an object or array as JSON; None for null."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


class JsonNumber(str):
    """A JSON number with a fraction or an exponent, kept as the text it was written as (json's parse_float)."""


NUMBER_RE = re.compile(r"^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$")


def money_text(name: str, value: Any) -> str:
    """price/size as decimal text: a string as it is; a JSON number expanded from its own digits to plain text
    (1.5e-7 -> 0.00000015), sign kept, once its exponent is within +-MAX_EXPONENT."""
    if isinstance(value, JsonNumber):
        match = NUMBER_RE.match(value)
        if match and match.group(4) and abs(int(match.group(4))) > MAX_EXPONENT:
            raise Refused(f"{name} '{value[:80]}' is a JSON number with an exponent beyond {MAX_EXPONENT}")
        return format(Decimal(value), "f")
    return field_text(value)


def exact_decimal(name: str, text: str) -> Decimal:
    """Silver's decimal(38,18) checks on the text; the exact value."""
    if not DECIMAL_RE.match(text):
        raise Refused(f"{name} '{text[:80]}' is not a decimal")
    if not DECIMAL_FITS_RE.match(text):
        raise Refused(f"{name} '{text[:80]}' does not fit decimal(38,18)")
    return Decimal(text)


def timestamp_us(name: str, text: str) -> int:
    """ISO-8601 with a zone and at most 6 fractional digits -> microseconds since the epoch (UTC)."""
    match = TIMESTAMP_RE.match(text)
    try:
        if not match:
            raise ValueError
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        micros = int((match.group(7) or ".")[1:].ljust(6, "0"))
        offset = timedelta(0)
        if match.group(8) != "Z":
            offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
            offset = -offset if match.group(9) == "-" else offset
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=timezone(offset))
        return to_micros(moment.astimezone(timezone.utc))
    except (ValueError, OverflowError):
        raise Refused(f"{name} '{text[:80]}' is not an ISO-8601 timestamp with a zone and at most 6 fractional "
                      f"digits") from None


def parse_trade(value: bytes | None, partition: int, offset: int, kafka_us: int | None) -> tuple[Trade | None, str | None]:
    """(the trade, None) or (None, the reason it is not one), by Silver's rules (the module docstring)."""
    try:
        return _parse(value, partition, offset, kafka_us), None
    except Refused as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever else a record holds, it is skipped, never a crash
        return None, f"unreadable record ({type(exc).__name__})"


def _parse(value: bytes | None, partition: int, offset: int, kafka_us: int | None) -> Trade:
    if value is None:
        raise Refused("no value (null Kafka record)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("not valid UTF-8") from None
    try:
        record = json.loads(text, parse_float=JsonNumber, object_pairs_hook=_no_doubles)
    except Refused:
        raise
    except (ValueError, RecursionError, InvalidOperation):
        raise Refused("not JSON (or not a JSON object)") from None
    if not isinstance(record, dict):
        raise Refused("not JSON (or not a JSON object)")
    for name in REQUIRED_FIELDS:
        if record.get(name) is None:
            raise Refused(f"missing field {name}")
    symbol = field_text(record["symbol"])
    if symbol.strip() == "":
        raise Refused("symbol is empty")
    price = exact_decimal("price", money_text("price", record["price"]))
    size = exact_decimal("size", money_text("size", record["size"]))
    side, ord_type = field_text(record["side"]), field_text(record["ord_type"])
    if side not in SIDES:
        raise Refused(f"side '{side[:80]}' is not buy or sell")
    if ord_type not in ORD_TYPES:
        raise Refused(f"ord_type '{ord_type[:80]}' is not limit or market")
    trade_id = field_text(record.get("trade_id"))
    if trade_id is not None and (not INTEGER_RE.match(trade_id) or int(trade_id) > LONG_MAX):
        raise Refused(f"trade_id '{trade_id[:80]}' is not a non-negative integer")
    ts_event = timestamp_us("ts_event", field_text(record["ts_event"]))
    ts_ingest = timestamp_us("ts_ingest", field_text(record["ts_ingest"]))
    ingest_plausible = kafka_us is None or ts_ingest <= kafka_us + FUTURE_TOLERANCE_US
    if ingest_plausible and ts_event > ts_ingest + FUTURE_TOLERANCE_US:
        raise Refused(f"ts_event '{record['ts_event']}' is more than 3600 s after its ts_ingest")
    if not ingest_plausible and ts_event > kafka_us + FUTURE_TOLERANCE_US:
        raise Refused(f"ts_event '{record['ts_event']}' is more than 3600 s after Kafka's timestamp")
    source = field_text(record.get("source"))
    if source is not None and source not in SOURCES:
        raise Refused(f"source '{source[:80]}' is not ws or rest")
    return Trade(symbol, price, size, side, ord_type, None if trade_id is None else int(trade_id), ts_event,
                 ts_ingest, partition, offset)
