"""Bronze, Silver and Gold in one Spark application: one JVM, two streaming queries, one pass per batch for Silver and
Gold.

Bronze's query is its job's own (kafka_to_bronze_trades.py). Silver's query is its job's own too
(bronze_to_silver_trades.py), and each of its batches then folds the trades it inserted into Gold with Gold's own
writer (lakehouse.gold.table.GoldWriter, the one silver_to_gold_ohlcv.py's query uses): Gold needs no query, no
checkpoint read, no second pass over the same trades. Same checkpoints and tables as the three jobs run as three
processes (the README's step-by-step way, still there), at a fraction of the memory and CPU. You can switch between
the two ways at any time: Gold records which Silver versions it holds, and either way starts from there. `make run`
and `make demo` start this (infra/run_pipeline.py; --separate-jobs there for three processes).

A layer starts once its input exists: Bronze once the topic exists, Silver and Gold once Bronze committed a first
batch. On Ctrl-C or SIGTERM the layers stop in order, each first landing what its input holds now (Bronze everything
the topic holds, then Silver and Gold all of Bronze; at most --drain-timeout seconds each), so a stopped pipeline is
caught up from the broker to Gold. A second Ctrl-C stops at once (what did not land, lands on the next start: every
layer is exactly once).

Usage (examples in the entry point's docstring, spark/jobs/all_layers.py):
    python spark/jobs/all_layers.py --help

Exit codes: 0 stopped on request (or finished with --available-now); 1 a query failed or a layer did not catch up
within --drain-timeout; 2 a bad flag, an unreachable broker, a checkpoint that does not belong with its output, or
the Bronze reader's jar not built (make setup).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from lakehouse.bronze import job as bronze_job
from lakehouse.common.logs import configure_logging
from lakehouse.defaults import DATA_DIR
from lakehouse.gold import job as gold_job
from lakehouse.gold.table import GoldWriter
from lakehouse.lake.delta import (DEFAULT_MAINTENANCE_EVERY, WRITER_SESSION_CONF, Maintenance,
                                  parse_maintenance_every, table_pairing_problem)
from lakehouse.observe import status
from lakehouse.pipeline.layers import LAYERS, PIPELINE_TRIGGERS, layer_argv
from lakehouse.silver import job as silver_job
from lakehouse.spark.flags import DEFAULT_DRAIN_TIMEOUT_S, add_master_argument, parse_trigger, positive_int
from lakehouse.spark.lifecycle import StopRequest, drain_restart, run_queries, wait_until_ready
from lakehouse.spark.progress import format_progress
from lakehouse.spark.session import build_spark
from lakehouse.spark.sinks import sink_pairing_problem


log = logging.getLogger("all_layers")


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions: each layer's own flags, from this job's


def job_argv(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command line each layer's own job would be run with for these flags."""
    argv = layer_argv(args.data_dir, args.bootstrap, args.topic,
                      {layer: getattr(args, f"{layer}_trigger") for layer in LAYERS}, args.startingOffsets)
    common = ["--available-now"] if args.available_now else []
    maintenance = ["--maintenance-every", args.maintenance_every_text]
    argv["bronze"] += common
    # The bounds: each job's parser holds the default (one home); passed on only when given here
    if args.maxOffsetsPerTrigger is not None:
        argv["bronze"] += ["--maxOffsetsPerTrigger", str(args.maxOffsetsPerTrigger)]
    if args.silver_max_files_per_trigger is not None:
        argv["silver"] += ["--max-files-per-trigger", str(args.silver_max_files_per_trigger)]
    if args.kafka_properties:
        argv["bronze"] += ["--kafka-properties", str(args.kafka_properties)]
    argv["silver"] += [*maintenance, *common]
    argv["gold"] += [*maintenance, *common]
    return argv


def pairing_problems(layer_args: dict[str, argparse.Namespace]) -> list[str]:
    """Outputs and checkpoints that do not belong together (what each job refuses at its start)."""
    problems = [sink_pairing_problem(layer_args["bronze"].out, layer_args["bronze"].checkpoint)]
    if "silver" in layer_args:
        silver = layer_args["silver"]
        problems += [table_pairing_problem(silver.out, silver.checkpoint),
                     table_pairing_problem(silver.quarantine, silver.checkpoint)]
    if "gold" in layer_args:
        problems.append(table_pairing_problem(layer_args["gold"].out, layer_args["gold"].checkpoint))
    return [p for p in problems if p]


