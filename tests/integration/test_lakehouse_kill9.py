"""The Silver and Gold jobs running as processes, as the README starts them, while Bronze grows: each is killed with
-9 at random moments (one kill of each while a micro-batch is planned but not committed) and restarted; then
`optimize_tables.py` compacts the tables while both keep running. Afterwards Silver holds each trade once, the
quarantine each bad record once, Gold equals both an independent Decimal computation and the batch recompute, the
compaction dropped the number of files and changed no row, and both jobs stop cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import planned_not_committed, run_script, start_script, wait_until
from tests.integration.gold_helpers import Trade, bar_states, bars_by_key, read_bars, reference_bars
from tests.integration.silver_helpers import land_bronze, produce, trade

# Over the default time limit (pyproject.toml): the module's shared run: the jobs killed mid-batch, about 12 minutes on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

SILVER_JOB = "spark/jobs/bronze_to_silver_trades.py"
GOLD_JOB = "spark/jobs/silver_to_gold_ohlcv.py"
SYMBOLS = ("XBT/USDT", "ETH/USD", "DOGE/USD")
CHUNKS = 6


def make_records(rng: random.Random) -> list[tuple[str, object]]:
    """600 trades of three pairs over 20 minutes (some sharing a timestamp), every 10th one also sent again later (a
    copy Silver must not insert), and a malformed record every 50."""
    records: list[tuple[str, object]] = []
    start = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    for i in range(600):
        symbol = SYMBOLS[i % 3]
        ts = start + timedelta(seconds=2 * (i // 3), microseconds=0 if i % 7 == 0 else rng.randint(0, 999_999))
        message = trade(5000 + i // 3, symbol=symbol, price=f"{rng.randint(1, 90000)}.{rng.randint(0, 10**9):09d}",
                        size=f"{rng.randint(0, 5)}.{rng.randint(1, 10**17 - 1):017d}",
                        ts_event=ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        records.append((symbol, message))
        if i % 10 == 3:
            records.append((symbol, dict(message)))  # a copy, right after (same batch, or the next one)
        if i % 50 == 17:
            records.append((symbol, b"\x00 not a trade %d" % i))
    return records


def kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.fixture(scope="module")
def run(bootstrap, spark, tmp_path_factory):
    from confluent_kafka.admin import AdminClient, NewTopic

    root = tmp_path_factory.mktemp("lakehouse_kill9")
    topic = f"kill9-{random.getrandbits(40):010x}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    rng = random.Random(20261129)
    records = make_records(rng)
    chunks = [records[i::CHUNKS] for i in range(CHUNKS)]  # every chunk holds trades of the whole 20 minutes
    bronze, silver, quarantine, gold = root / "bronze", root / "silver", root / "quarantine", root / "gold"
    silver_cp, gold_cp = root / "ck_silver", root / "ck_gold"
    silver_args = ["--bronze", str(bronze), "--out", str(silver), "--quarantine", str(quarantine), "--checkpoint",
                   str(silver_cp), "--trigger", "300 milliseconds", "--max-files-per-trigger", "50",
                   "--maintenance-every", "off"]
    gold_args = ["--silver", str(silver), "--out", str(gold), "--checkpoint", str(gold_cp), "--trigger",
                 "300 milliseconds", "--maintenance-every", "off"]

    def append(chunk):
        produce(bootstrap, topic, chunk)
        land_bronze(spark, bootstrap, topic, bronze, root / "ck_bronze", max_offsets_per_trigger=200)

    def start(job, args, name):
        return start_script(job, *args, log_path=root / f"{name}.log")

    append(chunks[0])
    jobs = {"silver": start(SILVER_JOB, silver_args, "silver-0")}
    wait_until(lambda: (silver / "_delta_log").is_dir(), 300, 0.5, "the Silver table")
    jobs["gold"] = start(GOLD_JOB, gold_args, "gold-0")
    kills = []
    try:
        for number, name in enumerate(["silver", "gold", "silver", "gold"], start=1):
            append(chunks[number])
            checkpoint = silver_cp if name == "silver" else gold_cp
            if number <= 2:  # the first kill of each job: while a batch is planned but not committed
                wait_until(lambda: planned_not_committed(checkpoint), 300, 0.02, f"a {name} batch in flight")
            else:  # then at a random moment
                wait_until(lambda: (checkpoint / "commits").is_dir(), 300, 0.2, f"{name} to commit")
                time.sleep(rng.uniform(0.2, 3.0))
            kills.append((name, planned_not_committed(checkpoint)))
            kill9(jobs[name])
            jobs[name] = start(SILVER_JOB if name == "silver" else GOLD_JOB,
                               silver_args if name == "silver" else gold_args, f"{name}-{number}")

        # Compaction beside the two running streams, once Silver has two files to compact (one per batch here)
        wait_until(lambda: active_files(silver) >= 2 and active_files(gold) >= 1, 600, 0.5,
                   "2 files in Silver and 1 in Gold")
        optimize = run_script("spark/jobs/optimize_tables.py", "--table", str(silver), "--table", str(quarantine),
                              "--table", str(gold), timeout=600)
        alive_after_optimize = {name: proc.poll() is None for name, proc in jobs.items()}
        append(chunks[CHUNKS - 1])
        expected = expected_trades(records)
        try:
            wait_until(lambda: silver_ids(spark, silver) == expected, 600, 1, "every trade in Silver")
            wait_until(lambda: gold_trade_count(spark, gold) == len(expected), 600, 1, "every trade in Gold")
        except AssertionError as exc:
            held = silver_ids(spark, silver) or set()
            raise AssertionError(f"{exc}: Silver lacks {sorted(expected - held)[:10]} ({len(expected - held)}), "
                                 f"has {sorted(held - expected)[:10]} beyond; the jobs' logs:\n{job_logs(root)}")
        codes = {}
        for name, proc in jobs.items():
            proc.send_signal(signal.SIGTERM)  # only the job process (as Ctrl-C would), not its JVM
            codes[name] = proc.wait(120)
    finally:
        for proc in jobs.values():
            if proc.poll() is None:
                kill9(proc)
        admin.delete_topics([topic])
    return {"root": root, "records": records, "silver": silver, "quarantine": quarantine, "gold": gold,
            "kills": kills, "optimize": optimize, "alive_after_optimize": alive_after_optimize, "codes": codes}


def active_files(table: Path) -> int:
    """Data files of the table's current version (from its Delta log; 0 before the table exists)."""
    from deltalake import DeltaTable

    return len(DeltaTable(str(table)).file_uris()) if (table / "_delta_log").is_dir() else 0


