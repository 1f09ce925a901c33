"""`make run` / `make demo` (infra/run_pipeline.py) where a new user gets hurt: a fresh broker with Kraken unreachable
and a `docker` CLI that hangs, the broker gone when Ctrl-C arrives, the runner killed with SIGKILL.

The runner must start its own broker on 19092, and the broker is stopped under it, so
tests/integration/runner_scenario.py runs the steps inside a private network namespace (`unshare -n`, as root) and
prints one JSON line per step; the tests below assert on them. Deadlines are generous (a loaded 2-core machine);
the stop time itself is a benchmark figure (bench/footprint.py), not a test's.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import network_namespace_supported, run_in_network_namespace

# Over the default time limit (pyproject.toml): the runner scenario (up to 1500 s) runs in the first test's setup.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict:
    if not network_namespace_supported():
        pytest.skip("a private network namespace (unshare -n) needs root")
    data_dir = tmp_path_factory.mktemp("runner")
    run = run_in_network_namespace("tests.integration.runner_scenario", "--data-dir", str(data_dir),
                                   timeout=1500, logs=data_dir / "scenario")
    steps = {line["step"]: line for line in map(json.loads, filter(None, run.stdout.splitlines()))}
    return {**steps, "leftovers": run.leftovers, "stderr": run.stderr[-5000:]}


def step(scenario: dict, name: str) -> dict:
    if name not in scenario:
        end = scenario.get("end", {}).get("error", "no end line: the scenario timed out or crashed")
        pytest.fail(f"the scenario did not reach step {name!r}: {end}\nstderr: {scenario['stderr']}")
    return scenario[name]


def test_the_scenario_ran_to_the_end_and_left_nothing_running(scenario):
    assert step(scenario, "end")["error"] is None
    assert scenario["leftovers"] == []


def test_offline_on_a_fresh_broker_keeps_running_and_stops_cleanly(scenario):
    offline = step(scenario, "offline")
    assert offline["docker_fallback"], "a hanging docker CLI must count as no Docker"
    assert offline["topic_created"], "the runner creates the topic before anything reads it"
    assert offline["running_before_ctrl_c"] and offline["producer_retrying"] >= 2
    assert offline["rc"] == 0 and offline["left_alive"] == [] and offline["children"] >= 3
    assert offline["tracebacks"] == 0
    assert offline["warnings"] == []  # nothing failed to land: no warning
    assert any(line.startswith("bronze ") and ": 0 rows" in line for line in offline["summary"])


def test_ctrl_c_with_the_broker_gone_still_stops_every_child(scenario):
    gone = step(scenario, "broker_gone")
    assert gone["broker_down_rc"] == 0
    assert gone["rc"] is not None, "the runner did not exit"
    assert gone["left_alive"] == [] and gone["children"] >= 4  # fake Kraken, producer, the Spark app and its JVM
    assert gone["tracebacks"] == 0


def test_a_runner_killed_with_sigkill_leaves_no_process_behind(scenario):
    killed = step(scenario, "sigkill")
    assert killed["broker_up_rc"] == 0
    assert killed["scripts"] == ["all_layers.py", "fake_kraken.py", "kraken_trades_ws.py", "page.py"]
    assert killed["left_alive"] == [] and killed["gone_after"] is not None
