"""The Kraken trades producer: Kraken's WebSocket (and REST, for gaps) -> Kafka, one JSON record per trade.

    cli.py         the flags, the typed configuration built from them, and the start-up that wires the parts below
                   (`python ingestion/kraken_trades_ws.py`, or `python -m lakehouse.producer.cli`)
    config.py      that configuration: one frozen dataclass per component, with the fields it reads

    records.py     the value contract, and the checks every wire field passes (decimals, times, ids, sides)
    protocol.py    Kraken's WebSocket protocol: decode a frame, dispatch it by kind, subscribe/ping requests
    session.py     the running producer: sessions, reconnects, the receive loop, stats, shutdown
    frames.py      what each received frame does: trades to the ledger, acks, status, the --record file
    ledger.py      which trades were produced per pair: dedup and gaps by trade_id (v2), the resubscribe guard (v1)
    delivery.py    the live records' way into Kafka and their delivery reports (failed ones kept for the backfill)
    ratelimit.py   log lines that repeat in an outage, a few per window
    resume.py      restart: read the topic's tail back for each pair's last produced trade_id; read it back since a time
    gaps.py        trade-id gaps still to fill, and records whose delivery failed, shared by the loop and the backfill
    rest.py        Kraken's REST trades (/0/public/Trades): one call, its reply parsed
    backfill.py    the backfill thread: gaps filled from REST, undelivered records produced again
    kafka_sink.py  the Kafka producer's configuration, the broker check at start, the topic's creation (ensure_topic)
"""
