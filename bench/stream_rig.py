"""The streaming rig the latency and small-files benchmarks share: fake Kraken (in this process, its own market at a
steady rate) -> the producer (subprocess) -> a new topic on the real broker -> one or more Bronze jobs (subprocesses,
each with its own trigger settings, output folder and checkpoint).

The jobs start first and the market starts only once every job's query is running, so start-up is not counted;
after `duration` seconds the producer is stopped (SIGINT: it flushes), the jobs may be left to land everything the
topic holds (`drain`), then they are stopped with SIGINT (each finishes its running batch).
"""

from __future__ import annotations

import logging
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import bench_common as bc
from lakehouse.common.polling import wait_until
from lakehouse.fake_kraken.server import FakeKraken

END_RE = re.compile(r"end\[[^\]]+\]=(\S+)")

log = logging.getLogger("stream_rig")


@dataclass
class Job:
    label: str
    args: list[str]
    out: Optional[Path] = None
    checkpoint: Optional[Path] = None
    log_path: Optional[Path] = None
    proc: Any = None
    exit_code: Optional[int] = None
    extra: dict = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def landed_offsets(log_text: str) -> int:
    """Sum of the end offsets in the job's last progress line (0 before the first batch)."""
    ends = END_RE.findall(log_text)
    if not ends:
        return 0
    return sum(int(part.split(":")[1]) for part in ends[-1].split(","))


def warm_up(topic: str, n: int = 30) -> None:
    """A few producer-shaped records made an hour ago, so each job runs its first batch before the market starts
    (the benchmarks leave them out: their ts_event is before the window)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bc.BOOTSTRAP})
    for key, value in bc.producer_values(bc.v2_trade_frames(n, ts_us=(time.time_ns() // 1000) - 3_600_000_000)):
        p.produce(topic, value, key)
    p.flush(30)


def run_stream(rate: float, duration: float, jobs: list[Job], workdir: Path, *, drain: bool,
               topic_config: Optional[dict[str, str]] = None, partitions: int = 3,
               start_timeout: float = 240.0, on_start: Optional[Callable[[str], Any]] = None) -> dict[str, Any]:
    """Run the rig; `on_start(topic)` is called the moment the market starts (e.g. to start a side measurement)."""
    topic = bc.create_topic("stream", partitions, topic_config)
    warm_up(topic)
    for i, job in enumerate(jobs):
        job.out, job.checkpoint = workdir / f"bronze-{i}", workdir / f"ckpt-{i}"
        job.log_path = workdir / f"bronze-{i}.log"
        job.proc = bc.start_script(bc.BRONZE_JOB, ["--bootstrap", bc.BOOTSTRAP, "--topic", topic, "--out",
                                                   str(job.out), "--checkpoint", str(job.checkpoint),
                                                   "--startingOffsets", "earliest", *job.args],
                                   job.log_path, SPARK_MASTER="local[2]")
    server = None
    producer = None
    try:
        for job in jobs:
            wait_until(lambda: "landing topic" in job.log_text() or job.proc.poll() is not None, start_timeout,
                       0.2, f"Bronze job {job.label} to start")
            if job.proc.poll() is not None:
                raise RuntimeError(f"Bronze job {job.label} exited: {job.log_text()[-3000:]}")
        for job in jobs:  # a first batch (the warm-up records) proves the query runs; a minimum-size job may wait
            if "--minOffsetsPerTrigger" not in job.args:
                wait_until(lambda: bc.progress_lines(job.log_text()) or job.proc.poll() is not None, start_timeout,
                           0.2, f"Bronze job {job.label}'s first batch")
        server = FakeKraken(pairs=bc.NATIVE_PAIRS, rate=rate, history=0, seed=11, max_batch=3).start()
        producer_log = workdir / "producer.log"
        args = ["--ws-url", server.url("v2"), "--topic", topic, "--bootstrap", bc.BOOTSTRAP, "--stats-interval", "10"]
        for p in bc.USER_PAIRS:
            args += ["--pair", p]
        producer = bc.start_script(bc.PRODUCER, args, producer_log)
        wait_until(lambda: server.market_started.is_set() or producer.poll() is not None, 60, 0.01,
                   "the producer's subscription")
        t_start = time.time()
        side = on_start(topic) if on_start else None
        log.info("market running at %.0f trades/s for %.0fs (topic %s, %d Bronze job(s))", rate, duration, topic,
                 len(jobs))
        time.sleep(duration)
        server.halt_market()
        t_stop = time.time()
        producer_rc = bc.stop_process(producer, signal.SIGINT)
        wm = bc.Watermarks(topic)
        total = wm.total()
        wm.close()
        if drain:
            for job in jobs:
                try:
                    wait_until(lambda: landed_offsets(job.log_text()) >= total, 120, 0.2,
                               f"Bronze job {job.label} to land {total} records")
                except TimeoutError as exc:
                    log.warning("%s", exc)
    finally:
        if producer is not None and producer.poll() is None:
            bc.stop_process(producer, signal.SIGINT)
        if server is not None:
            server.stop()
        for job in jobs:
            job.exit_code = bc.stop_process(job.proc, signal.SIGINT, timeout=120)
        bc.delete_topics([topic])
    return {"topic": topic, "side": side, "t_start": t_start, "t_stop": t_stop, "records": total,
            "producer_exit": producer_rc,
            "producer_final": [ln for ln in producer_log.read_text().splitlines() if "final stats" in ln][-1:]}


def batch_rows(job: Job, columns: list[str]) -> list[dict[str, Any]]:
    """Each committed batch of the job's Bronze output with its rows (pyarrow, only `columns`)."""
    import pyarrow.parquet as pq

    out = []
    for b in bc.sink_batches(job.out):
        tables = [pq.read_table(bc.local_path(path), columns=columns) for path, _ in b["files"]]
        out.append({**b, "tables": tables})
    return out
