"""The local cluster (infra/cluster.py: lakehouse.cluster.local) and the parts it shares (lakehouse.common.daemon,
lakehouse.broker.kraft, lakehouse.cluster.spark_standalone): generated configuration, command lines, status parsing
and rendering, the words a refusal uses. No server starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.broker import kraft
from lakehouse.cluster import local as cluster
from lakehouse.cluster import spark_standalone
from lakehouse.common import daemon
from tests.helpers import REPO_ROOT

VOTERS = "101@127.0.0.1:19093,102@127.0.0.1:19095,103@127.0.0.1:19097"

# The master's /json/ page (pyspark 3.5.7): one worker killed with -9 (DEAD), then started again (a new ALIVE entry
# with the same web UI port), one worker ALIVE with an executor on its core.
MASTER_JSON = """{
  "url" : "spark://127.0.0.1:7077",
  "workers" : [ {
    "id" : "worker-20261129123059-127.0.0.1-46133", "host" : "127.0.0.1", "port" : 46133,
    "webuiaddress" : "http://127.0.0.1:8081", "cores" : 1, "coresused" : 0, "coresfree" : 1, "memory" : 2048,
    "memoryused" : 0, "memoryfree" : 2048, "resources" : { }, "resourcesused" : { }, "resourcesfree" : { },
    "state" : "DEAD", "lastheartbeat" : 1795955465619
  }, {
    "id" : "worker-20261129123159-127.0.0.1-40001", "host" : "127.0.0.1", "port" : 40001,
    "webuiaddress" : "http://127.0.0.1:8081", "cores" : 1, "coresused" : 0, "coresfree" : 1, "memory" : 2048,
    "memoryused" : 0, "memoryfree" : 2048, "resources" : { }, "resourcesused" : { }, "resourcesfree" : { },
    "state" : "ALIVE", "lastheartbeat" : 1795955525619
  }, {
    "id" : "worker-20261129123060-127.0.0.1-35553", "host" : "127.0.0.1", "port" : 35553,
    "webuiaddress" : "http://127.0.0.1:8082", "cores" : 1, "coresused" : 1, "coresfree" : 0, "memory" : 2048,
    "memoryused" : 1024, "memoryfree" : 1024, "resources" : { }, "resourcesused" : { }, "resourcesfree" : { },
    "state" : "ALIVE", "lastheartbeat" : 1795955525619
  } ],
  "aliveworkers" : 2, "cores" : 2, "coresused" : 1, "memory" : 4096, "memoryused" : 1024,
  "resources" : [ { }, { } ], "resourcesused" : [ { }, { } ],
  "activeapps" : [ { "id" : "app-20261129123200-0000", "name" : "cluster-scenario" } ], "completedapps" : [ ],
  "activedrivers" : [ ], "completeddrivers" : [ ], "status" : "ALIVE"
}"""


# -- Kafka layout and server.properties ---------------------------------------------------------------------------


def test_ports_bootstrap_and_quorum() -> None:
    assert [cluster.broker_port(i) for i in cluster.BROKER_IDS] == [19092, 19094, 19096]
    assert [cluster.controller_port(i) for i in (1, 2, 3)] == [19093, 19095, 19097]
    assert cluster.bootstrap_servers() == "localhost:19092,localhost:19094,localhost:19096"
    assert cluster.quorum_voters() == VOTERS


def test_broker_properties(tmp_path: Path) -> None:
    props = kraft.parse_properties(kraft.render_properties(cluster.kafka_node_properties("broker-2", tmp_path)))
    assert {k: props[k] for k in ("process.roles", "node.id", "controller.quorum.voters", "listeners",
                                  "advertised.listeners", "inter.broker.listener.name", "log.dirs")} == {
        "process.roles": "broker", "node.id": "2", "controller.quorum.voters": VOTERS,
        "listeners": "PLAINTEXT://127.0.0.1:19094", "advertised.listeners": "PLAINTEXT://localhost:19094",
        "inter.broker.listener.name": "PLAINTEXT", "log.dirs": str(tmp_path)}
    assert {k: props[k] for k in ("default.replication.factor", "min.insync.replicas",
                                  "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                                  "transaction.state.log.min.isr", "auto.create.topics.enable")} == {
        "default.replication.factor": "3", "min.insync.replicas": "2", "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2",
        "auto.create.topics.enable": "true"}
    assert props["num.partitions"] == "1"


def test_controller_properties(tmp_path: Path) -> None:
    props = cluster.kafka_node_properties("controller-3", tmp_path)
    assert (props["process.roles"], props["node.id"], props["listeners"]) == (
        "controller", "103", "CONTROLLER://127.0.0.1:19097")
    assert props["controller.quorum.voters"] == VOTERS
    assert "advertised.listeners" not in props and "inter.broker.listener.name" not in props
    # A topic created without a replication factor gets the controller's default: 3, min ISR 2 there too.
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("3", "2")


def test_single_broker_properties_unchanged(tmp_path: Path) -> None:
    from lakehouse.broker import local as broker

    props = kraft.parse_properties(broker.server_properties(19092, 19093, tmp_path))
    assert (props["process.roles"], props["controller.quorum.voters"]) == ("broker,controller", "1@127.0.0.1:19093")
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("1", "1")
    assert (props["offsets.topic.replication.factor"], props["transaction.state.log.min.isr"]) == ("1", "1")


# -- command lines ------------------------------------------------------------------------------------------------


def test_kafka_command_lines(tmp_path: Path) -> None:
    c = cluster.Cluster(tmp_path)
    broker = c.kafka["broker-1"].server_command("java")
    controller = c.kafka["controller-1"].server_command("java")
    mark = f"-Dlakehouse.cluster={tmp_path.resolve()}"
    assert broker[:3] == ["java", "-Xms128m", "-Xmx512m"] and mark in broker and kraft.LIGHT_JIT not in broker
    assert broker[-2:] == ["kafka.Kafka", str(tmp_path.resolve() / "kafka" / "broker-1" / "server.properties")]
    assert "-Xmx256m" in controller and mark in controller and kraft.LIGHT_JIT in controller
    assert c.kafka["controller-2"].ports == [19095] and c.kafka["broker-3"].ports == [19096]


def test_format_command_only_until_formatted(tmp_path: Path) -> None:
    node = cluster.Cluster(tmp_path).kafka["broker-2"]
    cmd = node.format_command("java")
    cluster_id = (tmp_path / "kafka" / "cluster.id").read_text()
    assert cmd[-6:] == ["format", "-t", cluster_id, "-c", str(node.config_file), "--ignore-formatted"]
    assert cluster.Cluster(tmp_path).kafka["broker-3"].format_command("java")[-4] == cluster_id  # one id for all
    (tmp_path / "kafka" / "broker-2" / "kraft-logs").mkdir(parents=True)
    (tmp_path / "kafka" / "broker-2" / "kraft-logs" / "meta.properties").write_text("cluster.id=x\n")
    assert node.format_command("java") is None


def test_spark_command_lines(tmp_path: Path) -> None:
    home = Path("/opt/pyspark")
    assert spark_standalone.master_command(home, 7077, 8080) == [
        "/opt/pyspark/bin/spark-class", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
        "--port", "7077", "--webui-port", "8080"]
    assert spark_standalone.worker_command(home, "spark://127.0.0.1:7077", cores=1, memory="2g", ui_port=8082,
                                           work_dir=tmp_path) == [
        "/opt/pyspark/bin/spark-class", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
        "--cores", "1", "--memory", "2g", "--webui-port", "8082", "--work-dir", str(tmp_path),
        "spark://127.0.0.1:7077"]
    env = spark_standalone.daemon_env({"SPARK_HOME": "/elsewhere", "PATH": "/bin"}, home, tmp_path, tmp_path / "l")
    assert (env["SPARK_HOME"], env["SPARK_LOCAL_IP"], env["SPARK_LOCAL_DIRS"], env["PATH"]) == (
        "/opt/pyspark", "127.0.0.1", str(tmp_path / "l"), "/bin")
    assert env["SPARK_DAEMON_JAVA_OPTS"].split()[0] == f"-Dlakehouse.cluster={tmp_path}"


def test_cluster_names_and_ports(tmp_path: Path) -> None:
    c = cluster.Cluster(tmp_path, master_ui_port=9090)
    assert c.names == ["controller-1", "controller-2", "controller-3", "broker-1", "broker-2", "broker-3", "master",
                       "worker-1", "worker-2"]
    assert [c.port_of(n) for n in ("master", "worker-1", "worker-2")] == [7077, 9091, 9092]
    assert c.ports_of("master") == [7077, 9090]
    assert (c.bootstrap, c.master_url) == ("localhost:19092,localhost:19094,localhost:19096", "spark://127.0.0.1:7077")


def test_options_read_the_environment(monkeypatch, tmp_path: Path) -> None:
    assert cluster.parse_args(["status"]).data_dir == cluster.DEFAULT_DATA_DIR == REPO_ROOT / "data" / "cluster"
    assert cluster.parse_args(["status"]).master_ui_port == 8080
    monkeypatch.setenv("CLUSTER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPARK_MASTER_WEBUI_PORT", "8090")  # e.g. beside Redpanda Console on 8080
    args = cluster.parse_args(["kill", "worker-1"])
    assert (args.data_dir, args.master_ui_port, args.name) == (tmp_path, 8090, "worker-1")


# -- the master's view and the status report -------------------------------------------------------------------------


def test_parse_master_json() -> None:
    state = spark_standalone.parse_master_json(MASTER_JSON)
    assert (state.status, state.url, state.active_apps) == ("ALIVE", "spark://127.0.0.1:7077", 1)
    assert [(w.ui_port, w.state, w.cores, w.cores_used) for w in state.workers] == [
        (8081, "DEAD", 1, 0), (8081, "ALIVE", 1, 0), (8082, "ALIVE", 1, 1)]
    assert [w.ui_port for w in state.alive_workers] == [8081, 8082]
    assert state.is_alive_at(8081) and state.is_alive_at(8082) and not state.is_alive_at(8083)
    dead_only = json.loads(MASTER_JSON)
    dead_only["workers"] = dead_only["workers"][:1]
    assert not spark_standalone.parse_master_json(json.dumps(dead_only)).is_alive_at(8081)


def sample_status(down: set[str]) -> cluster.ClusterStatus:
    names = ["controller-1", "broker-1", "broker-2", "master", "worker-1", "worker-2"]
    ports = dict(zip(names, [19093, 19092, 19094, 7077, 8081, 8082]))
    processes = tuple(cluster.ProcessStatus(n, None if n in down else 100 + i, ports[n], n not in down)
                      for i, n in enumerate(names))
    return cluster.ClusterStatus("/d", "localhost:19092", "spark://127.0.0.1:7077", "http://127.0.0.1:8080",
                                 processes, (1,), spark_standalone.parse_master_json(MASTER_JSON))


def test_render_status() -> None:
    text = cluster.render_status(sample_status(down={"broker-2"}))
    assert "  broker-1      pid 101      port 19092  alive" in text.splitlines()
    assert "  broker-2      pid -        port 19094  not running" in text.splitlines()
    assert "kafka: brokers in the metadata: 1" in text
    assert "spark: master ALIVE, 2 worker(s) ALIVE with 2 core(s)" in text
    assert text.splitlines()[-1] == "5 of 6 processes up (make cluster-up)"
    assert cluster.render_status(sample_status(down=set())).splitlines()[-1] == "6 of 6 processes up"


def test_render_status_of_a_process_whose_port_does_not_answer() -> None:
    status = sample_status(down=set())
    hung = cluster.ProcessStatus("master", 103, 7077, alive=False)
    status = cluster.ClusterStatus(**{**status.__dict__, "processes": (*status.processes[:3], hung,
                                                                       *status.processes[4:])})
    assert "  master        pid 103      port 7077   running, port not answering" in cluster.render_status(status)
    assert not status.up


def test_status_json_shape() -> None:
    doc = json.loads(json.dumps(sample_status(down={"worker-2"}).to_dict()))
    assert (doc["up"], doc["alive_workers"], doc["brokers_in_metadata"]) == (False, 2, [1])
    assert doc["processes"][5] == {"name": "worker-2", "pid": None, "port": 8082, "alive": False, "detail": ""}


# -- who holds a port ---------------------------------------------------------------------------------------------------

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4A94 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5551 1 0 100 0 0 10 0
   1: 0100007F:4A94 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 5552 1 0 20 4 30 10 -1
   2: 0100007F:1BA5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5553 1 0 100 0 0 10 0
"""


