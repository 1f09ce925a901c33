"""Gold in batch: recompute the 1-minute OHLCV + VWAP bars of a time range from Silver, with every trade Silver holds.
Same computation as the stream (silver_to_gold_ohlcv.minute_sums and finish_bars), so for the same Silver it gives
the same bars, to the last digit, with is_open set the same way (the pair's newest minute in Silver).

Usage:
    python spark/jobs/gold_ohlcv_batch.py --silver data/silver/crypto_trades \\
        --from 2026-01-01T00:00 --to 2026-01-02T00:00 --out data/gold/ohlcv_1m_recompute

An entry point: the code is lakehouse.gold.recompute (src/lakehouse/gold/recompute.py); `python -m
lakehouse.gold.recompute` runs the same.
"""

from lakehouse.gold.recompute import main

if __name__ == "__main__":
    raise SystemExit(main())
