"""Hostile data through Bronze -> Silver + Gold (the one-application pipeline's writers), with the real broker and
Spark: symbols that would break or fork SQL text, copies replayed later, late trades, JSON numbers, implausible
times, invalid UTF-8. Each trade lands once, each bar is exact, each rejected record is in the quarantine with its
reason, nothing stops; and every table reads back the same without Spark (delta-rs, polars).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.gold import job as gold_job
from lakehouse.gold.table import GoldWriter
from lakehouse.pipeline.all_layers import start_silver_and_gold
from lakehouse.spark.lifecycle import StopRequest, run_queries
from tests.helpers import PYTHON, REPO_ROOT, script_env
from tests.integration.gold_helpers import Trade, bars_by_key, read_bars, reference_bars
from tests.integration.silver_helpers import land_bronze, produce, quarantine_rows, silver_args, trade

pytestmark = pytest.mark.integration

# Symbols whose text would break or fork a statement built as SQL text: quotes, a doubled quote, backslashes (one
# trailing), a newline, LIKE wildcards, a statement separator, a double quote, an emoji, 200 characters.
SYMBOLS = ["O'Neil/USD", "O''Neil/USD", "back\\slash", "trailing\\", "new\nline", "100%_off", 'say "hi"',
           "semi;colon --", "\U0001F680/USD", "Z" * 200]
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(minutes=10)  # the producer's ts_ingest: the trades' times are in its past


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def good_trades() -> list[Trade]:
    """Three trades per symbol and minute over two minutes; prices with 18 decimal places."""
    trades = []
    for n, symbol in enumerate(SYMBOLS):
        for minute in range(2):
            for k in range(3):
                trade_id = 1000 + 10 * minute + k
                price = Decimal(f"{100 + n}.{minute}{k}0000000000000001")
                size = Decimal(f"0.{k + 1}2345678901234567")
                ts = T0 + timedelta(minutes=minute, seconds=10 * k + n, microseconds=k)
                trades.append(Trade(symbol, price, size, ts, trade_id, 0, 0))
    return trades


def message(t: Trade) -> dict:
    return trade(t.trade_id, symbol=t.symbol, price=str(t.price), size=str(t.size), ts_event=iso(t.ts_event),
                 ts_ingest=iso(NOW))


LATE = [Trade(s, Decimal("1.5"), Decimal("2"), T0 + timedelta(seconds=59), 999, 0, 0) for s in SYMBOLS[:3]]
# Bad records: (bytes as produced, the quarantine's reason)
EXACT_NUMBER = json.dumps(trade(5000, symbol="NUM/USD", ts_event=iso(T0), ts_ingest=iso(NOW))).replace(
    '"price": "83744.3"', '"price": 0.000000000000000123')
BAD = [
    (json.dumps(trade(5001, symbol="NUM/USD", ts_event=iso(T0), ts_ingest=iso(NOW))).replace(
        '"price": "83744.3"', '"price": 0.12345678901234567891').encode(),
     "price '0.12345678901234567891' does not fit decimal(38,18)"),
    (json.dumps(trade(5002, symbol="NUM/USD", ts_event="2099-01-01T00:00:00.000000Z", ts_ingest=iso(NOW))).encode(),
     f"ts_event '2099-01-01T00:00:00.000000Z' is more than 3600 s after its ts_ingest '{iso(NOW)}'"),
    (b'{"symbol": "\xff\xfe", "price": "1"}', "not valid UTF-8"),
    (json.dumps(trade(5003, symbol="NUM/USD", ts_event=iso(T0), ts_ingest=iso(NOW))).replace(
        '"size": "0.00044780"', '"size": "1", "size": "2"').encode(), "size appears 2 times in the record"),
]


@pytest.fixture(scope="module")
def lake(bootstrap, spark, tmp_path_factory):
    """Two rounds through Bronze -> Silver + Gold (available-now each): the good trades and one exact JSON number;
    then every good trade again (a replay), late trades into minute 0, and the bad records."""
    from confluent_kafka.admin import AdminClient, NewTopic

    root = tmp_path_factory.mktemp("hostile")
    topic = f"hostile-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    bronze, checkpoint = root / "bronze", root / "ck_bronze"
    args = silver_args(root, bronze)
    gold_args = gold_job.parse_args(["--silver", args.out, "--out", str(root / "gold"),
                                     "--checkpoint", str(root / "ck_gold")])
    writer = GoldWriter(gold_args.out, args.out)

    def round_trip(records: list[tuple[str, object]]) -> None:
        produce(bootstrap, topic, records, timestamp_ms=int(NOW.timestamp() * 1000))
        land_bronze(spark, bootstrap, topic, bronze, checkpoint)
        query = start_silver_and_gold(spark, args, gold_args, writer)
        assert run_queries({"silver": query}, StopRequest()) == 0

    trades = good_trades()
    round_trip([(t.symbol, message(t)) for t in trades] + [("NUM/USD", EXACT_NUMBER)])
    first_gold = bars_by_key(read_bars(spark, root / "gold"))
    round_trip([(t.symbol, message(t)) for t in trades + LATE] + [("bad", raw) for raw, _ in BAD])
    return {"root": root, "silver": Path(args.out), "quarantine": Path(args.quarantine), "gold": root / "gold",
            "trades": trades, "first_gold": first_gold}


def test_each_trade_lands_once_with_its_exact_values_whatever_its_symbol(spark, lake):
    rows = spark.read.format("delta").load(str(lake["silver"])).select("symbol", "trade_id", "price", "size").collect()
    held = sorted((r.symbol, r.trade_id, r.price, r.size) for r in rows)
    expected = sorted([(t.symbol, t.trade_id, t.price, t.size) for t in lake["trades"] + LATE]
                      + [("NUM/USD", 5000, Decimal("0.000000000000000123"), Decimal("0.0004478"))])
    assert held == expected  # the replay inserted nothing; the late trades once; the JSON number exactly


def test_every_bar_is_exact_after_replays_and_late_trades(spark, lake):
    got = bars_by_key(read_bars(spark, lake["gold"]))
    number_trade = Trade("NUM/USD", Decimal("0.000000000000000123"), Decimal("0.0004478"), T0, 5000, 0, 0)
    assert got == reference_bars(lake["trades"] + LATE + [number_trade])
    assert lake["first_gold"] == reference_bars(lake["trades"] + [number_trade])  # before the late trades
    for late in LATE:
        key = (late.symbol, T0)
        assert got[key] != lake["first_gold"][key] and got[key][-1] == 4  # the late trade is in its bar


def test_each_rejected_record_is_quarantined_once_with_its_reason(spark, lake):
    quarantined = [(bytes(q["value_bytes"]), q["reason"]) for q in quarantine_rows(spark, lake["quarantine"])]
    assert sorted(quarantined) == sorted(BAD)
    invalid = [q for q in quarantine_rows(spark, lake["quarantine"]) if q["reason"] == "not valid UTF-8"]
    assert invalid[0]["value_text"] is None and invalid[0]["key_text"] == "bad"


READ_WITHOUT_SPARK = """
import json, sys
import polars as pl
from deltalake import DeltaTable
out = {}
for path in sys.argv[1:]:
    table = DeltaTable(path).to_pyarrow_table()
    frame = pl.read_delta(path)
    out[path] = {"rows": table.num_rows, "polars_rows": frame.height, "columns": table.column_names,
                 "polars_columns": frame.columns}
    if "symbol" in frame.columns:
        out[path]["symbols"] = sorted(set(frame["symbol"].to_list()))
    if "price" in frame.columns:
        out[path]["prices"] = sorted(str(p) for p in frame["price"].to_list())
    if "value_bytes" in frame.columns:
        out[path]["value_bytes"] = sorted(b.hex() for b in frame["value_bytes"].to_list())
print(json.dumps(out))
"""


def test_every_table_reads_the_same_without_spark(spark, lake):
    """Silver, the quarantine (invalid UTF-8 included) and Gold open in delta-rs and polars, in a process without a
    JVM that exits 0, with the rows Spark reads."""
    paths = [str(lake[name]) for name in ("silver", "quarantine", "gold")]
    result = subprocess.run([PYTHON, "-c", READ_WITHOUT_SPARK, *paths], cwd=REPO_ROOT, env=script_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    read = json.loads(result.stdout)
    for path in paths:
        frame = spark.read.format("delta").load(path)
        assert read[path]["rows"] == read[path]["polars_rows"] == frame.count()
        assert read[path]["columns"] == read[path]["polars_columns"] == frame.columns
    silver = read[str(lake["silver"])]
    assert silver["symbols"] == sorted({*SYMBOLS, "NUM/USD"})
    assert Decimal("0.000000000000000123") in {Decimal(p) for p in silver["prices"]}  # exact, as Spark holds it
    assert sorted(bytes.fromhex(b) for b in read[str(lake["quarantine"])]["value_bytes"]) == sorted(b for b, _ in BAD)
