"""Kafka side of the producer: the producer's configuration, the start-up broker check, the topic's creation."""

from __future__ import annotations

import argparse
from typing import Any, Optional

def producer_config(args: argparse.Namespace) -> dict:
    """librdkafka settings (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)."""
    return {
        "bootstrap.servers": args.bootstrap,
        "client.id": "kraken-trades-ws",
        # Retries never duplicate or reorder within a partition (implies acks=all, max.in.flight<=5).
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
        # How long a message may wait for the broker (outage ride-through) before it is reported failed.
        "message.timeout.ms": int(args.delivery_timeout * 1000),
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
