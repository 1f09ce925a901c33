"""A small lake for the docs check (tests/unit/test_docs.py): Bronze, Silver and Gold laid out under <root>/data/
as the jobs lay them out, with the project's own schemas, written without Spark so the docs' snippets can run
against them in seconds.

- Silver and Gold: Delta tables written with `deltalake.write_deltalake`, their columns and types taken from the
  jobs' own DDL (lakehouse.silver.parse.SILVER_DDL, lakehouse.gold.table.GOLD_SCHEMA), partitioned as the jobs
  partition them. Gold gets two versions, so a time-travel snippet has an earlier one to read.
- Bronze: one Parquet file with Bronze's schema (lakehouse.silver.parse.BRONZE_SCHEMA) and an empty
  `_spark_metadata/` folder beside it; one row's value is not valid UTF-8, as a hostile producer could send.

Usage:
    from tests.docs_lake import write_lake
    write_lake(tmp_path)          # tmp_path/data/bronze/crypto_trades, .../silver/crypto_trades, .../gold/ohlcv_1m
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

UTC = dt.timezone.utc
DAY = dt.date(2026, 1, 1)
T0 = dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
PAIRS = ["XBT/USDT", "ETH/USD"]


def arrow_type(ddl: str) -> pa.DataType:
    """A Spark SQL type as the jobs' DDL spells it -> the Arrow type Delta stores it as."""
    text = ddl.strip().upper()
    simple = {"STRING": pa.string(), "BIGINT": pa.int64(), "LONG": pa.int64(), "INT": pa.int32(),
              "BOOLEAN": pa.bool_(), "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
              "BINARY": pa.binary()}
    if text in simple:
        return simple[text]
    if m := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", text):
        return pa.decimal128(int(m[1]), int(m[2]))
    if m := re.fullmatch(r"ARRAY<(.+)>", text):
        return pa.list_(arrow_type(m[1]))
    if m := re.fullmatch(r"STRUCT<(.+)>", text):
        return pa.struct([(name.strip().lower(), arrow_type(kind)) for name, kind in
                          (field.split(":", 1) for field in m[1].split(","))])
    raise ValueError(f"no Arrow type for {ddl!r}")


def schema_of(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([(name, arrow_type(kind)) for name, kind in columns])


def ddl_columns(ddl: str) -> list[tuple[str, str]]:
    """'a STRING, b DECIMAL(38,18)' -> [('a', 'STRING'), ('b', 'DECIMAL(38,18)')] (no nested commas in these DDLs)."""
    parts = re.split(r",\s*(?![^()]*\))", ddl)
    return [tuple(part.strip().split(None, 1)) for part in parts]  # type: ignore[misc]


def d(text: str) -> Decimal:
    return Decimal(text).quantize(Decimal("1e-18"))


def silver_rows() -> list[dict]:
    rows = []
    for i in range(6):
        for p, symbol in enumerate(PAIRS):
            ts = T0 + dt.timedelta(seconds=20 * i + p)
            rows.append({"symbol": symbol, "price": d(f"{83000 + i}.5" if p == 0 else f"{3000 + i}.25"),
                         "size": d("0.0004478"), "side": "buy" if i % 2 else "sell", "ord_type": "limit",
                         "trade_id": 1000 + i, "v1_ordinal": None, "ts_event": ts,
                         "ts_ingest": ts + dt.timedelta(milliseconds=50), "source": "ws", "topic": "crypto.trades",
                         "partition": p, "offset": i, "ts_kafka": ts + dt.timedelta(milliseconds=60),
                         "trade_date": DAY})
    return rows


def gold_rows(revision: int) -> list[dict]:
    rows = []
    for m in range(2):
        for symbol in PAIRS:
            start = T0 + dt.timedelta(minutes=m)
            price = d("83000.5") if symbol == "XBT/USDT" else d("3000.25")
            key = {"ts_event_us": int(start.timestamp() * 1_000_000), "trade_id": 1000 + 3 * m, "partition": 0,
                   "offset": 3 * m}
            rows.append({"symbol": symbol, "window_start": start, "window_end": start + dt.timedelta(minutes=1),
                         "open": price, "high": price + 2, "low": price - 1, "close": price + 1,
                         "volume": d("0.0013434"), "vwap": price + d("0.5"), "trade_count": 3,
                         "is_open": m == 1, "revision": revision, "updated_at": T0 + dt.timedelta(minutes=2),
                         "open_key": key, "close_key": key, "notional_limbs": [Decimal(7)] * 9,
                         "silver_version": 1 + revision, "bar_date": DAY})
    return rows


def write_bronze(folder: Path) -> None:
    import pyarrow.parquet as pq
    from lakehouse.silver.parse import BRONZE_SCHEMA

    schema = schema_of(ddl_columns(BRONZE_SCHEMA))
    values = [b'{"symbol":"XBT/USDT","price":"83744.3","size":"0.00044780","side":"buy"}', b"\xff\xfe not UTF-8"]
    columns = {"topic": ["crypto.trades"] * 2, "partition": [0, 0], "offset": [0, 1],
               "ts_kafka": [T0, T0], "ts_type": [0, 0], "key": ["XBT/USDT"] * 2}
    arrays = [pa.array(columns[f.name], f.type) for f in schema if f.name != "value_raw"]
    # A string column holding bytes that are not UTF-8, as Spark writes them: view() does not validate.
    arrays.append(pa.array(values, pa.binary()).view(pa.string()))
    (folder / "_spark_metadata").mkdir(parents=True)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), folder / "part-00000-0000.snappy.parquet")


def write_lake(root: Path) -> Path:
    """Bronze, Silver and Gold under root/data; returns root/data."""
    from deltalake import write_deltalake
    from lakehouse.gold.table import GOLD_SCHEMA
    from lakehouse.silver.parse import SILVER_DDL

    data = root / "data"
    write_bronze(data / "bronze" / "crypto_trades")
    silver_schema = schema_of(ddl_columns(SILVER_DDL))
    write_deltalake(str(data / "silver" / "crypto_trades"), pa.Table.from_pylist(silver_rows(), silver_schema),
                    partition_by=["trade_date"])
    gold_schema = schema_of(GOLD_SCHEMA)
    gold = str(data / "gold" / "ohlcv_1m")
    write_deltalake(gold, pa.Table.from_pylist(gold_rows(0), gold_schema), partition_by=["bar_date"])
    write_deltalake(gold, pa.Table.from_pylist(gold_rows(1), gold_schema), partition_by=["bar_date"],
                    mode="overwrite")
    return data
