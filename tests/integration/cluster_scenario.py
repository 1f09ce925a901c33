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
import traceback
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from infra.cluster import Cluster  # noqa: E402
from infra.daemon import InfraError  # noqa: E402

PYTHON = sys.executable
MESSAGES_PER_ROUND = 100
REFUSED_TIMEOUT_MS = 5000  # how long the producer keeps retrying a write that two brokers down make impossible

SPARK_JOB = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.master(sys.argv[1]).appName("cluster-scenario").getOrCreate()
rows = spark.range(1000).count()
python_sum = spark.sparkContext.parallelize(range(1000), 4).map(lambda x: 2 * x).sum()  # Python on the executors
print(rows, python_sum)
spark.stop()
"""


T0 = time.monotonic()


def emit(step: str, **fields) -> None:
    """One step's observations as a JSON line; `at` is the seconds since the start (for the reader, not asserted)."""
    print(json.dumps({"step": step, "at": round(time.monotonic() - T0, 1), **fields}), flush=True)


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


def topic_values(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[str]:
    """Every value in the topic, read from the start (stops once `expected` are read, or at the deadline)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"scenario-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0})
    consumer.subscribe([topic])
    values: list[str] = []
    deadline = time.monotonic() + timeout
    while len(values) < expected and time.monotonic() < deadline:
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


def scenario(data_dir: Path) -> None:
    cluster_dir, broker_dir = data_dir / "cluster", data_dir / "broker"
    cli = [PYTHON, "infra/cluster.py"]
    broker_cli = [PYTHON, "infra/kafka/broker.py"]
    cluster = Cluster(cluster_dir)
    topic = "failover"

    # The cluster refuses to start beside a single broker on 19092, and the reverse.
    started = run(*broker_cli, "up", "--data-dir", str(broker_dir))
    assert started["rc"] == 0, started
    emit("refused_beside_broker", **run(*cli, "up", "--data-dir", str(cluster_dir)))
    assert run(*broker_cli, "down", "--data-dir", str(broker_dir))["rc"] == 0

    t0 = time.monotonic()
    up = run(*cli, "up", "--data-dir", str(cluster_dir))
    emit("up", seconds=round(time.monotonic() - t0), **up)
    emit("up_again", **run(*cli, "up", "--data-dir", str(cluster_dir)))
    emit("broker_refused", **run(*broker_cli, "up", "--data-dir", str(broker_dir)))
    emit("make_status", **run("make", "--no-print-directory", "cluster-status",
                              env_extra={"CLUSTER_DATA_DIR": str(cluster_dir)}))
    emit("status_json", **json.loads(run(*cli, "status", "--json", "--data-dir", str(cluster_dir))["stdout"]))

    # Kafka: 3 brokers; a topic with 3 replicas, min ISR 2; acks=all writes with one and with two brokers down.
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(30)  # replication factor: the default
    wait_for(lambda: in_sync_counts(cluster, topic) == [3, 3, 3], 60, "3 in-sync replicas of each partition")
    first = produce(cluster.bootstrap, topic, [f"a{i}" for i in range(MESSAGES_PER_ROUND)])
    emit("topic", brokers=cluster.brokers_in_metadata(), produced=len(first["delivered"]), errors=first["errors"],
         **topic_facts(cluster, topic))

    leader = cluster.leaders(topic)[0]
    cluster.kill_broker(leader)
    second = produce(cluster.bootstrap, topic, [f"b{i}" for i in range(MESSAGES_PER_ROUND)])
    cluster.wait_out_of_sync(leader, [topic], timeout=60)
    emit("one_down", killed=leader, produced=len(second["delivered"]), errors=second["errors"],
         **topic_facts(cluster, topic))

    other = next(b for b in (1, 2, 3) if b != leader and b in cluster.partitions(topic)[0].isr)
    cluster.kill_broker(other)
    cluster.wait_out_of_sync(other, [topic], timeout=60)
    refused = produce(cluster.bootstrap, topic, [f"c{i}" for i in range(10)], timeout_ms=REFUSED_TIMEOUT_MS)
    emit("two_down", killed=other, produced=len(refused["delivered"]), errors=sorted(set(refused["errors"])),
         failed=len(refused["errors"]), probe=probe_without_retries(cluster.bootstrap, topic),
         **topic_facts(cluster, topic))

    emit("restart_cli", **run(*cli, "start", f"broker-{leader}", "--data-dir", str(cluster_dir)))
    cluster.start_broker(other)
    values = topic_values(cluster.bootstrap, topic, 2 * MESSAGES_PER_ROUND)
    emit("restarted", values=sorted(values), **topic_facts(cluster, topic))

    # Spark: 2 workers of 1 core; a job on the cluster; a killed worker leaves, a restarted one comes back.
    state = cluster.master_state()
    emit("spark", status=state.status, alive=[w.cores for w in state.alive_workers])
    job = run(PYTHON, "-c", SPARK_JOB, cluster.master_url, env_extra={
        "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON})
    state = cluster.master_state()
    emit("spark_job", rc=job["rc"], stdout=job["stdout"], stderr_tail=job["stderr"][-2000:],
         active_apps=state.active_apps, cores_used=sum(w.cores_used for w in state.workers))
    cluster.kill_worker(1)
    cluster.wait_worker(1, alive=False, timeout=60)
    gone = cluster.master_state()
    cluster.start_worker(1)
    back = cluster.master_state()
    emit("worker_restart", alive_after_kill=len(gone.alive_workers), alive_after_start=len(back.alive_workers),
         worker1_alive=cluster.worker_alive(1))

    # Down and up again: the topic and its data are still there.
    down = run(*cli, "down", "--data-dir", str(cluster_dir))
    status_down = run(*cli, "status", "--data-dir", str(cluster_dir))
    again = run(*cli, "up", "--data-dir", str(cluster_dir))
    values = topic_values(cluster.bootstrap, topic, 2 * MESSAGES_PER_ROUND)
    emit("down_up", down=down, status_down=status_down, up=again, values=sorted(values),
         **topic_facts(cluster, topic))


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
        run(PYTHON, "infra/kafka/broker.py", "down", "--data-dir", str(args.data_dir / "broker"))
    emit("end", error=error)
    return 0 if error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
