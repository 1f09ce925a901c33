"""The message broker the producer writes to and Bronze reads from: a real Apache Kafka (KRaft) run from Maven
Central's jars on machines without Docker, and a quick look at a topic.

    kraft.py     what the single broker and the local cluster share: jars, the Java check, a node's config and start
    local.py     the single local broker on localhost:19092 (`make broker-up`, infra/kafka/broker.py)
    consume.py   print a topic's last records, like `rpk topic consume` (`make consume`, ingestion/consume_trades.py)

kraft.py and local.py use the standard library only: they run before any virtualenv exists.
"""
