"""The metadata a week of running leaves behind, built in minutes for bench/long_run.py.

What is reproduced here, in the shape Spark and Delta leave it (file names, JSON lines, Hadoop's hidden .crc files,
modification times spread over the simulated week), from live files of the same run used as templates:
  - Bronze's _spark_metadata (Spark's file sink log): the last compact file, listing every file of every batch of the
    week, and the batch files after it (compactInterval 10, the older ones deleted);
  - Silver's query checkpoint: the offsets/commits of its last 20 batches (minBatchesToRetain; its Bronze reader's
    offset is a position in Bronze's list, and it keeps no log of its own); Bronze's offsets/commits likewise;
  - Silver's and Gold's _delta_log: one commit per micro-batch cloned from a live commit of the same kind (Silver:
    an insert-only MERGE adding a file; Gold: its MERGE's removes and adds), auto compaction (Silver's) once a
    partition holds 20 files under 8 MB, the hourly OPTIMIZE of the partitions written since the last round (files under 16 MB).
    Delta itself writes the checkpoints (every few thousand versions while building, then of the last version) and
    deletes the expired commits (its own clean-up, by modification time, cut at a day boundary); the checkpoints
    every 10 versions in between are sparse files of the last one's size (listed, never read).

The data files of the simulated commits are not written (a live batch never opens them: Silver's source skips every
Bronze file its log has seen; the MERGEs prune past days and older ids). Today's partition of Silver and Gold is real:
the simulated day ends in an OPTIMIZE that replaces its files with real files (a day so far of trades, written with
Spark, and Gold's bars of them by Gold's own writer), so auto compaction and the MERGEs read real data. Each past
day of Gold ends as one real file too (a copy of today's bars, closed): a restarted Gold writer looks for the open bars
in every Gold file (Delta keeps no statistics on a BOOLEAN, so none is skipped).

Pure functions first (tested in tests/unit/test_long_run.py); no Spark import at module level.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

UTC = timezone.utc
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
LOG_COMPACT_INTERVAL = 10  # spark.sql.streaming.fileSink.log.compactInterval / fileSource.log.compactInterval
MIN_BATCHES_TO_RETAIN = 20  # spark.sql.streaming.minBatchesToRetain (lakehouse.spark.sinks)
AUTO_COMPACT_FILES = 20  # WRITER_SESSION_CONF autoCompact.minNumFiles
AUTO_COMPACT_SMALL = 8 * 1024 * 1024  # autoCompact.minFileSize
OPTIMIZE_SMALL = 16 * 1024 * 1024  # OPTIMIZE_MIN_FILE_BYTES
DISK_KINDS = ("data", "delta_log", "checkpoints", "spark_metadata")


# ---------------------------------------------------------------------------------------------------------------------
# Pure: schedules, log layouts, disk categories


def batch_count(days: float, batch_seconds: int) -> int:
    """Micro-batches of one layer in `days` at one batch every `batch_seconds`."""
    return int(days * DAY_MS // (batch_seconds * 1000))


def compact_layout(last_batch: int, interval: int = LOG_COMPACT_INTERVAL) -> tuple[Optional[int], list[int]]:
    """The files a CompactibleFileStreamLog holds after batches 0..last_batch once the clean-up ran: the newest
    compact batch (every `interval`-th batch, ids interval-1, 2*interval-1, ...; None before the first) and the batch
    files after it."""
    if last_batch < 0:
        return None, []
    compact = (last_batch + 1) // interval * interval - 1
    if compact < 0:
        return None, list(range(0, last_batch + 1))
    return compact, list(range(compact + 1, last_batch + 1))


def retained_batches(last_batch: int, keep: int = MIN_BATCHES_TO_RETAIN) -> range:
    """The batch ids whose offsets/commits a checkpoint keeps (Spark purges older ones)."""
    return range(max(0, last_batch - keep + 1), last_batch + 1)


def disk_kind(relative: Path) -> str:
    """What a file under a state's data folder is: data (Parquet, with their .crc), delta_log, checkpoints (the
    queries'), spark_metadata (Bronze's sink log)."""
    parts = relative.parts
    if "_delta_log" in parts:
        return "delta_log"
    if "_spark_metadata" in parts:
        return "spark_metadata"
    if any(p.startswith("checkpoint") or p.endswith("_checkpoint") or p == "checkpoints" for p in parts[:-1]):
        return "checkpoints"
    return "data"


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def hadoop_crc(data: bytes) -> bytes:
    """Hadoop's LocalFileSystem checksum file: 'crc\\0', 512 bytes per checksum, a CRC32 per 512-byte chunk."""
    return b"crc\x00" + struct.pack(">i", 512) + b"".join(struct.pack(">I", zlib.crc32(data[i:i + 512]))
                                                        for i in range(0, len(data), 512))


