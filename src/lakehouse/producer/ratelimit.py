"""Log lines that repeat in an outage, kept to a few per window: the rest are counted and said in one line."""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

log = logging.getLogger(__name__)


class RateLimitedLog:
    """At most `burst` log lines per `interval` seconds per category; the rest are only counted. Lines go to
    `logger` (the one of the component that owns this object)."""

    def __init__(self, burst: int = 5, interval: float = 10.0, logger: Optional[logging.Logger] = None) -> None:
        self.burst, self.interval = burst, interval
        self.log = logger or log
        self._window: dict[str, list] = {}

    def warning(self, category: str, fmt: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        w = self._window.get(category)
        if w is None or now - w[0] >= self.interval:
            if w is not None and w[2]:
                self.log.warning("%s: %d more suppressed in the last %.0fs", category, w[2], now - w[0])
            w = self._window[category] = [now, 0, 0]
        if w[1] < self.burst:
            w[1] += 1
            self.log.warning(fmt, *args, exc_info=exc_info)
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
