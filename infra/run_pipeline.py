"""Run the whole pipeline in one terminal: broker, producer, Bronze, Silver and Gold jobs; Ctrl-C stops it safely.

Each process's lines are shown with a prefix ([producer], [bronze], ...) and also written to data/logs/<name>.log.
On Ctrl-C (or SIGTERM) the processes stop in an order that loses nothing: the producer first (it flushes every
trade to Kafka), then each Spark job once it has caught up with what its input holds (bounded by --drain-timeout),
then a summary says where each layer is and how many rows it holds. The broker is left running (`make broker-down`).

Usage:
    python infra/run_pipeline.py                        # live Kraken, pair XBT/USDT (make run)
    python infra/run_pipeline.py --pair XBT/USDT --pair ETH/USD
    python infra/run_pipeline.py --demo                 # offline: a fake Kraken replays a shipped recording (make demo)

Exit codes: 0 every process stopped cleanly; 1 a process failed (its log says why); 2 a usage error or no broker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "spark" / "jobs"))

from bronze_audit import read_sink_log  # noqa: E402  (the _spark_metadata reader)
from streaming_common import latest_batch_id  # noqa: E402

DEFAULT_LOG_DIR = REPO_ROOT / "data" / "logs"
DEMO_RECORDING = REPO_ROOT / "ingestion" / "recordings" / "kraken_v2_demo.jsonl"
DEMO_PORT = 8765
BOOTSTRAP = "localhost:19092"
BROKER_PORT = 19092

log = logging.getLogger("run_pipeline")


@dataclass
class Layer:
    """One Spark layer: its job script, output folder and checkpoint."""

    name: str
    script: str
    out: Path
    checkpoint: Path
    extra_args: list[str] = field(default_factory=list)


def layers(data_dir: Path, trigger: str) -> list[Layer]:
    bronze = data_dir / "bronze" / "crypto_trades"
    silver = data_dir / "silver" / "crypto_trades"
    checkpoints = data_dir / "checkpoints"
    return [
        Layer("bronze", "spark/jobs/kafka_to_bronze_trades.py", bronze, checkpoints / "kafka_to_bronze_trades",
              ["--startingOffsets", "earliest"]),
        Layer("silver", "spark/jobs/bronze_to_silver_trades.py", silver, checkpoints / "bronze_to_silver_trades",
              ["--bronze", str(bronze), "--quarantine", str(data_dir / "silver" / "crypto_trades_quarantine")]),
        Layer("gold", "spark/jobs/silver_to_gold_ohlcv.py", data_dir / "gold" / "ohlcv_1m",
              checkpoints / "silver_to_gold_ohlcv", ["--silver", str(silver)]),
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Pure helpers


def query_checkpoints(checkpoint: Path) -> list[Path]:
    """The query checkpoints under a job's --checkpoint: the folder itself, or one sub-folder per query when the
    job runs several (Silver: silver/ and quarantine/)."""
    if (checkpoint / "offsets").is_dir() or (checkpoint / "metadata").is_file():
        return [checkpoint]
    return sorted(p for p in checkpoint.iterdir() if p.is_dir()) if checkpoint.is_dir() else []


def checkpoint_progress(checkpoint: Path) -> tuple[int, dict | None]:
    """(last committed batch id, that batch's source offsets as written in offsets/N); (-1, None) before any."""
    batch = latest_batch_id(checkpoint / "commits")
    if batch < 0:
        return -1, None
    lines = (checkpoint / "offsets" / str(batch)).read_text().splitlines()
    return batch, json.loads(lines[-1]) if len(lines) >= 3 else None


def kafka_caught_up(committed: dict | None, end_offsets: dict[int, int], topic: str) -> bool:
    """True when the committed Kafka offsets reach the broker's end offset in every partition."""
    landed = (committed or {}).get(topic, {})
    return all(int(landed.get(str(p), 0)) >= end for p, end in end_offsets.items() if end > 0)


def file_source_caught_up(committed: dict | None, upstream_latest_batch: int) -> bool:
    """True when a file-source query has read up to the upstream sink's latest batch (logOffset)."""
    if upstream_latest_batch < 0:
        return True
    return committed is not None and int(committed.get("logOffset", -1)) >= upstream_latest_batch


# ---------------------------------------------------------------------------------------------------------------------
# Processes


class Child:
    """A process whose output lines are prefixed on the terminal and copied to a log file."""

    width = 8

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log_file: IO[str] = open(self.log_path, "a", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, text=True, errors="replace")
        self.pump = threading.Thread(target=self._pump, daemon=True, name=f"pump-{name}")
        self.pump.start()

    def _pump(self) -> None:
        prefix = f"[{self.name}]".ljust(self.width + 2)
        for line in self.proc.stdout:
            self.log_file.write(line)
            self.log_file.flush()
            sys.stdout.write(prefix + line)
            sys.stdout.flush()

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int, timeout: float) -> int:
        """Signal the process, wait, kill its whole group after the timeout; return the exit code.

        Only the process itself is signalled: a Spark job's JVM is its child, and the job stops its query cleanly
        before it ends the JVM (a signal to the group would kill the JVM in the middle of a batch)."""
        if self.running():
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.pump.join(5)
        self.log_file.close()
        return self.proc.returncode


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_broker() -> None:
    """A broker on localhost:19092: the one already there, Redpanda when Docker answers, else the local Kafka."""
    if port_open(BROKER_PORT):
        log.info("using the broker already on %s", BOOTSTRAP)
        return
    docker = (subprocess.run(["docker", "info"], capture_output=True, timeout=20) if shutil.which("docker")
              else None)
    if docker is not None and docker.returncode == 0:
        log.info("starting Redpanda with docker compose")
        subprocess.run(["docker", "compose", "-f", "infra/docker-compose.yml", "up", "-d", "--wait"], cwd=REPO_ROOT,
                       check=True)
    else:
        log.info("no Docker engine: starting the local Kafka broker")
        subprocess.run([sys.executable, "infra/kafka/broker.py", "up"], cwd=REPO_ROOT, check=True)


