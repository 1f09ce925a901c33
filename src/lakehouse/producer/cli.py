"""Kraken public WebSocket trades -> Kafka (one JSON message per trade, keyed by pair).

Subscribes to Kraken's `trade` channel (API v2 by default, or v1), checks every subscription ack,
and produces each trade to Kafka with an idempotent producer. Survives disconnects (watchdog,
capped exponential backoff with jitter, resubscribe) and, on v2, fills the gap from the 50-trade
snapshot Kraken sends on every subscribe while skipping trades already produced (by trade_id per pair).

Restarts (v2): at start-up the producer reads back the tail of the topic and resumes each pair after the highest
trade_id already in it (records whose key is the pair as typed here and whose value has "api": "v2"). The first
snapshot's trades up to that id are skipped and the ones after it are produced. The tail is read backwards in growing
chunks (2000, then 20000, ... records per partition) until every pair is found or --resume-scan-limit records per
partition were read; a pair not found starts with an empty memory (as with --no-resume: the snapshot is produced
again, up to 50 trades per pair twice in the topic). v1 has no trade ids, so --api v1 never resumes.

Gaps (v2): a trade_id more than one past the last one produced (a disconnect or a downtime longer than the 50-trade
snapshot) is a gap; it is filled from Kraken's REST trades (--rest-url) by a backfill thread while live trades keep
flowing, with "source": "rest" (lakehouse/producer/backfill.py); what REST cannot give is logged and counted. Trades whose
delivery to Kafka finally failed (an outage longer than --delivery-timeout) are produced again once Kafka accepts
writes, unless the topic already holds them. The producer creates its topic at start if it is missing.

Usage (examples in the entry point's docstring, ingestion/kraken_trades_ws.py):
    python ingestion/kraken_trades_ws.py --help

Kafka message (key = the pair exactly as typed on the command line, UTF-8), fields in this order:
    {"symbol": "XBT/USDT", "price": "83744.3", "size": "0.00044780", "side": "buy", "ord_type": "limit",
     "trade_id": 109116693, "ts_event": "2026-09-25T17:48:26.844359Z", "ts_ingest": "2026-09-25T17:48:26.901234Z",
     "api": "v2", "pair_native": "BTC/USDT", "source": "ws"}
price/size are Kraken's decimal text (never a binary float); trade_id is null on v1 (v1 has no ids);
ts_event/ts_ingest are UTC with exactly 6 fractional digits; source is "ws" or "rest" (backfilled); see
lakehouse/producer/records.py.

Exit codes:
    0  stopped by SIGINT/SIGTERM and every produced message was delivered
    1  runtime failure: messages undelivered at shutdown, Kafka unreachable at start, the topic cannot be created
    2  usage/config error (bad flag, malformed pair, two pairs naming the same Kraken pair)
    3  Kraken rejected a subscription (the log names the pair and Kraken's error message)
"""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any, Optional

from lakehouse.defaults import LOCAL_BOOTSTRAP, TOPIC
from lakehouse.producer.config import BackfillConfig, KafkaConfig, ProducerConfig, ResumeConfig, SessionConfig
from lakehouse.producer.kafka_sink import check_broker, ensure_topic, producer_config
from lakehouse.producer.ledger import TradeLedger
from lakehouse.producer.protocol import DEFAULT_WS_URLS
from lakehouse.producer.ratelimit import RateLimitedLog, RateLimitFilter
from lakehouse.producer.records import PAIR_RE, native_pair
from lakehouse.producer.rest import DEFAULT_REST_URL
from lakehouse.producer.resume import resume_points, trade_ids_in_topic
from lakehouse.producer.session import EXIT_FAILURE, EXIT_OK, TradeProducer, connect_ws

log = logging.getLogger("kraken_trades_ws")

