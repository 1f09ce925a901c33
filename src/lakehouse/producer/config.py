"""The producer's configuration as typed, frozen objects: one per component, each with exactly the fields it reads.

cli.py builds them once from the flags (cli.build_config); every component takes its own part:

    KafkaConfig     kafka_sink (librdkafka's settings), the broker check and the topic's creation at start
    ResumeConfig    resume.resume_points: read the topic back at start
    SessionConfig   session.TradeProducer: the WebSocket sessions, the receive loop, stats
    BackfillConfig  backfill.Backfiller: gaps filled from REST, undelivered records produced again
    ProducerConfig  the four above, and what only start-up and shutdown read

Example (what the unit tests do):
    from lakehouse.producer.cli import parse_config
    config = parse_config(["--pair", "XBT/USDT", "--no-backfill"])
    config.session.url, config.backfill.enabled   # ('wss://ws.kraken.com/v2', False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class KafkaConfig:
    """Where the records go and how librdkafka sends them."""

    bootstrap: str
    topic: str
    compression: str  # librdkafka's compression.type
    linger_ms: int
    delivery_timeout: float  # seconds a record may wait for the broker before its delivery fails
    startup_timeout: float  # seconds the cluster has to answer at start
    partitions: int  # of the topic, when the producer creates it
    replication_factor: Optional[int]  # of the topic, when the producer creates it; None: min(3, brokers)


@dataclass(frozen=True)
class ResumeConfig:
    """Reading the topic back at start (API v2): each pair's last produced trade_id."""

    api: str
    enabled: bool  # not --no-resume
    bootstrap: str
    topic: str
    pairs: tuple[str, ...]  # as typed on the command line (the records' keys)
    scan_limit: int  # records per partition read at most, newest first
    timeout: float  # seconds


@dataclass(frozen=True)
class SessionConfig:
    """The WebSocket sessions: where, which pairs, how long to wait for what, how to reconnect."""

    api: str  # "v2" or "v1"
    url: str  # --ws-url, else Kraken's public URL for the API
    pairs: tuple[str, ...]  # as typed on the command line
    topic: str
    connect_timeout: float
    watchdog: float  # reconnect after this many seconds without a frame
    ack_timeout: float  # reconnect when the subscription acks take longer
    backoff_initial: float  # the first reconnect delay; doubles per failed attempt
    backoff_max: float
    stats_interval: float  # seconds between two stats lines
    record: Optional[str]  # append every received text frame to this JSONL file


@dataclass(frozen=True)
class BackfillConfig:
    """The backfill thread: trade-id gaps filled from Kraken's REST trades (v2), undelivered records produced again
    (both APIs)."""

    enabled: bool  # gaps are filled: --api v2 and not --no-backfill
    rest_url: str
    rest_interval: float  # at least this many seconds between two REST calls
    rest_timeout: float  # of one REST call
    give_up_after: float  # seconds after which a gap REST has not filled is counted as unfillable
    backoff_initial: float  # after a failed REST call, as the reconnects (never under 2 rest_interval)
    backoff_max: float
    bootstrap: str  # where undelivered records are read back before they are produced again
    topic: str
    delivery_timeout: float  # how old an undelivered record without a timestamp is taken to be
    read_back_timeout: float  # seconds to read the topic back


@dataclass(frozen=True)
class ProducerConfig:
    """Everything the producer was started with, by component."""

    kafka: KafkaConfig
    resume: ResumeConfig
    session: SessionConfig
    backfill: BackfillConfig
    flush_timeout: float  # seconds to flush at shutdown
    log_level: str
