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


# Two trades that arrive with the second Silver batch, after the first run's watermark (00:05:59.999999) closed
# minutes 0..4: one is inside the watermark (its minute is still open), one is beyond it (its minute was written).
LATE_INSIDE = trade("ETH/USDT", "255555.55", "0.12345678901234567", T0 + 6 * MINUTE + timedelta(seconds=45), 999999,
                    0, partition=5)
LATE_BEYOND = trade("XBT/USDT", "1.5", "3", T0 + 2 * MINUTE + timedelta(seconds=30), 999998, 1, partition=5)


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    """A few thousand trades in Silver, aggregated by the stream with --available-now in two runs on one checkpoint:
    minutes 0..7 first, then minutes 8..19 together with LATE_INSIDE and LATE_BEYOND."""
    root = tmp_path_factory.mktemp("gold_demo")
    trades = generate_trades()
    silver = SilverWriter(spark, root)
    gold = root / "gold"
    args = ["--silver", str(silver.path), "--out", str(gold), "--checkpoint", str(root / "ckpt"),
            "--watermark", "2 minutes", "--available-now"]
    silver.append(t for t in trades if t.ts_event < T0 + 8 * MINUTE)
    run_ok(JOB, *args)
    first_run = bars_by_key(read_bars(spark, gold))
    silver.append([t for t in trades if t.ts_event >= T0 + 8 * MINUTE] + [LATE_INSIDE, LATE_BEYOND])
    result = run_ok(JOB, *args)
    return {"root": root, "trades": trades, "silver": silver, "gold": gold, "first_run": first_run,
            "log": result.stdout + result.stderr}


def test_stream_bars_equal_independent_decimal_computation(spark, demo):
    trades = demo["trades"] + [LATE_INSIDE]
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
    # the first run, too, ended having written every minute its watermark (00:05:59.999999) closed: 0..4
    assert sorted({key[1] for key in demo["first_run"]}) == [T0 + m * MINUTE for m in range(5)]


def test_late_trades_inside_and_beyond_the_watermark(demo, spark):
    got = bars_by_key(read_bars(spark, demo["gold"]))
    eth = ("ETH/USDT", T0 + 6 * MINUTE)
    without_late = reference_bars(demo["trades"])
    assert got[eth][-1] == without_late[eth][-1] + 1  # inside the watermark: counted in its bar
    xbt = ("XBT/USDT", T0 + 2 * MINUTE)
    assert got[xbt] == demo["first_run"][xbt] == without_late[xbt]  # beyond it: dropped, the bar written once
    assert "gold batch=" in demo["log"] and "dropped 1 late row(s) older than the watermark" in demo["log"]
    assert "gold: late rows dropped by the watermark in this run: 1" in demo["log"]


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
    """The batch recompute of [00:02, 00:30) from Silver: every bar equals the reference over all trades Silver holds
    (also the minutes the stream keeps open, and the late trade the stream dropped: the documented remedy), and
    every streamed bar in the range equals its recomputed bar, except the one the dropped trade belongs to."""
    out = demo["root"] / "recompute"
    run_ok(BATCH, "--silver", str(demo["silver"].path), "--from", "2026-01-01T00:02", "--to", "2026-01-01T00:30",
           "--out", str(out))
    recomputed = bars_by_key(read_bars(spark, out))
    expected = {key: bar for key, bar in reference_bars(demo["trades"] + [LATE_INSIDE, LATE_BEYOND]).items()
                if key[1] >= T0 + 2 * MINUTE}
    assert_bars_equal(recomputed, expected)
    streamed = {k: v for k, v in bars_by_key(read_bars(spark, demo["gold"])).items() if k[1] >= T0 + 2 * MINUTE}
    late_bar = ("XBT/USDT", T0 + 2 * MINUTE)
    assert recomputed[late_bar][-1] == streamed[late_bar][-1] + 1
    assert len(streamed) == 15 * 3 - 8  # minutes 2..16, 8 of them empty
    assert {k: v for k, v in streamed.items() if k != late_bar} == {
        k: v for k, v in recomputed.items() if k in streamed and k != late_bar}


def test_batch_refuses_the_streams_gold_folder(demo):
    result = run_script(BATCH, "--silver", str(demo["silver"].path), "--from", "2026-01-01T00:00",
                        "--to", "2026-01-01T00:10", "--out", str(demo["gold"]))
    assert result.returncode == 2 and "is a streaming sink" in result.stderr


def batch_ids(folder: Path) -> set[int]:
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.is_dir() else set()


def test_kill_9_and_restart_loses_and_doubles_no_bar(spark, tmp_path):
    trades = [t for t in generate_trades(seed=11, minutes=12) if t.symbol != "ETH/USDT"]
    silver = SilverWriter(spark, tmp_path)
    gold, checkpoint = tmp_path / "gold", tmp_path / "ckpt"
    silver.append(t for t in trades if t.ts_event < T0 + 4 * MINUTE)
    job = start_script(JOB, "--silver", str(silver.path), "--out", str(gold), "--checkpoint", str(checkpoint),
                       "--watermark", "1 minute", "--trigger", "1 second", log_path=tmp_path / "job1.log")
    try:
        # the first data batch and the no-data batch that writes minutes 0 and 1 (the watermark is 00:02:59.999999)
        wait_until(lambda: len(batch_ids(checkpoint / "commits")) >= 2, timeout=120, interval=0.5,
                   message=f"the stream to commit its first batches (log: {tmp_path / 'job1.log'})")
        silver.append(t for t in trades if T0 + 4 * MINUTE <= t.ts_event < T0 + 8 * MINUTE)
        # kill -9 as soon as a batch over the new trades is planned (offsets/N) but not yet committed (commits/N)
        wait_until(lambda: batch_ids(checkpoint / "offsets") - batch_ids(checkpoint / "commits"), timeout=60,
                   interval=0.02, message="a batch over the second Silver append")
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
    written_before_kill = bars_by_key(read_bars(spark, gold))
    assert len(written_before_kill) >= 4  # minutes 0 and 1 of both pairs were written before the kill
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
    result = run_ok(PLOT, "--gold", str(demo["gold"]), "--symbol", "XBT/USDT", "--from", "2026-01-01T00:01",
                    "--png", str(png), "--html", str(html), "--width", "900", "--height", "500")
    assert png_size(png) == (900, 500) and png.stat().st_size > 5000
    page = html.read_text()
    assert "<img" in page and "data:image/png;base64," in page and "XBT/USDT" in page
    assert "rendered 13 bars" in result.stdout + result.stderr  # minutes 1..16 closed; 5, 6, 13 empty
    assert "XBT/USDT 1-minute candles, 2026-01-01 00:01 to 2026-01-01 00:17 UTC" in page

