"""A streaming job's life: waiting for its input, running its queries while logging each micro-batch and publishing
each query's status (lakehouse.observe: data/status/<layer>.json, read by `make status` and the page), and stopping
cleanly on Ctrl-C or SIGTERM (each query finishes its running batch; with --drain-on-stop it then lands what its input
holds now).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import Any, Callable, Optional

from lakehouse.observe.queries import QueryReporter
from lakehouse.spark.flags import DEFAULT_DRAIN_TIMEOUT_S
from lakehouse.spark.progress import describe_error, format_progress
from lakehouse.spark.session import STOP_TIMEOUT_S

STOP_GRACE_S = 60.0  # how long a stop request waits for the running micro-batch to finish

log = logging.getLogger("spark_jobs")


class StopRequest:
    """Turns SIGINT and SIGTERM into a flag the job's wait loop checks, so a batch is never cut in half by us."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():  # a second Ctrl-C: stop waiting for the batch
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    def sleep(self, seconds: float, step_s: float = 0.1) -> bool:
        """Sleep up to `seconds`, waking early once a stop is requested; True if one was.

        The main thread must never block in self.event.wait(): the handler runs on the main thread, and a signal that
        lands while wait() holds the event's lock makes the handler's set() wait for that lock forever (Python's
        signal docs: no locks in handlers). is_set() takes no lock, so polling it is safe."""
        deadline = time.monotonic() + seconds
        while not self.event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(step_s, left))
        return True


BatchDescriber = Callable[[str, dict], Optional[str]]  # (query name, progress) -> a log line, or None
Restart = Callable[[], Any]  # starts a query again, with the availableNow trigger, on the same checkpoint


def run_query(query, stop: StopRequest, poll_s: float = 0.5, drain: Restart | None = None,
              drain_timeout: float = DEFAULT_DRAIN_TIMEOUT_S) -> int:
    """run_queries() for a job with one query."""
    name = query.name or "query"
    return run_queries({name: query}, stop, poll_s=poll_s, drain={name: drain} if drain else None,
                       drain_timeout=drain_timeout)


def run_queries(queries: dict[str, Any], stop: StopRequest, describe: BatchDescriber | None = None,
                poll_s: float = 0.5, drain: dict[str, Restart] | None = None,
                drain_timeout: float = DEFAULT_DRAIN_TIMEOUT_S) -> int:
    """Wait for the queries, log each finished micro-batch, stop them all cleanly on request or when one fails.

    On a stop request each query, in the order given, finishes its running micro-batch and stops. With `drain`
    ({name: restart}), it is then started again with the availableNow trigger to land what its input holds now,
    bounded by `drain_timeout` seconds: a pipeline whose layers are queried in order (Bronze, Silver, Gold) ends with
    each layer holding everything the layer before it had landed. `describe(name, progress)` makes a batch's log line
    (None: nothing to say); by default format_progress() for a batch with rows. Each query's status (state, last
    batch, rows/s, offsets behind; failed with the reason) is published under its layer's name (QueryReporter).
    Returns the exit code: 0 finished (available-now) or stopped on request, 1 a query failed or a drain did not
    finish, 130 a second Ctrl-C.
    """
    from pyspark.errors import StreamingQueryException

    queries = dict(queries)
    batch_log = _BatchLog(describe or _describe_with_rows)
    reporter = QueryReporter(list(queries))
    failed = False
    try:
        while not failed and not stop.event.is_set() and any(q.isActive for q in queries.values()):
            for name, query in queries.items():
                try:
                    query.awaitTermination(poll_s / len(queries))
                except StreamingQueryException:
                    failed = True  # reported below through query.exception()
                batch_log.new_batches(name, query)
                reporter.poll(name, query)
        stopping = stop.event.is_set()
        if stopping:
            log.info("%s received: letting the running micro-batch finish, then stopping%s", stop.signal_name,
                     " (each layer first lands what its input holds now)" if drain else "")
        for name in queries:
            reporter.state(name, "stopping", f"{stop.signal_name} received" if stopping else None)
        for name, query in list(queries.items()):
            _wait_for_idle(query)
            stop_query(query)
            batch_log.new_batches(name, query)
            if stopping and drain and name in drain and query.exception() is None:
                if query.isActive:  # did not stop in time (e.g. a fetch from a broker that is gone): no drain
                    log.warning("%s did not stop in time, so it does not land what its input holds now; the rest "
                                "lands on its next start (it is safe in its checkpointed input)", name)
                    failed = True
                    continue
                queries[name], drained = _drain(name, drain[name], drain_timeout)
                failed |= not drained
                batch_log.new_batches(name, queries[name])
                reporter.poll(name, queries[name])
    except KeyboardInterrupt:
        log.warning("second interrupt: stopping now; the unfinished batch will be redone on restart")
        for name, query in queries.items():
            stop_query(query)
            reporter.state(name, "stopped", "second interrupt: stopped at once")
        return 130
    for name, query in queries.items():
        error = query.exception()
        if error is not None:
            log.error("the %s query failed: %s", name, describe_error(error))
            failed = True
            reporter.state(name, "failed", describe_error(error))
        else:
            reporter.state(name, "stopped", "finished" if not stop.event.is_set() else
                           f"stopped on request ({stop.signal_name})")
    return 1 if failed else 0