def kafka_end_offsets(topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "run-pipeline-drain"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {}
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in metadata.partitions}
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline


class Pipeline:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children: dict[str, Child] = {}
        self.layers = layers(args.data_dir, args.trigger)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYSPARK_PYTHON": sys.executable,
                    "PYSPARK_DRIVER_PYTHON": sys.executable}

    def start(self, name: str, script: str, *script_args: str) -> None:
        self.children[name] = Child(name, [sys.executable, script, *script_args], self.args.log_dir, self.env)

    def start_all(self) -> None:
        args = self.args
        if args.demo:
            # --history 0: the snapshot holds only what the recording sent, so the demo's trades are the recording's
            self.start("kraken", "ingestion/fake_kraken.py", "--port", str(args.demo_port), "--replay",
                       str(args.recording), "--pace", args.pace, "--pairs", ",".join(args.demo_pairs),
                       "--history", "0")
            wait_for(lambda: port_open(args.demo_port), 30, "the fake Kraken")
        producer_args = ["--bootstrap", BOOTSTRAP, "--topic", args.topic]
        for pair in args.pair:
            producer_args += ["--pair", pair]
        if args.demo:
            producer_args += ["--ws-url", f"ws://127.0.0.1:{args.demo_port}/v2"]
        self.start("producer", "ingestion/kraken_trades_ws.py", *producer_args)
        self.start_ready_layers()

    def start_ready_layers(self) -> None:
        """Start each Spark layer once its input exists: Bronze at once, Silver once Bronze committed a batch, ..."""
        upstream: Layer | None = None
        for layer in self.layers[: self.args.layers]:
            ready = upstream is None or (upstream.out / "_spark_metadata").is_dir()
            if layer.name not in self.children and ready:
                log.info("starting %s", layer.name)
                self.start(layer.name, layer.script, "--out", str(layer.out), "--checkpoint", str(layer.checkpoint),
                           "--trigger", self.args.trigger,
                           *(["--topic", self.args.topic] if layer.name == "bronze" else []), *layer.extra_args)
            upstream = layer

    def watch(self, stop: threading.Event) -> str | None:
        """Wait for a stop request or a process that ends on its own; return the name of a failed process."""
        while not stop.wait(0.5):
            self.start_ready_layers()
            for name, child in self.children.items():
                if not child.running():
                    return name
        return None

    def stop_all(self) -> int:
        """Stop in a safe order; return 0 when every process stopped cleanly."""
        failures = []
        codes = {}
        if "producer" in self.children:
            codes["producer"] = self.children["producer"].stop(signal.SIGINT, self.args.drain_timeout + 30)
        if "kraken" in self.children:
            self.children["kraken"].stop(signal.SIGTERM, 10)
        upstream_latest = None
        for layer in self.layers[: self.args.layers]:
            child = self.children.get(layer.name)
            if child is None:  # never started: its input never appeared
                continue
            if child.running():
                self.drain(layer, upstream_latest)
            codes[layer.name] = child.stop(signal.SIGTERM, 90)
            upstream_latest = latest_batch_id(layer.out / "_spark_metadata")
        for name, code in codes.items():
            if code not in (0, None):
                failures.append(f"{name} exited {code} (see {self.children[name].log_path})")
        for failure in failures:
            log.error("%s", failure)
        return 1 if failures else 0

    def drain(self, layer: Layer, upstream_latest: int | None) -> None:
        """Let a job land everything its input holds now, up to --drain-timeout."""
        if layer.name == "bronze":
            end_offsets = kafka_end_offsets(self.args.topic)
            done = lambda: kafka_caught_up(checkpoint_progress(layer.checkpoint)[1], end_offsets, self.args.topic)  # noqa: E731
        else:
            done = lambda: all(file_source_caught_up(checkpoint_progress(query)[1], upstream_latest)  # noqa: E731
                               for query in query_checkpoints(layer.checkpoint))
        log.info("waiting for %s to catch up with its input (up to %.0fs)", layer.name, self.args.drain_timeout)
        if not wait_for(done, self.args.drain_timeout, layer.name, raise_on_timeout=False):
            log.warning("%s had not caught up after %.0fs; the rest lands on the next run (it is safe in its "
                        "checkpointed input)", layer.name, self.args.drain_timeout)

    def summary(self) -> None:
        import pyarrow.parquet as pq

        for layer in self.layers[: self.args.layers]:
            files = list(read_sink_log(layer.out).files) if (layer.out / "_spark_metadata").is_dir() else []
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files if os.path.exists(f))
            print(f"{layer.name:<7} {layer.out}: {rows} rows in {len(files)} committed files", flush=True)
        print(f"logs in {self.args.log_dir}; the broker is still running (make broker-down stops it)", flush=True)


