"""Drive the local Kafka + Spark cluster through its lifecycle and its failures; print what it sees, one JSON per step.

It takes ports 19092-19097, 7077 and 8080-8082 and starts and kills servers there, so it runs inside a private
network namespace, where those ports are free and the shared broker on the host's 19092 is out of reach.
tests/integration/test_cluster.py runs it and asserts on its output. By hand (as root):

Usage:
    unshare -n bash -c 'ip link set lo up; exec .venv/bin/python -m tests.integration.cluster_scenario \
        --data-dir /tmp/cluster-scenario'

After the cluster's own failures, the pipeline runs on it while a broker, a second broker and a Spark worker are
killed (pipeline_failover), with `--with-pipeline` (5 to 8 more minutes); `--pipeline-only` starts the cluster
and runs that phase alone (to work on it).

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

from lakehouse.broker.consume import read_to_end
from lakehouse.cluster.local import Cluster
from lakehouse.common.daemon import InfraError, port_is_open
from tests.helpers import REPO_ROOT, wait_until
from tests.integration.producer_helpers import (V2_PAIRS, committed_rows, delta_rows, high_watermarks,
                                                start_producer, stats, stop_producer, total)

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
    return [m.value().decode() for m in read_to_end(bootstrap, topic, 60, {"log_level": 0})]


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


TOPIC = "failover"
BROKERS = (1, 2, 3)


def scenario(data_dir: Path, pipeline_only: bool = False, with_pipeline: bool = False) -> None:
    cluster_dir, broker_dir = data_dir / "cluster", data_dir / "broker"
    cluster = Cluster(cluster_dir)
    if pipeline_only:  # for working on that phase alone
        assert cluster_cli("up", "--data-dir", str(cluster_dir))["rc"] == 0
        pipeline_failover(cluster, cluster_dir, data_dir / "pipeline")
        return
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
    if with_pipeline:
        pipeline_failover(cluster, cluster_dir, data_dir / "pipeline")
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
    wait_until(lambda: in_sync_counts(cluster, TOPIC) == [3, 3, 3], 60, 0.5, "3 in-sync replicas of each partition")
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


PIPELINE_TOPIC = "trades"
TRADES_PER_SECOND = 20  # the fake Kraken's steady rate, over its 3 pairs
DELIVERY_TIMEOUT_S = "3"  # the producer's: with two brokers down, deliveries fail (and are counted) after 3 s
GOLD_COLUMNS = ["symbol", "window_start", "open", "high", "low", "close", "volume", "vwap", "trade_count", "is_open"]


def pipeline_failover(cluster: Cluster, cluster_dir: Path, work: Path) -> None:
    """The pipeline on the cluster while nodes die: the producer fed by the fake Kraken at a steady rate into a topic
    with 3 replicas; Bronze, Silver and Gold in one Spark application on the standalone master. Mid-stream the
    broker leading partition 0 is killed (-9), then a second broker; both come back; then a Spark worker is killed
    and comes back. The producer is stopped, the layers drain on SIGTERM, and the audits and the batch recompute
    of Gold run."""
    from lakehouse.fake_kraken.server import FakeKraken
    from lakehouse.producer.kafka_sink import ensure_topic
    from tests.helpers import start_script

    work.mkdir(parents=True)
    lake, topic, bootstrap = work / "lake", PIPELINE_TOPIC, cluster.bootstrap
    emit("pipeline_topic", created_with_factor=ensure_topic(bootstrap, topic, partitions=3, replication_factor=3))
    bronze = lake / "bronze" / "crypto_trades"
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=TRADES_PER_SECOND, seed=41, history=0,
                    heartbeat_interval=0.5) as server:
        producer, producer_log = start_producer(work, server.url("v2"), bootstrap, topic, list(V2_PAIRS), "v2",
                                                "--delivery-timeout", DELIVERY_TIMEOUT_S)
        layers = start_script("spark/jobs/all_layers.py", "--master", cluster.master_url, "--bootstrap", bootstrap,
                              "--topic", topic, "--data-dir", str(lake), "--bronze-trigger", "2 seconds",
                              "--silver-trigger", "2 seconds", "--gold-trigger", "2 seconds",
                              "--maintenance-every", "off", "--drain-timeout", "300", log_path=work / "layers.log")
        try:
            wait_until(lambda: committed_rows(bronze) > 0 or layers.poll() is not None, 240, 0.5,
                       "Bronze's first rows")
            emit("pipeline_started", layers_running=layers.poll() is None, bronze_rows=committed_rows(bronze),
                 apps=running_apps(cluster), stats=stats(producer_log))
            brokers_down_and_back(cluster, cluster_dir, topic, producer_log)
            worker_down_and_back(cluster, cluster_dir, bronze, layers)
            made = server.halt_market()
            wait_until(lambda: high_watermarks(bootstrap, topic) >= total(server, "v2"), 120, 0.5,
                       "every trade in the topic")
            producer_rc = stop_producer(producer, timeout=60)
            layers.send_signal(15)  # SIGTERM: each layer lands what its input holds, then the job exits
            layers_rc = layers.wait(600)
        finally:
            for proc in (producer, layers):
                if proc.poll() is None:
                    os.killpg(proc.pid, 9)
        sent = {user: [t["trade_id"] for t in server.sent_trades("v2")[native]] for user, native in V2_PAIRS.items()}
    emit("pipeline_stopped", made=made, sent=sent, producer_rc=producer_rc, final=stats(producer_log, final=True),
         layers_rc=layers_rc, layers_log_tail=(work / "layers.log").read_text(errors="replace")[-3000:])
    audit_the_lake(cluster, work, lake, topic)


def running_apps(cluster: Cluster) -> list[dict]:
    """The applications running on the master (its /json/ page): name and the cores they hold."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.master_ui_port}/json/", timeout=10) as answer:
        state = json.load(answer)
    return [{"name": app["name"], "cores": app["cores"]} for app in state.get("activeapps", [])]


