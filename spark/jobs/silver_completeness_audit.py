"""Silver completeness audit: does Silver hold every Kraken trade of each pair between its first and last trade_id,
each exactly once?

Usage:
    python spark/jobs/silver_completeness_audit.py --silver data/silver/crypto_trades
    python spark/jobs/silver_completeness_audit.py --silver data/silver/crypto_trades --symbol XBT/USDT --json

An entry point: the code is lakehouse.silver.audit (src/lakehouse/silver/audit.py); `python -m
lakehouse.silver.audit` runs the same.
"""

from lakehouse.silver.audit import main

if __name__ == "__main__":
    raise SystemExit(main())
