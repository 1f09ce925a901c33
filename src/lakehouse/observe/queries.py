"""A streaming query's status from Spark's progress: what run_queries() (lakehouse.spark.lifecycle) publishes for each
of its queries, as the component it is (bronze, silver or gold).

progress_fields() is pure: a progress dict (query.lastProgress) in, the status fields out. QueryReporter publishes
them: state starting (no batch yet) / running / stopping / stopped / failed (with the reason), the last batch's id,
duration, input rows and rates, for a Kafka source how many records it is behind the topic's end, and when its last
batch ended; at most once a second per query, and at once on a new batch or a change of state.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable

from lakehouse.observe import status

# The jobs' query names -> the component they are (all_layers names its queries by layer already).
COMPONENT_OF_QUERY = {"kafka_to_bronze_trades": "bronze", "bronze_to_silver_trades": "silver",
                      "silver_to_gold_ohlcv": "gold"}
HEARTBEAT_S = 1.0


def component_of(query_name: str) -> str:
    return COMPONENT_OF_QUERY.get(query_name, query_name)


def spark_time_us(text: str | None) -> int | None:
    """Spark's progress timestamp ("2026-09-25T17:48:26.844Z") in microseconds since the epoch; None if absent."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def kafka_offsets_behind(source: dict[str, Any]) -> int | None:
    """Records a Kafka source had not read when its batch was planned: sum over partitions of latestOffset -
    endOffset (both {"topic": {"partition": offset}}). None for a source that is not Kafka's."""
    end, latest = source.get("endOffset"), source.get("latestOffset")
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return None
    behind, found = 0, False
    for topic, offsets in latest.items():
        if not isinstance(offsets, dict):
            return None
        for partition, offset in offsets.items():
            read = (end.get(topic) or {}).get(partition, 0)
            if isinstance(offset, int) and isinstance(read, int):
                behind += max(0, offset - read)
                found = True
    return behind if found else None


def progress_fields(progress: dict[str, Any]) -> dict[str, Any]:
    """The status fields of one micro-batch's progress."""
    duration = (progress.get("durationMs") or {}).get("triggerExecution")
    started = spark_time_us(progress.get("timestamp"))
    fields: dict[str, Any] = {
        "batch_id": progress.get("batchId"),
        "batch_duration_ms": duration,
        "input_rows": progress.get("numInputRows"),
        "input_rows_per_s": progress.get("inputRowsPerSecond"),
        "rows_per_s": progress.get("processedRowsPerSecond"),
        "last_batch_us": started + int(duration or 0) * 1000 if started is not None else None,
    }
    behind = [kafka_offsets_behind(s) for s in progress.get("sources") or []]
    behind = [b for b in behind if b is not None]
    if behind:
        fields["offsets_behind"] = sum(behind)
        fields["max_offsets_behind"] = max(
            int((s.get("metrics") or {}).get("maxOffsetsBehindLatest") or 0) for s in progress["sources"])
    return fields


class QueryReporter:
    """Publishes each query's status as run_queries() sees it. Never raises (status must not stop a job)."""

    def __init__(self, names: list[str], publish: Callable[..., Any] = status.publish,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.publish, self.clock = publish, clock
        self.last_batch: dict[str, Any] = {}
        self.next_beat: dict[str, float] = {}
        for name in names:
            self._publish(name, state="starting", reason=None, started_us=status.now_us())

    def poll(self, name: str, query: Any) -> None:
        """After each wait on `query`: publish a new batch at once, else a heartbeat once a second."""
        try:
            progress = query.lastProgress
        except Exception:  # noqa: BLE001 - py4j errors while the JVM goes down
            progress = None
        batch = progress.get("batchId") if progress else None
        # an idle trigger's progress (no new input) has no addBatch: it ran no batch
        ran = bool(progress) and "addBatch" in (progress.get("durationMs") or {})
        new_batch = ran and batch != self.last_batch.get(name)
        if not new_batch and self.clock() < self.next_beat.get(name, 0.0):
            return
        fields: dict[str, Any] = {"state": "running" if progress else "starting"}
        if new_batch:
            self.last_batch[name] = batch
            fields.update(progress_fields(progress))
        elif progress:  # an idle trigger's progress still says how far behind the source is
            fields.update({k: v for k, v in progress_fields(progress).items()
                           if k in ("offsets_behind", "max_offsets_behind")})
        self._publish(name, **fields)

    def state(self, name: str, state: str, reason: str | None = None) -> None:
        self._publish(name, state=state, reason=reason)

    def _publish(self, name: str, **fields: Any) -> None:
        self.next_beat[name] = self.clock() + HEARTBEAT_S
        try:
            self.publish(component_of(name), **fields)
        except Exception:  # noqa: BLE001 - never let status reporting stop a job
            pass
