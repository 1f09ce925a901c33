"""Recordings of Kraken's WebSocket feed: the JSONL files the producer's --record writes ({"t": epoch seconds,
"frame": text} per line), read back and replayed at their own pace (or faster), or simulated and written without
serving anything.

    frames = read_recording("ingestion/recordings/kraken_v2_demo.jsonl")
    replay(frames, "10x", threading.Event(), lambda api, frame: print(api, frame[:60]))
    write_recording("/tmp/market.jsonl", ["BTC/USDT"], minutes=5, rate=4, seed=11)
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from typing import Callable, Iterable, Optional

from lakehouse.fake_kraken.kraken_ws import v2_trade_frame
from lakehouse.fake_kraken.market import Market


class RecordingError(ValueError):
    """A recording file that cannot be replayed; the message names the file and line."""


def read_recording(path: str) -> list[dict]:
    """A --record/--replay JSONL file -> [{"t": epoch seconds, "frame": text}, ...]; blank lines skipped.

    Raises RecordingError("FILE:LINE: ...") for the first line that is not such an object (or FILE: for I/O)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read the recording: {exc.strerror or exc}") from exc
    frames = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise RecordingError(f"{path}:{n}: not JSON ({exc}): {line[:80]!r}") from exc
        if (not isinstance(rec, dict) or not isinstance(rec.get("frame"), str)
                or type(rec.get("t")) not in (int, float) or rec["t"] != rec["t"]):
            raise RecordingError(f'{path}:{n}: expected {{"t": epoch seconds, "frame": text}}, got {line[:80]!r}')
        frames.append(rec)
    return frames


def is_protocol_frame(text: str) -> bool:
    """Status, acks, heartbeats, pongs: answered live by the server, not replayed."""
    try:
        msg = json.loads(text)
    except ValueError:
        return False  # junk is data too: replay it as recorded
    if isinstance(msg, dict):
        return (msg.get("channel") in ("status", "heartbeat")
                or msg.get("method") in ("subscribe", "unsubscribe", "pong")
                or msg.get("event") in ("systemStatus", "subscriptionStatus", "heartbeat", "pong"))
    return False


def pace_speed(pace: str) -> float:
    """How many times faster than recorded a replay goes: "recorded" 1, "10x" 10; 0 for "fast" (no waiting)."""
    if pace == "fast":
        return 0.0
    if pace == "recorded":
        return 1.0
    return float(pace[:-1])


def checked_pace(text: str) -> str:
    """--pace: "recorded", "fast" or "<speed>x" with a speed > 0."""
    try:
        if text in ("recorded", "fast") or (text.endswith("x") and float(text[:-1]) > 0):
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r}: use recorded, fast or a speed-up such as 10x")


def replay(frames: list[dict], pace: str, stopped: threading.Event,
           send: Callable[[str, str], None]) -> Optional[int]:
    """Send a recording's data frames (not status/acks/heartbeats/pongs: a live server answers those itself) at
    `pace`: send(api, frame) with api "v1" for a v1 frame (a JSON array), else "v2". Returns how many were sent,
    None if `stopped` was set before the last one."""
    data = [r for r in frames if not is_protocol_frame(r["frame"])]
    t_first = data[0]["t"] if data else 0.0
    t0 = time.monotonic()
    for r in data:
        if stopped.is_set():
            return None
        speed = pace_speed(pace)
        if speed:
            delay = (r["t"] - t_first) / speed - (time.monotonic() - t0)
            if delay > 0:
                time.sleep(delay)
        send("v1" if r["frame"].lstrip().startswith("[") else "v2", r["frame"])
    return len(data)


def simulated_recording(pairs: list[str], minutes: float, rate: float, seed: int, start_us: int,
                        max_batch: int = 5) -> Iterable[dict]:
    """A recording of `minutes` of market without serving or waiting: v2 trade frames (batches sharing a timestamp,
    of one pair each) at about `rate` trades per second over all pairs, stamped from `start_us` on; lines as
    the producer's --record writes them ({"t": epoch seconds, "frame": text})."""
    market = Market(pairs, random.Random(seed), max_batch=max_batch)
    rng = random.Random(seed + 1)
    now_us, end_us = start_us, start_us + int(minutes * 60_000_000)
    while True:
        k = rng.randint(1, market.max_batch)
        now_us += max(1, int(rng.expovariate(rate / k) * 1_000_000))
        if now_us >= end_us:
            return
        pair = rng.choice(market.pairs)
        batch = [market.new_trade(pair, now_us) for _ in range(k)]
        yield {"t": now_us / 1e6, "frame": v2_trade_frame([t.v2_json() for t in batch], "update")}


def write_recording(path: str, pairs: list[str], minutes: float, rate: float, seed: int) -> int:
    """simulated_recording() of the last `minutes` before now, to `path`; the number of frames written."""
    start_us = (time.time_ns() // 1000 // 60_000_000 - int(minutes) - 1) * 60_000_000  # on a minute
    frames = 0
    with open(path, "w", encoding="utf-8") as out:
        for line in simulated_recording(pairs, minutes, rate, seed, start_us):
            out.write(json.dumps(line) + "\n")
            frames += 1
    return frames
