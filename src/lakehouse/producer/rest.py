"""Kraken's public REST trades (`GET /0/public/Trades?pair=&since=`), the source of gap backfills.

A reply (../../../shared/reference/kraken-rest.md):
    {"error": [], "result": {"XXBTZUSD": [["30243.40000", "0.34507674", 1688669597.8277369, "b", "m", "", 61044952],
     ...], "last": "1688671969993150842"}}
The result's pair key may be Kraken's legacy name (XXBTZUSD), not the name asked for: the one key that is not `last`
is taken. `last` is the `since` cursor (nanoseconds) of the next call. Numbers are decoded as their text (the time
is never a binary float). Errors (`{"error": ["EAPI:Rate limit exceeded"]}`, HTTP errors, timeouts, junk) raise
RestError; the caller backs off and retries.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from lakehouse.producer.protocol import load_frame
from lakehouse.producer.records import short

DEFAULT_REST_URL = "https://api.kraken.com"
MAX_COUNT = 1000  # trades per call (Kraken's maximum)
MAX_REPLY_BYTES = 64 * 1024 * 1024  # a longer reply is cut here, and then refused as not JSON


class RestError(Exception):
    """A REST call that gave no usable trades; `rate_limited` when Kraken asked us to slow down."""

    def __init__(self, message: str, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


def trades_url(base: str, pair: str, since_ns: int, count: int = MAX_COUNT) -> str:
    query = urllib.parse.urlencode({"pair": pair, "since": str(since_ns), "count": str(count)})
    return f"{base.rstrip('/')}/0/public/Trades?{query}"


def parse_trades_reply(body: bytes) -> tuple[list, int]:
    """A /0/public/Trades reply -> (trade elements, next cursor); RestError for an error reply or junk."""
    try:
        reply = load_frame(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise RestError(f"reply is not JSON: {short(body, 120)}") from exc
    if type(reply) is not dict:
        raise RestError(f"reply is not a JSON object: {short(reply, 120)}")
    errors = reply.get("error")
    if errors:
        text = "; ".join(e if type(e) is str else short(e, 80) for e in errors) if type(errors) is list \
            else short(errors, 120)
        return _raise(text)
    result = reply.get("result")
    keys = [k for k in result if k != "last"] if type(result) is dict else []
    if len(keys) != 1 or type(result[keys[0]]) is not list:
        raise RestError(f"reply without one list of trades: {short(result, 120)}")
    last = result.get("last")
    if type(last) is int or (type(last) is str and last.isdigit() and len(last) <= 30):
        return result[keys[0]], int(last)
    raise RestError(f"reply without a `last` cursor: {short(last, 60)}")


def _raise(text: str) -> Any:
    lower = text.lower()
    raise RestError(f"Kraken error: {text[:200]}", rate_limited="rate limit" in lower or "too many" in lower)


def fetch_trades(base: str, pair: str, since_ns: int, timeout: float) -> tuple[list, int]:
    """One call: (trade elements, next cursor). RestError on any failure (HTTP status, network, timeout, reply)."""
    url = trades_url(base, pair, since_ns)
    request = urllib.request.Request(url, headers={"User-Agent": "kraken-trades-ws-backfill"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_REPLY_BYTES)
    except urllib.error.HTTPError as exc:
        raise RestError(f"HTTP {exc.code} {exc.reason} from {base}", rate_limited=exc.code == 429) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RestError(f"{base} unreachable: {reason}") from exc
    return parse_trades_reply(body)
