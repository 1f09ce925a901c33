"""Run the whole pipeline in one terminal: broker, producer, and the Bronze, Silver and Gold layers; Ctrl-C stops it.

Usage:
    python infra/run_pipeline.py                        # live Kraken, pair XBT/USDT (make run)
    python infra/run_pipeline.py --pair XBT/USDT --pair ETH/USD
    python infra/run_pipeline.py --demo                 # offline: a fake Kraken replays a shipped recording (make demo)
    python infra/run_pipeline.py --demo --cluster       # on make cluster-up's 3 brokers and Spark (make demo CLUSTER=1)

An entry point: the code is lakehouse.pipeline.runner (src/lakehouse/pipeline/runner.py); `python -m
lakehouse.pipeline.runner` runs the same.
"""

from lakehouse.pipeline.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
