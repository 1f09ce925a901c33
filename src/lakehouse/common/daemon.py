"""Background processes of the local infrastructure: start one detached with a pid file, find it, stop it, kill it.

Used by lakehouse.broker.local (the single-node Kafka broker) and lakehouse.cluster.local (a 3-broker Kafka cluster
and a Spark standalone cluster). It also says who holds a port, so a refusal can name what runs there and how to stop it.
Standard library only: the broker script runs before any virtualenv exists.

Usage (a library; the smallest example):
    python3 -c "from lakehouse.common.daemon import port_owner; print(port_owner(19092))"
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from lakehouse.common.processes import PROC, pids, process_argv
from lakehouse.defaults import REPO_ROOT

DEFAULT_BROKER_DIR = REPO_ROOT / "data" / "broker"  # make broker-up's
DEFAULT_CLUSTER_DIR = REPO_ROOT / "data" / "cluster"  # make cluster-up's
# A JVM system property the cluster puts on each of its processes' command lines: `-Dlakehouse.cluster=<data dir>`.
# It tells the cluster's processes apart from a single broker's, and tells which cluster they belong to.
CLUSTER_MARK = "-Dlakehouse.cluster="
SPARK_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
SPARK_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
TCP_LISTEN = "0A"
START_LINE = "==== started by infra/daemon.py"  # heads each run's output in a daemon's log file
LOG_SCAN_BYTES = 4 << 20  # the state column of /proc/net/tcp for a listening socket


class InfraError(Exception):
    """A failure the user can act on; the message says what to do. `code` is the exit code (2: environment)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# ---------------------------------------------------------------------------------------------------------------------
# Who holds a port: /proc/net/tcp* gives the listening socket's inode, /proc/<pid>/fd the process holding it.


def listening_inodes(proc_net_tcp: str, port: int) -> set[int]:
    """Inodes of the sockets listening on `port` in a /proc/net/tcp or tcp6 table.

    A line: `0: 0100007F:4A94 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 123456 ...`
    (local address:port in hex, remote, state, ..., inode in the tenth column)."""
    inodes = set()
    for line in proc_net_tcp.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 9 and cols[3] == TCP_LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(int(cols[9]))
    return inodes


def pid_listening_on(port: int) -> int | None:
    """The pid of the process listening on `port` in this network namespace, when /proc shows it (we are root)."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            inodes |= listening_inodes(Path(table).read_text(), port)
        except OSError:
            continue
    targets = {f"socket:[{inode}]" for inode in inodes}
    if not targets:
        return None
    for pid in pids():
        try:
            if any(os.readlink(fd) in targets for fd in (PROC / str(pid) / "fd").iterdir()):
                return pid
        except OSError:
            continue
    return None


def _flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def describe_process(pid: int, argv: list[str]) -> str:
    """What a process is, in words a user can act on: which of our servers it is and the command that stops it
    (`make broker-down` / `make cluster-down` for the ones in their default folders)."""
    cluster_dir = next((a[len(CLUSTER_MARK):] for a in argv if a.startswith(CLUSTER_MARK)), None)
    if cluster_dir is not None:
        node = Path(argv[-1]).parent.name if "kafka.Kafka" in argv else _spark_role(argv)
        return (f"{node} of the local Kafka + Spark cluster (pid {pid}, data {cluster_dir}); stop the cluster with "
                f"`{cluster_stop_command(Path(cluster_dir))}` (`make cluster-status` shows it)")
    if "kafka.Kafka" in argv:
        data_dir = Path(argv[-1]).parent
        stop = ("make broker-down" if data_dir == DEFAULT_BROKER_DIR
                else f"python3 infra/kafka/broker.py down --data-dir {data_dir}")
        return f"the single-node Kafka broker (pid {pid}, data {data_dir}); stop it with `{stop}`"
    if SPARK_MASTER_CLASS in argv or SPARK_WORKER_CLASS in argv:
        return f"a Spark standalone {_spark_role(argv)} not started by infra/cluster.py (pid {pid}); stop it yourself"
    shown = " ".join(" ".join(argv).split())  # one line, even for `python -c` code
    return f"another program (pid {pid}: {shown[:120]}{'...' if len(shown) > 120 else ''})"


def cluster_stop_command(cluster_dir: Path) -> str:
    """The command that stops the cluster kept in `cluster_dir` (make cluster-down for the default folder)."""
    return "make cluster-down" if cluster_dir == DEFAULT_CLUSTER_DIR else f"python infra/cluster.py down --data-dir {cluster_dir}"


def _spark_role(argv: list[str]) -> str:
    if SPARK_MASTER_CLASS in argv:
        return "spark-master"
    work_dir = _flag_value(argv, "--work-dir")
    return Path(work_dir).parent.name if work_dir else "spark-worker"


def port_owner(port: int) -> str:
    """Who listens on `port`, described for a refusal message ("another program" when /proc does not say)."""
    pid = pid_listening_on(port)
    argv = process_argv(pid) if pid else None
    if pid is None or argv is None:
        return ("another program (is the Redpanda container up? `docker compose -f infra/docker-compose.yml down` "
                "stops it)")
    return describe_process(pid, argv)


# ---------------------------------------------------------------------------------------------------------------------
# One background process


def _reap(pid: int) -> None:
    """Collect the exit status of a child we started (else a killed child stays a zombie until we exit)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@dataclass
