"""Read the lakehouse's Delta tables (Silver, its quarantine, Gold) without Spark or a JVM.

`deltalake` (delta-rs) reads the table's log: which Parquet files make up a version (the latest, or any earlier one
within the log retention: time travel), the schema and the partition columns. pyarrow then reads those files. Only
committed files are read, never the leftovers of a failed write or a compaction's superseded files.

Why not deltalake's own scan (DeltaTable.to_pyarrow_table / to_pyarrow_dataset / to_pandas)? With deltalake 1.6 and
pyarrow 21 a process that used it aborts at exit now and then ("terminate called without an active exception",
exit code 134; measured here: 1 to 6 in 20 runs), after its work is done: a script would report failure for a read
that succeeded. Listing the files with deltalake and reading them with pyarrow never did (0 in 60 runs).

Not a job itself: the chart, the runner's summary and the completeness audit import it.
"""

from __future__ import annotations

from typing import Any


class TableUnreadable(Exception):
    """Not a Delta table (yet), or one using features this reader does not handle."""


def open_table(path: str, version: int | None = None):
    """The Delta table at `path` (at `version`, or the latest) as a pyarrow Dataset: filters on partition columns
    skip whole partitions, filters on other columns use the Parquet files' statistics."""
    return snapshot(path, version)[0]


def snapshot(path: str, version: int | None = None):
    """(open_table(path, version), the version it is: the latest when `version` is None)."""
    import pyarrow as pa
    import pyarrow.dataset as pds
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(path, version=version)
    except (TableNotFoundError, OSError) as exc:
        raise TableUnreadable(str(exc).strip().splitlines()[0]) from exc
    protocol = table.protocol()
    if protocol.min_reader_version > 1 or protocol.reader_features:
        raise TableUnreadable(f"{path} uses Delta reader features {protocol.reader_features or []} "
                              f"(reader version {protocol.min_reader_version}) that this reader does not handle")
    schema = pa.schema(table.schema().to_arrow())
    partition_columns = table.metadata().partition_columns
    partitioning = pds.partitioning(pa.schema([schema.field(c) for c in partition_columns]), flavor="hive")
    dataset = pds.dataset(table.file_uris(), schema=schema, format="parquet", partitioning=partitioning,
                          partition_base_dir=path.rstrip("/"))
    return dataset, table.version()


def read_table(path: str, columns: list[str] | None = None, filter: Any = None, version: int | None = None):
    """The table (or its `columns`, the rows matching `filter`, a pyarrow expression) as a pyarrow Table."""
    return open_table(path, version).to_table(columns=columns, filter=filter)
