"""A streaming lakehouse for crypto trades, one folder per stage of the data's way:

    producer/     Kraken's WebSocket (and REST, for gaps) -> Kafka, one JSON record per trade
    broker/       the Kafka broker in between: a local Apache Kafka (KRaft) without Docker, a look at a topic
    bronze/       Kafka -> Bronze: every record raw, with its Kafka metadata (Parquet); its audit against the broker
    silver/       Bronze -> Silver: typed trades, each once, and a quarantine (Delta); its completeness audit
    gold/         Silver -> Gold: 1-minute OHLCV + VWAP bars (Delta); a batch recompute; a chart

and what runs and serves them:

    pipeline/     the layers as one Spark application, the whole pipeline in one terminal, table maintenance
    observe/      what every process publishes about itself (data/status/*.json), lag, health, make status
    page/         the live page's server: candles from Gold and live from the topic, health, /api/*, /metrics
    spark/        what every Spark job shares: the session, jars, flags, a job's life, sinks, progress lines
    lake/         the Delta tables: idempotent writes and maintenance (Spark), reading them without Spark
    cluster/      a local 3-broker Kafka + Spark standalone cluster to run on and to break
    fake_kraken/  a local Kraken for tests, benchmarks and the offline demo
    common/       small shared helpers
    defaults.py   the shared defaults: folders, Kafka's address and topic, where each layer lives

Commands are run through the scripts in ingestion/, spark/ and infra/ (`python spark/jobs/kafka_to_bronze_trades.py
...`, as the README shows), or as modules (`python -m lakehouse.bronze.job ...`).
"""
