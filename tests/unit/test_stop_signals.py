"""A stop signal ends every long-running script, whenever it lands.

Each script's SIGTERM/SIGINT handler sets a threading.Event. The handler runs on the main thread, and Event.set()
takes the event's lock: a signal that lands while the main thread is inside that event's wait() (which holds the
lock around its check) deadlocks the process for good. One such hang was seen: the fake Kraken, sent SIGTERM when
the runner was killed, still alive a minute later. The moment is microseconds wide in a 1-second wait, so these tests
make it certain: in a child process, threading.Event is replaced by one whose timed wait() on the main thread sends
the process SIGTERM while holding its lock. A script that blocks in wait() on its stop event then hangs for good; one
that polls is_set() never enters it, and stops on the SIGTERM the test sends.

    .venv/bin/python -m pytest tests/unit/test_stop_signals.py
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import REPO_ROOT

SIGNAL_INSIDE_WAIT = textwrap.dedent("""
    import os, signal, sys, threading

    class SignalInsideWait(threading.Event):
        fired = False

        def wait(self, timeout=None):
            if (timeout is None or SignalInsideWait.fired or threading.current_thread() is not threading.main_thread()
                    or signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN)):
                return super().wait(timeout)
            SignalInsideWait.fired = True
            with self._cond:  # the lock Event.set() takes
                os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next instruction, with it held
                return self._flag

    threading.Event = SignalInsideWait
""")

SCRIPTS = {
    "fake_kraken": """
        from lakehouse.fake_kraken import cli as fake_kraken
        sys.exit(fake_kraken.main(["--port", "0", "--rate", "0"]))
    """,
    "spark_job_waiting_for_input": """
        from lakehouse.spark import lifecycle
        stop = lifecycle.StopRequest().install()
        print("waiting for input", flush=True)
        ready = lifecycle.wait_until_ready(lambda: False, stop, "no input yet", poll_s=0.2)
        print("ready" if ready else f"stopped by {stop.signal_name}", flush=True)
    """,
    "runner_watching_its_processes": """
        from types import SimpleNamespace
        from lakehouse.pipeline import runner as run_pipeline
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # what the runner's handler does
        print("watching", flush=True)
        ended = run_pipeline.Pipeline.watch(SimpleNamespace(children={}), stop)
        print(f"stopped; ended={ended}", flush=True)
    """,
}
LAST_LINE = {"fake_kraken": None, "spark_job_waiting_for_input": "stopped by SIGTERM",
             "runner_watching_its_processes": "stopped; ended=None"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_sigterm_stops_the_script_even_when_it_lands_inside_an_event_wait(script):
    proc = subprocess.Popen([sys.executable, "-c", SIGNAL_INSIDE_WAIT + textwrap.dedent(SCRIPTS[script])],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_line = proc.stdout.readline()
    assert first_line, "the script ended before it started waiting"
    time.sleep(1.5)  # a timed wait() on the stop event would have fired by now
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rest, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{script} still running 20 s after SIGTERM: its handler deadlocked on the stop event's lock")
    assert proc.returncode == 0, first_line + rest
    if LAST_LINE[script]:
        assert rest.strip().splitlines()[-1] == LAST_LINE[script]