def brokers_down_and_back(cluster: Cluster, cluster_dir: Path, topic: str, producer_log: Path) -> None:
    """kill -9 the leader of partition 0: the producer keeps delivering (2 of 3 in sync). Then a second broker: its
    deliveries fail after --delivery-timeout and are counted, not lost. Both brokers back: it delivers them again."""
    first = cluster.leaders(topic)[0]
    cluster.kill_broker(first)
    cluster.wait_out_of_sync(first, [topic], timeout=60)  # the partitions it led have new leaders
    # Writes caught in the leader change may time out (--delivery-timeout 3 s): wait until they are made again, then
    # watch a stretch with 2 of 3 replicas in sync.
    wait_until(lambda: (lambda s: s["undelivered"] == 0 and s["failed"] == s["refilled"] + s["refill_found"])(
        stats(producer_log)), 120, 0.5, "writes caught in the leader change made again")
    out_of_sync = stats(producer_log)
    wait_until(lambda: stats(producer_log).get("delivered", 0) >= out_of_sync["delivered"] + 3 * TRADES_PER_SECOND,
               120, 0.5, "deliveries with one broker down")
    emit("pipeline_one_broker_down", killed=first, out_of_sync=out_of_sync, later=stats(producer_log),
         isr=topic_facts(cluster, topic)["isr"])
    second = next(b for b in BROKERS if b != first)
    before = stats(producer_log)
    cluster.kill_broker(second)
    wait_until(lambda: (lambda s: s["failed"] >= before["failed"] + 20 and s["undelivered"] > 0)(stats(producer_log)),
               120, 0.5, "deliveries failing with two brokers down")
    emit("pipeline_two_brokers_down", killed=second, before=before, stats=stats(producer_log))
    restarts = [cluster_cli("start", f"broker-{b}", "--data-dir", str(cluster_dir))["rc"] for b in (first, second)]
    wait_until(lambda: (lambda s: s.get("undelivered", 1) == 0 and s.get("failed", 0) == s.get("refilled", 0)
                        + s.get("refill_found", 0))(stats(producer_log)), 180, 0.5, "every failed delivery made again")
    emit("pipeline_brokers_back", restart_rcs=restarts, stats=stats(producer_log),
         isr=topic_facts(cluster, topic)["isr"])


