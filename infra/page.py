"""The live page alone (make page): candles per pair, the pipeline's health, the JSON API and /metrics.

Usage:
    python infra/page.py                                  # http://127.0.0.1:8500/ over data/ and crypto.trades
    python infra/page.py --port 8600 --data-dir /tmp/demo/data --topic demo-trades
    python infra/page.py --host 0.0.0.0                   # reachable from other machines

An entry point: the code is lakehouse.page.cli (src/lakehouse/page/cli.py).
"""

from lakehouse.page.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