def json_lines(actions: Iterable[dict]) -> bytes:
    return "\n".join(json.dumps(a, separators=(",", ":")) for a in actions).encode()


def delta_name(version: int, suffix: str = "json") -> str:
    return f"{version:020d}.{suffix}"


# ---------------------------------------------------------------------------------------------------------------------
# Pure: a Delta table's week of commits


@dataclass
class SimFile:
    path: str
    day: str
    size: int
    added_ms: int


@dataclass
class DeltaWeek:
    """A table's commits over the week, as actions (no I/O): `batch()` per micro-batch, `hourly()` per maintenance
    round. `commits` holds (timestamp ms, commitInfo, actions) in version order after `first_version`."""

    column: str  # the partition column (trade_date, bar_date)
    adds_per_batch: int
    removes_per_batch: int
    file_size: int
    compaction_ratio: float = 1.0  # a compacted file's size / the sum of the files it replaces (better compression)
    auto_compact: bool = True  # the table's delta.autoOptimize.autoCompact (Silver: on; Gold: off)
    commits: list[tuple[int, dict, list[dict]]] = field(default_factory=list)
    live: dict[str, list[SimFile]] = field(default_factory=dict)
    changed: set = field(default_factory=set)
    removed: list[tuple[int, int]] = field(default_factory=list)  # (deletion ms, size) of every removed file
    counter: int = 0

    def new_file(self, day: str, size: int, at_ms: int) -> SimFile:
        self.counter += 1
        return SimFile(f"{self.column}={day}/part-00000-{uuid.UUID(int=self.counter)}.c000.snappy.parquet", day,
                       size, at_ms)

    def remove(self, f: SimFile, at_ms: int, data_change: bool) -> dict:
        self.removed.append((at_ms, f.size))
        return {"remove": {"path": f.path, "deletionTimestamp": at_ms, "dataChange": data_change,
                           "extendedFileMetadata": True, "partitionValues": {self.column: f.day}, "size": f.size}}

    def add(self, f: SimFile, data_change: bool) -> dict:
        return {"add": {"path": f.path, "partitionValues": {self.column: f.day}, "size": f.size,
                        "modificationTime": f.added_ms, "dataChange": data_change}}

    def batch(self, at_ms: int) -> None:
        day = day_of(at_ms)
        files = self.live.setdefault(day, [])
        actions = [self.remove(files.pop(), at_ms, True) for _ in range(min(self.removes_per_batch, len(files)))]
        for _ in range(self.adds_per_batch):
            f = self.new_file(day, self.file_size, at_ms)
            files.append(f)
            actions.append(self.add(f, True))
        self.commits.append((at_ms, {"operation": "MERGE"}, actions))
        self.changed.add(day)
        small = [f for f in files if f.size < AUTO_COMPACT_SMALL]
        if self.auto_compact and len(small) >= AUTO_COMPACT_FILES:
            self.compact(at_ms + 500, day, small, auto=True)

    def compact(self, at_ms: int, day: str, files: list[SimFile], auto: bool) -> None:
        merged = self.new_file(day, int(sum(f.size for f in files) * self.compaction_ratio), at_ms)
        live = self.live[day]
        for f in files:
            live.remove(f)
        live.append(merged)
        self.commits.append((at_ms, {"operation": "OPTIMIZE", "auto": auto},
                             [*(self.remove(f, at_ms, False) for f in files), self.add(merged, False)]))

    def hourly(self, at_ms: int) -> None:
        """The maintenance round: OPTIMIZE of the partitions written since the last one, files under 16 MB."""
        for day in sorted(self.changed):
            small = [f for f in self.live.get(day, []) if f.size < OPTIMIZE_SMALL]
            if len(small) >= 2:
                self.compact(at_ms, day, small, auto=False)
        self.changed = set()

    def run(self, start_ms: int, batches: int, batch_ms: int) -> None:
        next_hour = (start_ms // HOUR_MS + 1) * HOUR_MS
        for b in range(batches):
            at = start_ms + b * batch_ms
            while at >= next_hour:
                self.hourly(next_hour + 60_000)
                next_hour += HOUR_MS
            self.batch(at)


def kept_removed_bytes(removed: list[tuple[int, int]], now_ms: int, retention_ms: int) -> int:
    """Bytes of removed files still on disk at now_ms: VACUUM deletes them once older than the retention."""
    return sum(size for at, size in removed if at >= now_ms - retention_ms)


# ---------------------------------------------------------------------------------------------------------------------
# I/O: files as Hadoop's local file system writes them


def hadoop_checksums(spark) -> bool:
    """Whether the session's local file system writes Hadoop's hidden .<name>.crc beside every file (the jobs' own
    settings turn it off: lakehouse.spark.sinks); the week is reproduced the same way."""
    return spark.conf.get("spark.hadoop.fs.file.impl", "") != "org.apache.hadoop.fs.RawLocalFileSystem"


HADOOP_CHECKSUMS = {"on": True}  # set from the session by bench/long_run.py (hadoop_checksums)


def write_file(path: Path, data: bytes, mtime_ms: int, crc: Optional[bool] = None) -> None:
    """`data` at `path`, with its hidden Hadoop checksum file when the jobs' file system writes them (crc None: as
    HADOOP_CHECKSUMS says), both modified at mtime_ms."""
    path.write_bytes(data)
    os.utime(path, (mtime_ms / 1000, mtime_ms / 1000))
    if HADOOP_CHECKSUMS["on"] if crc is None else crc:
        crc_path = path.with_name(f".{path.name}.crc")
        crc_path.write_bytes(hadoop_crc(data))
        os.utime(crc_path, (mtime_ms / 1000, mtime_ms / 1000))


def sparse_file(path: Path, size: int, mtime_ms: int) -> None:
    """A file of `size` bytes that takes no disk blocks (listed, never read)."""
    with open(path, "wb") as out:
        out.truncate(size)
    os.utime(path, (mtime_ms / 1000, mtime_ms / 1000))


def write_compactible_log(folder: Path, last_batch: int, entries_of: Callable[[int], list[dict]],
                          mtime_of: Callable[[int], int], header: bytes = b"v1") -> int:
    """A file sink's _spark_metadata or a file source's log after batches 0..last_batch (compact_layout); returns the
    compact file's size."""
    folder.mkdir(parents=True, exist_ok=True)
    compact, deltas = compact_layout(last_batch)
    size = 0
    if compact is not None:
        data = header + b"\n" + json_lines(e for b in range(compact + 1) for e in entries_of(b))
        write_file(folder / f"{compact}.compact", data, mtime_of(compact))
        size = len(data)
    for b in deltas:
        write_file(folder / str(b), header + b"\n" + json_lines(entries_of(b)), mtime_of(b))
    return size


def write_batch_logs(checkpoint: Path, last_batch: int, offsets_of: Callable[[int], bytes],
                     commit: bytes, mtime_of: Callable[[int], int]) -> None:
    """offsets/N and commits/N of the batches a checkpoint keeps."""
    for sub in ("offsets", "commits"):
        (checkpoint / sub).mkdir(parents=True, exist_ok=True)
    for b in retained_batches(last_batch):
        write_file(checkpoint / "offsets" / str(b), offsets_of(b), mtime_of(b))
        write_file(checkpoint / "commits" / str(b), commit, mtime_of(b) + 500)


def disk_usage(root: Path) -> dict[str, dict[str, int]]:
    """Apparent bytes and file counts under a state's folder by disk_kind (sparse files count their apparent size:
    what they stand for)."""
    usage = {k: {"bytes": 0, "files": 0} for k in DISK_KINDS}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath) / name
            try:
                size = full.lstat().st_size
            except FileNotFoundError:
                continue
            kind = disk_kind(full.relative_to(root))
            usage[kind]["bytes"] += size
            usage[kind]["files"] += 1
    return usage


