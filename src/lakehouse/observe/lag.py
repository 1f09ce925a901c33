"""How far behind its input each layer is, from the lake's local folders (no Spark, no broker):

  bronze  records behind the topic's end: from Bronze's own query progress (its status file), not from here
  silver  Bronze files not read yet: the files Bronze committed in its _spark_metadata from the position Silver's
          newest committed batch reads up to (its offset {"files": N}, <checkpoint>/offsets/<batch>; for a checkpoint
          of Spark's own file source, the files its log <checkpoint>/sources/0 does not list), and the rows in them
          (their Parquet footers)
  gold    Silver versions not folded into Gold yet: Silver's newest Delta version minus the version Gold holds
          through (the Gold writer's silver_version in its status file; else, for a Gold query reading Silver as a
          Delta stream, the reservoirVersion of its newest committed offset)

plus each table's version (Bronze: its newest committed batch; Silver and Gold: their newest Delta version).

Reads local folders only (data/...); s3a:// or hdfs:// layers show no lag here. Log files are immutable once written,
so a LogReader keeps what it parsed and reads only new files: a status request costs a few directory listings.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.bronze.audit import committed_files

LOG_NAME_RE = re.compile(r"^(\d+)(\.compact)?$")
DELTA_COMMIT_RE = re.compile(r"^(\d{20})\.json$")
DELTA_END_INDEX = 2 ** 63 - 1  # a Delta source offset with this index has read all of its reservoirVersion


# ---------------------------------------------------------------------------------------------------------------------
# Pure arithmetic


def versions_behind(silver_version: int | None, gold_through: int | None) -> int | None:
    """Silver versions Gold has not folded in yet (never negative); None when either is unknown."""
    if silver_version is None or gold_through is None:
        return None
    return max(0, silver_version - gold_through)


def changes_data(commit_text: str) -> bool:
    """A Delta commit (its _delta_log/N.json text) adds or removes data: an add or remove action with dataChange
    true. A compaction (OPTIMIZE, auto compaction) or a property change does not: a reader of the table's changes
    has nothing to do for it."""
    for line in commit_text.splitlines():
        try:
            action = json.loads(line)
        except ValueError:
            continue
        for kind in ("add", "remove", "cdc"):
            if isinstance(action.get(kind), dict) and action[kind].get("dataChange", True):
                return True
    return False


def delta_source_through(offset: dict[str, Any]) -> int | None:
    """The newest Silver version a Delta source offset has read completely: reservoirVersion when its index is the
    end marker, else the version before (it is at the start of, or part-way through, reservoirVersion)."""
    version = offset.get("reservoirVersion")
    if not isinstance(version, int):
        return None
    return version if offset.get("index") == DELTA_END_INDEX else version - 1


def newest_number(names: list[str], pattern: re.Pattern = LOG_NAME_RE) -> int | None:
    """The highest N among names like N / N.compact (or Delta's 00000000000000000012.json)."""
    numbers = [int(m.group(1)) for m in map(pattern.match, names) if m]
    return max(numbers) if numbers else None


def sink_files_position(offsets_text: str | None) -> int | None:
    """The position of the next Bronze file to read, from a Silver checkpoint's offsets/<batch> text whose last line
    is SinkFilesSource's offset {"files": N}; None for another source's offset (Spark's file source: logOffset)."""
    try:
        offset = json.loads((offsets_text or "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    files = offset.get("files") if isinstance(offset, dict) else None
    return files if isinstance(files, int) and files >= 0 else None


def not_read(committed: dict[str, Any], read: dict[str, Any]) -> list[str]:
    """Files the upstream committed that the downstream has not read (paths as both logs name them)."""
    return [path for path in committed if path not in read]


# ---------------------------------------------------------------------------------------------------------------------
# The folders


def listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def delta_version(table: Path) -> int | None:
    """A Delta table's newest version (its newest _delta_log/N.json); None when it is not a table yet."""
    return newest_number(listdir(table / "_delta_log"), DELTA_COMMIT_RE)


@dataclass
class SilverLag:
    bronze_batch: int | None  # Bronze's newest committed batch
    files_behind: int | None
    rows_behind: int | None


class LogReader:
    """Reads Spark's metadata logs, parsing each file once (they never change once written)."""

    def __init__(self) -> None:
        self.texts: dict[str, tuple[tuple[int, float], str]] = {}
        self.rows: dict[str, int] = {}
        self.listings: dict[str, tuple[tuple, dict[str, Any]]] = {}  # folder -> (its files' names and sizes, files)

    def _text(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_size, st.st_mtime)
        cached = self.texts.get(str(path))
        if cached and cached[0] == key:
            return cached[1]
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        self.texts[str(path)] = (key, text)
        return text

    def log_texts(self, folder: Path, through: int | None = None) -> dict[str, str]:
        """{name: text} of a metadata log's batch files (N, N.compact), those up to batch `through` when given."""
        texts = {}
        names = listdir(folder)
        present = {str(folder / name) for name in names}
        for path in [p for p in self.texts if os.path.dirname(p) == str(folder) and p not in present]:
            del self.texts[path]  # deleted by the log's clean-up after a compaction
        for name in names:
            match = LOG_NAME_RE.match(name)
            if match and (through is None or int(match.group(1)) <= through):
                text = self._text(folder / name)
                if text is not None:
                    texts[name] = text
        return texts

    def files(self, folder: Path, through: int | None = None) -> dict[str, Any]:
        """The files a metadata log lists (bronze.audit.committed_files), parsed again only when the log changed."""
        texts = self.log_texts(folder, through)
        key = tuple(sorted((name, len(text)) for name, text in texts.items()))
        cached = self.listings.get(str(folder))
        if cached and cached[0] == key:
            return cached[1]
        files = committed_files(texts).files
        self.listings[str(folder)] = (key, files)
        return files

    def parquet_rows(self, path: str) -> int | None:
        if path not in self.rows:
            try:
                import pyarrow.parquet as pq

                self.rows[path] = pq.ParquetFile(path).metadata.num_rows
            except Exception:  # noqa: BLE001 - a file being written or removed: unknown, not an error
                return None
        return self.rows[path]

    def silver_lag(self, bronze: Path, silver_checkpoint: Path) -> SilverLag:
        """Bronze's committed files Silver has not read in a committed batch, and their rows."""
        bronze_log = bronze / "_spark_metadata"
        bronze_batch = newest_number(listdir(bronze_log))
        if bronze_batch is None:
            return SilverLag(None, None, None)
        committed = self.files(bronze_log)
        silver_batch = newest_number(listdir(silver_checkpoint / "commits"))
        position = None if silver_batch is None else sink_files_position(
            self._text(silver_checkpoint / "offsets" / str(silver_batch)))
        if position is not None:
            behind = list(committed)[position:]
        else:
            read = {} if silver_batch is None else self.files(silver_checkpoint / "sources" / "0", silver_batch)
            behind = not_read(committed, read)
        rows = [self.parquet_rows(path) for path in behind]
        self._forget_rows(set(behind))
        return SilverLag(bronze_batch, len(behind), None if None in rows else sum(rows))

    def _forget_rows(self, keep: set[str]) -> None:
        for path in [p for p in self.rows if p not in keep]:
            del self.rows[path]

    def data_versions_after(self, table: Path, through: int | None, newest: int | None,
                            most: int = 200) -> int | None:
        """How many of the table's versions after `through`, up to `newest`, change data (changes_data); versions
        only compacting the table are not counted: nothing downstream waits for them. Past `most` versions, all are
        counted (a reader that far behind is behind anyway)."""
        if through is None or newest is None:
            return None
        if newest - through > most:
            return newest - through
        count = 0
        for version in range(through + 1, newest + 1):
            try:  # read each time, not kept: only the few versions after `through` are read
                text = (table / "_delta_log" / f"{version:020d}.json").read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = None
            count += 1 if text is None or changes_data(text) else 0
        return count

    def gold_through_from_checkpoint(self, gold_checkpoint: Path) -> int | None:
        """For a Gold query reading Silver as a Delta stream: the Silver version its newest committed batch has read
        completely (from offsets/<batch>, whose last line is the Delta source's offset)."""
        batch = newest_number(listdir(gold_checkpoint / "commits"))
        if batch is None:
            return None
        text = self._text(gold_checkpoint / "offsets" / str(batch))
        if not text:
            return None
        try:
            offset = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None
        return delta_source_through(offset) if isinstance(offset, dict) else None