def wait_for(predicate, timeout: float, what: str, raise_on_timeout: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    if raise_on_timeout:
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
    return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", action="append", help="trading pair, repeatable (default XBT/USDT; demo: the "
                                                        "recording's pairs)")
    parser.add_argument("--topic", default="crypto.trades", help="Kafka topic (default %(default)s)")
    parser.add_argument("--trigger", default="2 seconds", help='Spark trigger for every layer (default "2 seconds")')
    parser.add_argument("--layers", type=int, choices=[1, 2, 3], default=3,
                        help="how many Spark layers to run: 1 Bronze, 2 +Silver, 3 +Gold (default 3)")
    parser.add_argument("--demo", action="store_true", help="offline: the producer reads a fake Kraken replaying "
                                                            "--recording instead of live Kraken")
    parser.add_argument("--recording", type=Path, default=DEMO_RECORDING, help="JSONL recording for --demo")
    parser.add_argument("--pace", choices=["recorded", "fast"], default="recorded", help="demo replay pace")
    parser.add_argument("--demo-port", type=int, default=DEMO_PORT, help="fake Kraken port for --demo")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data", help="where the layers live")
    parser.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="process logs (default data/logs)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="on stop, how long each job may take to catch up with its input (default 60 s)")
    args = parser.parse_args(argv)
    args.demo_pairs = ["BTC/USDT", "ETH/USD", "DOGE/USD"]
    if not args.pair:
        args.pair = ["XBT/USDT", "ETH/USD", "XDG/USD"] if args.demo else ["XBT/USDT"]
    if args.demo and not args.recording.exists():
        parser.error(f"--recording {args.recording} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level="INFO", format="[pipeline] %(asctime)s %(levelname)s %(message)s")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        ensure_broker()
    except (subprocess.SubprocessError, OSError) as exc:
        log.error("could not start a broker on %s: %s", BOOTSTRAP, exc)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pipeline = Pipeline(args)
    try:
        pipeline.start_all()
        log.info("running; press Ctrl-C to stop (logs in %s)", args.log_dir)
        ended = pipeline.watch(stop)
        if ended:
            log.error("%s ended on its own (exit %s); stopping the rest", ended, pipeline.children[ended].proc.returncode)
    finally:
        log.info("stopping: producer first (it flushes to Kafka), then each Spark job once caught up")
        code = pipeline.stop_all()
    pipeline.summary()
    return 1 if ended else code


if __name__ == "__main__":
    raise SystemExit(main())
