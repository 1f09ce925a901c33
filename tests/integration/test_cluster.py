"""make cluster-up/-down/-status for real: 3 Kafka brokers, 3 KRaft controllers, a Spark master and 2 workers.

The cluster needs the host's 19092 (the shared broker's), so tests/integration/cluster_scenario.py runs it inside a
private network namespace (`unshare -n`, as root) and prints one JSON line per step; the tests below assert on those
lines. The scenario runs once for the module: the cluster's own failures (about 3 minutes on a busy 2-core machine).
The pipeline's failover phase adds about 8 minutes, so it runs only with CLUSTER_FAILOVER=1 (`make test-failover`,
which CI runs after `make test`: .ci/run); without it its tests are skipped, saying so. Whatever happens, every
process left in the namespace is killed afterwards, and a test checks that the scenario had stopped them all itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lakehouse.common import processes
from tests.helpers import network_namespace_supported, run_in_network_namespace

WITH_FAILOVER = os.environ.get("CLUSTER_FAILOVER") == "1"
SCENARIO_TIMEOUT_S = 1500 if WITH_FAILOVER else 600
# The scenario runs in the first test's setup: over the default time limit (pyproject.toml).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(SCENARIO_TIMEOUT_S + 300)]
needs_failover = pytest.mark.skipif(not WITH_FAILOVER, reason="the pipeline's failover phase (~8 min) runs only with "
                                    "CLUSTER_FAILOVER=1: make test-failover (CI runs it after make test)")
ALL_PORTS = "19092-19097 for Kafka, 7077 and 8080-8082 for Spark"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict:
    """Run the scenario in a private network namespace; {step name: its JSON line}, plus "leftovers" and "stderr"."""
    if not network_namespace_supported():
        pytest.skip("a private network namespace (unshare -n) needs root")
    data_dir = tmp_path_factory.mktemp("cluster")
    run = run_in_network_namespace("tests.integration.cluster_scenario", "--data-dir", str(data_dir),
                                   *(["--with-pipeline"] if WITH_FAILOVER else []),
                                   timeout=SCENARIO_TIMEOUT_S, logs=data_dir / "scenario")  # `at`: seconds into it
    steps = {line["step"]: line for line in map(json.loads, filter(None, run.stdout.splitlines()))}
    return {**steps, "leftovers": run.leftovers, "stderr": run.stderr[-5000:], "returncode": run.returncode}


def step(scenario: dict, name: str) -> dict:
    if name not in scenario:
        end = scenario.get("end", {}).get("error", "no end line: the scenario timed out or crashed")
        pytest.fail(f"the scenario did not reach step {name!r}: {end}\nstderr: {scenario['stderr']}")
    return scenario[name]


def test_scenario_ran_to_the_end_and_left_nothing_running(scenario: dict) -> None:
    assert step(scenario, "end")["error"] is None
    assert scenario["returncode"] == 0
    assert scenario["leftovers"] == []


def test_up_is_idempotent(scenario: dict) -> None:
    up = step(scenario, "up")
    assert up["rc"] == 0, up
    assert up["stdout"].splitlines()[-1] == ("cluster ready: kafka localhost:19092,localhost:19094,localhost:19096, "
                                             "spark spark://127.0.0.1:7077 (web UI http://127.0.0.1:8080)")
    again = step(scenario, "up_again")
    assert (again["rc"], again["stdout"]) == (0, "cluster already running (localhost:19092,localhost:19094,"
                                                 "localhost:19096; spark://127.0.0.1:7077)\n")
    partial = step(scenario, "worker_restart")["up"]  # with worker-1 and one broker killed: up starts those only
    left_down = step(scenario, "two_down")["killed"]
    assert partial["rc"] == 0
    assert partial["stdout"].splitlines()[:2] == [f"starting broker-{left_down}", "starting worker-1"]
    assert partial["stdout"].splitlines()[2].startswith("cluster ready: ") and len(partial["stdout"].splitlines()) == 3


def test_status_shows_every_process(scenario: dict) -> None:
    make = step(scenario, "make_status")
    assert make["rc"] == 0, make
    lines = make["stdout"].splitlines()
    for name, port in [("controller-1", 19093), ("controller-3", 19097), ("broker-1", 19092), ("broker-3", 19096),
                       ("master", 7077), ("worker-1", 8081), ("worker-2", 8082)]:
        assert any(line.startswith(f"  {name:<13} pid ") and f"port {port:<6} alive" in line for line in lines), name
    assert "kafka: brokers in the metadata: 1, 2, 3" in lines
    assert "spark: master ALIVE, 2 worker(s) ALIVE with 2 core(s)" in lines
    assert lines[-1] == "9 of 9 processes up"
    status = step(scenario, "status_json")
    assert (status["up"], status["brokers_in_metadata"], status["alive_workers"]) == (True, [1, 2, 3], 2)
    assert all(isinstance(p["pid"], int) and p["alive"] for p in status["processes"])


def test_topics_get_three_replicas_and_min_isr_two(scenario: dict) -> None:
    topic = step(scenario, "topic")
    assert (topic["brokers"], topic["produced"], topic["errors"]) == ([1, 2, 3], 100, [])
    assert topic["min_insync_replicas"] == "2"
    assert topic["replicas"] == {"0": 3, "1": 3, "2": 3}
    assert topic["isr"] == {"0": [1, 2, 3], "1": [1, 2, 3], "2": [1, 2, 3]}


def test_acks_all_writes_go_on_with_the_leader_killed(scenario: dict) -> None:
    one = step(scenario, "one_down")
    assert one["killed"] == step(scenario, "topic")["leaders"]["0"]
    assert (one["produced"], one["errors"]) == (100, [])
    survivors = sorted({1, 2, 3} - {one["killed"]})
    assert one["isr"] == {"0": survivors, "1": survivors, "2": survivors}  # 2 of 3 in sync
    assert set(one["leaders"].values()) <= set(survivors)


def test_acks_all_writes_are_refused_with_two_brokers_down(scenario: dict) -> None:
    two = step(scenario, "two_down")
    last = sorted({1, 2, 3} - {step(scenario, "one_down")["killed"], two["killed"]})
    assert two["isr"] == {"0": last, "1": last, "2": last} and set(two["leaders"].values()) == set(last)
    # The producer retries until its message timeout, then reports every write it could not make...
    assert (two["produced"], two["failed"], two["errors"]) == (0, 10, ["_MSG_TIMED_OUT"])
    # ... because the broker refuses them: one in-sync replica is fewer than min.insync.replicas=2.
    assert two["probe"] == ["NOT_ENOUGH_REPLICAS"]


def test_a_killed_broker_restarted_rejoins_the_isr_and_nothing_is_lost(scenario: dict) -> None:
    cli = step(scenario, "restart_cli")
    killed = step(scenario, "one_down")["killed"]
    assert cli["rc"] == 0 and cli["stdout"].splitlines()[-1].startswith(f"broker-{killed} is back (pid ")
    restarted = step(scenario, "restarted")
    in_sync = sorted({1, 2, 3} - {step(scenario, "two_down")["killed"]})  # the other one is still down
    assert restarted["isr"] == {"0": in_sync, "1": in_sync, "2": in_sync}
    assert restarted["values"] == sorted([f"a{i}" for i in range(100)] + [f"b{i}" for i in range(100)])


def test_spark_job_runs_on_two_one_core_workers(scenario: dict) -> None:
    spark = step(scenario, "spark")
    assert (spark["status"], spark["alive"]) == ("ALIVE", [1, 1])  # two ALIVE workers of one core each
    job = step(scenario, "spark_job")
    assert job["rc"] == 0, job["stderr_tail"]
    assert job["stdout"] == "999000\n"  # spark.range(1000), each id doubled by Python on the executors, summed


def test_killed_worker_leaves_and_comes_back(scenario: dict) -> None:
    worker = step(scenario, "worker_restart")
    assert worker["kill"]["rc"] == 0 and worker["kill"]["stdout"].startswith("worker-1 killed (pid ")
    assert worker["alive_after_kill"] == [8082]
    assert worker["alive_after_up"] == [8081, 8082]
    assert worker["isr"] == {"0": [1, 2, 3], "1": [1, 2, 3], "2": [1, 2, 3]}  # the broker up started is in sync


def test_down_stops_everything(scenario: dict) -> None:
    down = step(scenario, "down")
    assert down["down"]["rc"] == 0
    assert [line.split(" (pid")[0] for line in down["down"]["stdout"].splitlines()] == [
        "worker-1 stopped", "worker-2 stopped", "broker-1 stopped", "broker-2 stopped", "broker-3 stopped",
        "master stopped", "controller-1 stopped", "controller-2 stopped", "controller-3 stopped"]
    assert down["ports_open"] == []
    assert down["status"]["rc"] == 1 and down["status"]["stdout"].splitlines()[-1] == (
        "0 of 9 processes up (make cluster-up)")


def test_cluster_and_single_broker_refuse_each_other(scenario: dict) -> None:
    data_dir = Path(step(scenario, "status_json")["data_dir"]).parent
    refused = step(scenario, "refused_beside_broker")
    assert refused["rc"] == 2 and refused["stdout"] == ""
    assert refused["stderr"].startswith(
        "error: cannot start broker-1: port 19092 is already in use by the single-node Kafka broker (pid ")
    assert refused["stderr"].endswith(
        f", data {data_dir / 'broker'}); stop it with `python3 infra/kafka/broker.py down --data-dir "
        f"{data_dir / 'broker'}`. (The cluster takes ports {ALL_PORTS}.)\n")
    broker = step(scenario, "broker_refused")
    assert broker["rc"] == 2
    assert broker["stderr"].startswith(
        "error: port 19092 is already in use by broker-1 of the local Kafka + Spark cluster (pid ")
    assert broker["stderr"].endswith(
        f", data {data_dir / 'cluster'}); stop the cluster with `python infra/cluster.py down --data-dir "
        f"{data_dir / 'cluster'}` (`make cluster-status` shows it). Or choose another --port/--controller-port.\n")


def test_down_and_up_again_keeps_the_data(scenario: dict) -> None:
    again = step(scenario, "up_after_down")
    assert again["up"]["rc"] == 0, again["up"]
    assert again["values"] == step(scenario, "restarted")["values"]
    assert (again["min_insync_replicas"], again["isr"]) == ("2", {"0": [1, 2, 3], "1": [1, 2, 3], "2": [1, 2, 3]})


def test_namespace_runner_kills_what_a_script_leaves_behind(tmp_path: Path) -> None:
    """The safety net under the scenario: servers left running, and a script past its timeout, are killed."""
    if not network_namespace_supported():
        pytest.skip("a private network namespace (unshare -n) needs root")
    script = tmp_path / "leave_behind.py"
    script.write_text("import socket, subprocess, sys, time\n"
                      "subprocess.Popen(['sleep', '313'], start_new_session=True)\n"  # a detached "server"
                      "print(socket.create_connection(('127.0.0.1', 19092), timeout=1) if len(sys.argv) > 2 else 'ok')\n"
                      "time.sleep(float(sys.argv[1]))\n")
    done = run_in_network_namespace(str(script), "0", timeout=60, logs=tmp_path / "a")
    assert (done.returncode, done.stdout, done.leftovers) == (0, "ok\n", ["sleep 313 "])
    late = run_in_network_namespace(str(script), "300", timeout=2, logs=tmp_path / "b")
    assert late.returncode is None and sorted(late.leftovers)[1] == "sleep 313 "
    assert "python" in sorted(late.leftovers)[0] and str(script) in sorted(late.leftovers)[0]
    assert not [pid for pid in processes.pids() if processes.process_argv(pid) == ["sleep", "313"]]
    # The namespace has its own loopback: the host's shared broker on 19092 is out of reach.
    refused = run_in_network_namespace(str(script), "0", "connect", timeout=60, logs=tmp_path / "c")
    assert refused.returncode == 1 and "ConnectionRefusedError" in refused.stderr


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline on the cluster: fake Kraken -> producer -> topic with 3 replicas -> Bronze, Silver, Gold in one Spark
# application on the standalone master; two brokers and a worker killed (-9) and brought back mid-stream.


@needs_failover
def test_pipeline_runs_on_the_spark_cluster_with_a_replicated_topic(scenario: dict) -> None:
    assert step(scenario, "pipeline_topic")["created_with_factor"] == 3
    started = step(scenario, "pipeline_started")
    assert started["layers_running"] and started["bronze_rows"] > 0
    assert started["apps"] == [{"name": "all_layers", "cores": 2}]  # one application, on both one-core workers


@needs_failover
def test_producer_keeps_delivering_with_one_broker_down(scenario: dict) -> None:
    one = step(scenario, "pipeline_one_broker_down")
    survivors = sorted({1, 2, 3} - {one["killed"]})
    assert set(map(tuple, one["isr"].values())) == {tuple(survivors)}  # 2 of 3 in sync
    before, later = one["out_of_sync"], one["later"]
    assert later["delivered"] >= before["delivered"] + 60
    assert later["failed"] == before["failed"]  # no delivery failed while 2 of 3 replicas were in sync


@needs_failover
def test_producer_reports_what_two_brokers_down_keep_it_from_delivering_then_delivers_it(scenario: dict) -> None:
    two = step(scenario, "pipeline_two_brokers_down")
    before, down = two["before"], two["stats"]
    assert down["failed"] >= before["failed"] + 20  # deliveries that failed after --delivery-timeout: counted...
    assert down["undelivered"] > 0  # ... and kept, to be delivered again
    back = step(scenario, "pipeline_brokers_back")
    assert back["restart_rcs"] == [0, 0]
    assert back["isr"] == {"0": [1, 2, 3], "1": [1, 2, 3], "2": [1, 2, 3]}
    stats = back["stats"]
    assert stats["undelivered"] == 0 and stats["failed"] == stats["refilled"] + stats["refill_found"]
    stopped = step(scenario, "pipeline_stopped")
    final = stopped["final"]
    assert stopped["producer_rc"] == 0
    assert final["trades"] == stopped["made"] and final["undelivered"] == 0
    assert final["delivered"] + final["refill_found"] == final["produced"] == stopped["made"]


@needs_failover
def test_a_killed_worker_does_not_stop_the_application(scenario: dict) -> None:
    worker = step(scenario, "pipeline_worker")
    assert (worker["kill_rc"], worker["start_rc"], worker["layers_running"]) == (0, 0, True)
    assert worker["rows_with_one_worker"] > worker["rows_at_kill"]  # Bronze went on landing with one worker
    assert worker["alive"] == [8081, 8082]


@needs_failover
def test_after_the_failures_the_lake_is_complete_once_and_gold_equals_the_recompute(scenario: dict) -> None:
    from tests.integration.producer_helpers import assert_each_id_once

    stopped = step(scenario, "pipeline_stopped")
    assert stopped["layers_rc"] == 0, stopped["layers_log_tail"]  # SIGTERM: each layer drained, then a clean exit
    audits = step(scenario, "pipeline_audits")
    assert audits["bronze_audit"]["rc"] == 0, audits["bronze_audit"]["tail"]
    assert audits["completeness"]["rc"] == 0, audits["completeness"]["report"]
    silver = {pair: [tuple(row) for row in rows] for pair, rows in audits["silver"].items()}
    assert sum(map(len, stopped["sent"].values())) == stopped["made"]
    assert_each_id_once(silver, stopped["sent"])  # every trade the fake Kraken sent, once
    assert audits["recompute"]["rc"] == 0, audits["recompute"]["stderr_tail"]
    assert audits["gold"] and audits["gold"] == audits["recomputed"]  # bar for bar, to the last digit
    assert sum(int(bar[8]) for bar in audits["gold"]) == stopped["made"]  # trade_count: every trade in a bar
