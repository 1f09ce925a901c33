"""The Gold table and its single writer: Gold's columns, the partial bars Spark sums from Silver's trades, and the
writer that folds them into Gold (the arithmetic is lakehouse.gold.bars, in plain Python).

Gold columns (a Delta table partitioned by bar_date), what a reader uses first:

    symbol, window_start, window_end, open, high, low, close, volume, vwap, trade_count, is_open, revision,
    updated_at

then what the writer keeps to fold more trades into a bar without reading its trades again:

    open_key, close_key   STRUCT<ts_event_us, trade_id, partition, offset>: the order key of the first / last trade
    notional_limbs        ARRAY<DECIMAL(38,0)>: the nine exact limb sums of sum(price * size)
    silver_version        the newest Silver table version whose trades the bar holds

and bar_date, the UTC date of window_start (the partition).

How Gold follows Silver. Silver records its changes (delta.enableChangeDataFeed): each Silver version's new trades,
with the version. The writer sums them per bar and per version on Spark (minute_partials, one small collect: a row
per bar and version, never the trades), and folds each partial into the bar it holds (BarBook), skipping a version
the bar already holds. Only the bars a batch moves are read (once; the pair's open bar stays in memory) and written
(one MERGE). This is exactly once without transaction ids: a batch redone after a crash folds nothing twice, and a
Silver version read again (a new checkpoint, the other way of running the layers) changes nothing.

Two ways, one writer: with the layers in one application (all_layers.py), Silver's own batch calls follow() right
after its MERGE; run as its own job (silver_to_gold_ohlcv.py), a Structured Streaming query over Silver's change feed
hands each micro-batch to fold_changes(). Switching between them at any time is safe: both start from what Gold holds.

A new Gold table over an existing Silver is first built from Silver's snapshot, one trade_date at a time (rebuild):
the change feed of old versions may be gone (the log keeps 7 days), and one date's bars are what memory holds.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Optional

from lakehouse.gold.bars import (LIMB_COUNT, MINUTE_US, NOTIONAL_TERMS, Bar, BarBook, GoldBar, from_micros,
                                  to_micros)
from lakehouse.lake.delta import (commit_metadata, is_delta_table, parse_commit_metadata, read_changes,
                                  retry_on_conflict, table_properties, table_version)
from lakehouse.observe import status

log = logging.getLogger("gold")

PRICE_TYPE = "DECIMAL(38,18)"
KEY_TYPE = "STRUCT<ts_event_us: BIGINT, trade_id: BIGINT, partition: INT, offset: BIGINT>"
GOLD_SCHEMA = [
    ("symbol", "STRING"), ("window_start", "TIMESTAMP"), ("window_end", "TIMESTAMP"), ("open", PRICE_TYPE),
    ("high", PRICE_TYPE), ("low", PRICE_TYPE), ("close", PRICE_TYPE), ("volume", PRICE_TYPE), ("vwap", PRICE_TYPE),
    ("trade_count", "BIGINT"), ("is_open", "BOOLEAN"), ("revision", "INT"), ("updated_at", "TIMESTAMP"),
    ("open_key", KEY_TYPE), ("close_key", KEY_TYPE), ("notional_limbs", "ARRAY<DECIMAL(38,0)>"),
    ("silver_version", "BIGINT"),
    ("bar_date", "DATE"),  # the partition: last, where readers without Spark (delta-rs, polars) put it too
]
GOLD_DDL = ", ".join(f"{name} {kind}" for name, kind in GOLD_SCHEMA)
GOLD_COLUMNS = [name for name, _ in GOLD_SCHEMA]
CDF_PROPERTY = "delta.enableChangeDataFeed"
CHUNK_VERSIONS = 20  # Silver versions folded per read when catching up: each is one bounded Silver batch
THROUGH_KEY = "silver_through"  # in a Gold commit's userMetadata: Gold holds every Silver change up to this version


# ---------------------------------------------------------------------------------------------------------------------
# Spark: the exact limbs, the partial bars


def limb_sql(column: str) -> list[str]:
    """Spark SQL for decimal_limbs(column) of a DECIMAL(38,18) column, as BIGINTs; every step is exact:
    `x % 1` is DECIMAL(28,18), times 10^18 is an integer below 10^18; `x - x % 1` is an integer below 10^20.
    (Column names only: SQL text of this module's own, never a value.)"""
    fraction = f"CAST(CAST(({column} % 1) * 1000000000000000000BD AS DECIMAL(18,0)) AS BIGINT)"
    integer = f"CAST({column} - ({column} % 1) AS DECIMAL(20,0))"
    return [
        f"{fraction} % 1000000000",
        f"{fraction} div 1000000000",
        f"CAST({integer} % 1000000000 AS BIGINT)",
        f"({integer} div 1000000000) % 1000000000",
        f"{integer} div 1000000000000000000",
    ]


def with_notional_terms(trades):
    """Add _n0.._n8: the trade's exact price * size as limb-product terms (DECIMAL(19,0) each)."""
    from pyspark.sql import functions as F

    price_limbs, size_limbs = limb_sql("price"), limb_sql("size")
    terms = []
    for k in range(NOTIONAL_TERMS):
        products = [f"({price_limbs[i]}) * ({size_limbs[k - i]})"
                    for i in range(LIMB_COUNT) if 0 <= k - i < LIMB_COUNT]
        terms.append(F.expr(f"CAST({' + '.join(products)} AS DECIMAL(19,0))").alias(f"_n{k}"))
    return trades.select("*", *terms)


def minute_partials(trades, version, by: Iterable[str] = ()):
    """Silver-shaped trades -> one row per (symbol, minute, `version`, *by) with what a Bar holds: window_start_us,
    open / close and their order keys, high, low, volume, trade_count, the limb sums _n0.._n8, silver_version; and the
    range of the trades' ts_ingest (ingest_first_us, ingest_last_us; null without a ts_ingest column). `version`: a
    Column (the change feed's _commit_version) or a number (every trade of one snapshot). Times are microseconds since
    the epoch: collected timestamps would be turned into the Python process's local time."""
    from pyspark.sql import functions as F

    ts_us = F.unix_micros("ts_event")
    key = F.struct(ts_us.alias("ts_event_us"), F.col("trade_id"), F.col("partition"), F.col("offset"))
    version = version if not isinstance(version, int) else F.lit(version)
    ingest = F.unix_micros("ts_ingest") if "ts_ingest" in trades.columns else F.lit(None).cast("long")
    keyed = trades.select("symbol", "price", "size", *by, key.alias("_key"), ingest.alias("_ingest_us"),
                          (ts_us - F.pmod(ts_us, F.lit(MINUTE_US))).alias("window_start_us"),
                          version.cast("long").alias("silver_version"))
    return (with_notional_terms(keyed)
            .groupBy("symbol", "window_start_us", "silver_version", *by)
            .agg(F.min_by("price", "_key").alias("open"), F.min("_key").alias("open_key"),
                 F.max("price").alias("high"), F.min("price").alias("low"),
                 F.max_by("price", "_key").alias("close"), F.max("_key").alias("close_key"),
                 F.sum("size").cast(PRICE_TYPE).alias("volume"), F.count(F.lit(1)).alias("trade_count"),
                 *[F.sum(f"_n{k}").alias(f"_n{k}") for k in range(NOTIONAL_TERMS)],
                 F.min("_ingest_us").alias("ingest_first_us"), F.max("_ingest_us").alias("ingest_last_us")))


def bar_of_row(row) -> Bar:
    """A collected minute_partials() row as a Bar."""
    return Bar(row["symbol"], row["window_start_us"], row["open"], tuple(row["open_key"]), row["high"], row["low"],
               row["close"], tuple(row["close_key"]), row["volume"], row["trade_count"],
               tuple(int(row[f"_n{k}"]) for k in range(NOTIONAL_TERMS)), row["silver_version"])


# ---------------------------------------------------------------------------------------------------------------------
# Gold rows


def gold_row(gold_bar: GoldBar, updated_at: datetime) -> tuple:
    """A GoldBar as a Gold row, in GOLD_COLUMNS order."""
    bar = gold_bar.bar
    return (bar.symbol, bar.window_start, bar.window_end, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap,
            bar.trade_count, gold_bar.is_open, gold_bar.revision, updated_at, bar.open_key, bar.close_key,
            [Decimal(limb) for limb in bar.limbs], bar.silver_version, bar.bar_date)


def gold_bar_of_row(row) -> GoldBar:
    """A Gold row read with GOLD_READ_COLUMNS as a GoldBar."""
    bar = Bar(row["symbol"], row["window_start_us"], row["open"], tuple(row["open_key"]), row["high"], row["low"],
              row["close"], tuple(row["close_key"]), row["volume"], row["trade_count"],
              tuple(int(limb) for limb in row["notional_limbs"]), row["silver_version"])
    return GoldBar(bar, row["is_open"], row["revision"])


def read_gold_bars(gold_df) -> list[GoldBar]:
    """Collect Gold rows (a filtered read of the table) as GoldBars."""
    from pyspark.sql import functions as F

    columns = ["symbol", F.unix_micros("window_start").alias("window_start_us"), "open", "open_key", "high", "low",
               "close", "close_key", "volume", "trade_count", "notional_limbs", "silver_version", "is_open",
               "revision"]
    return [gold_bar_of_row(row) for row in gold_df.select(*columns).collect()]


def bars_filter(keys: Iterable[tuple[str, int]], open_of: Iterable[str]):
    """Column selecting the Gold rows of `keys` ((symbol, window_start_us)) and the open bars of the pairs `open_of`:
    by bar_date (partitions) and per pair its minutes. Values travel as typed literals, never as SQL text."""
    from pyspark.sql import functions as F

    by_symbol: dict[str, list[int]] = {}
    for symbol, minute in keys:
        by_symbol.setdefault(symbol, []).append(minute)
    wanted = F.lit(False)
    if by_symbol:
        dates = sorted({from_micros(m).date() for minutes in by_symbol.values() for m in minutes})
        per_symbol = F.lit(False)
        for symbol, minutes in sorted(by_symbol.items()):
            per_symbol = per_symbol | ((F.col("symbol") == F.lit(symbol))
                                       & F.col("window_start").isin([from_micros(m) for m in sorted(minutes)]))
        wanted = F.col("bar_date").isin(dates) & per_symbol
    pairs = sorted(set(open_of))
    if pairs:
        wanted = wanted | (F.col("is_open") & F.col("symbol").isin(pairs))
    return wanted


# ---------------------------------------------------------------------------------------------------------------------
# The writer


class GoldWriter:
    """The one writer of a Gold table: folds partial bars into it and follows Silver's changes."""

    def __init__(self, gold: str, silver: str) -> None:
        self.gold, self.silver = gold, silver
        self.book = BarBook()
        self.silver_version: Optional[int] = None  # every Silver version up to this one is folded into Gold
        self.last: dict[str, Any] = {}  # the last write's figures (the log line, the status page)

    # -- starting ---------------------------------------------------------------------------------------------------

    def prepare(self, spark, check_feed: bool = True) -> int:
        """Make Gold hold Silver up to a known version and return the first Silver version to read changes from (one
        read again changes nothing). Gold's newest commits record how far they hold Silver (recorded_through); a
        Gold without that record (new, or a rebuild that was interrupted) is built from Silver's snapshot.
        check_feed: first check that Silver records its changes (the Silver job's own start turns that on)."""
        if check_feed and table_properties(spark, self.silver).get(CDF_PROPERTY) != "true":
            raise SystemExit(f"error: the Silver table at {self.silver} does not record its changes "
                             f"({CDF_PROPERTY}): it was written by an older version of the Silver job. Start the "
                             f"Silver job (or `make run`) once: it turns the change feed on")
        through = recorded_through(spark, self.gold)
        self.silver_version = through if through is not None else self.rebuild(spark)
        status.publish("gold", silver_version=self.silver_version)  # make status: how far Gold holds Silver
        return min(self.silver_version + 1, table_version(spark, self.silver))

    def rebuild(self, spark) -> int:
        """Gold's bars from Silver's snapshot, one trade_date at a time, each bar written whole (over any bar of the
        same minute an interrupted rebuild left); the snapshot's version, recorded with the last date's write."""
        from pyspark.sql import functions as F

        version = table_version(spark, self.silver)
        silver = spark.read.format("delta").option("versionAsOf", version).load(self.silver)
        dates = sorted(row[0] for row in silver.select("trade_date").distinct().collect())
        if dates:
            log.info("Gold at %s holds no record of Silver: building it from Silver's version %d, %d day(s)",
                     self.gold, version, len(dates))
        for day in dates:
            partials = [bar_of_row(r) for r in minute_partials(silver.where(F.col("trade_date") == F.lit(day)),
                                                               version).collect()]
            self.write(spark, partials, through=version if day == dates[-1] else None, whole=True)
        return version

    # -- following Silver -------------------------------------------------------------------------------------------

    def follow(self, session, through: Optional[int] = None) -> None:
        """Fold Silver's changes after the version Gold holds, up to `through` (default: Silver's newest version)."""
        last = table_version(session, self.silver) if through is None else through
        first = self.silver_version + 1
        for chunk_first in range(first, last + 1, CHUNK_VERSIONS):
            chunk_last = min(last, chunk_first + CHUNK_VERSIONS - 1)
            self.fold_changes(read_changes(session, self.silver, chunk_first, chunk_last), through=chunk_last)
            self.silver_version = chunk_last
            status.publish("gold", silver_version=self.silver_version)

    def fold_changes(self, changes_df, _batch_id: int | None = None, through: Optional[int] = None) -> None:
        """Fold a DataFrame of Silver's change feed (a version range, or a streamed micro-batch) into Gold: one Spark
        job sums it per bar and version. through: the Silver version up to which it is complete (a streamed batch
        may end inside a version: its newest version minus one)."""
        from pyspark.sql import functions as F

        started = time.monotonic()
        rows = minute_partials(changes_df, F.col("_commit_version"), by=["_change_type"]).collect()
        changes_ms = int((time.monotonic() - started) * 1000)
        other = [row for row in rows if row["_change_type"] != "insert"]
        if other:
            raise RuntimeError(
                f"Silver version {min(row['silver_version'] for row in other)} "
                f"{other[0]['_change_type'].replace('_', ' ')}s rows (a DELETE, UPDATE or MERGE on Silver?): Gold "
                f"folds new trades only. Rebuild Gold from Silver: stop the Gold job, delete {self.gold} and its "
                f"checkpoint, and start it again")
        if not rows:
            return
        if through is None:
            through = max(row["silver_version"] for row in rows) - 1
        self.write(changes_df.sparkSession, [bar_of_row(row) for row in rows], through=through,
                   ingest_us=(min(row["ingest_first_us"] for row in rows),
                              max(row["ingest_last_us"] for row in rows)), changes_ms=changes_ms)

    # -- writing ----------------------------------------------------------------------------------------------------

    def write(self, session, partials: list[Bar], through: Optional[int] = None, whole: bool = False,
              ingest_us: tuple[Optional[int], Optional[int]] = (None, None),
              changes_ms: Optional[int] = None) -> list[GoldBar]:
        """Fold `partials` into Gold: read the bars they touch that are not held (and each pair's open bar), fold,
        MERGE the changed rows, recording in the commit that Gold now holds Silver `through` that version.
        whole: the partials are whole bars (a rebuild from Silver's snapshot): written over what Gold holds, not
        folded into it. ingest_us: the oldest and newest ts_ingest of the trades (microseconds), for the trade -> bar
        latency the status reports. changes_ms: how long summing the trades into `partials` took (reported)."""
        started = time.monotonic()
        keys = {p.key for p in partials}
        steps_ms = {"read_ms": 0, "merge_ms": 0}  # reading bars from Gold, the MERGE (retries included)

        def attempt() -> list[GoldBar]:
            missing, pairs = self.book.missing(keys)
            if whole:  # what Gold holds of these bars does not count: they are written anew
                self.book.load([], missing, pairs)
                missing, pairs = set(), set()
            step = time.monotonic()
            if missing or pairs:
                gold_df = session.read.format("delta").load(self.gold).where(bars_filter(missing, pairs))
                self.book.load(read_gold_bars(gold_df), missing, pairs)
            rows = self.book.apply(partials)
            steps_ms["read_ms"] += int((time.monotonic() - step) * 1000)
            step = time.monotonic()
            if rows:
                self.merge(session, rows, through)
            steps_ms["merge_ms"] += int((time.monotonic() - step) * 1000)
            self.book.commit(rows)
            return rows

        try:
            rows = retry_on_conflict(attempt, f"Gold MERGE into {self.gold}", on_conflict=self.book.forget)
        except Exception:
            self.book.forget()  # what the book held may not be what Gold holds: read it again next time
            raise
        self.last = {"trades": sum(p.trade_count for p in partials), "bars": len(rows), "silver_version": through,
                     "duration_ms": int((time.monotonic() - started) * 1000), "changes_ms": changes_ms, **steps_ms,
                     "oldest_ingest_us": ingest_us[0], "newest_ingest_us": ingest_us[1],
                     "written_at_us": to_micros(datetime.now(timezone.utc))}
        if through is not None:  # this commit records it (a streamed Gold job's batches have no other record)
            self.silver_version = through
        status.publish("gold", **{**self.last, "silver_version": self.silver_version})
        return rows

    def merge(self, session, rows: list[GoldBar], through: Optional[int]) -> None:
        """Insert new bars and replace changed ones, by (symbol, bar_date, window_start); the commit records `through`
        (recorded_through reads it back)."""
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        now = datetime.now(timezone.utc)
        source = session.createDataFrame([gold_row(row, now) for row in rows], GOLD_DDL)
        dates = sorted({row.bar.bar_date for row in rows})
        minutes = [row.bar.window_start for row in rows]
        # the dates and the minutes' range prune the files the MERGE reads and rewrites (Delta's file statistics)
        condition = (F.col("t.bar_date").isin(dates)
                     & F.col("t.window_start").between(F.lit(min(minutes)), F.lit(max(minutes)))
                     & (F.col("t.symbol") == F.col("s.symbol")) & (F.col("t.bar_date") == F.col("s.bar_date"))
                     & (F.col("t.window_start") == F.col("s.window_start")))
        merge = (DeltaTable.forPath(session, self.gold).alias("t").merge(source.alias("s"), condition)
                 .whenMatchedUpdateAll().whenNotMatchedInsertAll())
        with commit_metadata(session, {THROUGH_KEY: through} if through is not None else None):
            merge.execute()


def recorded_through(spark, gold: str, look_back: int = 20) -> Optional[int]:
    """The Silver version up to which Gold holds every change, as its newest commit that says so records it (a
    compaction's commit says nothing: look back a few); None when none of the newest commits says."""
    from delta.tables import DeltaTable

    for row in DeltaTable.forPath(spark, gold).history(look_back).select("userMetadata").collect():
        through = parse_commit_metadata(row["userMetadata"]).get(THROUGH_KEY)
        if through is not None:
            return int(through)
    return None


def gold_ready(spark, silver: str) -> bool:
    """Gold can follow Silver once the Silver table exists."""
    return is_delta_table(spark, silver)
