"""Fixtures shared by all tests.

Integration tests use the real broker on localhost:19092 (started here if none answers, via the same script as
`make broker-up`) and real Spark; each test gets its own topic and tmp_path folders, so tests never see each other's
data.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import pytest

from tests import durations
from tests.helpers import REPO_ROOT

BOOTSTRAP = "localhost:19092"


@pytest.fixture(scope="session", autouse=True)
def status_files_outside_the_repo(tmp_path_factory: pytest.TempPathFactory):
    """Jobs and the producer publish their status (lakehouse.observe.status) to $LAKEHOUSE_STATUS_DIR, else to
    data/status: tests that run them without a pipeline's own folder write to a temporary folder instead (a test
    that needs its own sets the variable itself; the runner sets it for what it starts)."""
    import os

    if "LAKEHOUSE_STATUS_DIR" not in os.environ:
        os.environ["LAKEHOUSE_STATUS_DIR"] = str(tmp_path_factory.mktemp("status"))
    yield


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """The shared broker's address; starts the local Kafka broker when nothing listens on 19092."""
    if not _port_open(19092):
        result = subprocess.run([sys.executable, str(REPO_ROOT / "infra/kafka/broker.py"), "up"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"could not start the broker:\n{result.stdout}\n{result.stderr}"
    return BOOTSTRAP


@pytest.fixture
def new_topic(bootstrap: str):
    """A factory of fresh topics: new_topic(partitions=3) -> name. Topics are deleted after the test."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    created: list[str] = []

    def make(partitions: int = 3, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created, operation_timeout=30).values():
            try:
                future.result(30)
            except Exception:  # noqa: BLE001 - best-effort clean-up must not hide the test's own result
                pass


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession (with Kafka and Delta Lake) for reading what the jobs wrote and for running a job's
    queries in-process where a JVM start per run would cost too much."""
    from lakehouse.lake.delta import WRITER_SESSION_CONF
    from lakehouse.spark.session import build_spark

    session = build_spark("tests", kafka=True, delta=True, conf={"spark.master": "local[2]", **WRITER_SESSION_CONF})
    yield session
    session.stop()


# The test files run longest first, from the seconds recorded on every run (tests/durations.py).
_seconds_this_run: dict[str, float] = {}


def pytest_collection_modifyitems(session, config, items) -> None:
    """Regroup the tests by file, the longest file first (the same order on every xdist worker)."""
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider (make mutants)
    seconds = durations.merged(cache.get(durations.CACHE_KEY, {}) if cache else {}, durations.read_committed())
    rank = {nodeid: i for i, nodeid in enumerate(durations.longest_first([item.nodeid for item in items], seconds))}
    items.sort(key=lambda item: rank[item.nodeid])


def pytest_runtest_logreport(report) -> None:
    """Each test's setup, call and teardown seconds (on the xdist controller: every worker's reports)."""
    _seconds_this_run[report.nodeid] = _seconds_this_run.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session) -> None:
    """Record this run's seconds per test in pytest's cache (once, by the controller, not by each xdist worker)."""
    config = session.config
    if hasattr(config, "workerinput") or not _seconds_this_run or getattr(config, "cache", None) is None:
        return
    config.cache.set(durations.CACHE_KEY, durations.updated(config.cache.get(durations.CACHE_KEY, {}),
                                                            _seconds_this_run))