DEFAULT_PAIRS = ["XBT/USDT"]
DEFAULT_API = "v2"
DEFAULT_STATS_INTERVAL = 10.0
DEFAULT_WATCHDOG = 10.0
DEFAULT_ACK_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_BACKOFF_INITIAL = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_DELIVERY_TIMEOUT = 300.0
DEFAULT_FLUSH_TIMEOUT = 30.0
DEFAULT_STARTUP_TIMEOUT = 5.0
DEFAULT_COMPRESSION = "lz4"
DEFAULT_LINGER_MS = 5
DEFAULT_RESUME_SCAN_LIMIT = 200_000
DEFAULT_RESUME_TIMEOUT = 15.0
DEFAULT_REST_INTERVAL = 1.0
DEFAULT_REST_TIMEOUT = 10.0
DEFAULT_BACKFILL_GIVE_UP = 3600.0
DEFAULT_PARTITIONS = 3

# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Kraken public WebSocket trades -> Kafka (JSON per trade, key = pair).",
        epilog="Restarts (v2): at start the producer reads the topic's tail back and resumes each pair after the "
        "highest trade_id already there, so a restart (even kill -9) neither doubles nor loses a trade when the "
        "downtime fits in Kraken's 50-trade snapshot. v1 has no trade ids and never resumes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--pair", action="append", help="pair as BASE/QUOTE; repeatable; XBT/BTC and XDG/DOGE both "
                   f"accepted and translated to the API's dialect (default {DEFAULT_PAIRS[0]})")
    p.add_argument("--bootstrap", default=LOCAL_BOOTSTRAP, help="Kafka bootstrap servers")
    p.add_argument("--topic", default=TOPIC, help="Kafka topic")
    p.add_argument("--api", choices=["v2", "v1"], default=DEFAULT_API, help="Kraken WebSocket API version")
    p.add_argument("--ws-url", help="WebSocket URL (default: Kraken's public URL for --api: "
                   f"{DEFAULT_WS_URLS['v2']} or {DEFAULT_WS_URLS['v1']})")
    p.add_argument("--stats-interval", type=float, default=DEFAULT_STATS_INTERVAL, help="seconds between stats lines")
    p.add_argument("--watchdog", type=float, default=DEFAULT_WATCHDOG,
                   help="reconnect after this many seconds without any frame (Kraken heartbeats ~1/s)")
    p.add_argument("--ack-timeout", type=float, default=DEFAULT_ACK_TIMEOUT,
                   help="reconnect if subscription acks do not all arrive within this many seconds")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT, help="WebSocket connect timeout")
    p.add_argument("--backoff-initial", type=float, default=DEFAULT_BACKOFF_INITIAL, help="first reconnect delay (s)")
    p.add_argument("--backoff-max", type=float, default=DEFAULT_BACKOFF_MAX, help="reconnect delay cap (s)")
    p.add_argument("--delivery-timeout", type=float, default=DEFAULT_DELIVERY_TIMEOUT,
                   help="seconds a message may wait for Kafka (broker outage ride-through) before it fails")
    p.add_argument("--flush-timeout", type=float, default=DEFAULT_FLUSH_TIMEOUT, help="flush timeout at shutdown (s)")
    p.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT,
                   help="fail if the Kafka cluster does not answer within this many seconds at start")
    p.add_argument("--compression", default=DEFAULT_COMPRESSION, choices=["none", "gzip", "snappy", "lz4", "zstd"],
                   help="Kafka compression codec")
    p.add_argument("--linger-ms", type=int, default=DEFAULT_LINGER_MS, help="Kafka producer linger.ms")
    p.add_argument("--no-resume", action="store_true",
                   help="v2: do not read the topic back at start; a restart then produces the 50-trade snapshot "
                   "again (up to 50 trades per pair twice in the topic)")
    p.add_argument("--resume-scan-limit", type=int, default=DEFAULT_RESUME_SCAN_LIMIT,
                   help="v2: at start, read at most this many records per partition (newest first) to find each "
                   "pair's last produced trade_id")
    p.add_argument("--resume-timeout", type=float, default=DEFAULT_RESUME_TIMEOUT,
                   help="v2: stop reading the topic back after this many seconds and resume with what was found")
    p.add_argument("--rest-url", help="Kraken REST base URL for gap backfills (default: https://api.kraken.com with "
                   "Kraken's WebSocket, else http(s)://<host:port of --ws-url>, e.g. the fake Kraken)")
    p.add_argument("--no-backfill", action="store_true",
                   help="v2: do not fill trade_id gaps from Kraken's REST trades (they are only logged and counted)")
    p.add_argument("--rest-interval", type=float, default=DEFAULT_REST_INTERVAL,
                   help="at least this many seconds between two REST calls (Kraken's public limit is ~1/s)")
    p.add_argument("--rest-timeout", type=float, default=DEFAULT_REST_TIMEOUT, help="timeout of one REST call (s)")
    p.add_argument("--backfill-give-up", type=float, default=DEFAULT_BACKFILL_GIVE_UP,
                   help="a gap REST has not filled this many seconds after it was found is logged and counted as "
                   "unfillable")
    p.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS,
                   help="partitions of the topic when the producer creates it (an existing topic is left as it is)")
    p.add_argument("--replication-factor", type=int,
                   help="replication factor of the topic when the producer creates it (default: min(3, brokers))")
    p.add_argument("--record", metavar="FILE", help='append every received text frame as JSONL {"t": epoch_s, "frame": text}')
    p.add_argument("--log-level", default="INFO", help="logging level")
    args = p.parse_args(argv)
    args.pair = args.pair or list(DEFAULT_PAIRS)
    seen: dict[str, str] = {}
    for pair in args.pair:
        if not PAIR_RE.match(pair):
            p.error(f"--pair {pair!r}: expected BASE/QUOTE, e.g. XBT/USDT")
        native = native_pair(pair, args.api)
        if native in seen:
            p.error(f"--pair {seen[native]!r} and {pair!r} are the same Kraken pair ({native})")
        seen[native] = pair
    for name in ("stats_interval", "watchdog", "ack_timeout", "connect_timeout", "backoff_initial", "backoff_max",
                 "delivery_timeout", "flush_timeout", "startup_timeout", "resume_scan_limit", "resume_timeout",
                 "rest_interval", "rest_timeout", "backfill_give_up", "partitions"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    if args.replication_factor is not None and args.replication_factor <= 0:
        p.error("--replication-factor must be > 0")
    args.rest_url = args.rest_url or default_rest_url(args.ws_url)
    if not args.rest_url.startswith(("http://", "https://")):
        p.error(f"--rest-url {args.rest_url!r}: expected http://... or https://...")
    return args


def default_rest_url(ws_url: Optional[str]) -> str:
    """Kraken's REST API with Kraken's WebSocket; with another --ws-url, the same host and port over HTTP(S)."""
    if not ws_url or ws_url.startswith(("wss://ws.kraken.com", "wss://beta-ws.kraken.com")):
        return DEFAULT_REST_URL
    scheme, _, rest = ws_url.partition("://")
    return ("https" if scheme == "wss" else "http") + "://" + rest.split("/", 1)[0]


def build_config(args: argparse.Namespace) -> ProducerConfig:
    """The checked flags (parse_args) -> one typed configuration, each component's part with the fields it reads."""
    pairs = tuple(args.pair)
    return ProducerConfig(
        kafka=KafkaConfig(
            bootstrap=args.bootstrap, topic=args.topic, compression=args.compression, linger_ms=args.linger_ms,
            delivery_timeout=args.delivery_timeout, startup_timeout=args.startup_timeout,
            partitions=args.partitions, replication_factor=args.replication_factor),
        resume=ResumeConfig(
            api=args.api, enabled=not args.no_resume, bootstrap=args.bootstrap, topic=args.topic, pairs=pairs,
            scan_limit=args.resume_scan_limit, timeout=args.resume_timeout),
        session=SessionConfig(
            api=args.api, url=args.ws_url or DEFAULT_WS_URLS[args.api], pairs=pairs, topic=args.topic,
            connect_timeout=args.connect_timeout, watchdog=args.watchdog, ack_timeout=args.ack_timeout,
            backoff_initial=args.backoff_initial, backoff_max=args.backoff_max, stats_interval=args.stats_interval,
            record=args.record),
        backfill=BackfillConfig(
            enabled=args.api == "v2" and not args.no_backfill, rest_url=args.rest_url,
            rest_interval=args.rest_interval, rest_timeout=args.rest_timeout, give_up_after=args.backfill_give_up,
            backoff_initial=args.backoff_initial, backoff_max=args.backoff_max, bootstrap=args.bootstrap,
            topic=args.topic, delivery_timeout=args.delivery_timeout, read_back_timeout=args.resume_timeout),
        flush_timeout=args.flush_timeout,
        log_level=args.log_level,
    )


def parse_config(argv: Optional[list[str]] = None) -> ProducerConfig:
    """The command line -> the producer's configuration (usage errors exit 2, as parse_args)."""
    return build_config(parse_args(argv))


def main(argv: Optional[list[str]] = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from confluent_kafka import Producer

    kafka, session = config.kafka, config.session
    kafka_errors = RateLimitedLog(burst=3, interval=30.0, logger=log)
    conf = producer_config(kafka)
    conf["error_cb"] = lambda err: kafka_errors.warning("kafka", "Kafka: %s", err)
    rdkafka_log = logging.getLogger("kraken_trades_ws.librdkafka")
    rdkafka_log.addFilter(RateLimitFilter())
    conf["logger"] = rdkafka_log  # librdkafka's own log lines, rate-limited, instead of raw stderr
    app = TradeProducer(session, config.backfill, None, connect_ws)
    conf["on_delivery"] = app.delivery.on_delivery  # one delivery report per message, served by poll()/flush()
    producer = Producer(conf)
    problem = check_broker(producer, kafka.bootstrap, kafka.startup_timeout)
    if problem:
        log.error("%s", problem)
        return EXIT_FAILURE
    try:
        created = ensure_topic(kafka.bootstrap, kafka.topic, kafka.partitions, kafka.replication_factor,
                               kafka.startup_timeout)
    except Exception as exc:  # KafkaException: e.g. a replication factor above the number of brokers
        log.error("cannot create topic %s: %s", kafka.topic, exc)
        return EXIT_FAILURE
    if created:
        log.info("created topic %s (%d partitions, replication factor %d)", kafka.topic, kafka.partitions, created)
    if session.api == "v2":
        log.info("backfill: %s", f"gaps are filled from {config.backfill.rest_url}" if config.backfill.enabled
                 else "off (--no-backfill): gaps are only logged and counted")
    resume_at_start(app.ledger, config.resume)
    app.delivery.producer = producer

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        app.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("producing %s from %s (%s) to %s @ %s", ", ".join(session.pairs), session.url, session.api, kafka.topic,
             kafka.bootstrap)
    code = EXIT_FAILURE
    try:
        code = app.run()
    except Exception:
        log.exception("unexpected error")
        code = EXIT_FAILURE
    finally:
        app.close_ws()
        undelivered = app.finish(config.flush_timeout)
    if undelivered and code == EXIT_OK:
        code = EXIT_FAILURE
    return code


def resume_at_start(ledger: TradeLedger, config: ResumeConfig) -> None:
    """Seed the ledger with what the topic already holds (each pair's last trade_id) and the gaps the last run left
    open; a topic that cannot be read back only costs the memory, never the start."""
    times: dict[str, Any] = {}
    open_gaps: dict[str, list] = {}
    try:
        ledger.resume_from(resume_points(config, times, open_gaps), times)
    except Exception as exc:  # reading back is an optimisation: never a reason not to produce
        log.warning("resume: could not read %s back (%s): starting without memory", config.topic, exc)
    if open_gaps and ledger.backfill:
        try:
            ledger.restore_gaps(open_gaps, lambda pair, since_ms, first, last: trade_ids_in_topic(
                config.bootstrap, config.topic, pair, since_ms, first, last, config.timeout))
        except Exception as exc:  # KafkaException, TimeoutError: better a hole the audit shows than a double
            log.warning("resume: could not check the gaps the last run left open (%s): not filled again: %s",
                        exc, open_gaps)


if __name__ == "__main__":
    raise SystemExit(main())
