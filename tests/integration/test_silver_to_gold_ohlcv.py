"""Silver -> Gold against an independent plain-Python Decimal computation: the stream (available-now and a live
stream killed with -9 and restarted), late trades inside and beyond the watermark, the batch recompute, the chart."""

from __future__ import annotations

import os
import signal
import struct
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import run_script, start_script, wait_until
from tests.integration.gold_helpers import (MINUTE, T0, SilverWriter, bars_by_key, closed_by, generate_trades,
                                            read_bars, reference_bars, trade)

pytestmark = pytest.mark.integration

JOB = "spark/jobs/silver_to_gold_ohlcv.py"
BATCH = "spark/jobs/gold_ohlcv_batch.py"
PLOT = "spark/jobs/plot_ohlcv.py"


def run_ok(script: str, *args: str, timeout: float = 240):
    result = run_script(script, *args, timeout=timeout)
    assert result.returncode == 0, f"{script} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def assert_bars_equal(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for key, bar in expected.items():
        assert got[key] == bar, f"bar {key}: got {got[key]}, expected {bar}"
        for value in got[key][1:7]:  # Spark's decimals carry all 18 places; equal above means equal to the last one
            assert value.as_tuple().exponent == -18


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    """A few thousand trades in Silver (three appended batches), aggregated by the stream with --available-now."""
    root = tmp_path_factory.mktemp("gold_demo")
    trades = generate_trades()
    silver = SilverWriter(spark, root)
    for lo, hi in ((0, 8), (8, 15), (15, 99)):  # live-like: later minutes arrive in later Silver batches
        silver.append(t for t in trades if lo <= (t.ts_event - T0) // MINUTE < hi)
    gold = root / "gold"
    result = run_ok(JOB, "--silver", str(silver.path), "--out", str(gold), "--checkpoint", str(root / "ckpt"),
                    "--watermark", "2 minutes", "--available-now")
    return {"root": root, "trades": trades, "silver": silver, "gold": gold, "log": result.stdout + result.stderr}


def test_stream_bars_equal_independent_decimal_computation(spark, demo):
    trades = demo["trades"]
    expected_all = reference_bars(trades)
    watermark = max(t.ts_event for t in trades) - timedelta(minutes=2)
    expected = closed_by(expected_all, watermark)
    got = bars_by_key(read_bars(spark, demo["gold"]))

    assert_bars_equal(got, expected)
    assert len(trades) > 2000 and len(expected) == 17 * 3 - 8  # minutes 0..16, 8 of them empty
    # what the data exercises: one-trade minutes, empty minutes, identical timestamps at open and close
    assert {bar[-1] for bar in expected.values()} >= {1}
    assert ("XBT/USDT", T0 + 5 * MINUTE) not in got and ("XBT/USDT", T0 + 13 * MINUTE) not in got
    # --available-now wrote every minute the watermark closed by the end of the data (the last one included) ...
    last_closed = max(start for (_, start), bar in expected_all.items() if bar[0] <= watermark)
    assert last_closed == T0 + 16 * MINUTE
    assert {key for key in got if key[1] == last_closed} == {("XBT/USDT", last_closed), ("ETH/USDT", last_closed),
                                                              ("SHIB/USD", last_closed)}
    # ... and none the watermark keeps open
    assert not any(bar[0] > watermark for bar in got.values())


def test_ties_are_broken_by_trade_id_then_kafka_offset(demo):
    """In the data, tied timestamps have Kafka offsets in the opposite order of trade_id (v2 pairs): check the
    reference (which the Gold test compares to) really picks by trade_id, and by offset for the v1 pair."""
    trades = demo["trades"]
    bars = reference_bars(trades)
    start = T0 + 4 * MINUTE
    xbt = [t for t in trades if t.symbol == "XBT/USDT" and start <= t.ts_event < start + MINUTE]
    first = [t for t in xbt if t.ts_event == start]
    assert len(first) == 3 and min(first, key=lambda t: t.offset) != min(first, key=lambda t: t.trade_id)
    assert bars[("XBT/USDT", start)][1] == min(first, key=lambda t: t.trade_id).price
    shib = [t for t in trades if t.symbol == "SHIB/USD" and start <= t.ts_event < start + MINUTE]
    last = [t for t in shib if t.ts_event == max(t.ts_event for t in shib)]
    assert len(last) == 3 and bars[("SHIB/USD", start)][4] == max(last, key=lambda t: t.offset).price


def test_batch_recompute_agrees_with_stream_and_reference(spark, demo):
    out = demo["root"] / "recompute"
    run_ok(BATCH, "--silver", str(demo["silver"].path), "--from", "2026-01-01T00:02", "--to", "2026-01-01T00:30",
           "--out", str(out))
    recomputed = bars_by_key(read_bars(spark, out))
    expected = {key: bar for key, bar in reference_bars(demo["trades"]).items() if key[1] >= T0 + 2 * MINUTE}
    assert_bars_equal(recomputed, expected)  # also the minutes the stream's watermark keeps open
    streamed = bars_by_key(read_bars(spark, demo["gold"]))
    assert {k: v for k, v in streamed.items() if k[1] >= T0 + 2 * MINUTE} == {
        k: v for k, v in recomputed.items() if k in streamed}


def test_batch_refuses_the_streams_gold_folder(demo):
    result = run_script(BATCH, "--silver", str(demo["silver"].path), "--from", "2026-01-01T00:00",
                        "--to", "2026-01-01T00:10", "--out", str(demo["gold"]))
    assert result.returncode == 2 and "is a streaming sink" in result.stderr


def test_late_trades_inside_and_beyond_the_watermark(spark, tmp_path):
    silver = SilverWriter(spark, tmp_path)
    first = [trade("XBT/USDT", f"{100 + m}.5", "1.25", T0 + m * MINUTE + timedelta(seconds=10), 1000 + m, m)
             for m in range(6)]  # newest 00:05:10 -> watermark 00:03:10 closes minutes 0, 1, 2
    silver.append(first)
    args = ["--silver", str(silver.path), "--out", str(tmp_path / "gold"), "--checkpoint", str(tmp_path / "ckpt"),
            "--watermark", "2 minutes", "--available-now"]
    run_ok(JOB, *args)
    after_first = bars_by_key(read_bars(spark, tmp_path / "gold"))
    assert sorted(k[1] for k in after_first) == [T0, T0 + MINUTE, T0 + 2 * MINUTE]

    inside = trade("XBT/USDT", "999.5", "2", T0 + 3 * MINUTE + timedelta(seconds=30), 2000, 10)  # >= watermark
    beyond = trade("XBT/USDT", "1.5", "3", T0 + MINUTE + timedelta(seconds=20), 2001, 11)  # < watermark: dropped
    advance = trade("XBT/USDT", "105.5", "1", T0 + 9 * MINUTE, 2002, 12)  # watermark -> 00:07:00
    silver.append([inside, beyond, advance])
    result = run_ok(JOB, *args)

    got = bars_by_key(read_bars(spark, tmp_path / "gold"))
    expected = closed_by(reference_bars(first + [inside, advance]), T0 + 7 * MINUTE)
    assert_bars_equal(got, expected)
    assert got[("XBT/USDT", T0 + 3 * MINUTE)][-1] == 2  # the trade inside the watermark counted
    assert got[("XBT/USDT", T0 + MINUTE)] == after_first[("XBT/USDT", T0 + MINUTE)]  # the one beyond did not
    log_text = result.stdout + result.stderr
    assert "dropped 1 late trade row(s) older than the watermark" in log_text
    assert "late trade rows dropped by the watermark in this run: 1" in log_text

    # the documented remedy: a batch recompute from Silver counts it
    run_ok(BATCH, "--silver", str(silver.path), "--from", "2026-01-01T00:00", "--to", "2026-01-01T00:10",
           "--out", str(tmp_path / "recompute"))
    recomputed = bars_by_key(read_bars(spark, tmp_path / "recompute"))
    assert_bars_equal(recomputed, reference_bars(first + [inside, beyond, advance]))


def test_kill_9_and_restart_loses_and_doubles_no_bar(spark, tmp_path):
    trades = [t for t in generate_trades(seed=11, minutes=12) if t.symbol != "ETH/USDT"]
    silver = SilverWriter(spark, tmp_path)
    gold, checkpoint = tmp_path / "gold", tmp_path / "ckpt"
    silver.append(t for t in trades if t.ts_event < T0 + 4 * MINUTE)
    job = start_script(JOB, "--silver", str(silver.path), "--out", str(gold), "--checkpoint", str(checkpoint),
                       "--watermark", "1 minute", "--trigger", "1 second", log_path=tmp_path / "job1.log")
    try:
        commits = checkpoint / "commits"
        wait_until(lambda: commits.is_dir() and len(list(commits.iterdir())) >= 2, timeout=120, interval=0.5,
                   message="the stream to commit its first batches")
        silver.append(t for t in trades if T0 + 4 * MINUTE <= t.ts_event < T0 + 8 * MINUTE)
        done = len(list(commits.iterdir()))
        wait_until(lambda: len(list(commits.iterdir())) > done, timeout=60, interval=0.2,
                   message="a batch over the second Silver append")
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
    silver.append(t for t in trades if t.ts_event >= T0 + 8 * MINUTE)
    run_ok(JOB, "--silver", str(silver.path), "--out", str(gold), "--checkpoint", str(checkpoint),
           "--watermark", "1 minute", "--available-now")

    got = bars_by_key(read_bars(spark, gold))  # fails on a bar written twice
    watermark = max(t.ts_event for t in trades) - MINUTE
    assert_bars_equal(got, closed_by(reference_bars(trades), watermark))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_chart_from_gold(demo, tmp_path):
    png, html = tmp_path / "xbt.png", tmp_path / "xbt.html"
    result = run_ok(PLOT, "--gold", str(demo["gold"]), "--symbol", "XBT/USDT", "--from", "2026-01-01T00:00",
                    "--to", "2026-01-01T00:20", "--png", str(png), "--html", str(html), "--width", "900",
                    "--height", "500")
    assert png_size(png) == (900, 500) and png.stat().st_size > 5000
    page = html.read_text()
    assert "<img" in page and "data:image/png;base64," in page and "XBT/USDT" in page
    assert "rendered 14 bars" in result.stdout + result.stderr  # minutes 0..16 closed; 5, 6, 13 empty

    missing = run_script(PLOT, "--gold", str(demo["gold"]), "--symbol", "NOPE/USD", "--from", "2026-01-01T00:00",
                         "--to", "2026-01-01T00:20", "--png", str(tmp_path / "none.png"))
    assert missing.returncode == 1 and "no bars for NOPE/USD" in missing.stderr
