"""Small helpers shared by the tests: deadline polling, running the project's scripts as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lakehouse.common import polling, processes

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """lakehouse.common.polling.wait_until, where a timeout fails the test (AssertionError) rather than erring it."""
    return polling.wait_until(predicate, timeout, interval, what, error=AssertionError)


def planned_not_committed(checkpoint: Path) -> bool:
    """A streaming query's checkpoint holds a batch that was planned (offsets/N) but not committed (no commits/N):
    a kill now hits a batch in flight."""
    def ids(sub: str) -> set[str]:
        folder = checkpoint / sub
        return {p.name for p in folder.iterdir() if p.name.isdigit()} if folder.is_dir() else set()

    return bool(ids("offsets") - ids("commits"))


def script_env(**extra: str) -> dict[str, str]:
    """The environment a project script runs with in tests: unbuffered, this interpreter's Spark workers."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON}
    env.update(extra)
    return env


def run_script(script: str, *args: str, timeout: float = 300, **popen_kwargs: Any) -> subprocess.CompletedProcess:
    """Run `python <script> <args>` from the repo root, as the README does; capture its output as text."""
    return subprocess.run([PYTHON, str(REPO_ROOT / script), *args], cwd=REPO_ROOT, env=script_env(),
                          capture_output=True, text=True, timeout=timeout, **popen_kwargs)


def start_script(script: str, *args: str, log_path: Path | None = None) -> subprocess.Popen:
    """Start `python <script> <args>` in the background (its own process group); output to log_path or a pipe."""
    out = open(log_path, "wb") if log_path else subprocess.PIPE
    return subprocess.Popen([PYTHON, str(REPO_ROOT / script), *args], cwd=REPO_ROOT, env=script_env(),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


# ---------------------------------------------------------------------------------------------------------------------
# A private network namespace: its own loopback, where the cluster's ports (19092, ...) are free whatever the host runs.


@dataclass
class NamespaceRun:
    """What a script run in a private network namespace did: its exit code (None: killed at the timeout), its output,
    and the command lines of the processes it left running there (killed afterwards)."""

    returncode: int | None
    stdout: str
    stderr: str
    leftovers: list[str]


def network_namespace_supported() -> bool:
    """`unshare -n` needs root (CI and the project's machines run as root)."""
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def network_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def kill_network_namespace(netns: str) -> list[str]:
    """SIGKILL every process in the network namespace `netns` and wait until each has died (SIGKILL is delivered
    asynchronously: on a loaded machine a killed process can still be running a moment later); returns their command
    lines."""
    killed, pids = [], []
    for pid in processes.pids():
        cmdline = processes.command_line(pid) if network_namespace(pid) == netns else None
        if cmdline is None:
            continue
        killed.append(cmdline[:200])
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        pids.append(pid)
    wait_until(lambda: not any(processes.is_running(pid) for pid in pids), 60,
               what=f"the processes killed in {netns} to die")
    return killed


def python_target(script: str) -> list[str]:
    """What follows `python` to run `script`: a file (absolute, or relative to the repo root), or a module (-m)."""
    return [str(REPO_ROOT / script)] if script.endswith(".py") else ["-m", script]


def run_in_network_namespace(script: str, *args: str, timeout: float, logs: Path) -> NamespaceRun:
    """Run `python <script> <args>` from the repo root in a new network namespace with only a loopback (up); wait for
    it to exit, up to `timeout` s. A `script` that is a module name (tests.integration.cluster_scenario) runs as
    `python -m <script>`: the repo root, its working folder, is then where its imports (tests.*) are found. Whatever
    it leaves running there (servers it started; itself, past the timeout) is killed. Its output goes to `logs`.out
    and `logs`.err (files: a leftover holding a pipe cannot stall us)."""
    out_path, err_path = logs.with_suffix(".out"), logs.with_suffix(".err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            # bash waits for a line on stdin before it becomes the script: time to note the namespace it is in
            ["unshare", "-n", "bash", "-c", 'ip link set lo up && read -r _ && exec "$@"', "bash", PYTHON,
             *python_target(script), *args], cwd=REPO_ROOT, env=script_env(), stdin=subprocess.PIPE, stdout=out,
            stderr=err, start_new_session=True, text=True)
    host_netns = network_namespace(os.getpid())
    netns = wait_until(lambda: (ns := network_namespace(proc.pid)) != host_netns and ns, 30,
                       what=f"{script} in its own network namespace")
    proc.stdin.write("go\n")
    proc.stdin.close()
    returncode: int | None = None
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:  # also when the test's own time limit (pytest-timeout) interrupts the wait: nothing outlives the test
        leftovers = kill_network_namespace(netns)  # the script itself among them when it timed out
        proc.wait(timeout=30)
    return NamespaceRun(returncode, out_path.read_text(), err_path.read_text(), leftovers)
