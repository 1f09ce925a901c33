"""Silver completeness audit: does Silver hold every Kraken trade of each pair between its first and last trade_id,
each exactly once?

Kraken API v2 numbers each pair's trades sequentially (trade_id), so per pair (`symbol`, the pair as the user typed
it) the audit reports: the number of trades, the first and last trade_id, the ids missing inside that range (as
ranges, with counts) and the ids held more than once. Rows without a trade_id (API v1 trades) are counted and
reported as not auditable by id. A hole is a trade the lake does not have (e.g. one the producer logged as
unfillable: older than Kraken's REST history); a double is a trade the deduplication let through twice.

Silver is read WITHOUT Spark (lakehouse/lake/reader.py: deltalake lists the Delta table's files, pyarrow reads
them): only the columns `symbol` and `trade_id`, computed with pyarrow (sorting and comparing whole columns, no Python
loop per row), so tens of millions of rows take seconds.

Usage (examples in the entry point's docstring, spark/jobs/silver_completeness_audit.py):
    python spark/jobs/silver_completeness_audit.py --help

Exit codes: 0 every pair complete (no hole, no double); 1 a hole or a double (or a --symbol with no trades);
2 a bad flag, or no Delta table at --silver.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional

from lakehouse.defaults import SILVER_PATH
from lakehouse.lake.reader import TableUnreadable, snapshot

MAX_LISTED = 20  # ranges listed per pair and kind; the counts are always complete
EXIT_COMPLETE, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def read_ids(path: str, symbols: Optional[list[str]]) -> tuple[Any, int]:
    """(pyarrow table of symbol, trade_id; the Delta version read). FileNotFoundError/ValueError if not a table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        dataset, version = snapshot(path)
    except TableUnreadable as exc:
        raise FileNotFoundError(f"no Delta table at {path}") from exc
    columns = set(dataset.schema.names)
    if not {"symbol", "trade_id"} <= columns:
        raise ValueError(f"{path} has no symbol and trade_id columns (it has {', '.join(sorted(columns))})")
    wanted = pc.field("symbol").isin(symbols) if symbols else None
    data = dataset.to_table(columns=["symbol", "trade_id"], filter=wanted)
    return data.cast(pa.schema([("symbol", pa.string()), ("trade_id", pa.int64())])), version


def ranges(values: Any) -> list[dict[str, int]]:
    """Sorted distinct ints (numpy array) -> [{"first", "last", "count"}] of consecutive runs, at most MAX_LISTED."""
    import numpy as np

    if len(values) == 0:
        return []
    breaks = np.nonzero(np.diff(values) != 1)[0]
    starts = np.concatenate(([0], breaks + 1))[:MAX_LISTED]
    ends = np.concatenate((breaks, [len(values) - 1]))[:MAX_LISTED]
    return [{"first": int(values[s]), "last": int(values[e]), "count": int(values[e] - values[s] + 1)}
            for s, e in zip(starts, ends)]


