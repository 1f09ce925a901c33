"""Gold's recent bars in memory, kept up to date from the Delta table without Spark (delta-rs lists the files,
pyarrow reads them).

A new Gold version is noticed by listing _delta_log (cheap); then only the Parquet files that version added are read
(a MERGE rewrites whole files, so a file's rows are the current rows of their bars; a compaction's files hold the same
rows again), each of the bars in them replacing the one held. Bars of the newest KEEP_DAYS days of bar_date are kept
(the page shows at most a day of minutes). Reading a table version never needs Spark or a JVM and takes milliseconds.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

from lakehouse.observe.lag import delta_version
from lakehouse.page.bars import BarValues

COLUMNS = ["symbol", "window_start", "open", "high", "low", "close", "volume", "vwap", "trade_count"]
KEEP_DAYS = 2

log = logging.getLogger(__name__)


def rows_of(table) -> list[BarValues]:
    """pyarrow Table (Gold's columns) -> bars; window_start as microseconds since the epoch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    starts = pc.cast(pc.cast(table.column("window_start"), pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()
    columns = {name: table.column(name).to_pylist() for name in COLUMNS if name != "window_start"}
    return [BarValues(columns["symbol"][i], starts[i], columns["open"][i], columns["high"][i], columns["low"][i],
                      columns["close"][i], columns["volume"][i], columns["vwap"][i], int(columns["trade_count"][i]))
            for i in range(table.num_rows)]


class GoldCache:
    """Gold's bars by pair and minute; refresh() brings them up to the table's newest version."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.version: int | None = None
        self.files: set[str] = set()
        self.bars: dict[str, dict[int, BarValues]] = {}
        self.table = None
        self.error: str | None = None
        self.lock = threading.Lock()

    def refresh(self) -> bool:
        """Read what a new version added; True when something changed. Errors are kept in .error, never raised."""
        newest = delta_version(self.path)
        if newest is None or newest == self.version:
            return False
        if self.version is not None and newest < self.version:  # the table was deleted and rebuilt: start over
            with self.lock:
                self.table, self.files, self.bars, self.version = None, set(), {}, None
        try:
            changed = self._load()
            self.error = None
            return changed
        except Exception as exc:  # noqa: BLE001 - a table being written, a file vacuumed meanwhile: try again later
            self.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            log.warning("reading Gold at %s failed (tried again next time): %s", self.path, self.error)
            self.table, self.files = None, set()
            return False

    def _load(self) -> bool:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from deltalake import DeltaTable

        if self.table is None:
            self.table = DeltaTable(str(self.path))
        else:
            self.table.update_incremental()
        protocol = self.table.protocol()
        if protocol.min_reader_version > 1 or protocol.reader_features:
            raise RuntimeError(f"Gold uses Delta reader features {protocol.reader_features or []} this reader does "
                               f"not handle")
        actions = pa.table(self.table.get_add_actions(flatten=True))
        paths = actions.column("path").to_pylist()
        dates = (actions.column("partition.bar_date").to_pylist() if "partition.bar_date" in actions.column_names
                 else [None] * len(paths))
        newest_date = max((d for d in dates if d is not None), default=None)
        cutoff = newest_date - timedelta(days=KEEP_DAYS - 1) if newest_date else None
        new = [(p, d) for p, d in zip(paths, dates) if p not in self.files and (cutoff is None or d is None or d >= cutoff)]
        rows = []
        for path, _ in new:
            rows += rows_of(pq.read_table(str(self.path / unquote(path)), columns=COLUMNS))
        with self.lock:
            for bar in rows:
                self.bars.setdefault(bar.symbol, {})[bar.window_start_us] = bar
            if cutoff is not None:
                floor = int((cutoff - type(cutoff)(1970, 1, 1)).total_seconds()) * 1_000_000
                for pair in self.bars.values():
                    for minute in [m for m in pair if m < floor]:
                        del pair[minute]
            self.files = set(paths)
            self.version = self.table.version()
        return bool(rows)

    def symbols(self) -> list[str]:
        with self.lock:
            return sorted(self.bars)

    def bars_of(self, symbol: str) -> dict[int, BarValues]:
        with self.lock:
            return dict(self.bars.get(symbol, {}))