class Daemon:
    """A background process known by its pid file; `markers` are arguments its command line must hold (a config path,
    a work folder, a main class), so a stale pid file naming a reused pid is never taken for ours."""

    name: str
    pid_file: Path
    log_file: Path
    markers: tuple[str, ...]
    log_start: int = field(default=0, init=False)  # where this run's output begins in the log file

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        _reap(pid)
        argv = process_argv(pid)
        return pid if argv and all(m in argv for m in self.markers) else None

    def start(self, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
              ) -> subprocess.Popen:
        """Start detached (own session, output appended to the log file after a start line); write the pid file."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as log:
            log.write(f"{START_LINE} at {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=cwd, env=dict(env) if env is not None else None)
        self.pid_file.write_text(str(proc.pid))
        # Popen returns mid-exec, when /proc/<pid>/cmdline can still be empty: wait until it names the markers, so
        # running_pid() is right from here on.
        deadline = time.monotonic() + 10.0
        while self.running_pid() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return proc

    def log_since_start(self) -> str:
        """This run's part of the log: what follows the last start line (the file keeps earlier runs). Reads from
        this object's own start when it made one, else the file's last megabytes."""
        try:
            with open(self.log_file, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self.log_start, size - LOG_SCAN_BYTES))
                return log.read().decode(errors="replace").rsplit(START_LINE, 1)[-1]
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_file})"

    def wait_ready(self, ready: Callable[[], bool], timeout: float, proc: subprocess.Popen | None = None) -> None:
        """Poll `ready` until true; fail with the log's tail when the process exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            exited = proc.poll() is not None if proc is not None else self.running_pid() is None
            if exited:
                raise InfraError(f"{self.name} exited during start-up; last lines of {self.log_file}:\n"
                                 f"{self.log_tail()}")
            if ready():
                return
            if time.monotonic() >= deadline:
                raise InfraError(f"{self.name} did not become ready within {timeout:.0f}s; last lines of "
                                 f"{self.log_file}:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, timeout: float) -> tuple[int | None, bool]:
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns (pid or None when not running, killed?)."""
        return stop_all([self], timeout)[0]

    def kill(self) -> int | None:
        """kill -9, as a crash would; waits until the process is gone. The pid file stays (it names a dead pid)."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self.wait_gone(10.0)
        return pid

    def wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running_pid() is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True


def stop_all(daemons: list[Daemon], timeout: float) -> list[tuple[int | None, bool]]:
    """Stop several at once: SIGTERM to each (a clean shutdown: Kafka flushes its logs), wait up to `timeout` s for
    all, then SIGKILL what is left. Per daemon: (pid or None when it was not running, killed?). Pid files go."""
    pids = [d.running_pid() for d in daemons]
    for pid in pids:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    results = []
    for daemon, pid in zip(daemons, pids):
        killed = False
        if pid is not None and not daemon.wait_gone(max(0.0, deadline - time.monotonic())):
            os.kill(pid, signal.SIGKILL)
            daemon.wait_gone(10.0)
            killed = True
        daemon.pid_file.unlink(missing_ok=True)
        results.append((pid, killed))
    return results