def read_actions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def live_commit(table: Path, operation: str) -> list[dict]:
    """The newest commit of `operation` that adds a file in a live table's log: its actions."""
    log = table / "_delta_log"
    for path in sorted(log.glob("*.json"), reverse=True):
        actions = read_actions(path)
        info = actions[0].get("commitInfo", {})
        if info.get("operation") == operation and any("add" in a for a in actions):
            return actions
    raise RuntimeError(f"no {operation} commit adding a file in {log}")


def table_files(table: Path) -> list[dict]:
    """The add actions of a table's current version, replayed from its JSON commits (a small staging table)."""
    files: dict[str, dict] = {}
    for path in sorted((table / "_delta_log").glob("*.json")):
        for action in read_actions(path):
            if "add" in action:
                files[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return list(files.values())


# ---------------------------------------------------------------------------------------------------------------------
# Delta: writing a DeltaWeek into a real table's log


TIMESTAMP_PREFIX_LEN = len("2026-01-01T")


def rewrite_stats(stats: Optional[str], at_ms: int, id_base: int) -> Optional[str]:
    """A live add's statistics moved to a simulated batch: timestamps to at_ms, ids (trade_id, offset) to id_base, so
    that data skipping keeps a live batch's MERGE away from files that do not exist."""
    if not stats:
        return stats
    value = json.loads(stats)
    stamp = datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def moved(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: moved(v, k) for k, v in node.items()}
        if isinstance(node, str) and len(node) > TIMESTAMP_PREFIX_LEN and node[4] == "-" and node[10] == "T":
            return stamp
        if isinstance(node, bool) and key == "is_open":
            return False  # a past minute's bar is closed
        if isinstance(node, int) and key == "ts_event_us":
            return at_ms * 1000
        if isinstance(node, int) and key in ("trade_id", "offset"):
            return id_base
        return node
    for bound in ("minValues", "maxValues"):
        if bound in value:
            value[bound] = moved(value[bound])
    return json.dumps(value, separators=(",", ":"))


def delta_checkpoint(spark, table: Path) -> int:
    """Delta's own checkpoint of the table's newest version (the state replayed by Delta); returns the version."""
    jvm = spark.sparkContext._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, str(table))
    none = jvm.scala.Option.empty()
    snapshot = delta_log.update(False, none, none)
    delta_log.checkpoint(snapshot, none)
    return int(snapshot.version())


