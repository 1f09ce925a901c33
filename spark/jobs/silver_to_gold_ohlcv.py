"""Silver -> Gold: one 1-minute OHLCV + VWAP bar per pair per minute of event time (ts_event), kept exact and live.

Usage:
    python spark/jobs/silver_to_gold_ohlcv.py --silver data/silver/crypto_trades --out data/gold/ohlcv_1m \\
        --checkpoint data/checkpoints/silver_to_gold_ohlcv --trigger "2 seconds"

    # a backfill (or a test): bring Gold up to what Silver holds now, then exit
    python spark/jobs/silver_to_gold_ohlcv.py --available-now

An entry point: the code is lakehouse.gold.job (src/lakehouse/gold/job.py); `python -m lakehouse.gold.job` runs the
same.
"""

from lakehouse.gold.job import main

if __name__ == "__main__":
    raise SystemExit(main())
