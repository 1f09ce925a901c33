"""Drive the local Kafka + Spark cluster through its lifecycle and its failures; print what it sees, one JSON per step.

It takes ports 19092-19097, 7077 and 8080-8082 and starts and kills servers there, so it runs inside a private
network namespace, where those ports are free and the shared broker on the host's 19092 is out of reach.
tests/integration/test_cluster.py runs it and asserts on its output. By hand (as root):

Usage:
    unshare -n bash -c 'ip link set lo up; exec .venv/bin/python tests/integration/cluster_scenario.py \
        --data-dir /tmp/cluster-scenario'

Each line is `{"step": NAME, ...}`; the last is `{"step": "end", "error": null | "what failed"}`. Whatever happens,
the cluster and the single broker it starts are stopped before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from infra.cluster import Cluster  # noqa: E402
from infra.daemon import InfraError, port_is_open  # noqa: E402

PYTHON = sys.executable
PORTS = (19092, 19093, 19094, 19095, 19096, 19097, 7077, 8080, 8081, 8082)
MESSAGES_PER_ROUND = 100
REFUSED_TIMEOUT_MS = 5000  # how long the producer keeps retrying a write that two brokers down make impossible

SPARK_JOB = """
import sys
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master(sys.argv[1]).appName("cluster-scenario").config("spark.ui.enabled", "false")
         .getOrCreate())
print(spark.range(1000).rdd.map(lambda row: 2 * row.id).sum())  # 1000 rows, doubled by Python on the executors
spark.stop()
"""


T0 = time.monotonic()
EMIT_LOCK = threading.Lock()  # two phases run at once: one whole line at a time


def emit(step: str, **fields) -> None:
    """One step's observations as a JSON line; `at` is the seconds since the start (for the reader, not asserted)."""
    line = json.dumps({"step": step, "at": round(time.monotonic() - T0, 1), **fields})
    with EMIT_LOCK:
        print(line, flush=True)


def run(*argv: str, env_extra: dict[str, str] | None = None, timeout: float = 300) -> dict:
    result = subprocess.run(list(argv), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env_extra or {})})
    return {"rc": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def produce(bootstrap: str, topic: str, values: list[str], timeout_ms: int = 60000, **extra) -> dict[str, list]:
    """Produce with acks=all and idempotence (the project's producer settings); per value, delivered or the error."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": timeout_ms, "log_level": 0, **extra})
    delivered, errors = [], []
    for value in values:
        producer.produce(topic, value.encode(), on_delivery=lambda err, msg: (
            errors.append(err.name()) if err else delivered.append(msg.value().decode())))
    producer.flush(timeout_ms / 1000 + 30)
    return {"delivered": delivered, "errors": errors}


def probe_without_retries(bootstrap: str, topic: str) -> list[str]:
    """One acks=all write without retries or idempotence: the broker's own answer, not the producer's timeout."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False, "retries": 0,
                         "log_level": 0})
    errors: list[str] = []
    producer.produce(topic, b"probe", on_delivery=lambda err, msg: errors.append(err.name() if err else "OK"))
    producer.flush(30)
    return errors


