"""Bronze audit: does Bronze hold every record the broker holds, exactly once?

Usage:
    python spark/jobs/bronze_audit.py --bootstrap localhost:19092 --topic crypto.trades \\
        --bronze data/bronze/crypto_trades

    # for scripts and tests: the same report as one JSON document on stdout
    python spark/jobs/bronze_audit.py --json

An entry point: the code is lakehouse.bronze.audit (src/lakehouse/bronze/audit.py); `python -m
lakehouse.bronze.audit` runs the same.
"""

from lakehouse.bronze.audit import main

if __name__ == "__main__":
    raise SystemExit(main())
