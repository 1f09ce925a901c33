"""A local 3-broker Apache Kafka cluster (KRaft) and a Spark standalone cluster: start, stop, inspect and break them.

Kafka: three brokers (node ids 1, 2, 3) at localhost:19092, :19094, :19096 and three controllers (node ids 101, 102,
103) at 127.0.0.1:19093, :19095, :19097 forming a static 3-voter KRaft quorum, from the same Maven jars as
infra/kafka/broker.py. Topics get 3 replicas and min.insync.replicas=2 by default (the internal ones too), so acks=all
writes go on with one broker down and are refused (NOT_ENOUGH_REPLICAS) with two down. Controllers run apart from the
brokers (Kafka's production layout) so that losing brokers never costs the quorum: with two of three combined
broker+controller nodes down, the cluster could neither elect leaders nor shrink in-sync sets, and writes would time
out instead of being refused.
Spark: a standalone master at spark://127.0.0.1:7077 (web UI http://127.0.0.1:8080, its JSON at /json/) and two
workers of one core and 2 GiB each (web UIs on 8081, 8082), run by pyspark's own bin/spark-class.
Everything lives under --data-dir (default data/cluster, git-ignored): per process its configuration, data, console
log (logs/) and pid file.

Usage (examples in the entry point's docstring, infra/cluster.py):
    python infra/cluster.py --help

Exit codes: 0 ok; 1 a process failed to start or stop (its log tail is printed), or status found one down; 2 a usage
or environment error (no Java 17+, no pyspark, a port taken: the message says by what and how to stop it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lakehouse.broker.kraft import (
    DEFAULT_JARS_DIR, LIGHT_JIT, KafkaNode, ensure_jars, find_java, format_storages, node_properties,
    topic_defaults)
from lakehouse.cluster.spark_standalone import (
    MasterState, daemon_env, fetch_master_state, master_command, pyspark_home, worker_command)
from lakehouse.common.daemon import (CLUSTER_MARK, DEFAULT_CLUSTER_DIR, SPARK_MASTER_CLASS, Daemon, InfraError,
                                     port_is_open, port_owner, stop_all)
from lakehouse.common.polling import wait_until

DEFAULT_DATA_DIR = DEFAULT_CLUSTER_DIR
BROKER_IDS = (1, 2, 3)
CONTROLLER_IDS = (101, 102, 103)
REPLICAS = 3
MIN_INSYNC = 2
BROKER_HEAP = ("128m", "512m")
CONTROLLER_HEAP = ("64m", "256m")
SPARK_MASTER_PORT = 7077
DEFAULT_MASTER_UI_PORT = 8080
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "2g"
READY_TIMEOUT_S = 180.0  # nine JVMs starting at once on a 2-core machine
STOP_TIMEOUT_S = 30.0
ISR_TIMEOUT_S = 120.0

log = logging.getLogger("cluster")


# ---------------------------------------------------------------------------------------------------------------------
# Layout (pure)


def broker_port(node_id: int) -> int:
    return 19090 + 2 * node_id  # 1 -> 19092, 2 -> 19094, 3 -> 19096


def controller_port(index: int) -> int:
    return 19091 + 2 * index  # 1 -> 19093, 2 -> 19095, 3 -> 19097


def bootstrap_servers() -> str:
    return ",".join(f"localhost:{broker_port(i)}" for i in BROKER_IDS)


def quorum_voters() -> str:
    return ",".join(f"{node_id}@127.0.0.1:{controller_port(i)}" for i, node_id in enumerate(CONTROLLER_IDS, 1))


def kafka_node_properties(name: str, log_dirs: Path) -> dict[str, str]:
    """server.properties of `broker-N` or `controller-N`: the shared quorum and listeners, 3 replicas, min ISR 2."""
    role, index = name.rsplit("-", 1)
    defaults = topic_defaults(replicas=REPLICAS, min_insync=MIN_INSYNC, internal_partitions=3)
    if role == "broker":
        return {**node_properties(int(index), "broker", quorum_voters(), log_dirs, port=broker_port(int(index))),
                **defaults}
    node_id = CONTROLLER_IDS[int(index) - 1]
    return {**node_properties(node_id, "controller", quorum_voters(), log_dirs,
                              controller_port=controller_port(int(index))), **defaults}


def worker_ui_port(index: int, master_ui_port: int) -> int:
    return master_ui_port + index  # 8081, 8082 beside the master's 8080


# ---------------------------------------------------------------------------------------------------------------------
# Status (pure once gathered)


@dataclass(frozen=True)
class ProcessStatus:
    name: str  # broker-1, controller-1, master, worker-1
    pid: int | None  # None: not running
    port: int  # the port it serves: client port (broker), controller port, 7077 (master), web UI (worker)
    alive: bool  # process running and its port answering
    detail: str = ""  # what the cluster itself says about it (in the metadata, ALIVE at the master, ...)


@dataclass(frozen=True)
class ClusterStatus:
    data_dir: str
    bootstrap: str
    master_url: str
    master_ui: str
    processes: tuple[ProcessStatus, ...]
    brokers_in_metadata: tuple[int, ...] | None  # None: no broker answered (or confluent-kafka missing)
    master: MasterState | None

    @property
    def up(self) -> bool:
        return all(p.alive for p in self.processes)

    @property
    def alive_workers(self) -> int:
        return len(self.master.alive_workers) if self.master else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "up": self.up, "alive_workers": self.alive_workers}


def render_status(status: ClusterStatus) -> str:
    """The human report of `cluster.py status`: one line per process, then what Kafka and the master see."""
    lines = [f"cluster data: {status.data_dir}",
             f"kafka bootstrap: {status.bootstrap}    spark master: {status.master_url} (web UI {status.master_ui})"]
    for p in status.processes:
        state = "alive" if p.alive else ("running, port not answering" if p.pid else "not running")
        lines.append(f"  {p.name:<13} pid {p.pid or '-':<8} port {p.port:<6} {state}{'  ' + p.detail if p.detail else ''}")
    brokers = status.brokers_in_metadata
    lines.append("kafka: brokers in the metadata: " + (", ".join(map(str, brokers)) if brokers else "none (no broker of the cluster answers)"))
    if status.master is None:
        lines.append("spark: the master's web UI does not answer")
    else:
        alive = status.master.alive_workers
        lines.append(f"spark: master {status.master.status}, {len(alive)} worker(s) ALIVE with "
                     f"{sum(w.cores for w in alive)} core(s)")
    running = sum(p.alive for p in status.processes)
    lines.append(f"{running} of {len(status.processes)} processes up" + ("" if status.up else " (make cluster-up)"))
    return "\n".join(lines)


@dataclass(frozen=True)
class PartitionState:
    leader: int  # -1 when the partition has no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


# ---------------------------------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """The Kafka and Spark processes kept under one data folder, by name: controller-1..3, broker-1..3, master,
    worker-1..2."""

    def __init__(self, data_dir: Path = DEFAULT_DATA_DIR, *, master_ui_port: int = DEFAULT_MASTER_UI_PORT,
                 jars_dir: Path = DEFAULT_JARS_DIR) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.master_ui_port = master_ui_port
        self.jars_dir = jars_dir
        self.bootstrap = bootstrap_servers()
        self.master_url = f"spark://127.0.0.1:{SPARK_MASTER_PORT}"
        self._admin_client = None
        mark = f"{CLUSTER_MARK}{self.data_dir}"
        names = [f"controller-{i}" for i in range(1, len(CONTROLLER_IDS) + 1)] + [f"broker-{i}" for i in BROKER_IDS]
        self.kafka: dict[str, KafkaNode] = {
            name: KafkaNode(name, self.data_dir / "kafka" / name,
                            kafka_node_properties(name, self.data_dir / "kafka" / name / "kraft-logs"),
                            cluster_id_file=self.data_dir / "kafka" / "cluster.id", jars_dir=jars_dir,
                            heap=BROKER_HEAP if name.startswith("broker") else CONTROLLER_HEAP,
                            extra_jvm_flags=(mark,) if name.startswith("broker") else (mark, LIGHT_JIT))
            for name in names}
        spark_dir = self.data_dir / "spark"
        self.spark: dict[str, Daemon] = {"master": Daemon("master", spark_dir / "master" / "master.pid",
                                                          spark_dir / "master" / "logs" / "master.out",
                                                          markers=(mark, SPARK_MASTER_CLASS))}
        for i in range(1, WORKERS + 1):
            folder = spark_dir / f"worker-{i}"
            self.spark[f"worker-{i}"] = Daemon(f"worker-{i}", folder / "worker.pid", folder / "logs" / "worker.out",
                                               markers=(str(folder / "work"),))

    # -- names and ports ------------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [*self.kafka, *self.spark]

    def port_of(self, name: str) -> int:
        """The port a process serves (its readiness port)."""
        if name in self.kafka:
            return self.kafka[name].ports[0]
        if name == "master":
            return SPARK_MASTER_PORT
        return worker_ui_port(int(name.rsplit("-", 1)[1]), self.master_ui_port)

    def ports_of(self, name: str) -> list[int]:
        """Every fixed port a process binds (the master also serves its web UI)."""
        return [self.port_of(name), self.master_ui_port] if name == "master" else [self.port_of(name)]

    def _check(self, name: str) -> None:
        if name not in self.kafka and name not in self.spark:
            raise InfraError(f"no process named {name!r}; the cluster has {', '.join(self.names)}", code=2)

    def running_pid(self, name: str) -> int | None:
        self._check(name)
        return self._daemon(name).running_pid()

    # -- whole cluster ----------------------------------------------------------------------------------------------

    def up(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start every process that is not running and wait until all are ready (harmless when all are up).
        Refuses, before starting anything, when a port it needs is taken (the message names the holder)."""
        missing = [name for name in self.names if self.running_pid(name) is None]
        if not missing:
            log.info("cluster already running (%s; %s)", self.bootstrap, self.master_url)
            return
        self._refuse_taken_ports(sorted(missing, key=lambda name: not name.startswith("broker-")))  # 19092 first
        java = find_java("the cluster")
        ensure_jars(self.jars_dir)
        spark_home = pyspark_home() if any(name in self.spark for name in missing) else None
        format_storages([self.kafka[name] for name in missing if name in self.kafka], java)
        started = {name: self._launch(name, java, spark_home) for name in missing}
        deadline = time.monotonic() + timeout
        for name in self.names:
            self._wait_ready(name, max(1.0, deadline - time.monotonic()), started.get(name))
        log.info("cluster ready: kafka %s, spark %s (web UI http://127.0.0.1:%d)", self.bootstrap, self.master_url,
                 self.master_ui_port)

    def down(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop everything cleanly, the data kept: workers and brokers first, then the master and the controllers
        (brokers shut down through the controllers)."""
        self._stop([*(n for n in self.spark if n != "master"), *(n for n in self.kafka if n.startswith("broker"))],
                   timeout)
        self._stop(["master", *(n for n in self.kafka if n.startswith("controller"))], timeout)

    def status(self) -> ClusterStatus:
        ours_running = {name for name in self.names if self.running_pid(name) is not None}
        master = fetch_master_state(self.master_ui_port) if "master" in ours_running else None
        brokers = self.brokers_in_metadata() if any(n.startswith("broker-") for n in ours_running) else None
        processes = tuple(self._process_status(name, brokers, master) for name in self.names)
        return ClusterStatus(str(self.data_dir), self.bootstrap, self.master_url,
                             f"http://127.0.0.1:{self.master_ui_port}", processes,
                             tuple(brokers) if brokers is not None else None, master)

    # -- one process ------------------------------------------------------------------------------------------------

    def kill(self, name: str) -> int | None:
        """kill -9 one process, as a crash would; returns its pid (None: it was not running). Returns once the process
        is gone; the cluster notices on its own (a broker leaves the ISRs within broker.session.timeout.ms, 9 s; the
        master marks a worker DEAD when its connection drops)."""
        self._check(name)
        pid = self._daemon(name).kill()
        if pid is None:
            log.info("%s was not running", name)
        else:
            log.info("%s killed (pid %d)", name, pid)
        return pid

    def stop(self, name: str, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Stop one process cleanly (SIGTERM, SIGKILL after `timeout`); returns its pid (None: not running)."""
        self._check(name)
        return self._stop([name], timeout)[0]

    def start(self, name: str, timeout: float = ISR_TIMEOUT_S) -> None:
        """Start one process (no-op when running) and wait until it is back: a broker in the ISR of every partition
        it holds a replica of, a worker ALIVE at the master, a controller or the master answering."""
        self._check(name)
        if self.running_pid(name) is None:
            self._refuse_taken_ports([name])
            java = find_java("the cluster")
            ensure_jars(self.jars_dir)
            proc = self._launch(name, java, pyspark_home() if name in self.spark else None)
        else:
            proc = None
        self._wait_ready(name, timeout, proc)
        if name.startswith("broker-"):
            self.wait_in_sync(int(name.rsplit("-", 1)[1]), timeout=timeout)
        log.info("%s is back (pid %s)", name, self.running_pid(name))

    def kill_broker(self, node_id: int) -> int | None:
        return self.kill(f"broker-{node_id}")

    def start_broker(self, node_id: int, timeout: float = ISR_TIMEOUT_S) -> None:
        self.start(f"broker-{node_id}", timeout)

    def kill_worker(self, index: int) -> int | None:
        return self.kill(f"worker-{index}")

    def start_worker(self, index: int, timeout: float = ISR_TIMEOUT_S) -> None:
        self.start(f"worker-{index}", timeout)

    # -- Kafka's view -----------------------------------------------------------------------------------------------

    def brokers_in_metadata(self) -> list[int] | None:
        """Broker ids the cluster's metadata lists (registered, not fenced); None when no broker answers."""
        try:
            return sorted(self._admin().list_topics(timeout=5).brokers)
        except Exception:  # noqa: BLE001 - KafkaException when no broker answers, ImportError without confluent-kafka
            return None

    def partitions(self, topic: str) -> dict[int, PartitionState]:
        """Per partition of `topic`: its leader, replicas and in-sync replicas, as the brokers' metadata says."""
        from confluent_kafka import KafkaException

        try:
            metadata = self._admin().list_topics(topic, timeout=10).topics[topic]
        except KafkaException as exc:
            raise InfraError(f"no broker of {self.bootstrap} answered: {exc}") from exc
        if metadata.error is not None:
            raise InfraError(f"topic {topic}: {metadata.error.str()}")
        return {p.id: PartitionState(p.leader, tuple(p.replicas), tuple(p.isrs))
                for p in sorted(metadata.partitions.values(), key=lambda p: p.id)}

    def leaders(self, topic: str) -> dict[int, int]:
        """Per partition of `topic`, the node id of the broker that leads it (-1: no leader)."""
        return {partition: state.leader for partition, state in self.partitions(topic).items()}

    def wait_in_sync(self, node_id: int, topics: list[str] | None = None, timeout: float = ISR_TIMEOUT_S) -> None:
        """Wait until broker `node_id` is in the ISR of every partition it holds a replica of (of `topics`, or of
        every topic, the internal ones included)."""
        self._wait_isr(node_id, topics, True, timeout)

    def wait_out_of_sync(self, node_id: int, topics: list[str] | None = None, timeout: float = ISR_TIMEOUT_S) -> None:
        """Wait until broker `node_id` is in no ISR of `topics` (every topic by default): the cluster has noticed it
        is gone."""
        self._wait_isr(node_id, topics, False, timeout)

    # -- Spark's view -----------------------------------------------------------------------------------------------

    def master_state(self) -> MasterState | None:
        """What the Spark master sees (workers and their states); None when its web UI does not answer."""
        return fetch_master_state(self.master_ui_port)

    def worker_alive(self, index: int) -> bool:
        """Whether worker-`index` is registered and ALIVE at the master."""
        state = self.master_state()
        return bool(state and state.is_alive_at(worker_ui_port(index, self.master_ui_port)))

    def wait_worker(self, index: int, alive: bool, timeout: float = ISR_TIMEOUT_S) -> None:
        """Wait until the master lists worker-`index` as ALIVE (alive=True) or no longer does (alive=False)."""
        wait_until(lambda: self.worker_alive(index) == alive, timeout, 0.5,
                   f"worker-{index} {'ALIVE' if alive else 'gone'} at the master", error=InfraError)

    # -- internals --------------------------------------------------------------------------------------------------

    def _refuse_taken_ports(self, names: list[str]) -> None:
        for name in names:
            for port in self.ports_of(name):
                if port_is_open(port):
                    raise InfraError(
                        f"cannot start {name}: port {port} is already in use by "
                        f"{port_owner(port)}. (The cluster takes ports 19092-19097 for "
                        f"Kafka, {SPARK_MASTER_PORT} and {self.master_ui_port}-{self.port_of(f'worker-{WORKERS}')} "
                        f"for Spark.)", code=2)

    def _daemon(self, name: str) -> Daemon:
        return self.kafka[name].daemon if name in self.kafka else self.spark[name]

    def _stop(self, names: list[str], timeout: float) -> list[int | None]:
        """Stop these processes at once (SIGTERM, SIGKILL after `timeout`); their pids (None: not running)."""
        results = stop_all([self._daemon(n) for n in names], timeout)
        for name, (pid, killed) in zip(names, results):
            if pid is None:
                log.info("%s was not running", name)
            elif killed:
                log.warning("%s (pid %d) did not stop within %.0fs; killed it", name, pid, timeout)
            else:
                log.info("%s stopped (pid %d)", name, pid)
        return [pid for pid, _ in results]

    def _launch(self, name: str, java: str, spark_home: Path | None):
        log.info("starting %s", name)
        if name in self.kafka:
            return self.kafka[name].launch(java)  # (its storage is formatted already when up() starts it)
        folder = self.spark[name].pid_file.parent
        env = daemon_env(os.environ, spark_home, self.data_dir, folder / "local")
        if name == "master":
            argv = master_command(spark_home, SPARK_MASTER_PORT, self.master_ui_port)
        else:
            (folder / "work").mkdir(parents=True, exist_ok=True)
            argv = worker_command(spark_home, self.master_url, cores=WORKER_CORES, memory=WORKER_MEMORY,
                                  ui_port=self.port_of(name), work_dir=folder / "work")
        return self.spark[name].start(argv, env=env, cwd=folder)

    def _wait_ready(self, name: str, timeout: float, proc) -> None:
        if name in self.kafka:
            self.kafka[name].wait_ready(timeout, proc)
        elif name == "master":
            self.spark[name].wait_ready(
                lambda: port_is_open(SPARK_MASTER_PORT) and (self.master_state() or _NO_MASTER).status == "ALIVE",
                timeout, proc)
        else:
            self.spark[name].wait_ready(lambda: self.worker_alive(int(name.rsplit("-", 1)[1])), timeout, proc)

    def _process_status(self, name: str, brokers: list[int] | None, master: MasterState | None) -> ProcessStatus:
        pid, port = self.running_pid(name), self.port_of(name)
        detail = ""
        if pid is None and port_is_open(port):
            detail = f"port {port} is held by {port_owner(port)}"
        elif name.startswith("broker-"):
            detail = "in the metadata" if brokers and int(name.rsplit("-", 1)[1]) in brokers else ""
        elif name.startswith("worker-") and master is not None:
            detail = "ALIVE at the master" if master.is_alive_at(port) else "not ALIVE at the master"
        return ProcessStatus(name, pid, port, pid is not None and port_is_open(port), detail)

    def _admin(self):
        """One admin client per Cluster (it reconnects by itself as brokers come and go)."""
        if self._admin_client is None:
            from confluent_kafka.admin import AdminClient

            # log_level 0: no "Connection refused" lines on stderr while a broker is down on purpose
            self._admin_client = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        return self._admin_client

    def _wait_isr(self, node_id: int, topics: list[str] | None, member: bool, timeout: float) -> None:
        def settled() -> bool:
            try:
                metadata = self._admin().list_topics(timeout=5)
            except Exception:  # noqa: BLE001 - no broker answering yet: keep waiting
                return False
            chosen = [t for name, t in metadata.topics.items() if topics is None or name in topics]
            if topics is not None and len(chosen) < len(topics):
                return False
            return all((node_id in p.isrs) == member for t in chosen for p in t.partitions.values()
                       if node_id in p.replicas)

        wait_until(settled, timeout, 0.5, f"broker {node_id} {'in' if member else 'out of'} the in-sync replicas",
                   error=InfraError)


_NO_MASTER = MasterState(status="DOWN", url="", workers=(), active_apps=0)


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=Path(os.environ.get("CLUSTER_DATA_DIR", DEFAULT_DATA_DIR)),
                        help="configuration, data, logs and pid files (default %(default)s, env CLUSTER_DATA_DIR)")
    common.add_argument("--master-ui-port", type=int,
                        default=int(os.environ.get("SPARK_MASTER_WEBUI_PORT", DEFAULT_MASTER_UI_PORT)),
                        help="the Spark master's web UI (default %(default)s, env SPARK_MASTER_WEBUI_PORT); the "
                             "workers' web UIs take the next two ports")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", parents=[common], help="start what is not running and wait until ready")
    commands.add_parser("down", parents=[common], help="stop every process cleanly; the data stays")
    status = commands.add_parser("status", parents=[common],
                                 help="per process: pid, port, alive; exit 1 unless all are up")
    status.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    for command, text in (("kill", "kill -9 one process"), ("start", "start one process and wait until it is back"),
                          ("stop", "stop one process cleanly")):
        commands.add_parser(command, parents=[common], help=text).add_argument(
            "name", help="broker-N, controller-N, master, worker-N")
    commands.add_parser("leaders", parents=[common], help="per partition of TOPIC: leader, replicas, in-sync "
                        "replicas (JSON)").add_argument("topic")
    return parser.parse_args(argv)


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    if args.command == "up":
        cluster.up()
    elif args.command == "down":
        cluster.down()
    elif args.command == "status":
        status = cluster.status()
        print(json.dumps(status.to_dict()) if args.json else render_status(status))
        return 0 if status.up else 1
    elif args.command == "kill":
        cluster.kill(args.name)
    elif args.command == "start":
        cluster.start(args.name)
    elif args.command == "stop":
        cluster.stop(args.name)
    else:
        states = cluster.partitions(args.topic)
        print(json.dumps({"topic": args.topic, "partitions": {str(p): asdict(s) for p, s in states.items()}}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        return run(Cluster(args.data_dir, master_ui_port=args.master_ui_port), args)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    raise SystemExit(main())
