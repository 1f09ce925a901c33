"""A Spark standalone master and its workers, from the pyspark installation (`pyspark/bin/spark-class`).

The command lines and environment of the master and worker daemons, and the master's view of the cluster as its web
UI serves it (http://127.0.0.1:8080/json/). lakehouse.cluster.local (infra/cluster.py) starts, stops and kills them.

Usage (a library; the smallest example prints what a running master sees):
    python -c "from lakehouse.cluster.spark_standalone import fetch_master_state; \
print(fetch_master_state(8080))"
"""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from lakehouse.common.daemon import CLUSTER_MARK, SPARK_MASTER_CLASS, SPARK_WORKER_CLASS, InfraError

DAEMON_MEMORY = "512m"  # heap of the master and worker daemons themselves (executors have their own)
# Executors copy each application's files (--py-files, jars) into the worker's work folder: drop those of
# applications finished more than a day ago (checked every 30 minutes).
WORKER_OPTS = ("-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=1800 "
               "-Dspark.worker.cleanup.appDataTtl=86400")


def pyspark_home() -> Path:
    """The pyspark package folder: a complete Spark distribution (bin/spark-class, jars/)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError("pyspark is not installed for this Python: run `make setup` and use .venv/bin/python", code=2)
    return Path(list(spec.submodule_search_locations)[0])


def master_command(spark_home: Path, port: int, ui_port: int) -> list[str]:
    return [str(spark_home / "bin" / "spark-class"), SPARK_MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port),
            "--webui-port", str(ui_port)]


def worker_command(spark_home: Path, master_url: str, *, cores: int, memory: str, ui_port: int,
                   work_dir: Path) -> list[str]:
    """A worker offering `cores` cores and `memory` to executors; its own RPC port is left to the OS."""
    return [str(spark_home / "bin" / "spark-class"), SPARK_WORKER_CLASS, "--host", "127.0.0.1",
            "--cores", str(cores), "--memory", memory, "--webui-port", str(ui_port), "--work-dir", str(work_dir),
            master_url]


def daemon_env(base: Mapping[str, str], spark_home: Path, cluster_dir: Path, local_dir: Path) -> dict[str, str]:
    """The environment of a master or worker (inherited by the executors a worker starts)."""
    return {
        **base,
        "SPARK_HOME": str(spark_home),  # spark-class honours an inherited SPARK_HOME: pin it to this pyspark
        "SPARK_LOCAL_IP": "127.0.0.1",  # bind RPC and web UIs to loopback only (also works in a network namespace)
        "SPARK_LOCAL_DIRS": str(local_dir),  # shuffle and spill files
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        # the mark tells our daemons apart (see lakehouse/common/daemon.py); the C1 compiler only halves their start-up CPU
        "SPARK_DAEMON_JAVA_OPTS": f"{CLUSTER_MARK}{cluster_dir} -XX:TieredStopAtLevel=1",
        "SPARK_WORKER_OPTS": WORKER_OPTS,
    }


# ---------------------------------------------------------------------------------------------------------------------
# The master's view, from its web UI's JSON


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as the master lists it; `ui_port` (from its webuiaddress) tells which of our workers it is."""

    id: str
    ui_port: int
    cores: int
    cores_used: int
    memory_mb: int
    state: str  # ALIVE, DEAD, DECOMMISSIONED, UNKNOWN


@dataclass(frozen=True)
class MasterState:
    status: str  # ALIVE (or STANDBY/RECOVERING for a master in recovery)
    url: str
    workers: tuple[WorkerInfo, ...]
    active_apps: int

    @property
    def alive_workers(self) -> list[WorkerInfo]:
        return [w for w in self.workers if w.state == "ALIVE"]

    def is_alive_at(self, ui_port: int) -> bool:
        """Whether the worker whose web UI is on `ui_port` is registered and ALIVE (a restarted worker registers
        anew; the killed one's entry stays DEAD beside it)."""
        return any(w.ui_port == ui_port for w in self.alive_workers)


def parse_master_json(text: str) -> MasterState:
    """The master's /json/ page: `{"url": "spark://...", "workers": [{"id", "webuiaddress", "cores", "coresused",
    "memory", "state", ...}], "aliveworkers": 2, "activeapps": [...], "status": "ALIVE", ...}`."""
    doc = json.loads(text)
    workers = tuple(WorkerInfo(id=w["id"], ui_port=int(w["webuiaddress"].rsplit(":", 1)[1]), cores=int(w["cores"]),
                               cores_used=int(w["coresused"]), memory_mb=int(w["memory"]), state=w["state"])
                    for w in doc.get("workers", []))
    return MasterState(status=doc["status"], url=doc["url"], workers=workers, active_apps=len(doc.get("activeapps", [])))


def fetch_master_state(ui_port: int, timeout: float = 2.0) -> MasterState | None:
    """What the master on this machine sees; None when its web UI does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=timeout) as response:
            return parse_master_json(response.read().decode())
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None
