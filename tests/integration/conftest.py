"""Fixtures of the integration tests that need more than the shared broker."""

from __future__ import annotations

import os
import subprocess
import sys
import pytest

from tests.helpers import REPO_ROOT
from tests.integration.producer_helpers import kill_leftover_producers


@pytest.fixture(autouse=True)
def no_producer_left_running():
    """A producer a test started never outlives it, even when the test fails before stopping it."""
    yield
    kill_leftover_producers()


@pytest.fixture(scope="session")
def private_broker(tmp_path_factory: pytest.TempPathFactory):
    """A second broker we may stop (never the shared one on 19092), started once for the session: a test that stops
    it starts it again (up) before it ends."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)  # one per pytest-xdist worker
    port, ctrl = 29192 + 100 * worker, 29193 + 100 * worker
    data = tmp_path_factory.mktemp("broker-b")
    script = str(REPO_ROOT / "infra/kafka/broker.py")

    def up() -> None:
        r = subprocess.run([sys.executable, script, "up", "--port", str(port), "--controller-port", str(ctrl),
                            "--data-dir", str(data)], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr

    def down() -> None:
        r = subprocess.run([sys.executable, script, "down", "--data-dir", str(data)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr

    up()
    try:
        yield f"localhost:{port}", up, down
    finally:
        down()
