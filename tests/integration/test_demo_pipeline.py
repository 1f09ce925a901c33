"""`make demo`'s pipeline end to end, offline: fake Kraken replay -> producer -> broker -> Bronze -> Silver -> Gold.

Run as a user runs it (infra/run_pipeline.py --demo), stopped with SIGINT as Ctrl-C would; then the audit must pass,
Bronze must hold exactly the trades the fake Kraken sent, and nothing may be left running. Also runs the README's
"Verify Bronze" snippets as written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PYTHON, REPO_ROOT, run_script, script_env, wait_until

pytestmark = pytest.mark.integration

RECORDING = REPO_ROOT / "ingestion" / "recordings" / "kraken_v2_demo.jsonl"
USER_PAIR = {"BTC/USDT": "XBT/USDT", "ETH/USD": "ETH/USD", "DOGE/USD": "XDG/USD"}  # as the demo's --pair flags


def recorded_trades() -> set[tuple[str, int]]:
    """(pair as the user wrote it, trade_id) of every trade frame in the shipped recording."""
    trades = set()
    for line in RECORDING.read_text().splitlines():
        frame = json.loads(json.loads(line)["frame"])
        if isinstance(frame, dict) and frame.get("channel") == "trade":
            trades.update((USER_PAIR[t["symbol"]], t["trade_id"]) for t in frame["data"])
    return trades


def recorded_minutes() -> tuple[str, str]:
    """The first minute of the recording's trades and the minute after its last, as gold_ohlcv_batch.py takes them."""
    from datetime import datetime, timedelta

    times = []
    for line in RECORDING.read_text().splitlines():
        frame = json.loads(json.loads(line)["frame"])
        if isinstance(frame, dict) and frame.get("channel") == "trade":
            times += [datetime.fromisoformat(t["timestamp"].replace("Z", "+00:00")) for t in frame["data"]]
    first = min(times).replace(second=0, microsecond=0)
    last = max(times).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return first.strftime("%Y-%m-%dT%H:%M"), last.strftime("%Y-%m-%dT%H:%M")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails unless the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 1000
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def committed_rows(path: Path) -> int:
    """Rows in the Parquet files a sink committed in its _spark_metadata (0 before its first batch)."""
    import pyarrow.parquet as pq

    from bronze_audit import read_sink_log

    if not (path / "_spark_metadata").is_dir():
        return 0
    return sum(pq.ParquetFile(f).metadata.num_rows for f in read_sink_log(path).files)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def test_demo_pipeline_lands_every_sent_trade_once(spark, bootstrap, new_topic, tmp_path) -> None:
    topic = new_topic(partitions=3)
    data = tmp_path / "data"
    expected = recorded_trades()
    runner = subprocess.Popen(
        [PYTHON, "infra/run_pipeline.py", "--demo", "--pace", "fast", "--demo-port", str(free_port()),
         "--topic", topic, "--data-dir", str(data), "--log-dir", str(data / "logs"), "--trigger", "1 second"],
        cwd=REPO_ROOT, env=script_env(), stdout=open(tmp_path / "pipeline.out", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        bronze, silver = data / "bronze" / "crypto_trades", data / "silver" / "crypto_trades"
        wait_until(lambda: committed_rows(bronze) >= len(expected), timeout=240, interval=1,
                   message=f"{len(expected)} trades in Bronze")
        wait_until(lambda: committed_rows(silver) >= len(expected), timeout=240, interval=1,
                   message=f"{len(expected)} trades in Silver")
        os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert runner.wait(240) == 0, (tmp_path / "pipeline.out").read_text()[-4000:]
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    output = (tmp_path / "pipeline.out").read_text()

    # Nothing left running: no process refers to this test's data folder or topic.
    assert processes_mentioning(str(data)) == [] and processes_mentioning(topic) == []

    # The summary says where Bronze is and how many rows it holds; each process has its log.
    assert re.search(rf"bronze\s+{re.escape(str(bronze))}: {len(expected)} rows", output), output[-3000:]
    assert re.search(rf"silver\s+{re.escape(str(silver))}: {len(expected)} rows", output), output[-3000:]
    assert {p.name for p in (data / "logs").iterdir()} >= {"kraken.log", "producer.log", "bronze.log", "silver.log",
                                                           "gold.log"}
    assert "[producer]" in output and "[bronze]" in output

    # The audit passes: no holes, no duplicates, Bronze complete against the broker.
    audit = run_script("spark/jobs/bronze_audit.py", "--bootstrap", bootstrap, "--topic", topic,
                       "--bronze", str(bronze))
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # Bronze holds exactly the trades the fake Kraken sent: by pair and trade_id, each once, under the pair's key.
    rows = spark.read.parquet(str(bronze)).select("key", "value_raw").collect()
    landed = [(row.key, json.loads(row.value_raw)) for row in rows]
    assert all(key == value["symbol"] for key, value in landed)
    ids = [(value["symbol"], value["trade_id"]) for _, value in landed]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected

    # Gold for the demo's whole span, recomputed from Silver in batch, and drawn as a chart a person can look at.
    first, last = recorded_minutes()
    gold = tmp_path / "gold_recompute"
    recompute = run_script("spark/jobs/gold_ohlcv_batch.py", "--silver", str(silver), "--from", first,
                           "--to", last, "--out", str(gold))
    assert recompute.returncode == 0, recompute.stderr[-3000:]
    png = tmp_path / "xbt.png"
    chart = run_script("spark/jobs/plot_ohlcv.py", "--gold", str(gold), "--symbol", "XBT/USDT", "--png", str(png),
                       "--width", "800", "--height", "450")
    assert chart.returncode == 0, chart.stderr[-3000:]
    assert png_size(png) == (800, 450)


def readme_python_blocks(section: str) -> list[str]:
    """The ```python blocks of one README section (from its heading to the next '## ')."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    return re.findall(r"```python\n(.*?)```", text[start: end if end > 0 else None], re.S)


def test_readme_verify_bronze_snippets_work_as_written(bootstrap, new_topic, tmp_path) -> None:
    from confluent_kafka import Producer

    topic = new_topic(partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(25):
        producer.produce(topic, key=b"XBT/USDT", value=json.dumps({"n": i}).encode(), partition=i % 3)
    assert producer.flush(30) == 0
    landed = run_script("spark/jobs/kafka_to_bronze_trades.py", "--bootstrap", bootstrap, "--topic", topic,
                        "--out", str(tmp_path / "data/bronze/crypto_trades"),
                        "--checkpoint", str(tmp_path / "data/checkpoints/kafka_to_bronze_trades"), "--available-now")
    assert landed.returncode == 0, landed.stderr

    blocks = readme_python_blocks("## 4) Verify Bronze files")
    assert len(blocks) == 2
    result = subprocess.run([PYTHON, "-c", "\n".join(blocks)], cwd=tmp_path, env=script_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rows: 25" in result.stdout
    assert "|-- value_raw: string (nullable = true)" in result.stdout
    assert result.stdout.count("part-0") >= 3  # the per-file counts list the Parquet files