# ---------------------------------------------------------------------------------------------------------------------
# The job


WAITING_FOR = {"bronze": "its topic (the producer creates it)", "silver": "Bronze's first committed batch"}


def start_silver_and_gold(spark, args: argparse.Namespace, gold_args: argparse.Namespace, gold: GoldWriter):
    """Silver's query with Gold folded into each of its batches: the tables created if needed, Gold first brought up
    to what Silver holds now (after a crash between a Silver and a Gold commit, or Gold's own job run meanwhile)."""
    silver_job.ensure_silver(spark, args.out)
    gold_job.ensure_gold(spark, gold_args.out)
    gold.prepare(spark, check_feed=False)  # ensure_silver turned Silver's change feed on
    gold.follow(spark)
    return silver_job.start_query(spark, args, gold=gold)


class Layers:
    """The layers' queries in one session, each started once its input exists. Gold has no query of its own: Silver's
    batches fold their new trades into it (one pass per batch, start_silver_and_gold)."""

    def __init__(self, spark, layer_args: dict[str, argparse.Namespace]) -> None:
        self.spark, self.layer_args = spark, layer_args
        self.starts: dict[str, Callable[..., Any]] = {"bronze": bronze_job.start_query,
                                                       "silver": silver_job.start_query}
        if "gold" in layer_args:
            gold = GoldWriter(layer_args["gold"].out, layer_args["gold"].silver)
            self.starts["silver"] = functools.partial(start_silver_and_gold, gold_args=layer_args["gold"], gold=gold)
        self.queries: dict[str, Any] = {}

    @property
    def query_layers(self) -> list[str]:
        return [layer for layer in self.layer_args if layer in self.starts]

    def ready(self, layer: str) -> bool:
        if layer == "bronze":
            args = self.layer_args["bronze"]
            return bronze_job.topic_partitions(args.bootstrap, args.topic, args.client_props) != 0
        return silver_job.bronze_ready(self.spark, self.layer_args["silver"].bronze)

    def start(self, layer: str) -> Any:
        self.queries[layer] = self.starts[layer](self.spark, self.layer_args[layer])
        log.info("%s started%s", layer, " (Gold folded into its batches)" if layer == "silver" and "gold" in
                 self.layer_args else "")
        return self.queries[layer]

    def start_as_inputs_appear(self, stop: StopRequest) -> None:
        """Start the layers in order, each once its input exists; returns when all run, or on a stop request or a
        failed query."""
        for layer in self.query_layers:
            if not wait_until_ready(lambda: self.failed() is not None or self.ready(layer), stop,
                                    f"{layer} waits for {WAITING_FOR[layer]}"):
                return
            if self.failed():
                return
            self.start(layer)

    def failed(self) -> str | None:
        return next((name for name, q in self.queries.items() if not q.isActive and q.exception()), None)

    def restarts(self) -> dict[str, Callable[[], Any]]:
        return {name: drain_restart(self.starts[name], self.spark, self.layer_args[name]) for name in self.queries}


