"""Wait for a condition by polling it until a deadline: the one such loop the runner, the local cluster, the tests
and the benchmarks share. Standard library only."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition",
               error: Callable[[str], Exception] = TimeoutError) -> Any:
    """Call `predicate` every `interval` seconds until it returns a truthy value, and return that value; once
    `timeout` seconds have passed without one, raise `error("timed out after <timeout>s waiting for <what>")` (e.g.
    the caller's own exception type, whose message a user reads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
