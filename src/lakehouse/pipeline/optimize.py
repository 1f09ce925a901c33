"""Compact and clean the lakehouse's Delta tables: OPTIMIZE (small files bin-packed into large ones) and VACUUM (files
no version within the retention needs are deleted), for Silver, its quarantine and Gold.

The streaming jobs do this by themselves (auto compaction after their writes, and this same routine every
--maintenance-every, 1 hour by default); this command is for doing it now, e.g. after a long backfill. It is safe
while the streams run: OPTIMIZE commits with dataChange=false (streaming readers skip it), a job's write that
conflicts with it is retried by the job, and an OPTIMIZE that conflicts with a job's write is retried here. VACUUM
deletes a file only when it was written more than --retain-hours ago (default 72 h) and the table's state no longer
names it (removed more than its delta.deletedFileRetentionDuration ago, 1 day): a stream reading the last 3 days of
changes finds their files, and time travel is certain 1 day back (lakehouse.lake.delta, TABLE_PROPERTIES). A shorter retention is allowed (e.g. to reclaim disk in a
dev folder) but then time travel further back and a stream of Gold that was stopped longer than that may fail.

Usage (examples in the entry point's docstring, spark/jobs/optimize_tables.py):
    python spark/jobs/optimize_tables.py --help

Exit codes: 0 done (tables that do not exist yet are skipped, with a line saying so); 1 a table could not be
compacted; 2 a bad flag.
"""

from __future__ import annotations

import argparse
import logging

from lakehouse.common.logs import configure_logging
from lakehouse.defaults import GOLD_PATH, QUARANTINE_PATH, SILVER_PATH
from lakehouse.lake.delta import DEFAULT_RETENTION_HOURS, WRITER_SESSION_CONF, compact_and_vacuum, is_delta_table
from lakehouse.spark.flags import add_master_argument
from lakehouse.spark.progress import describe_error
from lakehouse.spark.session import build_spark

log = logging.getLogger("optimize_tables")


def non_negative_hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of hours >= 0")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_master_argument(parser)
    parser.add_argument("--table", action="append",
                        help=f"a Delta table to compact, repeatable (default: {SILVER_PATH}, {QUARANTINE_PATH}, "
                             f"{GOLD_PATH})")
    parser.add_argument("--retain-hours", type=non_negative_hours, default=DEFAULT_RETENTION_HOURS,
                        help="VACUUM keeps files that versions of the last N hours need (default %(default)s)")
    args = parser.parse_args(argv)
    args.table = args.table or [SILVER_PATH, QUARANTINE_PATH, GOLD_PATH]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    conf = dict(WRITER_SESSION_CONF)
    if args.retain_hours < DEFAULT_RETENTION_HOURS:
        log.warning("VACUUM retention %.1f h is below the tables' %d h: time travel beyond it, and a stopped Gold "
                    "stream restarted after it, may fail", args.retain_hours, DEFAULT_RETENTION_HOURS)
        conf["spark.databricks.delta.retentionDurationCheck.enabled"] = "false"
    spark = build_spark("optimize_tables", delta=True, conf=conf, master=args.master)
    failed = False
    for table in args.table:
        if not is_delta_table(spark, table):
            log.info("%s: not a Delta table (yet): skipped", table)
            continue
        try:
            result = compact_and_vacuum(spark, table, args.retain_hours)
        except Exception as exc:  # noqa: BLE001 - report every table, then fail
            log.error("%s: %s", table, describe_error(exc))
            failed = True
            continue
        log.info("%s: %d active file(s) before, %d after; VACUUM deleted %d file(s) older than %.1f h", table,
                 result["files_before"], result["files_after"], result["files_deleted"], args.retain_hours)
    spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
