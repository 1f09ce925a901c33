"""The pipeline's health on one screen (make status): state, last batch, rows/s, lag and table version per component.

Usage:
    python infra/status.py                      # the pipeline under data/
    python infra/status.py --json               # as JSON, for scripts
    python infra/status.py --data-dir /tmp/demo/data

Exit codes: 0 healthy or starting, 1 stale or failed, 2 nothing running.

An entry point: the code is lakehouse.observe.cli (src/lakehouse/observe/cli.py).
"""

from lakehouse.observe.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