class _NotStarted:
    """Stands for a drain query that could not start: inactive, no exception of its own, no progress."""
    isActive = False
    lastProgress = None
    recentProgress: list = []

    def exception(self) -> None:
        return None

    def stop(self) -> None:
        pass


def _drain(name: str, restart: Restart, timeout: float) -> tuple[Any, bool]:
    """Start `name` again with availableNow and wait for it to land what its input holds now; (query, finished)."""
    log.info("%s: landing what its input holds now (up to %.0fs)", name, timeout)
    started = time.monotonic()
    try:
        query = restart()
    except Exception as exc:  # noqa: BLE001 - e.g. its input is unreachable now: reported, never a traceback
        log.warning("%s could not start to land what its input holds (%s); the rest lands on its next start",
                    name, describe_error(exc))
        return _NotStarted(), False
    try:
        finished = query.awaitTermination(timeout)
    except Exception:  # noqa: BLE001 - a failed drain is reported through query.exception() by the caller
        return query, False
    if not finished:
        stop_query(query)
        log.warning("%s had not landed everything its input holds after %.0fs; the rest lands on its next start "
                    "(it is safe in its checkpointed input)", name, timeout)
        return query, False
    log.info("%s: caught up with its input in %.1fs", name, time.monotonic() - started)
    return query, True


def wait_until_ready(ready: Callable[[], bool], stop: StopRequest, waiting_line: str,
                     say_again_s: float = 30.0, poll_s: float = 1.0) -> bool:
    """Block until ready() (checked every poll_s), logging `waiting_line` once and again every say_again_s; False
    when a stop was requested first."""
    next_line = 0.0
    while not stop.event.is_set():
        if ready():
            return True
        now = time.monotonic()
        if now >= next_line:
            log.info("%s", waiting_line)
            next_line = now + say_again_s
        stop.sleep(poll_s)
    return False


def stop_query(query) -> None:
    """Stop a query if it runs; a stop that times out (spark.sql.streaming.stopTimeout) is logged, not raised: the
    job is on its way out, and an interrupted batch is redone on restart."""
    try:
        if query.isActive:
            query.stop()
    except Exception as exc:  # noqa: BLE001 - py4j wraps Spark's TimeoutException
        log.warning("the %s query did not stop within %.0fs: %s", query.name, STOP_TIMEOUT_S, describe_error(exc))


def drain_restart(start_query: Callable[..., Any], spark, args: argparse.Namespace) -> Restart:
    """What --drain-on-stop runs: the job's query started again, on the same checkpoint, with availableNow."""
    return lambda: start_query(spark, argparse.Namespace(**{**vars(args), "available_now": True}))


def _describe_with_rows(_name: str, progress: dict[str, Any]) -> str | None:
    return format_progress(progress) if progress.get("numInputRows") or progress.get("batchId") == 0 else None


class _BatchLog:
    """Logs each micro-batch once."""

    def __init__(self, describe: BatchDescriber) -> None:
        self.describe = describe
        self.last_batch: dict[str, int] = {}

    def new_batches(self, name: str, query) -> None:
        for progress in query.recentProgress:
            batch = progress.get("batchId", -1)
            if batch <= self.last_batch.get(name, -1):
                continue
            self.last_batch[name] = batch
            line = self.describe(name, progress)
            if line:
                log.info("%s", line)


def _wait_for_idle(query) -> None:
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and query.isActive and query.status.get("isTriggerActive"):
        time.sleep(0.1)
