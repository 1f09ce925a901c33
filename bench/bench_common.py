"""I/O helpers the benchmarks share: topics, processes, /proc figures, the Bronze sink log, results files.

Not a benchmark itself; the scripts in bench/ import it (they run as `python bench/<name>.py`, so this folder is on
sys.path). The benchmarks reuse the project's own code through the installed package (`import lakehouse...`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Optional

from lakehouse.common.polling import wait_until
from lakehouse.defaults import BOOTSTRAP  # the benchmarks' broker (bc.BOOTSTRAP): env KAFKA_BOOTSTRAP, else local

REPO_ROOT = Path(__file__).resolve().parents[1]

PYTHON = sys.executable
RESULTS_DIR = REPO_ROOT / "bench" / "results"
PRODUCER = "ingestion/kraken_trades_ws.py"
BRONZE_JOB = "spark/jobs/kafka_to_bronze_trades.py"
# the producer's pairs as a user types them, and the fake's v2 names for the same pairs
USER_PAIRS = ["XBT/USDT", "ETH/USD", "DOGE/USD"]
NATIVE_PAIRS = ["BTC/USDT", "ETH/USD", "DOGE/USD"]
PROGRESS_RE = re.compile(r"batch=(\d+) rows=(\d+) rows/s=(\d+) duration_ms=(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")

log = logging.getLogger("bench")


# ---------------------------------------------------------------------------------------------------------------------
# Processes


def script_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON}
    env.update(extra)
    return env


def start_script(script: str, args: Iterable[str], log_path: Path, **env: str) -> subprocess.Popen:
    """`python <script> <args>` from the repo root, as a user runs it; output to log_path; own process group."""
    out = open(log_path, "wb")
    return subprocess.Popen([PYTHON, str(REPO_ROOT / script), *args], cwd=REPO_ROOT, env=script_env(**env),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
    """Ask a process to stop (SIGINT by default); SIGKILL its group after `timeout`. Returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop within %.0fs: killing its process group", proc.pid, timeout)
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(10)
    return proc.returncode


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of the full line)


def proc_peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------------------------------------------------
# Kafka


def create_topic(prefix: str, partitions: int = 3, config: Optional[dict[str, str]] = None,
                 bootstrap: str = BOOTSTRAP) -> str:
    """A new topic named bench-<prefix>-<random>; waits until the broker lists it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(30)
    wait_until(lambda: name in admin.list_topics(timeout=10).topics, 30, 0.05, f"topic {name}")
    return name


def delete_topics(names: Iterable[str], bootstrap: str = BOOTSTRAP) -> None:
    """Delete the benchmark's topics (they can hold hundreds of MB); failures are only logged."""
    from confluent_kafka.admin import AdminClient

    names = list(names)
    if not names:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, future in admin.delete_topics(names, operation_timeout=30).items():
        try:
            future.result(60)
        except Exception as exc:  # cleanup only
            log.warning("could not delete topic %s: %s", name, exc)


class Watermarks:
    """Sum of a topic's end offsets (= records acknowledged, acks=all on one broker), asked of the broker each time."""

    def __init__(self, topic: str, bootstrap: str = BOOTSTRAP) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-hw-{uuid.uuid4().hex}"})
        md = self.consumer.list_topics(topic, timeout=10)
        self.partitions = [TopicPartition(topic, p) for p in sorted(md.topics[topic].partitions)]

    def total(self) -> int:
        return sum(self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.partitions)

    def close(self) -> None:
        self.consumer.close()


# ---------------------------------------------------------------------------------------------------------------------
# Trades shaped like the fake Kraken's and the producer's


