"""Silver: the trades Bronze landed, parsed, typed and each held once (a Delta table), plus a quarantine for what is
not a valid trade.

    job.py     Bronze -> Silver + quarantine, exactly once (spark/jobs/bronze_to_silver_trades.py)
    audit.py   does Silver hold every trade_id of each pair once? Without Spark (spark/jobs/silver_completeness_audit.py)
"""
