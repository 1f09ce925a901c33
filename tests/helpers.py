"""Small helpers shared by the tests: deadline polling, running the project's scripts as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, message: str = "condition") -> Any:
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)


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