def run_available_now(layers: Layers, stop: StopRequest) -> int:
    """--available-now: each layer in order lands what its input holds, then the next one starts."""
    for layer in layers.query_layers:
        if not layers.ready(layer):
            log.warning("%s: no input yet (%s); stopping here", layer, WAITING_FOR[layer])
            return 0
        code = run_queries({layer: layers.start(layer)}, stop, describe=describe)
        if code != 0 or stop.event.is_set():
            return code
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_master_argument(parser)
    bronze_job.add_topic_arguments(parser)
    parser.add_argument("--data-dir", default=DATA_DIR,
                        help="where the layers and their checkpoints live, as the jobs lay them out under data/ "
                             "(default %(default)s)")
    parser.add_argument("--layers", type=int, choices=[1, 2, 3], default=3,
                        help="1 Bronze, 2 +Silver, 3 +Gold (default 3)")
    for layer in LAYERS:
        parser.add_argument(f"--{layer}-trigger", default=PIPELINE_TRIGGERS[layer], type=parse_trigger,
                            help=f'{layer} micro-batch interval (default "{PIPELINE_TRIGGERS[layer]}")')
    parser.add_argument("--startingOffsets", default="earliest", type=bronze_job.parse_starting_offsets,
                        help="where a NEW Bronze query starts (default %(default)s)")
    parser.add_argument("--available-now", action="store_true",
                        help="land what each layer's input holds now, in order, then exit")
    parser.add_argument("--maxOffsetsPerTrigger", type=positive_int,
                        help="Bronze: cap on records per micro-batch, so each Bronze file is bounded (default: the "
                             f"Bronze job's, {bronze_job.DEFAULT_MAX_OFFSETS_PER_TRIGGER})")
    parser.add_argument("--silver-max-files-per-trigger", type=positive_int,
                        help="Silver: cap on Bronze files per micro-batch, at most "
                             f"{silver_job.MAX_ROWS_PER_BATCH} rows at the defaults; Gold folds each Silver batch "
                             f"(default: the Silver job's, {silver_job.DEFAULT_MAX_FILES_PER_TRIGGER})")
    parser.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT_S,
                        help="on stop, how long each layer may take to land what its input holds (default %(default)s s)")
    parser.add_argument("--maintenance-every", dest="maintenance_every_text", default=DEFAULT_MAINTENANCE_EVERY,
                        help=f'compact and vacuum Silver and Gold this often, or "off" (default '
                             f'"{DEFAULT_MAINTENANCE_EVERY}")')
    bronze_job.add_kafka_properties_argument(parser)
    args = parser.parse_args(argv)
    try:
        args.maintenance_every = parse_maintenance_every(args.maintenance_every_text)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"argument --maintenance-every: {exc}")
    argv_by_layer = job_argv(args)
    args.layer_args = {"bronze": bronze_job.parse_args(argv_by_layer["bronze"]),
                       "silver": silver_job.parse_args(argv_by_layer["silver"]),
                       "gold": gold_job.parse_args(argv_by_layer["gold"])}
    args.layer_args = dict(list(args.layer_args.items())[: args.layers])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    unreachable = bronze_job.broker_unreachable_error(args.bootstrap)
    problems = ([unreachable] if unreachable else []) + pairing_problems(args.layer_args)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    stop = StopRequest().install()
    if not os.environ.get(status.ENV_DIR):  # make status reads <data dir>/status (the runner sets it for its children)
        status.set_dir(Path(args.data_dir) / "status")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = build_spark("all_layers", kafka=True, delta=args.layers > 1, conf=WRITER_SESSION_CONF, master=args.master)
    problem = silver_job.bronze_reader_problem(spark) if args.layers > 1 else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        spark.stop()
        return 2
    layers = Layers(spark, args.layer_args)
    tables = [t for name, a in args.layer_args.items() if name != "bronze"
              for t in ([a.out, a.quarantine] if name == "silver" else [a.out])]
    maintenance = Maintenance(spark, tables, args.maintenance_every).start()
    log.info("%s in one Spark application, under %s (topic %s at %s)", " -> ".join(args.layer_args), args.data_dir,
             args.topic, args.bootstrap)
    if args.available_now:
        code = run_available_now(layers, stop)
    else:
        layers.start_as_inputs_appear(stop)
        code = run_queries(layers.queries, stop, describe=describe, drain=layers.restarts(),
                           drain_timeout=args.drain_timeout)
    maintenance.stop()
    log.info("stopped; the layers are under %s", args.data_dir)
    spark.stop()
    return code


def describe(name: str, progress: dict[str, Any]) -> str | None:
    """Bronze logs its batches from progress; Silver and Gold log their own (their writers know the counts)."""
    if name != "bronze" or not (progress.get("numInputRows") or progress.get("batchId") == 0):
        return None
    return "bronze " + format_progress(progress)


if __name__ == "__main__":
    raise SystemExit(main())