def audit(table: Any) -> list[dict[str, Any]]:
    """Per symbol: trades, ids range, missing ids (count + ranges), doubled ids (count + ranges, extra rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    report: dict[str, dict[str, Any]] = {}
    for row in table.group_by("symbol").aggregate([([], "count_all")]).to_pylist():
        report[row["symbol"]] = {"symbol": row["symbol"], "trades": row["count_all"], "trades_without_id": 0,
                                 "first_trade_id": None, "last_trade_id": None, "distinct_ids": 0, "missing": 0,
                                 "missing_ranges": [], "doubled_ids": 0, "extra_rows": 0, "doubled_ranges": []}
    no_id = table.filter(pc.is_null(table["trade_id"]))
    for row in no_id.group_by("symbol").aggregate([([], "count_all")]).to_pylist():
        report[row["symbol"]]["trades_without_id"] = row["count_all"]
    ids = table.filter(pc.is_valid(table["trade_id"])).sort_by([("symbol", "ascending"), ("trade_id", "ascending")])
    stats = ids.group_by("symbol").aggregate([("trade_id", "min"), ("trade_id", "max"), ("trade_id", "count_distinct")])
    for row in stats.to_pylist():
        r = report[row["symbol"]]
        r["first_trade_id"], r["last_trade_id"] = row["trade_id_min"], row["trade_id_max"]
        r["distinct_ids"] = row["trade_id_count_distinct"]
        r["missing"] = r["last_trade_id"] - r["first_trade_id"] + 1 - r["distinct_ids"]
        r["extra_rows"] = r["trades"] - r["trades_without_id"] - r["distinct_ids"]
    n = ids.num_rows
    if n > 1:
        sym, tid = ids["symbol"].combine_chunks(), ids["trade_id"].combine_chunks()
        same = pc.equal(sym.slice(1), sym.slice(0, n - 1))
        step = pc.subtract(tid.slice(1), tid.slice(0, n - 1))
        holes = pc.indices_nonzero(pc.and_(same, pc.greater(step, 1)))
        doubles = pc.indices_nonzero(pc.and_(same, pc.equal(step, 0)))
        hole_rows = pa.table({"symbol": pc.take(sym, holes), "first": pc.add(pc.take(tid, holes), 1),
                              "last": pc.subtract(pc.take(tid, pc.add(holes, 1)), 1)})
        double_rows = pa.table({"symbol": pc.take(sym, doubles), "id": pc.take(tid, doubles)})
        for symbol, r in report.items():
            mine = hole_rows.filter(pc.equal(hole_rows["symbol"], symbol)).slice(0, MAX_LISTED)
            r["missing_ranges"] = [{"first": f, "last": la, "count": la - f + 1}
                                   for f, la in zip(mine["first"].to_pylist(), mine["last"].to_pylist())]
            doubled = np.unique(double_rows.filter(pc.equal(double_rows["symbol"], symbol))["id"].to_numpy())
            r["doubled_ids"] = int(len(doubled))
            r["doubled_ranges"] = ranges(doubled)
    for r in report.values():
        r["complete"] = r["missing"] == 0 and r["doubled_ids"] == 0
    return [report[s] for s in sorted(report)]


def problems(pairs: list[dict[str, Any]], symbols: Optional[list[str]]) -> list[str]:
    found = {p["symbol"] for p in pairs}
    out = [f"no trades of {s} in Silver (symbols present: {', '.join(sorted(found)) or 'none'})"
           for s in symbols or [] if s not in found]
    for p in pairs:
        if p["missing"]:
            out.append(f"{p['symbol']}: {p['missing']} trade_id(s) missing inside "
                       f"{p['first_trade_id']}..{p['last_trade_id']}")
        if p["doubled_ids"]:
            out.append(f"{p['symbol']}: {p['doubled_ids']} trade_id(s) held more than once "
                       f"({p['extra_rows']} extra row(s))")
    return out


def render(pairs: list[dict[str, Any]], table_path: str, version: int, found: list[str]) -> str:
    def listed(rs: list[dict[str, int]], total: int) -> str:
        text = ", ".join(f"{r['first']}..{r['last']} ({r['count']})" if r["count"] > 1 else str(r["first"])
                         for r in rs)
        return text + (f", ... ({total} in all)" if len(rs) == MAX_LISTED else "")

    lines = [f"Silver completeness audit: {table_path} (Delta version {version}), {len(pairs)} pair(s)"]
    for p in pairs:
        head = f"{p['symbol']}: {p['trades']:,} trade(s)"
        if p["first_trade_id"] is not None:
            head += f", trade_id {p['first_trade_id']}..{p['last_trade_id']}"
            head += ": complete" if p["complete"] else ""
            if p["missing"]:
                head += f"; {p['missing']:,} missing: {listed(p['missing_ranges'], p['missing'])}"
            if p["doubled_ids"]:
                head += f"; {p['doubled_ids']:,} held twice or more: {listed(p['doubled_ranges'], p['doubled_ids'])}"
        if p["trades_without_id"]:
            head += f"; {p['trades_without_id']:,} without trade_id (API v1): not auditable by id"
        lines.append(head)
    lines += [f"PROBLEM: {text}" for text in found]
    lines.append("verdict: " + ("complete: no hole, no double" if not found else f"{len(found)} problem(s)"))
    return "\n".join(lines)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--silver", default=SILVER_PATH, help="the Silver Delta table (default %(default)s)")
    parser.add_argument("--symbol", action="append", help="audit only this pair (as in Silver's symbol column, "
                        "e.g. XBT/USDT); repeatable")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document (for scripts)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        table, version = read_ids(args.silver, args.symbol)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pairs = audit(table)
    found = problems(pairs, args.symbol)
    if args.json:
        print(json.dumps({"table": args.silver, "version": version, "complete": not found, "pairs": pairs,
                          "problems": found}))
    else:
        print(render(pairs, args.silver, version, found))
    return EXIT_PROBLEM if found else EXIT_COMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
