"""The fake Kraken's command line: serve a simulated market or replay a recording on a port, or write a recording.

Usage (examples in the entry point's docstring, ingestion/fake_kraken.py):
    python ingestion/fake_kraken.py --help

What the server speaks and the faults it serves on demand: lakehouse/fake_kraken/server.py.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from typing import Optional

from lakehouse.fake_kraken.recording import RecordingError, checked_pace, write_recording
from lakehouse.fake_kraken.server import DEFAULT_PAIRS, DEFAULT_PORT, FakeKraken


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fake Kraken public WebSocket (v2 at /v2, v1 at /).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="listen address")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="listen port (0 = any)")
    p.add_argument("--pairs", type=pair_list, default=list(DEFAULT_PAIRS), help="comma-separated pairs in v2 names")
    p.add_argument("--rate", type=float, default=10.0, help="trades per second, all pairs together (0 = none)")
    p.add_argument("--count", type=int, default=0, help="stop generating after this many trades (0 = never)")
    p.add_argument("--seed", type=int, default=0, help="random seed (prices, sizes, batches, ids)")
    p.add_argument("--max-batch", type=int, default=5, help="max trades per frame (a batch shares a timestamp)")
    p.add_argument("--history", type=int, default=50, help="trades per pair that happened before start (snapshot)")
    p.add_argument("--decimals", type=int, help="price and size decimals for every pair (e.g. 17)")
    p.add_argument("--start", choices=["subscribe", "now"], default="subscribe",
                   help="start the market at the first subscription or at once")
    p.add_argument("--v1-snapshot", action="store_true", help="v1: send the last 50 trades on subscribe")
    p.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds of idleness before a heartbeat")
    p.add_argument("--replay", metavar="FILE", help='replay a JSONL recording ({"t": s, "frame": text} per line)')
    p.add_argument("--pace", type=checked_pace, default="recorded",
                   help='replay pace: "recorded", "fast" (no waiting), or a speed-up of the recorded pace, e.g. "10x"')
    p.add_argument("--write-recording", metavar="FILE",
                   help="write a recording of --minutes of simulated market (--pairs, --rate, --seed) to FILE, "
                        "without serving anything, then exit")
    p.add_argument("--minutes", type=float, default=25.0, help="--write-recording: minutes of market to simulate")
    p.add_argument("--rest-depth", type=int, default=0,
                   help="REST /0/public/Trades serves only the newest N trades per pair (0 = all the fake keeps)")
    p.add_argument("--log-level", default="INFO", help="logging level")
    return p.parse_args(argv)


def pair_list(text: str) -> list[str]:
    """--pairs "BTC/USDT,ETH/USD" -> ["BTC/USDT", "ETH/USD"]; argparse reports a ValueError as a usage error."""
    pairs = [p.strip() for p in text.split(",")]
    bad = [p for p in pairs if not re.fullmatch(r"[A-Z0-9.]{1,16}/[A-Z0-9.]{1,16}", p)]
    if bad or not pairs:
        raise argparse.ArgumentTypeError(f"expected comma-separated BASE/QUOTE pairs in v2 names, got {bad or text!r}")
    return pairs


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.write_recording:
        frames = write_recording(args.write_recording, args.pairs, args.minutes, args.rate or 10.0, args.seed)
        print(f"wrote {frames} frames ({args.minutes:g} minutes of {', '.join(args.pairs)}) to {args.write_recording}")
        return 0
    try:
        server = FakeKraken(host=args.host, port=args.port, pairs=args.pairs, rate=args.rate,
                            count=args.count or None, seed=args.seed, max_batch=args.max_batch,
                            history=args.history, start=args.start, decimals=args.decimals,
                            v1_snapshot=args.v1_snapshot, heartbeat_interval=args.heartbeat_interval,
                            replay=args.replay, pace=args.pace, rest_depth=args.rest_depth)
    except RecordingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"listening on ws://{args.host}:{server.port}/v2 (v2) and ws://{args.host}:{server.port}/ (v1)", flush=True)
    while not stop.is_set():  # not stop.wait(): a signal landing inside wait() deadlocks the handler's set()
        time.sleep(0.2)
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