def v2_trade_frames(n_trades: int, max_batch: int = 5, seed: int = 7, ts_us: Optional[int] = None) -> list[str]:
    """v2 `trade` update frames holding n_trades trades over NATIVE_PAIRS, built with the fake Kraken's own trade
    generator (varying decimals, trailing zeros, batches of 1..max_batch trades sharing a timestamp)."""
    from lakehouse.fake_kraken.server import FakeKraken

    fk = FakeKraken(pairs=NATIVE_PAIRS, rate=0, seed=seed, max_batch=max_batch)
    rng = random.Random(seed)
    ts = time.time_ns() // 1000 if ts_us is None else ts_us
    frames, left = [], n_trades
    while left > 0:
        k = min(left, rng.randint(1, max_batch))
        pair = rng.choice(NATIVE_PAIRS)
        batch = [fk._new_trade(pair, ts) for _ in range(k)]
        frames.append(fk._trade_frame("v2", pair, batch, "update"))
        ts += rng.randint(1, 2000)
        left -= k
    return frames


def producer_values(frames: list[str]) -> list[tuple[bytes, bytes]]:
    """(key, value) exactly as the producer writes them for these frames (its own parser and codecs)."""
    from lakehouse.producer import protocol, records

    codecs = {records.native_pair(p, "v2"): records.PairCodec(p, records.native_pair(p, "v2"), "v2") for p in USER_PAIRS}
    out = []
    for frame in frames:
        parsed = protocol.parse_frame(frame, records.iso_now(), codecs, "v2")
        out += [(codec.key, value) for codec, _tid, value in parsed[2]]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Spark: the job's progress lines and the sink log


def progress_lines(log_text: str) -> list[dict[str, int]]:
    """The Bronze job's one-line-per-batch progress (lakehouse.spark.progress.format_progress) as dicts."""
    return [{"batch": int(m.group(1)), "rows": int(m.group(2)), "rows_per_s": int(m.group(3)),
             "duration_ms": int(m.group(4))} for m in PROGRESS_RE.finditer(log_text)]


def sink_batches(out_dir: Path) -> list[dict[str, Any]]:
    """Committed batches of a file sink, in order: {batch, committed_at (the log file's mtime, epoch s), files:
    [(path, bytes)]} with each batch's own files (a N.compact file repeats older entries; they are taken out)."""
    log_dir = out_dir / "_spark_metadata"
    if not log_dir.is_dir():
        return []
    entries: dict[int, Path] = {}
    for path in log_dir.iterdir():
        m = re.fullmatch(r"(\d+)(\.compact)?", path.name)
        if m:
            entries[int(m.group(1))] = path
    seen: set[str] = set()
    batches = []
    for batch_id in sorted(entries):
        path = entries[batch_id]
        files = []
        for line in path.read_text().splitlines()[1:]:
            entry = json.loads(line)
            if entry.get("action") == "add" and entry["path"] not in seen:
                seen.add(entry["path"])
                files.append((entry["path"], int(entry["size"])))
        batches.append({"batch": batch_id, "committed_at": path.stat().st_mtime, "files": files})
    return batches


def local_path(uri: str) -> str:
    return uri[len("file:"):] if uri.startswith("file:") else uri


# ---------------------------------------------------------------------------------------------------------------------
# Results


def machine_info() -> dict[str, Any]:
    import confluent_kafka
    import pyspark
    import websocket

    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_kb = next((int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal:")), 0)
    try:
        import wsaccel  # noqa: F401
        has_wsaccel = True
    except ImportError:
        has_wsaccel = False
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    from lakehouse.broker.kraft import KAFKA_VERSION

    return {
        "host": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu, "mem_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__, "librdkafka": confluent_kafka.libversion()[0],
        "websocket_client": websocket.__version__, "wsaccel": has_wsaccel, "pyspark": pyspark.__version__,
        "java": java[0] if java else "?", "kafka_broker": KAFKA_VERSION, "git_commit": commit,
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """bench/results/<name>-<UTC timestamp>.json (git-ignored); returns the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def summary_row(benchmark: str, figure: str, value: Any, ceiling_name: str, ceiling: Any, ratio: Any,
                target: str, status: str, bound: str) -> dict[str, Any]:
    return {"benchmark": benchmark, "figure": figure, "value": value, "ceiling_name": ceiling_name,
            "ceiling": ceiling, "ratio": ratio, "target": target, "status": status, "bound": bound}


def configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
