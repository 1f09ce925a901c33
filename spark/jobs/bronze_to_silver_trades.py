"""Bronze -> Silver: parse, type and deduplicate the trades Bronze landed; quarantine what cannot be parsed.

Usage:
    python spark/jobs/bronze_to_silver_trades.py --bronze data/bronze/crypto_trades \\
        --out data/silver/crypto_trades --quarantine data/silver/crypto_trades_quarantine \\
        --checkpoint data/checkpoints/bronze_to_silver_trades --trigger "2 seconds"

    # a backfill or rebuild: process everything Bronze holds now, then exit
    python spark/jobs/bronze_to_silver_trades.py --available-now

An entry point: the code is lakehouse.silver.job (src/lakehouse/silver/job.py); `python -m lakehouse.silver.job` runs
the same.
"""

from lakehouse.silver.job import main

if __name__ == "__main__":
    raise SystemExit(main())
