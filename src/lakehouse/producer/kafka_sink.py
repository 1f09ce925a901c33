"""Kafka side of the producer: the producer's configuration, the start-up broker check, the topic's creation."""

from __future__ import annotations

from typing import Any, Optional

from lakehouse.producer.config import KafkaConfig


def producer_config(config: KafkaConfig) -> dict:
    """librdkafka settings (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)."""
    return {
        "bootstrap.servers": config.bootstrap,
        "client.id": "kraken-trades-ws",
        # Retries never duplicate or reorder within a partition (implies acks=all, max.in.flight<=5).
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": config.compression,
        "linger.ms": config.linger_ms,
        # How long a message may wait for the broker (outage ride-through) before it is reported failed.
        "message.timeout.ms": int(config.delivery_timeout * 1000),
        # Room to buffer an outage: at 1k trades/s, 5 min is 300k messages (~100 MB).
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }


def check_broker(producer: Any, bootstrap: str, timeout: float) -> Optional[str]:
    """None if the cluster answers metadata within `timeout`, else an error text."""
    from confluent_kafka import KafkaException

    try:
        md = producer.list_topics(timeout=timeout)
    except KafkaException as exc:
        return f"Kafka broker unreachable at {bootstrap} within {timeout:.0f}s: {exc.args[0]}"
    if not md.brokers:
        return f"Kafka at {bootstrap} answered with no brokers"
    return None


def ensure_topic(bootstrap: str, topic: str, partitions: int = 3, replication_factor: Optional[int] = None,
                 timeout: float = 10.0, client_config: Optional[dict] = None) -> Optional[int]:
    """Create `topic` if the cluster does not have it, so no reader ever finds it missing; an existing topic is
    left as it is. replication_factor None = min(3, brokers in the cluster). Returns the replication factor used
    when this call created the topic, None when it existed (or another client created it meanwhile). Raises
    KafkaException when the cluster cannot be asked or refuses (e.g. a replication factor above its brokers).

    Also the pipeline runner's (infra/run_pipeline.py): the topic exists before any layer reads it.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **(client_config or {})})
    metadata = admin.list_topics(timeout=timeout)  # all topics: asking for one by name could auto-create it
    existing = metadata.topics.get(topic)
    if existing is not None and existing.error is None:
        return None
    factor = replication_factor or min(3, max(1, len(metadata.brokers)))
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=factor)],
                                 operation_timeout=timeout)[topic]
    try:
        future.result(timeout)
    except KafkaException as exc:
        if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return None
        raise
    return factor
