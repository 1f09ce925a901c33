"""Gold: 1-minute OHLCV + VWAP bars per pair (a Delta table), exact and live, corrected by late trades.

    job.py         Silver -> Gold, the streaming job (spark/jobs/silver_to_gold_ohlcv.py)
    recompute.py   the same bars for a time range, recomputed from Silver in batch (spark/jobs/gold_ohlcv_batch.py)
    chart.py       candles + volume of one pair from Gold to PNG/HTML, without Spark (spark/jobs/plot_ohlcv.py)
"""
