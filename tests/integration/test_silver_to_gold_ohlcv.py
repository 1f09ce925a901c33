"""Silver -> Gold against an independent plain-Python Decimal computation: live bars (the open minute included), a late
trade correcting a bar already written, ties, the batch recompute, time travel, reading Gold without Spark, the chart.

The Gold job's query runs in the test session (no JVM start per run); the batch recompute and the chart run as the
README shows them. kill -9 of a running Gold job and compaction beside it: test_lakehouse_kill9.py.
"""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import PYTHON, REPO_ROOT, run_script, script_env
from tests.integration.gold_helpers import (MINUTE, T0, SilverWriter, bar_states, bars_by_key, generate_trades,
                                            newest_minutes, read_bars, reference_bars, run_gold, trade)

# Over the default time limit (pyproject.toml): the Gold runs shared by the module, and the batch recompute's JVM: about 3 minutes loaded.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BATCH = "spark/jobs/gold_ohlcv_batch.py"
PLOT = "spark/jobs/plot_ohlcv.py"


def run_ok(script: str, *args: str, timeout: float = 300, **env: str):
    result = subprocess.run([PYTHON, str(REPO_ROOT / script), *args], cwd=REPO_ROOT, env=script_env(**env),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{script} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def assert_bars_equal(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for key, bar in expected.items():
        assert got[key] == bar, f"bar {key}: got {got[key]}, expected {bar}"
        for value in got[key][1:7]:  # Spark's decimals carry all 18 places; equal above means equal to the last one
            assert value is None or value.as_tuple().exponent == -18


# Two trades that reach Silver with its second append, after the first Gold run wrote their minutes: one into minute 6
# of ETH/USDT, one into minute 2 of XBT/USDT (a bar closed long before), each changing its bar's values.
LATE_ETH = trade("ETH/USDT", "255555.55", "0.12345678901234567", T0 + 6 * MINUTE + timedelta(seconds=45), 999999,
                 0, partition=5)
LATE_XBT = trade("XBT/USDT", "1.5", "3", T0 + 2 * MINUTE + timedelta(seconds=30), 999998, 1, partition=5)


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    """A few thousand trades in Silver, aggregated by the Gold stream (available-now) in two runs on one checkpoint:
    minutes 0..7 first, then minutes 8..19 together with LATE_ETH and LATE_XBT."""
    root = tmp_path_factory.mktemp("gold_demo")
    trades = generate_trades()
    silver = SilverWriter(spark, root)
    gold, checkpoint = root / "gold", root / "ckpt"
    first = [t for t in trades if t.ts_event < T0 + 8 * MINUTE]
    silver.append(first)
    run_gold(spark, silver.path, gold, checkpoint)
    first_version = gold_version(spark, gold)
    first_run = bars_by_key(read_bars(spark, gold))
    first_states = bar_states(spark, gold)
    silver.append([t for t in trades if t.ts_event >= T0 + 8 * MINUTE] + [LATE_ETH, LATE_XBT])
    run_gold(spark, silver.path, gold, checkpoint)
    return {"root": root, "trades": trades, "first": first, "silver": silver, "gold": gold,
            "first_run": first_run, "first_states": first_states, "first_version": first_version}


def gold_version(spark, table: Path) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, str(table)).history(1).collect()[0]["version"]


@pytest.mark.quick
def test_every_bar_exact_including_the_open_minute(spark, demo):
    trades = demo["trades"] + [LATE_ETH, LATE_XBT]
    expected = reference_bars(trades)
    got = bars_by_key(read_bars(spark, demo["gold"]))  # fails on a bar held twice
    assert_bars_equal(got, expected)
    assert len(trades) > 2000 and len(expected) == 20 * 3 - 8  # minutes 0..19, 8 of them empty
    # what the data exercises: one-trade minutes, empty minutes, a 17-decimal size
    assert {bar[-1] for bar in expected.values()} >= {1}
    assert ("XBT/USDT", T0 + 5 * MINUTE) not in got and ("XBT/USDT", T0 + 13 * MINUTE) not in got
    assert any(t.size.as_tuple().exponent == -17 for t in trades)
    # exactly one open bar per pair: its newest minute; the first run had its own newest minute open
    states = bar_states(spark, demo["gold"])
    newest = newest_minutes(trades)
    assert {key for key, (is_open, _) in states.items() if is_open} == {(s, m) for s, m in newest.items()}
    first_newest = newest_minutes(demo["first"])
    assert {key for key, (is_open, _) in demo["first_states"].items() if is_open} == set(first_newest.items())
    # the first run wrote every minute it had trades for, the open minute 7 included (live bars, no watermark)
    assert_bars_equal(demo["first_run"], reference_bars(demo["first"]))


def test_late_trades_correct_their_bars_and_count_a_revision(spark, demo):
    got = bars_by_key(read_bars(spark, demo["gold"]))
    states = bar_states(spark, demo["gold"])
    without_late = reference_bars(demo["trades"])
    for late in (LATE_XBT, LATE_ETH):
        key = (late.symbol, late.ts_event.replace(second=0, microsecond=0))
        assert demo["first_run"][key] == without_late[key]  # as written before the late trade arrived
        assert got[key][-1] == without_late[key][-1] + 1  # the late trade is in its bar now ...
        assert got[key] != demo["first_run"][key]
        assert states[key] == (False, 1)  # ... a closed bar, restated once
    # minute 7 was open after the first run and closed by the second, its values unchanged: no revision
    seven = ("XBT/USDT", T0 + 7 * MINUTE)
    assert demo["first_states"][seven] == (True, 0) and states[seven] == (False, 0)
    assert got[seven] == demo["first_run"][seven]
    # bars the late trades did not touch were written once
    untouched = [k for k in demo["first_run"] if k[1] < T0 + 7 * MINUTE and k not in {
        (LATE_XBT.symbol, T0 + 2 * MINUTE), (LATE_ETH.symbol, T0 + 6 * MINUTE)}]
    assert untouched and all(states[k] == (False, 0) for k in untouched)


def test_time_travel_shows_a_bar_before_its_restatement(spark, demo):
    before = bars_by_key(read_bars(spark, demo["gold"], version=demo["first_version"]))
    assert before == demo["first_run"]
    key = (LATE_XBT.symbol, T0 + 2 * MINUTE)
    assert before[key] != bars_by_key(read_bars(spark, demo["gold"]))[key]


def test_ties_read_from_gold_are_broken_by_trade_id_then_kafka_offset(spark, demo):
    """In the data, tied timestamps have Kafka offsets in the opposite order of trade_id (v2 pairs): Gold's open and
    close must be the trade_id order's; for the v1 pair (no trade_id) the Kafka offset order's."""
    trades, got = demo["trades"], bars_by_key(read_bars(spark, demo["gold"]))
    start = T0 + 4 * MINUTE
    xbt = [t for t in trades if t.symbol == "XBT/USDT" and start <= t.ts_event < start + MINUTE]
    first = [t for t in xbt if t.ts_event == start]
    by_id, by_offset = min(first, key=lambda t: t.trade_id), min(first, key=lambda t: t.offset)
    assert len(first) == 3 and by_id.price != by_offset.price
    assert got[("XBT/USDT", start)][1] == by_id.price  # open
    last = [t for t in xbt if t.ts_event == max(t.ts_event for t in xbt)]
    by_id, by_offset = max(last, key=lambda t: t.trade_id), max(last, key=lambda t: t.offset)
    assert len(last) == 3 and by_id.price != by_offset.price
    assert got[("XBT/USDT", start)][4] == by_id.price  # close
    shib = [t for t in trades if t.symbol == "SHIB/USD" and start <= t.ts_event < start + MINUTE]
    last = [t for t in shib if t.ts_event == max(t.ts_event for t in shib)]
    assert len(last) == 3 and got[("SHIB/USD", start)][4] == max(last, key=lambda t: t.offset).price


def test_batch_recompute_agrees_with_the_stream_bar_for_bar(spark, demo):
    out = demo["root"] / "recompute"
    run_ok(BATCH, "--silver", str(demo["silver"].path), "--from", "2026-01-01T00:02", "--to", "2026-01-01T00:30",
           "--out", str(out))
    recomputed = bars_by_key(read_bars(spark, out))
    expected = {key: bar for key, bar in reference_bars(demo["trades"] + [LATE_ETH, LATE_XBT]).items()
                if key[1] >= T0 + 2 * MINUTE}
    assert_bars_equal(recomputed, expected)
    streamed = {k: v for k, v in bars_by_key(read_bars(spark, demo["gold"])).items() if k[1] >= T0 + 2 * MINUTE}
    assert streamed == recomputed
    assert {k: s[0] for k, s in bar_states(spark, out).items()} == {
        k: s[0] for k, s in bar_states(spark, demo["gold"]).items() if k[1] >= T0 + 2 * MINUTE}


def test_batch_refuses_the_streams_gold_table(demo):
    result = run_script(BATCH, "--silver", str(demo["silver"].path), "--from", "2026-01-01T00:00",
                        "--to", "2026-01-01T00:10", "--out", str(demo["gold"]))
    assert result.returncode == 2 and "is the stream's Gold table" in result.stderr


GOLD_AS_TEXT = ["symbol", "window_start", "open", "high", "low", "close", "volume", "vwap", "trade_count", "is_open",
                "revision"]


def test_gold_read_without_spark_equals_gold_read_with_spark(spark, demo):
    """Every Gold row read without a JVM (lakehouse.lake.reader, as the chart and the README do) equals the row Spark
    reads, value for value; and the reading process exits 0 (deltalake's own scan has been seen to abort at exit)."""
    code = (f"import json\nfrom lakehouse.lake.reader import read_table\n"
            f"table = read_table({str(demo['gold'])!r})\n"
            f"rows = [[str(row[c]) if c != 'window_start' else row[c].strftime('%Y-%m-%d %H:%M:%S%z') "
            f"for c in {GOLD_AS_TEXT!r}] for row in table.to_pylist()]\n"
            f"print(json.dumps(sorted(rows)))\n")
    result = subprocess.run([PYTHON, "-c", code], cwd=REPO_ROOT, env=script_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    without_spark = json.loads(result.stdout)
    with_spark = sorted([str(v) for v in row] for row in spark.read.format("delta").load(str(demo["gold"])).selectExpr(
        "symbol", "date_format(window_start, 'yyyy-MM-dd HH:mm:ssxx')", "open", "high", "low", "close", "volume",
        "vwap", "trade_count", "CASE WHEN is_open THEN 'True' ELSE 'False' END", "revision").collect())
    assert len(without_spark) == 52 and without_spark == with_spark


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_chart_from_gold_without_spark(spark, demo, tmp_path):
    """The chart reads Gold with deltalake: it works with Java made unusable; the HTML table holds Gold's exact
    values, column by column; the pair may be typed in the other Kraken spelling; an unknown pair lists those held."""
    png, page = tmp_path / "xbt.png", tmp_path / "xbt.html"
    no_java = {"JAVA_HOME": str(tmp_path / "no-java"), "PATH": "/nonexistent"}
    result = run_ok(PLOT, "--gold", str(demo["gold"]), "--symbol", "BTC/USDT", "--from", "2026-01-01T00:01",
                    "--png", str(png), "--html", str(page), "--width", "900", "--height", "500", **no_java)
    assert png_size(png) == (900, 500) and png.stat().st_size > 5000
    text = page.read_text()
    assert "<img" in text and "data:image/png;base64," in text
    assert "XBT/USDT 1-minute candles, 2026-01-01 00:01 to 2026-01-01 00:20 UTC" in text
    assert "rendered 16 bars of XBT/USDT" in result.stdout + result.stderr  # minutes 1..19; 5, 6, 13 empty
    rows = [[html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(<td>.*?)</tr>", text)]
    gold = bars_by_key(read_bars(spark, demo["gold"]))
    states = bar_states(spark, demo["gold"])
    expected = []
    for (symbol, start), (_, o, h, low, c, v, vwap, n) in sorted(gold.items()):
        if symbol == "XBT/USDT" and start >= T0 + MINUTE:
            is_open, revision = states[(symbol, start)]
            state = ("open" if is_open else "closed") + (f", revised {revision}" if revision else "")
            expected.append([f"{start:%Y-%m-%d %H:%M}", str(o), str(h), str(low), str(c), str(v), str(vwap), str(n),
                             state])
    assert rows == expected
    assert ["2026-01-01 00:02", *[str(x) for x in gold[("XBT/USDT", T0 + 2 * MINUTE)][1:]], "closed, revised 1"] in rows

    unknown = run_script(PLOT, "--gold", str(demo["gold"]), "--symbol", "DOGE/USD", "--png", str(tmp_path / "d.png"))
    assert unknown.returncode == 1
    assert "no bars for DOGE/USD in" in unknown.stderr and "it holds ETH/USDT, SHIB/USD, XBT/USDT" in unknown.stderr


def test_a_table_created_after_the_first_look_is_seen(spark, tmp_path: Path):
    """The Gold job waits for Silver with is_delta_table. Started beside the Silver job (--separate-jobs), its first
    look can fall while Silver's table is being created: the _delta_log folder there, no commit in it yet. Once
    another writer (here delta-rs, as the Silver job's JVM would be) commits, the same session sees the table."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from lakehouse.lake.delta import is_delta_table

    silver = tmp_path / "silver"
    assert is_delta_table(spark, str(silver)) is False  # nothing there
    (silver / "_delta_log").mkdir(parents=True)
    assert is_delta_table(spark, str(silver)) is False  # being created
    write_deltalake(str(silver), pa.table({"trade_id": pa.array([1], pa.int64())}))
    assert is_delta_table(spark, str(silver)) is True


def test_maintenance_splits_golds_live_day_so_a_batch_rewrites_one_small_file(spark, tmp_path, monkeypatch):
    """Gold's hourly maintenance ZORDERs its newest bar_date into small files by window_start (older dates are
    bin-packed), and a batch's MERGE, pruned to its minutes, reads and rewrites only the file holding them: it does not
    copy the day so far. The bars stay exact."""
    from lakehouse.lake import delta

    monkeypatch.setattr(delta, "LIVE_FILE_BYTES", 2048)  # a few bars a file, for 20 minutes of bars
    trades = generate_trades()
    yesterday = [trade("XBT/USDT", "100", "1", T0 - timedelta(hours=1), 1, 0),
                 trade("XBT/USDT", "101", "1", T0 - timedelta(hours=1) + MINUTE, 2, 1)]
    silver, gold, checkpoint = SilverWriter(spark, tmp_path), tmp_path / "gold", tmp_path / "ckpt"
    for past in yesterday:  # two Silver versions: yesterday's bars come in two Gold commits, two files
        silver.append([past])
        run_gold(spark, silver.path, gold, checkpoint)
    first = [t for t in trades if t.ts_event < T0 + 19 * MINUTE]
    silver.append(first)
    run_gold(spark, silver.path, gold, checkpoint)
    assert delta.table_properties(spark, str(gold))["delta.autoOptimize.autoCompact"] == "false"

    delta.compact_and_vacuum(spark, str(gold))  # a round with no round before: the whole table
    files = live_files(gold)
    today = {path: stats for path, stats in files.items() if path.startswith(f"bar_date={T0.date()}/")}
    assert len(files) - len(today) == 1  # yesterday: bin-packed into one file
    ranges = sorted((stats["minValues"]["window_start"], stats["maxValues"]["window_start"]) for stats in today.values())
    assert len(ranges) >= 4 and all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))  # split by time, in order
    assert sum(stats["numRecords"] for stats in today.values()) == len(reference_bars(first))

    silver.append([t for t in trades if t.ts_event >= T0 + 19 * MINUTE])  # minute 19: each pair's minute 18 closes
    run_gold(spark, silver.path, gold, checkpoint)
    merge = last_commit(gold)
    metrics = {k: int(v) for k, v in merge["commitInfo"]["operationMetrics"].items()}
    assert merge["commitInfo"]["operation"] == "MERGE"
    # pruned by file statistics to minutes 18..19 (the bars the batch moved), not only to the day
    predicate = merge["commitInfo"]["operationParameters"]["predicate"]
    assert re.search(r"window_start#\d+ >= 2026-01-01 00:18:00\) AND \(window_start#\d+ <= 2026-01-01 00:19:00",
                     predicate), predicate
    removed = [a["remove"]["path"] for a in merge["actions"] if "remove" in a]
    newest = max(today, key=lambda path: today[path]["maxValues"]["window_start"])
    assert newest in removed and len(removed) == metrics["numTargetFilesRemoved"] <= 2  # minute 18's file(s)
    assert metrics["numTargetRowsCopied"] == sum(today[p]["numRecords"] for p in removed) - metrics[
        "numTargetRowsUpdated"]
    assert metrics["numTargetRowsCopied"] < sum(stats["numRecords"] for stats in today.values()) // 2
    assert_bars_equal(bars_by_key(read_bars(spark, gold)), reference_bars(trades + yesterday))


def live_files(table: Path) -> dict[str, dict]:
    """The table's active data files (path -> file statistics), replayed from its JSON commits."""
    files: dict[str, dict] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[action["add"]["path"]] = json.loads(action["add"]["stats"])
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return files


def last_commit(table: Path) -> dict:
    """The newest commit: its commitInfo and its other actions."""
    lines = [json.loads(line) for line in max((table / "_delta_log").glob("*.json")).read_text().splitlines()]
    return {"commitInfo": next(a["commitInfo"] for a in lines if "commitInfo" in a),
            "actions": [a for a in lines if "commitInfo" not in a]}