def topic_values(bootstrap: str, topic: str) -> list[str]:
    """Every value in the topic: each partition read from its start up to its end offset."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "scenario", "enable.auto.commit": False,
                         "log_level": 0})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])  # no group join: assigned, from offset 0
    values: list[str] = []
    deadline = time.monotonic() + 60
    while any(consumer.position([TopicPartition(topic, p)])[0].offset < end for p, end in ends.items() if end > 0):
        if time.monotonic() >= deadline:
            raise AssertionError(f"could not read {topic} to its end offsets {ends} within 60 s")
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            values.append(msg.value().decode())
    consumer.close()
    return values


def topic_facts(cluster: Cluster, topic: str) -> dict:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    partitions = cluster.partitions(topic)
    return {"min_insync_replicas": configs["min.insync.replicas"].value,
            "replicas": {p: len(s.replicas) for p, s in partitions.items()},
            "isr": {p: sorted(s.isr) for p, s in partitions.items()},
            "leaders": cluster.leaders(topic)}


def in_sync_counts(cluster: Cluster, topic: str) -> list[int]:
    """How many replicas of each partition are in sync; [] while the brokers do not know the topic yet."""
    try:
        return [len(state.isr) for state in cluster.partitions(topic).values()]
    except InfraError:
        return []


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


TOPIC = "failover"
BROKERS = (1, 2, 3)


def scenario(data_dir: Path) -> None:
    cluster_dir, broker_dir = data_dir / "cluster", data_dir / "broker"
    cluster = Cluster(cluster_dir)
    start_and_inspect(cluster_dir, broker_dir)
    # Kafka's failures mostly wait (for the controllers to notice a broker gone, for replicas to catch up) while
    # Spark's keep the CPU busy: run both at once.
    kafka_done = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        spark = pool.submit(spark_failures, cluster, cluster_dir, kafka_done)
        try:
            kafka_failures(cluster, cluster_dir)
        finally:
            kafka_done.set()
        spark.result()
    down_refuse_and_up(cluster, cluster_dir, broker_dir)


def cluster_cli(*args: str) -> dict:
    return run(PYTHON, "infra/cluster.py", *args)


def broker_cli(*args: str) -> dict:
    return run(PYTHON, "infra/kafka/broker.py", *args)


def start_and_inspect(cluster_dir: Path, broker_dir: Path) -> None:
    """Up, up again (a no-op), a single broker refused beside it, the status as make and as JSON show it."""
    t0 = time.monotonic()
    up = cluster_cli("up", "--data-dir", str(cluster_dir))
    emit("up", seconds=round(time.monotonic() - t0), **up)
    emit("up_again", **cluster_cli("up", "--data-dir", str(cluster_dir)))
    emit("broker_refused", **broker_cli("up", "--data-dir", str(broker_dir)))
    emit("make_status", **run("make", "--no-print-directory", "cluster-status",
                              env_extra={"CLUSTER_DATA_DIR": str(cluster_dir)}))
    emit("status_json", **json.loads(cluster_cli("status", "--json", "--data-dir", str(cluster_dir))["stdout"]))


def kafka_failures(cluster: Cluster, cluster_dir: Path) -> None:
    """A topic with the default 3 replicas and min ISR 2; acks=all writes with one, then two brokers killed; the first
    restarted (`cluster.py start`) and back in sync; nothing acknowledged is lost. The second stays down: the Spark
    phase's `up` starts it again."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    admin.create_topics([NewTopic(TOPIC, num_partitions=3)])[TOPIC].result(30)  # replication factor: the default
    wait_for(lambda: in_sync_counts(cluster, TOPIC) == [3, 3, 3], 60, "3 in-sync replicas of each partition")
    first = produce(cluster.bootstrap, TOPIC, [f"a{i}" for i in range(MESSAGES_PER_ROUND)])
    emit("topic", brokers=cluster.brokers_in_metadata(), produced=len(first["delivered"]), errors=first["errors"],
         **topic_facts(cluster, TOPIC))

    leader = cluster.leaders(TOPIC)[0]
    cluster.kill_broker(leader)
    second = produce(cluster.bootstrap, TOPIC, [f"b{i}" for i in range(MESSAGES_PER_ROUND)])
    cluster.wait_out_of_sync(leader, [TOPIC], timeout=60)
    emit("one_down", killed=leader, produced=len(second["delivered"]), errors=second["errors"],
         **topic_facts(cluster, TOPIC))

    other = next(b for b in BROKERS if b != leader and b in cluster.partitions(TOPIC)[0].isr)
    cluster.kill_broker(other)
    cluster.wait_out_of_sync(other, [TOPIC], timeout=60)
    refused = produce(cluster.bootstrap, TOPIC, [f"c{i}" for i in range(10)], timeout_ms=REFUSED_TIMEOUT_MS)
    emit("two_down", killed=other, produced=len(refused["delivered"]), errors=sorted(set(refused["errors"])),
         failed=len(refused["errors"]), probe=probe_without_retries(cluster.bootstrap, TOPIC),
         **topic_facts(cluster, TOPIC))

    emit("restart_cli", **cluster_cli("start", f"broker-{leader}", "--data-dir", str(cluster_dir)))
    values = topic_values(cluster.bootstrap, TOPIC)
    emit("restarted", values=sorted(values), **topic_facts(cluster, TOPIC))


def spark_failures(cluster: Cluster, cluster_dir: Path, kafka_done: threading.Event) -> None:
    """2 workers of 1 core; a job (JVM and Python tasks) on the cluster; a killed worker leaves. Once Kafka's phase is
    over, `up` starts what is missing, and only that: the worker (ALIVE again) and the broker Kafka's phase left down
    (back in the in-sync replicas)."""
    state = cluster.master_state()
    emit("spark", status=state.status, alive=[w.cores for w in state.alive_workers])
    job = run(PYTHON, "-c", SPARK_JOB, cluster.master_url, env_extra={
        "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON})
    emit("spark_job", rc=job["rc"], stdout=job["stdout"], stderr_tail=job["stderr"][-2000:])
    assert kafka_done.wait(300), "Kafka's phase did not end"
    killed = cluster_cli("kill", "worker-1", "--data-dir", str(cluster_dir))
    cluster.wait_worker(1, alive=False, timeout=60)
    gone = cluster.master_state()
    up = cluster_cli("up", "--data-dir", str(cluster_dir))
    back = cluster.master_state()
    for broker in BROKERS:
        cluster.wait_in_sync(broker, [TOPIC], timeout=60)
    emit("worker_restart", kill=killed, up=up, alive_after_kill=[w.ui_port for w in gone.alive_workers],
         alive_after_up=sorted(w.ui_port for w in back.alive_workers), isr=topic_facts(cluster, TOPIC)["isr"])


def down_refuse_and_up(cluster: Cluster, cluster_dir: Path, broker_dir: Path) -> None:
    """Down: nothing answers any more. A single broker on 19092 keeps the cluster from starting. Up again: the topic
    and its data are still there."""
    down = cluster_cli("down", "--data-dir", str(cluster_dir))
    status_down = cluster_cli("status", "--data-dir", str(cluster_dir))
    emit("down", down=down, status=status_down, ports_open=[p for p in PORTS if port_is_open(p)])
    started = broker_cli("up", "--data-dir", str(broker_dir))
    assert started["rc"] == 0, started
    emit("refused_beside_broker", **cluster_cli("up", "--data-dir", str(cluster_dir)))
    assert broker_cli("down", "--data-dir", str(broker_dir))["rc"] == 0
    again = cluster_cli("up", "--data-dir", str(cluster_dir))
    wait_for(lambda: in_sync_counts(cluster, TOPIC) == [3, 3, 3], 60, "3 in-sync replicas after the restart")
    values = topic_values(cluster.bootstrap, TOPIC)
    emit("up_after_down", up=again, values=sorted(values), **topic_facts(cluster, TOPIC))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the cluster's and the single broker's data")
    args = parser.parse_args(argv)
    error = None
    try:
        scenario(args.data_dir)
    except BaseException as exc:  # noqa: BLE001 - reported on the last line; the test shows it
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        Cluster(args.data_dir / "cluster").down()
        broker_cli("down", "--data-dir", str(args.data_dir / "broker"))
    emit("end", error=error)
    return 0 if error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
