"""The pipeline runner's pure parts: which processes it starts with which flags, what counts as a Docker engine, and
how processes are tied to the runner's life."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from lakehouse.pipeline import runner as run_pipeline
from tests.helpers import REPO_ROOT, wait_until


def test_one_spark_application_by_default():
    args = run_pipeline.parse_args(["--data-dir", "/d", "--trigger", "1 second", "--drain-timeout", "20"])
    [plan] = run_pipeline.spark_plans(args)
    assert plan.script == "spark/jobs/all_layers.py" and plan.orphan_signal == signal.SIGKILL
    assert plan.args == ("--bootstrap", "localhost:19092", "--topic", "crypto.trades", "--data-dir", "/d",
                         "--layers", "3", "--bronze-trigger", "1 second", "--silver-trigger", "1 second",
                         "--gold-trigger", "1 second", "--drain-timeout", "20.0")


def test_per_layer_triggers_and_driver_memory_by_default():
    args = run_pipeline.parse_args(["--data-dir", "/d", "--silver-trigger", "5 seconds", "--driver-memory", "1g"])
    [plan] = run_pipeline.spark_plans(args)
    flags = dict(zip(plan.args[::2], plan.args[1::2]))
    assert (flags["--bronze-trigger"], flags["--silver-trigger"], flags["--gold-trigger"]) == (
        "20 seconds", "5 seconds", "20 seconds")
    assert run_pipeline.Pipeline(args).env["SPARK_DRIVER_MEMORY"] == "1g"
    assert run_pipeline.Pipeline(run_pipeline.parse_args([])).env["SPARK_DRIVER_MEMORY"] == "512m"


def test_separate_jobs_use_the_jobs_own_default_layout_and_drain_on_stop():
    args = run_pipeline.parse_args(["--data-dir", "/d", "--separate-jobs", "--layers", "2"])
    plans = run_pipeline.spark_plans(args)
    assert [p.name for p in plans] == ["bronze", "silver"]
    bronze, silver = (dict(zip(p.args[::2], p.args[1::2])) for p in plans)
    assert bronze["--out"] == "/d/bronze/crypto_trades" and bronze["--checkpoint"] == "/d/checkpoints/kafka_to_bronze_trades"
    assert silver["--bronze"] == "/d/bronze/crypto_trades" and silver["--out"] == "/d/silver/crypto_trades"
    assert all("--drain-on-stop" in p.args for p in plans)


def test_producer_and_demo_flags():
    args = run_pipeline.parse_args(["--demo", "--demo-port", "9999"])
    assert args.pair == ["XBT/USDT", "ETH/USD", "XDG/USD"]
    producer = run_pipeline.producer_plan(args)
    assert producer.args[-2:] == ("--ws-url", "ws://127.0.0.1:9999/v2") and "--flush-timeout" in producer.args
    assert run_pipeline.kraken_plan(args).args[:2] == ("--port", "9999")
    assert run_pipeline.parse_args([]).pair == ["XBT/USDT"]


def fake_docker(folder: Path, body: str) -> str:
    script = folder / "docker"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(folder)


def test_a_docker_cli_that_hangs_or_fails_counts_as_no_docker(tmp_path, monkeypatch):
    """A hanging CLI is given up after the timeout, and what it started is killed with it (none left behind)."""
    monkeypatch.setattr(run_pipeline, "DOCKER_INFO_TIMEOUT_S", 1.0)
    pid_file = tmp_path / "helper.pid"
    monkeypatch.setenv("PATH", fake_docker(tmp_path, f"sleep 300 & echo $! > {pid_file}; wait") + ":"
                       + os.environ["PATH"])
    assert run_pipeline.docker_engine_answers() is False
    helper = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(helper, 0)
            return Path(f"/proc/{helper}/stat").read_text().split()[2] == "Z"  # a zombie is dead
        except ProcessLookupError:
            return True

    wait_until(gone, 30, 0.1, "the hung CLI's child to be killed")
    monkeypatch.setenv("PATH", fake_docker(tmp_path, "echo 'Cannot connect to the Docker daemon' >&2; exit 1"))
    assert run_pipeline.docker_engine_answers() is False
    monkeypatch.setenv("PATH", fake_docker(tmp_path, "exit 0"))
    assert run_pipeline.docker_engine_answers() is True
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert run_pipeline.docker_engine_answers() is False


def test_a_child_dies_with_its_parent(tmp_path):
    """die_with_parent: a process started with it is signalled by the kernel when its parent dies (SIGKILL here)."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", f"""
import subprocess, time
from lakehouse.pipeline import runner as rp
child = subprocess.Popen(["sleep", "300"], preexec_fn=rp.die_with_parent(9))
open({str(pid_file)!r}, "w").write(str(child.pid))
time.sleep(300)
"""], cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{child}/stat").read_text().split()[2] if Path(f"/proc/{child}/stat").exists() else "X"
        if state == "Z":  # reaped late by init: it is dead
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"


