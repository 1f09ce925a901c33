"""The fake Kraken's simulated market: pairs whose prices walk, trades with Kraken's ids, times and number texts, and
the history every client and REST call is served from, and the pace of trading. No sockets: the server (server.py)
runs trade_at_rate in a thread of its own, sends the trades, and holds its lock around every change.

    market = Market(["BTC/USDT"], random.Random(7))
    batch = market.add("BTC/USDT", 3, ts_us=1_790_000_000_000_000)   # three trades sharing a timestamp
    batch[0].v2_json()   # '{"symbol":"BTC/USDT","side":...,"trade_id":...,"timestamp":"2026-09-21T..."}'
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from decimal import Decimal
from typing import Callable, Optional

V2_TO_V1 = {"BTC": "XBT", "DOGE": "XDG"}
# (start price, price decimals, size decimals) per base asset; anything else gets the default.
PROFILES = {"BTC": ("83744.3", 1, 8), "ETH": ("2011.37", 2, 8), "DOGE": ("0.1234567", 7, 8), "SOL": ("142.55", 2, 8)}
DEFAULT_PROFILE = ("10.0000", 4, 8)
HISTORY_CAP = 200_000  # trades kept per pair when the market never ends (the oldest half goes when reached)


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


def now_us() -> int:
    return time.time_ns() // 1000


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

    def json(self, api: str) -> str:
        """The trade as an element of a trade frame in the dialect of `api`."""
        return self.v2_json() if api == "v2" else self.v1_json()

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


class Market:
    """Prices, sizes, sides and ids drawn from `rng` (seeded: the same market every run); `history` holds every
    trade made per pair, oldest first. `count` (None: no end) caps how many trades add_within_count makes in all."""

    def __init__(self, pairs: list[str], rng: random.Random, decimals: Optional[int] = None, history: int = 0,
                 count: Optional[int] = None, max_batch: int = 5) -> None:
        self.pairs, self.rng, self.count, self.max_batch = pairs, rng, count, max(1, max_batch)
        self.generated = 0
        self.history: dict[str, list[Trade]] = {p: [] for p in pairs}
        self._state = {}
        for p in pairs:
            start_price, pdec, sdec = PROFILES.get(p.split("/")[0], DEFAULT_PROFILE)
            if decimals is not None:
                pdec = sdec = decimals
            q = Decimal(1).scaleb(-pdec)
            self._state[p] = {"next_id": 1 + rng.randrange(10_000, 5_000_000),
                              "price": Decimal(start_price).quantize(q), "pq": q, "sq": Decimal(1).scaleb(-sdec)}
        if history:
            past = now_us() - 60_000_000
            for p in pairs:
                for i in range(history):
                    self.history[p].append(self.new_trade(p, past + i * 1000))

    def new_trade(self, pair: str, ts_us: int) -> Trade:
        """The pair's next trade at `ts_us` (not kept in the history: add() keeps what it makes)."""
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

    def add(self, pair: str, k: int, ts_us: int) -> list[Trade]:
        """k new trades of `pair` sharing `ts_us` (a batch), kept in the history and counted as generated."""
        batch = [self.new_trade(pair, ts_us) for _ in range(k)]
        history = self.history[pair]
        history.extend(batch)
        if self.count is None and len(history) > HISTORY_CAP:
            del history[:HISTORY_CAP // 2]
        self.generated += k
        return batch

    def add_within_count(self, pair: str, k: int, ts_us: int) -> list[Trade]:
        """add(), clipped to what `count` still allows (the market may have been halted since `k` was drawn)."""
        if self.count is not None:
            k = min(k, self.count - self.generated)
            if k <= 0:
                return []
        return self.add(pair, k, ts_us)

    def batch_size(self) -> int:
        """Trades in the next batch: 1..max_batch."""
        return self.rng.randint(1, self.max_batch)

    def ended(self) -> bool:
        """`count` trades made: no more from the market loop."""
        return self.count is not None and self.generated >= self.count

    def halt(self) -> int:
        """No more trades from add_within_count; returns how many were made."""
        self.count = self.generated
        return self.count

    def last_trade_id(self, pair: str) -> Optional[int]:
        h = self.history[pair]
        return h[-1].trade_id if h else None

    def records(self, api: str) -> dict[str, list[dict]]:
        """Every trade made, per pair, as the producer must write it in the dialect of `api`."""
        return {p: [t.record(api) for t in self.history[p]] for p in self.pairs}


def trade_at_rate(market: Market, rate: float, emit: Callable[[str, int], object], halted: Callable[[], bool],
                  stopped: threading.Event) -> None:
    """Trades at `rate` per second over all pairs together, in batches of random size (1..max_batch) of a random
    pair, until `stopped` or the market's `count` is reached: emit(pair, k) makes and sends one batch. While
    halted() nothing trades, and the pace starts afresh after."""
    t0, done = time.monotonic(), 0
    while not stopped.is_set():
        if market.ended():
            return
        if halted():
            t0, done = time.monotonic(), 0
            time.sleep(0.02)
            continue
        due = int((time.monotonic() - t0) * rate) - done
        if due <= 0:
            time.sleep(min(0.005, 1.0 / rate))
            continue
        while due > 0:
            k = market.batch_size()  # may run ahead of `due`: batches at any rate
            if market.count is not None:
                k = min(k, market.count - market.generated)
                if k <= 0:
                    return
            emit(market.rng.choice(market.pairs), k)
            due -= k
            done += k
