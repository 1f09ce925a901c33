"""Bronze: every Kafka record of the trades topic, raw, with its Kafka metadata, in checkpointed Parquet.

    job.py     Kafka -> Bronze, exactly once (spark/jobs/kafka_to_bronze_trades.py)
    audit.py   does Bronze hold every record the broker holds, exactly once? (spark/jobs/bronze_audit.py)
"""