def test_listening_inodes() -> None:
    assert daemon.listening_inodes(PROC_NET_TCP, 19092) == {5551}  # 0x4A94; the established socket is not listening
    assert daemon.listening_inodes(PROC_NET_TCP, 7077) == {5553}
    assert daemon.listening_inodes(PROC_NET_TCP, 8080) == set()


def test_describe_cluster_node() -> None:
    argv = ["java", "-Dlakehouse.cluster=/x/c", "kafka.Kafka", "/x/c/kafka/broker-1/server.properties"]
    assert daemon.describe_process(5, argv) == (
        "broker-1 of the local Kafka + Spark cluster (pid 5, data /x/c); stop the cluster with "
        "`python infra/cluster.py down --data-dir /x/c` (`make cluster-status` shows it)")
    default = REPO_ROOT / "data" / "cluster"
    argv = ["java", f"-Dlakehouse.cluster={default}", "org.apache.spark.deploy.worker.Worker", "--work-dir",
            f"{default}/spark/worker-2/work", "spark://127.0.0.1:7077"]
    assert daemon.describe_process(6, argv).startswith("worker-2 of the local Kafka + Spark cluster (pid 6, data ")
    assert "stop the cluster with `make cluster-down`" in daemon.describe_process(6, argv)


def test_describe_single_broker() -> None:
    argv = ["java", "-Xmx768m", "kafka.Kafka", f"{REPO_ROOT}/data/broker/server.properties"]
    assert daemon.describe_process(7, argv) == (
        f"the single-node Kafka broker (pid 7, data {REPO_ROOT}/data/broker); stop it with `make broker-down`")
    argv = ["java", "-Xmx768m", "kafka.Kafka", "/tmp/b/server.properties"]
    assert daemon.describe_process(7, argv).endswith(
        "stop it with `python3 infra/kafka/broker.py down --data-dir /tmp/b`")


