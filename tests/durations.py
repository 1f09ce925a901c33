"""How long each test took, recorded on every run, and the longest-first order of the test files it gives.

`make test` runs the files on two pytest-xdist workers (`--dist loadfile`: a file stays on one worker), so the suite
ends when the busier worker does. Started longest first, the short files fill the gaps at the end instead of a long
one starting last. tests/conftest.py records each test's seconds (setup + call + teardown, so a module's shared run
counts in its first test) in pytest's cache after every run, and orders the files by the sum of their tests'
seconds: the last run's where there is one, else tests/durations.json (committed: a fresh clone and CI start from
it), else UNKNOWN_S.

Refresh the committed file from this checkout's last runs (after a full `make test`):
    .venv/bin/python -m tests.durations
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMITTED = REPO_ROOT / "tests" / "durations.json"
CACHE_KEY = "lakehouse/test-durations"  # pytest's cache: .pytest_cache/v/lakehouse/test-durations
UNKNOWN_S = 1.0  # a test never measured


def file_of(nodeid: str) -> str:
    """tests/unit/test_x.py::test_y[a] -> tests/unit/test_x.py"""
    return nodeid.split("::", 1)[0]


def merged(measured: dict[str, float], committed: dict[str, float]) -> dict[str, float]:
    """Each test's last measured seconds, the committed ones where this checkout has none."""
    return {**committed, **measured}


def file_seconds(nodeids: Iterable[str], seconds: dict[str, float]) -> dict[str, float]:
    """Seconds per test file: the sum over the given tests (the ones collected now) of their recorded seconds."""
    totals: dict[str, float] = {}
    for nodeid in nodeids:
        path = file_of(nodeid)
        totals[path] = totals.get(path, 0.0) + seconds.get(nodeid, UNKNOWN_S)
    return totals


def longest_first(nodeids: list[str], seconds: dict[str, float]) -> list[str]:
    """The tests regrouped by file, the longest file first; within a file, and between files of equal length, the
    given order stays (every xdist worker computes the same order from the same records)."""
    totals = file_seconds(nodeids, seconds)
    first_seen = {path: i for i, path in reversed(list(enumerate(map(file_of, nodeids))))}
    return sorted(nodeids, key=lambda n: (-totals[file_of(n)], first_seen[file_of(n)]))


def updated(old: dict[str, float], ran: dict[str, float], root: Path = REPO_ROOT) -> dict[str, float]:
    """The records after a run: the tests that ran now replace theirs; tests of files that are gone are dropped."""
    kept = {n: s for n, s in old.items() if (root / file_of(n)).is_file()}
    return dict(sorted({**kept, **{n: round(s, 2) for n, s in ran.items()}}.items()))


def read_committed(path: Path = COMMITTED) -> dict[str, float]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main() -> int:
    """Write this checkout's recorded seconds (pytest's cache) to tests/durations.json, sorted by test id."""
    cache = REPO_ROOT / ".pytest_cache" / "v" / CACHE_KEY
    if not cache.is_file():
        print(f"no recorded durations yet ({cache}): run the tests first")
        return 1
    seconds = updated(read_committed(), json.loads(cache.read_text()))
    COMMITTED.write_text(json.dumps(seconds, indent=0, sort_keys=True) + "\n")
    files = file_seconds(seconds, seconds)
    print(f"wrote {len(seconds)} tests' seconds to {COMMITTED.relative_to(REPO_ROOT)}; longest files:")
    for path, s in sorted(files.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {s:7.1f} s  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
