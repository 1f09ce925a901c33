"""`make status` with the layers as separate jobs (the seed's way: `infra/run_pipeline.py --separate-jobs`, one Spark
process per layer): each job publishes its own status; healthy (exit 0) with every job's batches and lag, one job
killed -9 is failed with the reason while the others run on (exit 1), and nothing running once the runner stopped
the rest (exit 2). Bronze and Silver only (--layers 2): two JVMs are enough to show it, on a 2-core machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid

import pytest

from tests.helpers import PYTHON, REPO_ROOT, script_env, wait_until
from tests.integration.test_demo_pipeline import free_port

pytestmark = pytest.mark.integration


def status(data, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "infra/status.py", "--data-dir", str(data), *flags], cwd=REPO_ROOT,
                          env=script_env(), capture_output=True, text=True, timeout=60)


def report(data) -> dict:
    return json.loads(status(data, "--json").stdout)


def test_separate_jobs_healthy_then_one_killed_then_nothing_running(bootstrap, tmp_path) -> None:
    from confluent_kafka.admin import AdminClient

    data, topic = tmp_path / "data", f"sep-{uuid.uuid4().hex[:10]}"
    runner = subprocess.Popen(
        [PYTHON, "infra/run_pipeline.py", "--demo", "--separate-jobs", "--layers", "2", "--no-page", "--topic", topic,
         "--data-dir", str(data), "--log-dir", str(data / "logs"), "--demo-port", str(free_port()),
         "--trigger", "5 seconds", "--drain-timeout", "20"],
        cwd=REPO_ROOT, env=script_env(), stdout=open(tmp_path / "runner.out", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        wait_until(lambda: report(data)["verdict"] == "healthy" and
                   all(c.get("batch") is not None for c in report(data)["components"] if c["name"] != "producer"),
                   420, 3, "make status: healthy, each layer through a batch")
        healthy = status(data)
        assert healthy.returncode == 0 and "pipeline: separate jobs, running" in healthy.stdout, healthy.stdout
        comps = {c["name"]: c for c in report(data)["components"]}
        assert sorted(comps) == ["bronze", "producer", "silver"]
        assert comps["bronze"]["pid"] != comps["silver"]["pid"]  # two processes, each publishing its own
        assert comps["bronze"]["behind_unit"] == "offsets" and isinstance(comps["bronze"]["behind"], int)
        assert comps["silver"]["behind_unit"] == "files" and isinstance(comps["silver"]["behind"], int)
        assert isinstance(comps["silver"]["table_version"], int)
        silver_pid = comps["silver"]["pid"]
        os.kill(runner.pid, signal.SIGSTOP)  # the runner would stop everything once a job ends
        try:
            os.kill(silver_pid, signal.SIGKILL)
            wait_until(lambda: status(data).returncode == 1, 30, 0.5, "make status: exit 1")
            killed = report(data)
            states = {c["name"]: (c["state"], c["reason"]) for c in killed["components"]}
            assert states["bronze"] == ("running", None) and states["producer"][0] == "running"
            assert states["silver"][0] == "failed"
            assert states["silver"][1].startswith(f"process {silver_pid} is gone without stopping")
        finally:
            os.kill(runner.pid, signal.SIGCONT)
        assert runner.wait(180) == 1  # it saw the Silver job end and stopped the rest
        after = status(data)
        assert after.returncode == 2 and "verdict: nothing running (exit 2)" in after.stdout, after.stdout
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        AdminClient({"bootstrap.servers": bootstrap}).delete_topics([topic])
