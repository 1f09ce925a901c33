"""The two ceilings of the producer-ingest benchmark, each run as its own process (as the producer is):

  ws-recv        a bare websocket-client: connect, send the producer's subscribe request, receive frames with the
                 producer's settings (skip_utf8_validation, TCP_NODELAY, recv_data_frame) and do nothing else until
                 `--frames` trade frames have arrived; prints {"t_last": epoch s, "frames": n}. --validate-utf8 lets
                 the library validate UTF-8 (with wsaccel when installed) instead, to measure that option.
  kafka-produce  confluent-kafka with the producer's own config (idempotent, acks=all, lz4, linger) producing the
                 producer's already-built records; prints {"t0", "t1", "n", "delivered"} (t1 = every record acked).
  kafka-latency  the same producer config sending one prebuilt record every 1/rate s for `--duration` s; prints the
                 produce() -> delivery report latencies in ms (reports served by poll() at least every 0.5 ms).

Usage (bench/producer_ingest.py starts these; by hand):
    python bench/ceiling_workers.py ws-recv --url ws://127.0.0.1:8765/v2 --frames 1000
    python bench/ceiling_workers.py kafka-produce --frames-file /tmp/frames.jsonl --topic bench-x
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Optional

import bench_common as bc
from lakehouse.producer import cli
from lakehouse.producer import kafka_sink, protocol, records

TRADE_PREFIX = b'{"channel":"trade","type":"update"'


def producer_settings(bootstrap: str) -> dict:
    """librdkafka's settings of the producer started with its default flags, on `bootstrap`."""
    return kafka_sink.producer_config(cli.parse_config(["--bootstrap", bootstrap]).kafka)


def ws_recv(url: str, frames: int, validate_utf8: bool = False) -> dict:
    import websocket

    ws = websocket.create_connection(url, timeout=30, skip_utf8_validation=not validate_utf8, enable_multithread=True,
                                     sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
    natives = [records.native_pair(p, "v2") for p in bc.USER_PAIRS]
    ws.send(protocol.subscribe_request("v2", natives, 1))
    seen = 0
    recv = ws.recv_data_frame
    while seen < frames:
        _opcode, frame = recv(True)
        if frame.data.startswith(TRADE_PREFIX):
            seen += 1
    t_last = time.time()
    ws.close()
    return {"t_last": t_last, "frames": seen}


def kafka_produce(frames_file: str, topic: str, bootstrap: str) -> dict:
    from confluent_kafka import Producer

    with open(frames_file, encoding="utf-8") as f:
        frames = [json.loads(line) for line in f]
    records = bc.producer_values(frames)  # built before the clock starts
    delivered = [0]

    def on_delivery(err, _msg) -> None:
        if err is None:
            delivered[0] += 1

    producer = Producer({**producer_settings(bootstrap), "on_delivery": on_delivery})
    producer.list_topics(topic, timeout=10)  # metadata before the clock starts, as the producer's broker check
    produce, poll = producer.produce, producer.poll
    t0 = time.time()
    for i, (key, value) in enumerate(records):
        if i % 1000 == 0:  # serve delivery reports now and then: a ceiling, not the producer's per-frame poll(0)
            poll(0)
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.01)
    remaining = producer.flush(60)
    t1 = time.time()
    return {"t0": t0, "t1": t1, "n": len(records), "delivered": delivered[0], "undelivered": remaining}


def kafka_latency(topic: str, bootstrap: str, rate: float, duration: float) -> dict:
    from confluent_kafka import Producer

    records = bc.producer_values(bc.v2_trade_frames(1000))
    producer = Producer(producer_settings(bootstrap))
    producer.list_topics(topic, timeout=10)
    latencies: list[float] = []
    clock = time.perf_counter

    def report(t0: float):
        return lambda err, _msg: err is None and latencies.append((clock() - t0) * 1000)

    start = clock()
    i = 0
    while clock() - start < duration:
        due = start + i / rate
        while clock() < due:
            producer.poll(0.0005)
        key, value = records[i % len(records)]
        producer.produce(topic, value, key, on_delivery=report(clock()))
        producer.poll(0)
        i += 1
    producer.flush(30)
    return {"sent": i, "latencies_ms": latencies}


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("ws-recv", help="bare WebSocket receive")
    w.add_argument("--url", required=True, help="fake Kraken v2 URL")
    w.add_argument("--frames", type=int, required=True, help="trade frames to receive")
    w.add_argument("--validate-utf8", action="store_true", help="library-side UTF-8 validation (wsaccel if installed)")
    k = sub.add_parser("kafka-produce", help="confluent-kafka producing prebuilt records")
    k.add_argument("--frames-file", required=True, help="JSONL of v2 frame texts")
    k.add_argument("--topic", required=True, help="topic")
    k.add_argument("--bootstrap", default=bc.BOOTSTRAP, help="Kafka bootstrap servers")
    lat = sub.add_parser("kafka-latency", help="confluent-kafka produce -> ack latency at a steady rate")
    lat.add_argument("--topic", required=True, help="topic")
    lat.add_argument("--bootstrap", default=bc.BOOTSTRAP, help="Kafka bootstrap servers")
    lat.add_argument("--rate", type=float, default=1000.0, help="records per second")
    lat.add_argument("--duration", type=float, default=15.0, help="seconds")
    args = p.parse_args(argv)
    if args.cmd == "ws-recv":
        result = ws_recv(args.url, args.frames, args.validate_utf8)
    elif args.cmd == "kafka-produce":
        result = kafka_produce(args.frames_file, args.topic, args.bootstrap)
    else:
        result = kafka_latency(args.topic, args.bootstrap, args.rate, args.duration)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
