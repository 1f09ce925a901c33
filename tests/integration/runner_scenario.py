"""Drive `make run` / `make demo` (infra/run_pipeline.py) through what hurts a new user; print one JSON line per step.

It needs the host's port 19092 free (the runner must start a broker itself, and the broker is stopped under it), so
it runs inside a private network namespace (no route to Kraken there either); tests/integration/test_run_pipeline.py
runs it and asserts on its output. By hand (as root):

Usage:
    unshare -n bash -c 'ip link set lo up; exec .venv/bin/python -m tests.integration.runner_scenario \
        --data-dir /tmp/runner-scenario'

Steps: `offline` (a fresh broker started by the runner although a `docker` CLI on PATH hangs, Kraken unreachable:
it keeps running, then Ctrl-C stops it), `broker_gone` (the demo, the broker stopped under it, then Ctrl-C: every
child still stops), `sigkill` (the demo, then the runner killed with SIGKILL: its children die with it). Each line
is `{"step": NAME, ...}`; the last is `{"step": "end", "error": null | "what failed"}`. The broker it starts is
stopped before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from lakehouse.common.polling import wait_until
from lakehouse.common.processes import descendants, is_running, process_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
T0 = time.monotonic()


def emit(step: str, **fields) -> None:
    print(json.dumps({"step": step, "at": round(time.monotonic() - T0, 1), **fields}), flush=True)


def alive(pids: list[int]) -> list[int]:
    """Those of pids still running (a zombie waiting to be reaped is dead)."""
    return [pid for pid in pids if is_running(pid)]


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def start_runner(data: Path, *args: str, path_prefix: str = "") -> tuple[subprocess.Popen, Path]:
    out = data / "runner.out"
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    proc = subprocess.Popen([PYTHON, "infra/run_pipeline.py", "--data-dir", str(data), "--log-dir",
                             str(data / "logs"), "--drain-timeout", "20", "--trigger", "2 seconds", *args], cwd=REPO_ROOT, env=env,
                            stdout=open(out, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out


def ctrl_c(proc: subprocess.Popen, timeout: float) -> dict:
    """SIGINT to the runner (Ctrl-C), wait for it; its exit code, seconds taken, and descendants left alive."""
    watched = descendants(proc.pid)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    took = round(time.monotonic() - started, 1)
    deadline = time.monotonic() + 2  # the children's grace after the runner's exit: 2 s, no more
    while alive(watched) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"rc": code, "seconds": took, "children": len(watched), "left_alive": alive(watched)}


def offline(data: Path) -> None:
    """A fresh broker (the runner starts it: nothing on 19092, and the `docker` on PATH hangs), Kraken unreachable."""
    hanging = data / "bin"
    hanging.mkdir(parents=True)
    (hanging / "docker").write_text("#!/bin/sh\nsleep 600\n")
    (hanging / "docker").chmod(0o755)
    runner, out = start_runner(data / "offline", path_prefix=str(hanging))
    logs = data / "offline" / "logs"
    wait_until(lambda: read(logs / "producer.log").count("reconnecting in") >= 2, 300, 0.5, "the producer's retries")
    wait_until(lambda: "bronze started" in read(logs / "spark.log"), 300, 0.5, "Bronze to start")
    time.sleep(5)
    running = runner.poll() is None
    stopped = ctrl_c(runner, 240)
    text = read(out)
    emit("offline", running_before_ctrl_c=running, **stopped,
         docker_fallback="no Docker engine: starting the local Kafka broker" in text,
         topic_created="created topic crypto.trades (3 partitions, replication factor 1)" in text,
         producer_retrying=read(logs / "producer.log").count("reconnecting in"),
         tracebacks=text.count("Traceback"),
         warnings=[line for line in text.splitlines() if line.startswith("[pipeline]") and " WARNING " in line],
         summary=[l for l in text.splitlines() if l.startswith(("bronze ", "silver ", "gold "))])


def broker_gone(data: Path) -> None:
    """The demo running, the broker stopped under it (a crash, or `make broker-down` first), then Ctrl-C."""
    runner, out = start_runner(data / "demo1", "--demo", "--pace", "fast")
    silver_log = data / "demo1" / "silver" / "crypto_trades" / "_delta_log"
    wait_until(lambda: any(silver_log.glob("*1.json")) if silver_log.is_dir() else False, 400, 0.5, "Silver's trades")
    down = subprocess.run([PYTHON, "infra/kafka/broker.py", "down"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    stopped = ctrl_c(runner, 400)
    text = read(out)
    emit("broker_gone", broker_down_rc=down.returncode, **stopped, tracebacks=text.count("Traceback"),
         summary=[l for l in text.splitlines() if l.startswith(("bronze ", "silver ", "gold "))])


def sigkill(data: Path) -> None:
    """The demo running, then the runner killed with SIGKILL: nothing it started may outlive it."""
    up = subprocess.run([PYTHON, "infra/kafka/broker.py", "up"], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=300)
    runner, _ = start_runner(data / "demo2", "--demo", "--pace", "fast")
    logs = data / "demo2" / "logs"
    wait_until(lambda: "silver started" in read(logs / "spark.log"), 400, 0.5, "the layers to start")
    watched = descendants(runner.pid)
    names = sorted({Path(a).name for pid in watched for a in (process_argv(pid) or [])[1:2] if a.endswith(".py")})
    runner.send_signal(signal.SIGKILL)
    runner.wait(30)
    killed_at = time.monotonic()
    gone = None
    while time.monotonic() - killed_at < 60:
        if not alive(watched):
            gone = round(time.monotonic() - killed_at, 1)
            break
        time.sleep(0.2)
    emit("sigkill", broker_up_rc=up.returncode, processes=len(watched), scripts=names, gone_after=gone,
         left_alive=alive(watched))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    os.environ["KAFKA_DATA_DIR"] = str(args.data_dir / "broker")  # never the host's broker data
    error = None
    try:
        for step in (offline, broker_gone, sigkill):
            step(args.data_dir)
    except Exception:  # noqa: BLE001 - reported in the end line
        error = traceback.format_exc()
    finally:
        subprocess.run([PYTHON, "infra/kafka/broker.py", "down"], cwd=REPO_ROOT, capture_output=True, timeout=120)
    emit("end", error=error)
    return 0 if error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
