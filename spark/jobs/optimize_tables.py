"""Compact and clean the lakehouse's Delta tables: OPTIMIZE (small files bin-packed into large ones) and VACUUM (files
no version within the retention needs are deleted), for Silver, its quarantine and Gold.

Usage:
    python spark/jobs/optimize_tables.py        # make optimize
    python spark/jobs/optimize_tables.py --table data/gold/ohlcv_1m --retain-hours 24

An entry point: the code is lakehouse.pipeline.optimize (src/lakehouse/pipeline/optimize.py); `python -m
lakehouse.pipeline.optimize` runs the same.
"""

from lakehouse.pipeline.optimize import main

if __name__ == "__main__":
    raise SystemExit(main())