def test_describe_other_processes() -> None:
    assert daemon.describe_process(8, ["java", "org.apache.spark.deploy.master.Master", "--port", "7077"]) == (
        "a Spark standalone spark-master not started by infra/cluster.py (pid 8); stop it yourself")
    assert daemon.describe_process(9, ["nc", "-l", "19092"]) == "another program (pid 9: nc -l 19092)"


def test_port_owner_finds_a_listening_process() -> None:
    with subprocess.Popen([sys.executable, "-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 0)); "
                           "s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)"],
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            port = int(proc.stdout.readline())
            assert daemon.port_owner(port).startswith(f"another program (pid {proc.pid}: {sys.executable} -c ")
        finally:
            proc.kill()


# -- one background process -----------------------------------------------------------------------------------------


def test_daemon_start_stop_kill(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    d = daemon.Daemon("sleeper", tmp_path / "s.pid", tmp_path / "logs" / "s.out", markers=(marker,))
    assert d.running_pid() is None
    proc = d.start([sys.executable, "-c", "import sys, time; print('hello', flush=True); time.sleep(60)", marker])
    assert d.running_pid() == proc.pid == int((tmp_path / "s.pid").read_text())
    d.wait_ready(lambda: "hello" in d.log_since_start(), 30, proc)
    assert d.stop(10) == (proc.pid, False)  # SIGTERM was enough
    assert d.running_pid() is None and not (tmp_path / "s.pid").exists()
    proc = d.start([sys.executable, "-c", "import time; time.sleep(60)", marker])
    assert d.log_since_start().count("\n") == 1  # this run's start line only; the file keeps the first run's
    assert "hello" in d.log_tail() and "hello" not in daemon.Daemon("again", d.pid_file, d.log_file,
                                                                     d.markers).log_since_start()
    assert d.kill() == proc.pid and d.running_pid() is None
    assert (tmp_path / "s.pid").exists()  # a crash leaves its pid file, which no longer names a live process


def test_daemon_ignores_a_pid_file_naming_someone_else(tmp_path: Path) -> None:
    (tmp_path / "s.pid").write_text(str(os.getpid()))  # this pytest process, without the marker
    assert daemon.Daemon("x", tmp_path / "s.pid", tmp_path / "x.out", markers=("/no/such/marker",)).running_pid() is None


def test_daemon_wait_ready_reports_an_early_exit(tmp_path: Path) -> None:
    d = daemon.Daemon("crasher", tmp_path / "c.pid", tmp_path / "c.out", markers=("x",))
    proc = d.start([sys.executable, "-c", "print('bad config'); raise SystemExit(1)", "x"])
    with pytest.raises(daemon.InfraError) as error:
        d.wait_ready(lambda: False, 30, proc)
    assert str(error.value).startswith(f"crasher exited during start-up; last lines of {tmp_path / 'c.out'}:\n")
    assert str(error.value).endswith("\nbad config")


# -- CLI ------------------------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "infra/cluster.py"), *args], capture_output=True,
                          text=True, timeout=60)


def test_unknown_process_name_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("kill", "broker-4", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == ("error: no process named 'broker-4'; the cluster has controller-1, controller-2, "
                             "controller-3, broker-1, broker-2, broker-3, master, worker-1, worker-2\n")


def test_status_of_a_cluster_that_is_not_running(tmp_path: Path) -> None:
    result = run_cli("status", "--json", "--data-dir", str(tmp_path))
    doc = json.loads(result.stdout)
    assert result.returncode == 1 and doc["up"] is False and doc["master"] is None
    assert [p["pid"] for p in doc["processes"]] == [None] * 9
