"""Kafka -> Bronze: append every raw record of the trades topic, with its Kafka metadata, to checkpointed Parquet.

Usage:
    python spark/jobs/kafka_to_bronze_trades.py --bootstrap localhost:19092 --topic crypto.trades \\
        --out data/bronze/crypto_trades --checkpoint data/checkpoints/kafka_to_bronze_trades \\
        --startingOffsets earliest --trigger "2 seconds"

    # a backfill (or a test): land everything the topic holds now, then exit
    python spark/jobs/kafka_to_bronze_trades.py --available-now

    # on a cluster, with security settings kept out of the command line (make pyzip builds dist/lakehouse.zip)
    spark-submit --master yarn --packages org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \\
        --py-files dist/lakehouse.zip \\
        spark/jobs/kafka_to_bronze_trades.py --bootstrap broker1:9093 --kafka-properties /secure/client.properties \\
        --out s3a://lake/bronze/crypto_trades --checkpoint s3a://lake/checkpoints/kafka_to_bronze_trades

An entry point: the code is lakehouse.bronze.job (src/lakehouse/bronze/job.py); `python -m lakehouse.bronze.job` runs
the same.
"""

from lakehouse.bronze.job import main

if __name__ == "__main__":
    raise SystemExit(main())