def delta_cleanup(spark, table: Path) -> None:
    """Delta's own clean-up of expired commits and checkpoints (what it runs after writing a checkpoint)."""
    jvm = spark.sparkContext._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, str(table))
    none = jvm.scala.Option.empty()
    snapshot = delta_log.update(False, none, none)
    delta_log.cleanUpExpiredLogs(snapshot, none, jvm.org.apache.spark.sql.delta.TruncationGranularity.DAY())


@dataclass
class Template:
    """A live commit of the same run, cloned for every simulated commit of its kind."""

    info: dict
    adds: list[dict]
    removes: int
    others: list[dict]  # cdc actions
    delta_crc: Optional[bytes]

    @classmethod
    def of(cls, table: Path, operation: str = "MERGE") -> "Template":
        actions = live_commit(table, operation)
        crcs = sorted((table / "_delta_log").glob("[0-9]*.crc"))
        return cls(info=actions[0]["commitInfo"], adds=[a["add"] for a in actions if "add" in a],
                   removes=sum(1 for a in actions if "remove" in a),
                   others=[a for a in actions if "cdc" in a], delta_crc=crcs[-1].read_bytes() if crcs else None)


def write_delta_week(spark, table: Path, week: DeltaWeek, template: Template, real_adds: list[dict],
                     real_source: Path, now_ms: int, user_metadata: Optional[str], chunk: int = 4000,
                     past_file: Optional[tuple[Path, dict]] = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Append the week's commits to a live table's log (created by the job's own ensure_*), then the final OPTIMIZE
    that replaces today's simulated files with the real ones (real_adds, copied from real_source) and, with
    past_file (a real Parquet file and its add action), each past day's files with a copy of it (Gold: a reader
    looking for open bars cannot skip a file by statistics and opens every one); Delta checkpoints every `chunk`
    versions and at the end, then cleans up as it would. Returns what was written."""
    import shutil

    log_dir = table / "_delta_log"
    first = max(int(p.name.split(".")[0]) for p in log_dir.glob("*.json")) + 1
    created_ms = week.commits[0][0] - 60_000 if week.commits else now_ms
    for path in log_dir.iterdir():  # the table was created before the week's first commit (Delta's clean-up reads
        if path.is_file():          # modification times in version order: a newer version 0 would keep everything)
            os.utime(path, (created_ms / 1000, created_ms / 1000))
    engine = template.info.get("engineInfo", "")
    today = day_of(now_ms)
    version = first - 1
    checkpoints = []

    def commit(at_ms: int, info: dict, actions: list[dict]) -> None:
        nonlocal version
        version += 1
        info = {**info, "timestamp": at_ms, "readVersion": version - 1, "txnId": str(uuid.uuid4()),
                "engineInfo": engine}
        if user_metadata is not None:
            info["userMetadata"] = user_metadata
        write_file(log_dir / delta_name(version), json_lines([{"commitInfo": info}, *actions]), at_ms)
        if version % chunk == 0:
            checkpoints.append(delta_checkpoint(spark, table))
            # written now, but part of the week: modified when its commit was (else Delta's clean-up, which reads
            # modification times in version order, stops at it and keeps every later commit)
            for name in (delta_name(version, "checkpoint.parquet"), f".{delta_name(version, 'checkpoint.parquet')}.crc"):
                if (log_dir / name).exists():
                    os.utime(log_dir / name, (at_ms / 1000 + 0.5, at_ms / 1000 + 0.5))
            log(f"{table.name}: Delta checkpoint at version {version}")

    merge_info = {k: v for k, v in template.info.items() if k not in ("timestamp", "txnId", "readVersion",
                                                                        "userMetadata")}
    for i, (at, kind, actions) in enumerate(week.commits):
        if kind["operation"] == "MERGE":
            out = []
            adds = iter(template.adds)
            for a in actions:
                if "add" in a:
                    live = next(adds, template.adds[-1])
                    out.append({"add": {**live, **a["add"],
                                        "stats": rewrite_stats(live.get("stats"), at, i)}})
                else:
                    out.append(a)
            for other in template.others:
                cdc = dict(other["cdc"], path=f"_change_data/cdc-{uuid.uuid4()}.c000.snappy.parquet")
                out.append({"cdc": cdc})
            commit(at, merge_info, out)
        else:
            info = {"operation": "OPTIMIZE", "operationParameters": {"predicate": "[]", "auto": kind["auto"]},
                    "isolationLevel": "SnapshotIsolation", "isBlindAppend": False}
            commit(at, info, actions)
    # the real today: its simulated files replaced by the real ones (an OPTIMIZE as the hourly one)
    at = now_ms - 30_000
    removes = [week.remove(f, at, False) for f in week.live.pop(today, [])]
    adds = []
    for add in real_adds:
        dest = table / add["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_source / add["path"], dest)
        adds.append({"add": {**add, "dataChange": False, "modificationTime": at}})
    if past_file is not None:
        source, add = past_file
        for day in sorted(week.live):
            removes += [week.remove(f, at, False) for f in week.live[day]]
            path = f"{week.column}={day}/part-00000-{uuid.uuid4()}.c000.snappy.parquet"
            (table / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, table / path)
            adds.append({"add": {**add, "path": path, "partitionValues": {week.column: day}, "dataChange": False,
                                 "modificationTime": at}})
    commit(at, {"operation": "OPTIMIZE", "operationParameters": {"predicate": "[]", "auto": False},
                "isolationLevel": "SnapshotIsolation", "isBlindAppend": False}, removes + adds)
    final = delta_checkpoint(spark, table)
    checkpoint = log_dir / delta_name(final, "checkpoint.parquet")
    size = checkpoint.stat().st_size
    # the checkpoints every 10 versions Delta wrote during the week (older ones are deleted by the clean-up below)
    sparse = 0
    for v in range(first + (-first) % 10, final, 10):
        path = log_dir / delta_name(v, "checkpoint.parquet")
        json_path = log_dir / delta_name(v)
        if not path.exists() and json_path.exists():
            mtime = int(json_path.stat().st_mtime * 1000) + 500
            sparse_file(path, size, mtime)
            if HADOOP_CHECKSUMS["on"]:
                sparse_file(path.with_name(f".{path.name}.crc"), 8 + 4 * -(-size // 512), mtime)
            sparse += 1
    # Delta's own checksum files of the simulated versions (listed; never read: only the newest version's is)
    crc_files = 0
    if template.delta_crc is not None:
        for v in range(first, final):
            json_path = log_dir / delta_name(v)
            if not json_path.exists():  # deleted by Delta's clean-up after a checkpoint
                continue
            write_file(log_dir / delta_name(v, "crc"), template.delta_crc, int(json_path.stat().st_mtime * 1000))
            crc_files += 1
    delta_cleanup(spark, table)
    return {"first_version": first, "final_version": final, "checkpoint_bytes": size, "checkpoints": checkpoints,
            "sparse_checkpoints": sparse, "delta_crc_files": crc_files,
            "files_in_log": sum(1 for _ in log_dir.iterdir())}