def job_logs(root: Path) -> str:
    """The last lines of each job run's log, for a failure message."""
    return "\n".join(f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-8:])
                     for log in sorted(root.glob("*.log")))


def expected_trades(records) -> set[tuple[str, int]]:
    return {(key, message["trade_id"]) for key, message in records if isinstance(message, dict)}


def silver_ids(spark, silver: Path) -> set[tuple[str, int]] | None:
    if not (silver / "_delta_log").is_dir():
        return None
    rows = spark.read.format("delta").load(str(silver)).select("symbol", "trade_id").collect()
    ids = [(r.symbol, r.trade_id) for r in rows]
    assert len(ids) == len(set(ids)), "a trade held twice in Silver"
    return set(ids)


def gold_trade_count(spark, gold: Path) -> int:
    if not (gold / "_delta_log").is_dir():
        return -1
    return spark.read.format("delta").load(str(gold)).selectExpr("coalesce(sum(trade_count), 0)").first()[0]


def test_kills_hit_the_jobs_mid_batch_and_they_stop_cleanly(run):
    assert [name for name, _ in run["kills"]] == ["silver", "gold", "silver", "gold"]
    assert run["kills"][0] == ("silver", True) and run["kills"][1] == ("gold", True)
    assert run["codes"] == {"silver": 0, "gold": 0}


def test_silver_holds_each_trade_once_and_quarantine_each_bad_record_once(spark, run):
    rows = spark.read.format("delta").load(str(run["silver"])).collect()
    good = {(key, m["trade_id"]): m for key, m in run["records"] if isinstance(m, dict)}
    assert sorted((r.symbol, r.trade_id) for r in rows) == sorted(good)
    for r in rows:
        message = good[(r.symbol, r.trade_id)]
        assert (r.price, r.size) == (Decimal(message["price"]), Decimal(message["size"]))
    bad = spark.read.format("delta").load(str(run["quarantine"])).selectExpr("value_bytes AS b").collect()
    assert sorted(bytes(r.b) for r in bad) == sorted(m for _, m in run["records"] if isinstance(m, bytes))


def test_gold_equals_the_reference_and_the_batch_recompute(spark, run):
    silver = spark.read.format("delta").load(str(run["silver"])).selectExpr(
        "symbol", "price", "size", "unix_micros(ts_event) AS us", "trade_id", "partition", "offset").collect()
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    trades = [Trade(r.symbol, r.price, r.size, epoch + timedelta(microseconds=r.us), r.trade_id, r.partition,
                    r.offset) for r in silver]
    gold = bars_by_key(read_bars(spark, run["gold"]))
    assert gold == reference_bars(trades)
    recompute = run["root"] / "recompute"
    result = run_script("spark/jobs/gold_ohlcv_batch.py", "--silver", str(run["silver"]), "--from",
                        "2026-03-01T12:00", "--to", "2026-03-01T13:00", "--out", str(recompute))
    assert result.returncode == 0, result.stderr[-3000:]
    assert bars_by_key(read_bars(spark, recompute)) == gold
    assert {k: s[0] for k, s in bar_states(spark, recompute).items()} == {
        k: s[0] for k, s in bar_states(spark, run["gold"]).items()}


def test_compaction_beside_the_streams_drops_files_and_changes_no_row(spark, run):
    from delta.tables import DeltaTable

    output = run["optimize"].stdout + run["optimize"].stderr
    assert run["optimize"].returncode == 0, output[-3000:]
    assert run["alive_after_optimize"] == {"silver": True, "gold": True}
    before_after = {path: (int(b), int(a)) for path, b, a in
                    re.findall(r"(\S+): (\d+) active file\(s\) before, (\d+) after", output)}
    silver_files = before_after[str(run["silver"])]
    assert silver_files[1] < silver_files[0], output[-2000:]
    for table in (run["silver"], run["gold"]):
        history = DeltaTable.forPath(spark, str(table)).history().collect()
        optimized = [h.version for h in history if h.operation == "OPTIMIZE"]
        # Gold may hold one file per partition already (its MERGEs rewrite files): then there is nothing to compact
        assert optimized or table == run["gold"], f"no OPTIMIZE commit in {table}"
        for version in optimized:
            read = lambda v: sorted(map(tuple, spark.read.format("delta").option("versionAsOf", v)  # noqa: E731
                                        .load(str(table)).collect()))
            assert read(version - 1) == read(version)
