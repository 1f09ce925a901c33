"""`make demo`'s pipeline end to end, offline: fake Kraken replay -> producer -> broker -> Bronze -> Silver -> Gold.

Run as a user runs it (infra/run_pipeline.py --demo), stopped with SIGINT as Ctrl-C would once Gold holds every
trade; then Bronze and Silver hold exactly the trades the fake Kraken sent, Gold 20+ minutes of bars per pair equal
to the batch recompute, the charts are drawn, and nothing is left running. Also runs the README's "Verify Bronze" and
"Reading Silver and Gold without Spark" snippets as written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from lakehouse.common import processes
from tests.helpers import PYTHON, REPO_ROOT, run_script, script_env, wait_until
from tests.integration.producer_helpers import delta_rows

# Over the default time limit (pyproject.toml): the demo pipeline runs in the first test's setup (up to 10 minutes for Gold).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

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


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in processes.pids():
        cmdline = processes.command_line(pid) if pid != os.getpid() else None
        if cmdline is not None and text in cmdline:
            found.append(f"{pid}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="module")
def demo(bootstrap, tmp_path_factory):
    """`make demo` as a user runs it (the recording replayed fast), stopped with Ctrl-C once Gold holds every trade."""
    from confluent_kafka.admin import AdminClient

    root = tmp_path_factory.mktemp("demo")
    data, topic = root / "data", f"demo-{uuid.uuid4().hex[:12]}"
    expected = recorded_trades()
    runner = subprocess.Popen(
        [PYTHON, "infra/run_pipeline.py", "--demo", "--pace", "fast", "--demo-port", str(free_port()),
         "--topic", topic, "--data-dir", str(data), "--log-dir", str(data / "logs"), "--trigger", "1 second"],
        cwd=REPO_ROOT, env=script_env(), stdout=open(root / "pipeline.out", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    gold = data / "gold" / "ohlcv_1m"
    try:
        wait_until(lambda: sum(r["trade_count"] for r in delta_rows(gold, ["trade_count"])) >= len(expected),
                   timeout=600, interval=2, what=f"all {len(expected)} trades in Gold")
        os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C in the terminal
        code = runner.wait(300)
        audit = run_script("spark/jobs/bronze_audit.py", "--bootstrap", bootstrap, "--topic", topic,
                           "--bronze", str(data / "bronze" / "crypto_trades"))
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        AdminClient({"bootstrap.servers": bootstrap}).delete_topics([topic])
    return {"root": root, "data": data, "topic": topic, "expected": expected, "code": code, "audit": audit,
            "output": (root / "pipeline.out").read_text(), "bronze": data / "bronze" / "crypto_trades",
            "silver": data / "silver" / "crypto_trades", "gold": gold}


@pytest.mark.quick
def test_ctrl_c_stops_everything_cleanly_with_a_summary(demo) -> None:
    output, data = demo["output"], demo["data"]
    assert demo["code"] == 0, output[-4000:]
    assert [line for line in output.splitlines() if line.startswith("[pipeline]") and " WARNING " in line] == []
    assert processes_mentioning(str(data)) == [] and processes_mentioning(demo["topic"]) == []
    n = len(demo["expected"])
    assert re.search(rf"bronze\s+{re.escape(str(demo['bronze']))}: {n} rows", output), output[-3000:]
    assert re.search(rf"silver\s+{re.escape(str(demo['silver']))}: {n} rows", output), output[-3000:]
    assert {p.name for p in (data / "logs").iterdir()} >= {"kraken.log", "producer.log", "spark.log"}
    assert "[producer]" in output and "[spark]" in output
    assert "Traceback" not in output


@pytest.mark.quick
def test_every_sent_trade_is_in_bronze_and_silver_once(demo, spark, bootstrap) -> None:
    # Bronze holds exactly the trades the fake Kraken sent: by pair and trade_id, each once, under the pair's key.
    rows = spark.read.parquet(str(demo["bronze"])).select("key", "value_raw").collect()
    landed = [(row.key, json.loads(row.value_raw)) for row in rows]
    assert all(key == value["symbol"] for key, value in landed)
    ids = [(value["symbol"], value["trade_id"]) for _, value in landed]
    assert len(ids) == len(set(ids)) and set(ids) == demo["expected"]
    silver = delta_rows(demo["silver"], ["symbol", "trade_id", "source"])
    assert sorted((r["symbol"], r["trade_id"]) for r in silver) == sorted(demo["expected"])
    assert {r["source"] for r in silver} == {"ws"}
    # Both audits pass: Bronze is the topic exactly, Silver holds every trade id of each pair once
    assert demo["audit"].returncode == 0, demo["audit"].stdout + demo["audit"].stderr
    audit = run_script("spark/jobs/silver_completeness_audit.py", "--silver", str(demo["silver"]))
    assert audit.returncode == 0, audit.stdout + audit.stderr


@pytest.mark.quick
def test_gold_holds_twenty_minutes_per_pair_equal_to_the_batch_recompute(demo, spark) -> None:
    bars = delta_rows(demo["gold"], ["symbol", "window_start", "trade_count", "is_open"])
    per_pair = {}
    for bar in bars:
        per_pair.setdefault(bar["symbol"], []).append(bar)
    assert sorted(per_pair) == ["ETH/USD", "XBT/USDT", "XDG/USD"]  # the pairs as the demo's --pair spells them
    assert all(len(b) >= 20 for b in per_pair.values()), {p: len(b) for p, b in per_pair.items()}
    assert all(sum(bar["is_open"] for bar in b) == 1 for b in per_pair.values())
    first, last = recorded_minutes()
    recompute = demo["root"] / "recompute"
    result = run_script("spark/jobs/gold_ohlcv_batch.py", "--silver", str(demo["silver"]), "--from", first,
                        "--to", last, "--out", str(recompute))
    assert result.returncode == 0, result.stderr[-3000:]
    columns = ["symbol", "window_start", "open", "high", "low", "close", "volume", "vwap", "trade_count", "is_open"]
    key = lambda r: (r["symbol"], r["window_start"])  # noqa: E731
    assert sorted(delta_rows(recompute, columns), key=key) == sorted(delta_rows(demo["gold"], columns), key=key)


@pytest.mark.quick
def test_the_demo_draws_each_pairs_chart(demo) -> None:
    for pair in ("XBT_USDT", "ETH_USD", "XDG_USD"):
        png = demo["data"] / "charts" / f"{pair}.png"
        assert f"chart   {png} (and .html)" in demo["output"]
        assert png_size(png) == (1200, 700)


def test_docs_reading_snippets_work_as_written_on_the_demos_tables(demo) -> None:
    """docs/layers.md's 'Reading without Spark' and 'Time travel' blocks, run from a folder holding the demo's data/
    (tests/unit/test_docs.py runs them on a small lake; here they meet the tables the pipeline wrote)."""
    blocks = doc_python_blocks("## Reading without Spark", "## Compaction", REPO_ROOT / "docs" / "layers.md")
    assert len(blocks) == 3
    result = subprocess.run([PYTHON, "-c", "\n".join(blocks)], cwd=demo["root"], env=script_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = sum(1 for symbol, _ in demo["expected"] if symbol == "XBT/USDT")  # the recording is from 2026
    assert f"\n{expected} XBT/USDT trades since 2026-01-01\n" in result.stdout, result.stdout
    assert re.search(r"^\d+ MERGE \d+$", result.stdout, re.M)  # the history lists the Gold versions
    assert re.search(r"^\d+ bars one commit ago$", result.stdout, re.M)


def doc_python_blocks(section: str, until: str, path: Path) -> list[str]:
    """The ```python blocks of a doc from the heading `section` to the heading `until`."""
    text = path.read_text()
    start = text.index(section)
    return re.findall(r"```python\n(.*?)```", text[start: text.index(until, start)], re.S)


def readme_python_blocks(section: str) -> list[str]:
    """The ```python blocks of one README section (from its heading to the next '## ')."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    return re.findall(r"```python\n(.*?)```", text[start: end if end > 0 else None], re.S)


def test_readme_verify_bronze_snippets_work_as_written(bootstrap, new_topic, spark, tmp_path) -> None:
    from confluent_kafka import Producer

    from tests.integration.silver_helpers import land_bronze

    topic = new_topic(partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(25):
        producer.produce(topic, key=b"XBT/USDT", value=json.dumps({"n": i}).encode(), partition=i % 3)
    assert producer.flush(30) == 0
    # Bronze landed in this session with the Bronze job's own options (the script itself runs in the demo above)
    land_bronze(spark, bootstrap, topic, tmp_path / "data/bronze/crypto_trades",
                tmp_path / "data/checkpoints/kafka_to_bronze_trades")

    blocks = readme_python_blocks("## 4) Verify Bronze files")
    assert len(blocks) == 2
    result = subprocess.run([PYTHON, "-c", "\n".join(blocks)], cwd=tmp_path, env=script_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rows: 25" in result.stdout
    assert "|-- value_raw: string (nullable = true)" in result.stdout
    assert result.stdout.count("part-0") >= 3  # the per-file counts list the Parquet files