def worker_down_and_back(cluster: Cluster, cluster_dir: Path, bronze: Path, layers) -> None:
    """kill -9 worker-1 (and with it an executor) while the layers run: the application goes on with the other
    worker's executor (Bronze commits more rows); the worker comes back."""
    killed = cluster_cli("kill", "worker-1", "--data-dir", str(cluster_dir))
    cluster.wait_worker(1, alive=False, timeout=60)
    rows_at_kill = committed_rows(bronze)
    wait_until(lambda: committed_rows(bronze) > rows_at_kill + 2 * TRADES_PER_SECOND or layers.poll() is not None,
               240, 0.5, "Bronze rows landed with one worker")
    landed = committed_rows(bronze)
    back = cluster_cli("start", "worker-1", "--data-dir", str(cluster_dir))
    emit("pipeline_worker", kill_rc=killed["rc"], start_rc=back["rc"], layers_running=layers.poll() is None,
         rows_at_kill=rows_at_kill, rows_with_one_worker=landed,
         alive=sorted(w.ui_port for w in cluster.master_state().alive_workers))


def audit_the_lake(cluster: Cluster, work: Path, lake: Path, topic: str) -> None:
    """The Bronze audit, the completeness audit, Silver's trades, Gold and its batch recompute."""
    from datetime import timedelta

    # These run in local[*]: they only read the lake and the topic, and start faster than an application on the
    # cluster (a driver in this namespace needs SPARK_LOCAL_IP; on the cluster, build_spark binds it to 127.0.0.1).
    spark_env = {"PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON, "SPARK_LOCAL_IP": "127.0.0.1"}
    silver, gold = lake / "silver" / "crypto_trades", lake / "gold" / "ohlcv_1m"
    trades = delta_rows(silver, ["symbol", "trade_id", "source", "ts_event"])
    minutes = sorted(r["ts_event"].replace(second=0, microsecond=0) for r in trades)
    first, end = minutes[0], minutes[-1] + timedelta(minutes=1)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two Spark drivers at once: each mostly waits for its JVM
        bronze_audit = pool.submit(run, PYTHON, "spark/jobs/bronze_audit.py", "--bootstrap", cluster.bootstrap,
                                   "--topic", topic, "--bronze", str(lake / "bronze" / "crypto_trades"),
                                   env_extra=spark_env, timeout=600)
        recompute = pool.submit(run, PYTHON, "spark/jobs/gold_ohlcv_batch.py", "--silver", str(silver),
                                "--from", first.strftime("%Y-%m-%dT%H:%M"), "--to", end.strftime("%Y-%m-%dT%H:%M"),
                                "--out", str(work / "recompute"), env_extra=spark_env, timeout=600)
        completeness = run(PYTHON, "spark/jobs/silver_completeness_audit.py", "--silver", str(silver), "--json")
        bronze_audit, recompute = bronze_audit.result(), recompute.result()
    as_text = lambda rows: sorted([str(r[c]) for c in GOLD_COLUMNS] for r in rows)  # noqa: E731 - exact values
    emit("pipeline_audits", bronze_audit={"rc": bronze_audit["rc"], "tail": (bronze_audit["stdout"]
                                                                              + bronze_audit["stderr"])[-2000:]},
         completeness={"rc": completeness["rc"], "report": completeness["stdout"][-3000:]},
         silver={pair: sorted([r["trade_id"], r["source"]] for r in trades if r["symbol"] == pair)
                 for pair in sorted({r["symbol"] for r in trades})},
         recompute={"rc": recompute["rc"], "stderr_tail": recompute["stderr"][-2000:]},
         gold=as_text(delta_rows(gold, GOLD_COLUMNS)),
         recomputed=as_text(delta_rows(work / "recompute", GOLD_COLUMNS)))


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
    wait_until(lambda: in_sync_counts(cluster, TOPIC) == [3, 3, 3], 60, 0.5, "3 in-sync replicas after the restart")
    values = topic_values(cluster.bootstrap, TOPIC)
    emit("up_after_down", up=again, values=sorted(values), **topic_facts(cluster, TOPIC))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the cluster's and the single broker's data")
    parser.add_argument("--pipeline-only", action="store_true", help="only the pipeline's failover phase (to work on it)")
    parser.add_argument("--with-pipeline", action="store_true",
                        help="also the pipeline's failover phase (5 to 8 more minutes on 2 cores)")
    args = parser.parse_args(argv)
    error = None
    try:
        scenario(args.data_dir, args.pipeline_only, args.with_pipeline)
    except BaseException as exc:  # noqa: BLE001 - reported on the last line; the test shows it
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        Cluster(args.data_dir / "cluster").down()
        broker_cli("down", "--data-dir", str(args.data_dir / "broker"))
    emit("end", error=error)
    return 0 if error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
