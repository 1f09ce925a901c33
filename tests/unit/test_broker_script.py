"""infra/kafka/broker.py: its pure parts, and the errors a user meets."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from lakehouse.broker import local as broker
from tests.helpers import REPO_ROOT

SCRIPT = REPO_ROOT / "infra/kafka/broker.py"


@pytest.mark.parametrize("output, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "25" 2025-09-16', 25),
    ('java version "1.8.0_392"', 8),
    ("nothing", None),
])
def test_java_major_version(output: str, major: int | None) -> None:
    assert broker.java_major_version(output) == major


def test_cluster_id_is_22_url_safe_characters() -> None:
    cluster_id = broker.new_cluster_id()
    assert len(cluster_id) == 22 and all(c.isalnum() or c in "-_" for c in cluster_id)


def test_cluster_id_never_starts_with_a_dash() -> None:
    """kafka-storage format would read `--cluster-id -...` as a missing value (seen once in 64 cluster starts)."""
    draws = iter([b"\xfb" + bytes(15), b"\x00" * 16])  # the first encodes to "-wAAAA...", the second to "AAAA..."
    assert broker.new_cluster_id(lambda: next(draws)) == "A" * 22


def test_server_properties_listen_where_redpanda_does(tmp_path) -> None:
    props = dict(line.split("=", 1) for line in broker.server_properties(19092, 19093, tmp_path).splitlines()
                 if line and not line.startswith("#"))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://localhost:19092"
    assert props["auto.create.topics.enable"] == "true"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path)


def test_occupied_port_is_a_clear_error(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run([sys.executable, str(SCRIPT), "up", "--port", str(port), "--controller-port",
                                 str(port + 1 if port < 65535 else port - 1), "--data-dir", str(tmp_path)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port} is already in use" in result.stderr


def test_missing_java_is_a_clear_error(tmp_path) -> None:
    env = {"PATH": "/nonexistent", "JAVA_HOME": str(tmp_path / "no-jdk")}
    result = subprocess.run([sys.executable, str(SCRIPT), "up", "--port", "1", "--controller-port", "2",
                             "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "Java not found" in result.stderr