def test_cluster_runs_every_process_on_the_clusters_brokers_and_master():
    args = run_pipeline.parse_args(["--cluster", "--data-dir", "/d", "--drain-timeout", "20"])
    assert (args.bootstrap, args.master, args.replication_factor) == (
        "localhost:19092,localhost:19094,localhost:19096", "spark://127.0.0.1:7077", 3)
    [plan] = run_pipeline.spark_plans(args)
    assert plan.args[:4] == ("--master", "spark://127.0.0.1:7077", "--bootstrap",
                             "localhost:19092,localhost:19094,localhost:19096")
    assert run_pipeline.producer_plan(args).args[:2] == ("--bootstrap", args.bootstrap)
    separate = run_pipeline.spark_plans(run_pipeline.parse_args(["--cluster", "--separate-jobs"]))
    assert [p.args[:2] for p in separate] == [("--master", "spark://127.0.0.1:7077")] * 3


def test_without_cluster_nothing_changes_and_bootstrap_and_master_are_flags():
    args = run_pipeline.parse_args([])
    assert (args.bootstrap, args.master, args.replication_factor) == ("localhost:19092", None, None)
    assert "--master" not in run_pipeline.spark_plans(args)[0].args
    custom = run_pipeline.parse_args(["--cluster", "--bootstrap", "k1:9092", "--master", "spark://m:7077"])
    assert (custom.bootstrap, custom.master) == ("k1:9092", "spark://m:7077")
    assert run_pipeline.spark_plans(custom)[0].args[:4] == ("--master", "spark://m:7077", "--bootstrap", "k1:9092")


def test_cluster_problem_names_what_is_down():
    assert run_pipeline.cluster_problem({"up": True, "processes": []}) is None
    problem = run_pipeline.cluster_problem({"up": False, "processes": [{"name": "broker-2", "alive": False},
                                                                         {"name": "master", "alive": True}]})
    assert problem.startswith("the local cluster is not up (broker-2 down): start it with `make cluster-up`")
    assert run_pipeline.cluster_problem({}).startswith("the local cluster is not up (nothing down)")


def test_cluster_refuses_with_exit_2_when_the_cluster_is_not_up(tmp_path):
    """The real check (infra/cluster.py status --json) against a cluster folder where nothing runs."""
    result = subprocess.run([sys.executable, "infra/run_pipeline.py", "--cluster", "--data-dir", str(tmp_path / "d"),
                             "--log-dir", str(tmp_path / "logs")], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "CLUSTER_DATA_DIR": str(tmp_path / "cluster")})
    assert result.returncode == 2, result.stderr
    assert ("ERROR cannot use Kafka at localhost:19092,localhost:19094,localhost:19096: the local cluster is not up "
            "(controller-1, controller-2, controller-3, broker-1, broker-2, broker-3, master, worker-1, worker-2 "
            "down): start it with `make cluster-up`") in result.stderr
    assert not (tmp_path / "d").exists()
