"""Run the whole pipeline in one terminal: broker, producer, and the Bronze, Silver and Gold layers; Ctrl-C stops it.

By default the three Spark layers run as one Spark application (spark/jobs/all_layers.py: one JVM, the same queries
and checkpoints as the three jobs); --separate-jobs runs them as three processes instead, the seed's way. Each
process's lines are shown with a prefix ([producer], [spark], ...) and also written to data/logs/<name>.log.

The live page (infra/page.py: candles, health, /metrics) starts with them, at http://127.0.0.1:8500/ unless
--page-port/--page-host say otherwise (--no-page: without it); the runner prints its URL on one line. Every process
publishes its status under <data dir>/status (LAKEHOUSE_STATUS_DIR), which `make status` and the page read; the runner
publishes the pipeline's own (which components to expect, one application or separate jobs).

The topic is created before anything reads it. On Ctrl-C (or SIGTERM, SIGHUP) the processes stop in an order that
loses nothing: the producer first (it flushes every trade to Kafka), then the layers, each after landing what its
input holds (Bronze the whole topic, then Silver all of Bronze, then Gold all of Silver); then a summary says where
each layer is and how many rows it holds, and warns about anything that did not land. A second Ctrl-C stops every
process at once (nothing is lost: each layer resumes exactly once from its checkpoint). Whatever ends the runner,
even SIGKILL, its processes end with it (they are signalled by the kernel when it dies).

Usage (examples in the entry point's docstring, infra/run_pipeline.py):
    python infra/run_pipeline.py --help

With --cluster the pipeline runs on the local cluster (`make cluster-up`): Kafka at its three brokers, the topic
created with replication factor 3, the Spark layers on its standalone master. The runner does not start the cluster.

Exit codes: 0 every process stopped cleanly; 1 a process failed or a layer did not catch up (the summary says
which); 2 a usage error, no broker, or (--cluster) the cluster not up.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from lakehouse.bronze.audit import read_sink_log  # the _spark_metadata reader
from lakehouse.common.polling import wait_until
from lakehouse.defaults import DATA_DIR, LOCAL_BOOTSTRAP, LOG_DIR, REPO_ROOT, TOPIC
from lakehouse.fake_kraken.server import checked_pace
from lakehouse.observe import status
from lakehouse.page.cli import DEFAULT_PORT as PAGE_PORT, port_problem, url_of
from lakehouse.pipeline.layers import (LAYERS, PIPELINE_DRIVER_MEMORY, PIPELINE_TRIGGERS, layer_argv,
                                       layer_paths)  # each layer under --data-dir, its flags
from lakehouse.producer.kafka_sink import ensure_topic  # the producer's own topic creation

DEMO_RECORDING = REPO_ROOT / "ingestion" / "recordings" / "kraken_v2_demo.jsonl"
DEMO_PORT = 8765
CLUSTER_BOOTSTRAP = "localhost:19092,localhost:19094,localhost:19096"  # infra/cluster.py's brokers
CLUSTER_MASTER = "spark://127.0.0.1:7077"
LAYER_SCRIPTS = {"bronze": "spark/jobs/kafka_to_bronze_trades.py", "silver": "spark/jobs/bronze_to_silver_trades.py",
                 "gold": "spark/jobs/silver_to_gold_ohlcv.py"}  # --separate-jobs: each layer's own job
CLUSTER_REPLICATION_FACTOR = 3
BROKER_PORT = 19092
DOCKER_INFO_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = {"kraken": 10.0, "producer": 15.0, "page": 10.0}
PAGE_PORT_TRIES = 20  # the Spark layers: --drain-timeout per layer, plus this grace
SPARK_STOP_GRACE_S = 30.0
PR_SET_PDEATHSIG = 1

log = logging.getLogger("run_pipeline")


# ---------------------------------------------------------------------------------------------------------------------
# Pure helpers


@dataclass(frozen=True)
class Plan:
    """One process to start: its name, script and arguments, and the signal it gets when the runner dies."""

    name: str
    script: str
    args: tuple[str, ...]
    orphan_signal: int = signal.SIGTERM


def layer_triggers(args: argparse.Namespace) -> dict[str, str]:
    """Each layer's trigger: --trigger for all, else each layer's own flag."""
    return {layer: args.trigger or getattr(args, f"{layer}_trigger") for layer in LAYERS}


def spark_plans(args: argparse.Namespace) -> list[Plan]:
    """The Spark processes: one (all_layers.py) or, with --separate-jobs, one per layer, each with --drain-on-stop.
    A Spark process that outlives the runner is killed (-9 is safe: every layer is exactly once)."""
    drain = ["--drain-timeout", str(args.drain_timeout)]
    master = ("--master", args.master) if args.master else ()
    triggers = layer_triggers(args)
    if not args.separate_jobs:
        return [Plan("spark", "spark/jobs/all_layers.py",
                     (*master, "--bootstrap", args.bootstrap, "--topic", args.topic, "--data-dir", str(args.data_dir),
                      "--layers", str(args.layers), *[a for layer in LAYERS
                                                      for a in (f"--{layer}-trigger", triggers[layer])], *drain),
                     signal.SIGKILL)]
    argv = layer_argv(str(args.data_dir), args.bootstrap, args.topic, triggers)
    plans = [Plan(layer, LAYER_SCRIPTS[layer], (*master, *argv[layer], "--drain-on-stop", *drain), signal.SIGKILL)
             for layer in LAYERS]
    return plans[: args.layers]


def producer_plan(args: argparse.Namespace) -> Plan:
    producer_args = ["--bootstrap", args.bootstrap, "--topic", args.topic, "--flush-timeout", "10"]
    for pair in args.pair:
        producer_args += ["--pair", pair]
    if args.ws_url or args.demo:
        producer_args += ["--ws-url", args.ws_url or f"ws://127.0.0.1:{args.demo_port}/v2"]
    return Plan("producer", "ingestion/kraken_trades_ws.py", tuple(producer_args))


def page_plan(args: argparse.Namespace) -> Plan:
    return Plan("page", "infra/page.py", ("--data-dir", str(args.data_dir), "--bootstrap", args.bootstrap,
                                          "--topic", args.topic, "--host", args.page_host, "--port", str(args.page_port)))


def choose_page_port(host: str, wanted: int | None) -> int:
    """The page's port: `wanted` when given (RuntimeError naming who holds it when it is taken), else PAGE_PORT or the
    next free one (another pipeline's page, or anything else, may hold 8500)."""
    if wanted is not None:
        problem = port_problem(host, wanted)
        if problem:
            raise RuntimeError(problem)
        return wanted
    for port in range(PAGE_PORT, PAGE_PORT + PAGE_PORT_TRIES):
        if port_problem(host, port) is None:
            if port != PAGE_PORT:
                log.info("port %d is taken (%s); the page uses %d", PAGE_PORT, port_problem(host, PAGE_PORT), port)
            return port
    raise RuntimeError(f"ports {PAGE_PORT}..{PAGE_PORT + PAGE_PORT_TRIES - 1} on {host} are all in use; choose one "
                       f"with --page-port")


def expected_components(args: argparse.Namespace) -> list[str]:
    """What `make status` should find running for these flags."""
    layers = ["bronze", "silver", "gold"][: args.layers]
    return ["producer", *layers] + ([] if args.no_page else ["page"])


def kraken_plan(args: argparse.Namespace) -> Plan:
    # --history 0: the snapshot holds only what the recording sent, so the demo's trades are the recording's
    return Plan("kraken", "ingestion/fake_kraken.py",
                ("--port", str(args.demo_port), "--replay", str(args.recording), "--pace", args.pace,
                 "--pairs", ",".join(args.demo_pairs), "--history", "0"))


# ---------------------------------------------------------------------------------------------------------------------
# Processes


def die_with_parent(sig: int) -> Callable[[], None]:
    """preexec_fn: the kernel sends `sig` to the child when the runner dies, however it dies (Linux prctl)."""
    def set_death_signal() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except OSError:
            pass  # not Linux: the runner's own stop path is all there is
    return set_death_signal


class Child:
    """A process whose output lines are prefixed on the terminal and copied to a log file."""

    width = 8

    def __init__(self, plan: Plan, log_dir: Path, env: dict[str, str]) -> None:
        self.name = plan.name
        self.log_path = log_dir / f"{plan.name}.log"
        self.log_file: IO[str] = open(self.log_path, "a", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(
            [sys.executable, plan.script, *plan.args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, text=True, errors="replace",
            preexec_fn=die_with_parent(plan.orphan_signal))
        self.pump = threading.Thread(target=self._pump, daemon=True, name=f"pump-{plan.name}")
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

    def stop(self, sig: int, timeout: float) -> int | None:
        """Signal the process, wait, kill its whole group after the timeout; return the exit code.

        Only the process itself is signalled: a Spark job's JVM is its child, and the job stops its queries cleanly
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
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self.pump.join(5)
        self.log_file.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def docker_engine_answers() -> bool:
    """A Docker engine is up: `docker info` answers in time. A missing, failing or hanging CLI counts as no Docker."""
    if not shutil.which("docker"):
        return False
    try:
        proc = subprocess.Popen(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: a hung CLI's helpers die with it
    except OSError:
        return False
    try:
        return proc.wait(DOCKER_INFO_TIMEOUT_S) == 0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False


def ensure_broker() -> None:
    """A broker on localhost:19092: the one already there, Redpanda when Docker answers, else the local Kafka."""
    if port_open(BROKER_PORT):
        log.info("using the broker already on %s", LOCAL_BOOTSTRAP)
        return
    if docker_engine_answers():
        log.info("starting Redpanda with docker compose")
        subprocess.run(["docker", "compose", "-f", "infra/docker-compose.yml", "up", "-d", "--wait"], cwd=REPO_ROOT,
                       check=True)
    else:
        log.info("no Docker engine: starting the local Kafka broker")
        subprocess.run([sys.executable, "infra/kafka/broker.py", "up"], cwd=REPO_ROOT, check=True)


def cluster_problem(status: dict) -> str | None:
    """Why the local cluster cannot take the pipeline (from `infra/cluster.py status --json`); None when it is up."""
    if status.get("up"):
        return None
    down = [p["name"] for p in status.get("processes", []) if not p.get("alive")]
    return (f"the local cluster is not up ({', '.join(down) or 'nothing'} down): start it with `make cluster-up` "
            f"(`make cluster-status` shows it), or run without CLUSTER=1 / --cluster")


def ensure_cluster() -> None:
    """--cluster: the cluster must already be up; the runner never starts or stops it."""
    result = subprocess.run([sys.executable, "infra/cluster.py", "status", "--json"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    try:
        status = json.loads(result.stdout)
    except json.JSONDecodeError:
        status = {}
    problem = cluster_problem(status)
    if problem:
        raise RuntimeError(problem)
    log.info("using the local cluster: kafka %s, spark %s", CLUSTER_BOOTSTRAP, CLUSTER_MASTER)


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int | None = None) -> None:
    """The topic, before anything reads it, as the producer creates it (an existing one is left as it is)."""
    try:
        factor = ensure_topic(bootstrap, topic, partitions=partitions, replication_factor=replication_factor)
    except Exception as exc:  # noqa: BLE001 - KafkaException: the cluster refused or did not answer
        raise RuntimeError(f"could not create topic {topic}: {exc}") from exc
    if factor is not None:
        log.info("created topic %s (%d partitions, replication factor %d)", topic, partitions, factor)


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline


class Pipeline:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children: dict[str, Child] = {}
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYSPARK_PYTHON": sys.executable,
                    "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_DRIVER_MEMORY": args.driver_memory,
                    status.ENV_DIR: str(args.data_dir / "status")}
        self.spark = spark_plans(args)

    def start(self, plan: Plan) -> None:
        self.children[plan.name] = Child(plan, self.args.log_dir, self.env)

    def start_all(self) -> None:
        if self.args.demo:
            self.start(kraken_plan(self.args))
            wait_until(lambda: port_open(self.args.demo_port), 30, 0.2, "the fake Kraken", error=RuntimeError)
        self.start(producer_plan(self.args))
        for plan in self.spark:  # each layer waits for its input itself
            self.start(plan)
        if not self.args.no_page:
            self.start(page_plan(self.args))

    def watch(self, stop: threading.Event) -> str | None:
        """Wait for a stop request or a process that ends on its own; return the name of a process that ended.

        It polls stop.is_set() rather than blocking in stop.wait(): the signal handler that sets `stop` runs on this
        thread, and a signal landing while wait() holds the event's lock would deadlock the handler's set()."""
        while not stop.is_set():
            for name, child in self.children.items():
                if not child.running():
                    return name
            time.sleep(0.5)
        return None

    def stop_all(self) -> dict[str, int | None]:
        """Stop in a safe order; every child is stopped even when stopping another one failed."""
        codes: dict[str, int | None] = {}
        order = [("producer", signal.SIGINT, STOP_TIMEOUT_S["producer"]),
                 ("kraken", signal.SIGTERM, STOP_TIMEOUT_S["kraken"])]
        layer_time = self.args.drain_timeout * (self.args.layers if not self.args.separate_jobs else 1)
        order += [(plan.name, signal.SIGTERM, layer_time + SPARK_STOP_GRACE_S) for plan in self.spark]
        order.append(("page", signal.SIGTERM, STOP_TIMEOUT_S["page"]))
        for name, sig, timeout in order:
            child = self.children.get(name)
            if child is None:
                continue
            try:
                codes[name] = child.stop(sig, timeout)
            except Exception:  # noqa: BLE001 - whatever went wrong, the next child still gets stopped
                log.exception("stopping %s failed; killing it", name)
                child.kill()
                codes[name] = child.proc.returncode
        for child in self.children.values():
            child.close()
        return codes

    def kill_all(self) -> None:
        for child in self.children.values():
            child.kill()


def layer_summary(data_dir: Path) -> list[str]:
    """One line per layer: where it is and how many rows it holds (Parquet footers and Delta logs: no Spark)."""
    import pyarrow.parquet as pq

    paths = layer_paths(str(data_dir))
    bronze = Path(paths["bronze"])
    files = list(read_sink_log(bronze).files) if (bronze / "_spark_metadata").is_dir() else []
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files if os.path.exists(f))
    lines = [f"bronze  {bronze}: {rows} rows in {len(files)} committed files"]
    for name, key in (("silver", "silver"), ("quarantine", "quarantine"), ("gold", "gold")):
        lines.append(f"{name:<7} {paths[key]}: {delta_summary(Path(paths[key]))}")
    return lines


def delta_summary(table: Path) -> str:
    """'N rows in M files (version V)' from the Delta log, or why not."""
    if not (table / "_delta_log").is_dir():
        return "no table yet"
    from deltalake import DeltaTable

    dt = DeltaTable(str(table))  # its log only (reading data through deltalake can abort at exit: lake/reader.py)
    actions = dt.get_add_actions(flatten=True)
    rows = sum(n or 0 for n in actions.column("num_records").to_pylist()) if actions.num_rows else 0
    return f"{rows} rows in {actions.num_rows} files (version {dt.version()})"


def draw_charts(data_dir: Path, pairs: list[str]) -> list[str]:
    """Each pair's candles from Gold (plot_ohlcv.py: no Spark, under a second each) into <data_dir>/charts/; the
    lines to print (where each chart is, or why it is not)."""
    gold, charts = layer_paths(str(data_dir))["gold"], data_dir / "charts"
    lines = []
    for pair in pairs:
        png = charts / f"{pair.replace('/', '_')}.png"
        result = subprocess.run([sys.executable, "spark/jobs/plot_ohlcv.py", "--gold", gold, "--symbol", pair,
                                 "--png", str(png), "--html", str(png.with_suffix(".html"))], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
        lines.append(f"chart   {png} (and .html)" if result.returncode == 0 else f"chart   {pair}: {last[0]}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", action="append", help="trading pair, repeatable (default XBT/USDT; demo: the "
                                                        "recording's pairs)")
    parser.add_argument("--topic", default=TOPIC, help="Kafka topic (default %(default)s)")
    parser.add_argument("--cluster", action="store_true",
                        help=f"run on the local cluster (make cluster-up): Kafka {CLUSTER_BOOTSTRAP}, topic with "
                             f"replication factor {CLUSTER_REPLICATION_FACTOR}, Spark {CLUSTER_MASTER}; refused "
                             f"(exit 2) when the cluster is not up")
    parser.add_argument("--bootstrap",
                        help=f"Kafka bootstrap servers (default {LOCAL_BOOTSTRAP}; --cluster: its brokers)")
    parser.add_argument("--master", help="Spark master for the layers (default: the jobs' own, local[*]; --cluster: "
                                         f"{CLUSTER_MASTER})")
    parser.add_argument("--partitions", type=int, default=3,
                        help="partitions of the topic when it is created (default %(default)s)")
    parser.add_argument("--trigger", help="Spark trigger for every layer, overriding the per-layer defaults below "
                                          '(e.g. "2 seconds" for the fastest bars at several times the CPU)')
    for layer, default in PIPELINE_TRIGGERS.items():
        parser.add_argument(f"--{layer}-trigger", default=default,
                            help=f'{layer} micro-batch interval (default "{default}"'
                                 + ("; with the layers in one application Gold is written by Silver's batches"
                                    if layer == "gold" else "") + ")")
    parser.add_argument("--driver-memory", default=PIPELINE_DRIVER_MEMORY,
                        help="JVM heap of each Spark process (SPARK_DRIVER_MEMORY; default %(default)s: every "
                             "layer's batches are bounded, so a catch-up fits in it too)")
    parser.add_argument("--layers", type=int, choices=[1, 2, 3], default=3,
                        help="how many Spark layers to run: 1 Bronze, 2 +Silver, 3 +Gold (default 3)")
    parser.add_argument("--separate-jobs", action="store_true",
                        help="run each layer as its own Spark process (the seed's way) instead of one application")
    parser.add_argument("--demo", action="store_true", help="offline: the producer reads a fake Kraken replaying "
                                                            "--recording instead of live Kraken")
    parser.add_argument("--recording", type=Path, default=DEMO_RECORDING, help="JSONL recording for --demo")
    parser.add_argument("--ws-url", help="the producer's WebSocket URL instead of Kraken's (e.g. a fake Kraken of "
                                         "your own, as the benchmarks run it)")
    parser.add_argument("--pace", type=checked_pace, default="10x",
                        help='demo replay pace: "recorded", "fast", or a speed-up such as "10x" (default 10x: the '
                             "recording's 25 minutes in 2.5)")
    parser.add_argument("--demo-port", type=int, default=DEMO_PORT, help="fake Kraken port for --demo")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / DATA_DIR, help="where the layers live")
    parser.add_argument("--log-dir", type=Path, default=LOG_DIR, help="process logs (default data/logs)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="on stop, how long each layer may take to land what its input holds (default 60 s)")
    parser.add_argument("--page-port", type=int,
                        help=f"the live page's port (default {PAGE_PORT}, or the next free one up to "
                             f"{PAGE_PORT + PAGE_PORT_TRIES - 1} when another program holds it)")
    parser.add_argument("--page-host", default="127.0.0.1",
                        help="the live page's address (default %(default)s; 0.0.0.0 exposes it)")
    parser.add_argument("--no-page", action="store_true", help="run without the live page")
    args = parser.parse_args(argv)
    args.bootstrap = args.bootstrap or (CLUSTER_BOOTSTRAP if args.cluster else LOCAL_BOOTSTRAP)
    args.master = args.master or (CLUSTER_MASTER if args.cluster else None)
    args.replication_factor = CLUSTER_REPLICATION_FACTOR if args.cluster else None
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
    if not args.no_page:
        try:
            args.page_port = choose_page_port(args.page_host, args.page_port)
        except RuntimeError as exc:
            log.error("cannot start the live page: %s (or --no-page)", exc)
            return 2
    try:
        if args.cluster:
            ensure_cluster()
        elif args.bootstrap == LOCAL_BOOTSTRAP:
            ensure_broker()  # another --bootstrap: the brokers there, as they are
        create_topic(args.bootstrap, args.topic, args.partitions, args.replication_factor)
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        log.error("cannot use Kafka at %s: %s", args.bootstrap, exc)
        return 2
    stop = threading.Event()
    pipeline = Pipeline(args)

    def on_signal(signum: int, _frame) -> None:
        if stop.is_set() and signum == signal.SIGINT:  # a second Ctrl-C: stop at once
            log.warning("second Ctrl-C: killing every process now (each layer resumes from its checkpoint)")
            pipeline.kill_all()
            os._exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    ended = None
    status_dir = args.data_dir / "status"
    status.clear(status_dir)  # an earlier run's files
    status.set_dir(status_dir)
    page_url = None if args.no_page else url_of(args.page_host, args.page_port)
    status.publish("pipeline", state="starting", mode="separate jobs" if args.separate_jobs else "one application",
                   expected=expected_components(args), started_us=status.now_us(), page_url=page_url)
    try:
        pipeline.start_all()
        status.publish("pipeline", state="running")
        if page_url:
            print(f"page: {page_url}  (live candles and the pipeline's health; make status, /metrics)", flush=True)
        log.info("running; press Ctrl-C to stop (logs in %s)", args.log_dir)
        ended = pipeline.watch(stop)
        if ended:
            log.error("%s ended on its own (exit %s); stopping the rest", ended,
                      pipeline.children[ended].proc.returncode)
    finally:
        log.info("stopping: the producer first (it flushes to Kafka), then each layer once it has landed its input")
        status.publish("pipeline", state="stopping")
        codes = pipeline.stop_all()
        status.publish("pipeline", state="stopped")
    failed = {name: code for name, code in codes.items() if code not in (0, None)}
    for name, code in failed.items():
        log.warning("%s exited %s: see %s (a Spark layer exits 1 when it could not land all of its input; the rest "
                    "lands on the next run)", name, code, pipeline.children[name].log_path)
    for line in layer_summary(args.data_dir) + (draw_charts(args.data_dir, args.pair) if args.demo else []):
        print(line, flush=True)
    still = "the cluster is still running (make cluster-down" if args.cluster else \
        "the broker is still running (make broker-down"
    print(f"logs in {args.log_dir}; {still} stops it)", flush=True)
    return 1 if ended or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
