"""The page server's web app (Starlette): the page, its JSON API and /metrics, over one PageState.

  GET /                              the page (static/index.html: candles, volume, the health panel)
  GET /api/pairs                     ["ETH/USD", "XBT/USDT", ...]: Gold's pairs and those seen on the topic
  GET /api/bars?symbol=S&minutes=N   the pair's newest N minutes holding trades (bars.py), N 1..1440, default 60
  GET /api/status                    the health report (lakehouse.observe), plus this server's own figures
  GET /metrics                       Prometheus text (metrics.py)
The API answers errors as JSON {"error": "..."} with 400 (a bad parameter) or 404 (an unknown pair, with the pairs).
/api/bars carries an ETag: a poll that changed nothing is a 304 without a body.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lakehouse.observe import status
from lakehouse.observe.snapshot import StatusReader
from lakehouse.page.bars import BarValues, mismatches, newest_bars
from lakehouse.page.gold import GoldCache
from lakehouse.page.live import LiveBook
from lakehouse.page.metrics import PageMetrics
from lakehouse.page.tail import TailReader
from lakehouse.pipeline.layers import layer_paths

STATIC = Path(__file__).parent / "static"
MAX_MINUTES = 1440
DEFAULT_MINUTES = 60
STATUS_TTL_S = 1.0
REFRESH_S = 1.0
PUBLISH_EVERY_S = 5.0


class PageState:
    """Everything the server holds: the live book and its reader, Gold's cache, the status reader, the metrics."""

    def __init__(self, data_dir: Path, bootstrap: str, topic: str, lookback_s: float, keep_minutes: int,
                 status_dir: Path | None = None, url: str = "") -> None:
        self.url = url
        self.book, self.lock = LiveBook(keep_minutes), threading.Lock()
        self.gold = GoldCache(layer_paths(str(data_dir))["gold"])
        self.reader = StatusReader(data_dir, status_dir)
        self.metrics = PageMetrics(self.report)
        self.tail = TailReader(bootstrap, topic, self.book, self.lock, lookback_s, self.metrics.live_latency.observe)
        self.refresher = threading.Thread(target=self._refresh_loop, daemon=True, name="refresh")
        self.stop_event = threading.Event()
        self._report: tuple[float, dict[str, Any]] | None = None
        self._report_lock = threading.Lock()
        self._counted = {"records": 0, "trades": 0, "bad": {}}
        self._mismatched: set[tuple[str, int]] = set()
        self._bars_cache: dict[tuple, tuple[str, bytes]] = {}

    # -- life -----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.gold.refresh()
        self.tail.start()
        self.refresher.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.tail.stop()
        self.tail.join(5)
        status.publish("page", state="stopped", reason="stopped on request")

    def _refresh_loop(self) -> None:
        next_publish = 0.0
        while not self.stop_event.is_set():
            if self.gold.refresh():
                self.check_gold_against_live()
            self.count()
            if time.monotonic() >= next_publish:
                next_publish = time.monotonic() + PUBLISH_EVERY_S
                status.publish("page", state="running", reason=None, url=self.url, records=self.tail.records,
                               bad_records=sum(self.tail.bad.values()), trades=self.book.counts["trades"])
            self.stop_event.wait(REFRESH_S)

    def count(self) -> None:
        """Carry the reader's counts into the Prometheus counters (the reader thread knows no metrics)."""
        m, seen = self.metrics, self._counted
        m.records.inc(self.tail.records - seen["records"])
        seen["records"] = self.tail.records
        trades = self.book.counts["trades"]
        m.live_trades.inc(trades - seen["trades"])
        seen["trades"] = trades
        for reason, n in list(self.tail.bad.items()):
            m.bad.labels(reason).inc(n - seen["bad"].get(reason, 0))
            seen["bad"][reason] = n

    def check_gold_against_live(self) -> None:
        """Every bar Gold now holds as many trades of as the live bar must equal it; a difference is counted."""
        for symbol in self.pairs():
            for minute in mismatches(self.gold.bars_of(symbol), self.live_bars(symbol)):
                if (symbol, minute) not in self._mismatched:
                    self._mismatched.add((symbol, minute))
                    self.metrics.mismatch.inc()

    # -- answers ----------------------------------------------------------------------------------------------------

    def pairs(self) -> list[str]:
        with self.lock:
            live = self.book.symbols()
        return sorted(set(self.gold.symbols()) | set(live))

    def live_bars(self, symbol: str) -> dict[int, BarValues]:
        with self.lock:
            return {m: BarValues.of_bar(b) for m, b in self.book.bars(symbol).items()}

    def bars_body(self, symbol: str, minutes: int) -> tuple[str, bytes]:
        """(ETag, JSON body) of /api/bars, computed once per change of the book or of Gold."""
        key = (symbol, minutes, self.book.revision, self.gold.version)
        cached = self._bars_cache.get((symbol, minutes))
        if cached and cached[0] == key:
            return cached[1]
        body = json.dumps(newest_bars(self.gold.bars_of(symbol), self.live_bars(symbol), minutes)).encode()
        answer = (hashlib.sha1(body).hexdigest()[:16], body)
        if len(self._bars_cache) > 64:
            self._bars_cache.clear()
        self._bars_cache[(symbol, minutes)] = (key, answer)
        return answer

    def report(self) -> dict[str, Any]:
        """The status report, read at most once a second."""
        with self._report_lock:
            if self._report is None or time.monotonic() - self._report[0] > STATUS_TTL_S:
                report = self.reader.read()
                gold_record = status.read_all(self.reader.status_dir).get("gold")
                self.metrics.observe_gold_write(gold_record)
                report["page"] = {"url": self.url, "topic_reader": self.tail.state, "topic_error": self.tail.error,
                                  "records": self.tail.records, "bad_records": dict(self.tail.bad),
                                  "live_trades": self.book.counts["trades"],
                                  "duplicates": self.book.counts["duplicates"], "gold_version": self.gold.version,
                                  "gold_error": self.gold.error}
                self._report = (time.monotonic(), report)
            return self._report[1]


def error(status_code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status_code)


def make_app(state: PageState) -> Starlette:
    def index(_request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    def pairs(_request: Request) -> JSONResponse:
        return JSONResponse(state.pairs())

    def bars(request: Request) -> Response:
        symbol = request.query_params.get("symbol")
        if not symbol:
            return error(400, "symbol is required, e.g. /api/bars?symbol=XBT/USDT&minutes=60")
        text = request.query_params.get("minutes", str(DEFAULT_MINUTES))
        if not text.isdigit() or not 1 <= int(text) <= MAX_MINUTES:
            return error(400, f"minutes={text!r}: expected an integer in 1..{MAX_MINUTES}")
        known = state.pairs()
        if symbol not in known:
            return error(404, f"unknown symbol {symbol!r}", pairs=known)
        etag, body = state.bars_body(symbol, int(text))
        headers = {"ETag": f'"{etag}"', "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    def status_(_request: Request) -> JSONResponse:
        return JSONResponse(state.report())

    def metrics(_request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/", index), Route("/api/pairs", pairs), Route("/api/bars", bars),
                             Route("/api/status", status_), Route("/metrics", metrics),
                             Mount("/static", StaticFiles(directory=STATIC), name="static")])
