"""Benchmark 1, producer ingest: trades/s the producer gets acknowledged by the broker, against two ceilings
measured in the same run, as a median of several repetitions.

A fake Kraken (ingestion/fake_kraken.py, with a bench-only fast path: every v2 trade frame is pre-encoded once, and
the whole stream is queued to the socket the moment the subscription is acknowledged) pushes N trades over 3 pairs
(1..5 trades per frame, as the fake batches them) as fast as the socket takes them. Per repetition, interleaved:

  producer   ingestion/kraken_trades_ws.py as a subprocess, exactly as a user runs it; rate = N / (time the sum of
             the topic's end offsets reaches N - time the stream was queued). acks=all on one broker: the end
             offset moves when the record is acknowledged. CPU seconds (/proc/<pid>/stat, during the ingest only)
             and peak RSS (VmHWM) of the producer process.
  ceiling a  a bare websocket-client process receiving the same frames with the producer's socket settings, doing
             nothing else; rate = N / (its last frame - time the stream was queued).
  ceiling b  confluent-kafka with the producer's own config producing the producer's already-built records;
             rate = N / (all acknowledged - first produce).

Usage:
    python bench/producer_ingest.py            # 500,000 trades, 5 repetitions
    python bench/producer_ingest.py --quick    # 100,000 trades, 3 repetitions
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import bench_common as bc
from bench_stats import median, table, verdict
from lakehouse.common.polling import wait_until
from lakehouse.fake_kraken.server import FakeKraken, encode_frame

NAME = "producer_ingest"
TARGET_RATIO_A = 0.7
TARGET_RATE = 50_000

log = logging.getLogger(NAME)
PUSH_MARK = object()


class PushServer(FakeKraken):
    """The fake Kraken with a bench-only fast path: once every pair is subscribed, the whole pre-encoded trade stream
    goes out on that connection right after the acks and snapshot, so the server costs ~nothing. The stream is written
    by the connection's own writer thread (in order), with a send loop that waits out a slow reader instead of giving
    up after the socket's 1 s timeout as the fake's sendall would."""

    def __init__(self, stream: bytes, **kwargs: Any) -> None:
        super().__init__(pairs=bc.NATIVE_PAIRS, rate=0, history=0, heartbeat_interval=5.0, **kwargs)
        self.stream = stream
        self.pushed_at: Optional[float] = None
        self._queued = False

    def _handle_v2(self, conn: Any, req: Any) -> None:
        super()._handle_v2(conn, req)
        if not self._queued and conn.subs == set(self.pairs):
            self._queued = True
            with conn.cv:  # the writer calls _mark_sent(marker) once everything before it is written
                conn.out.append((b"", [(PUSH_MARK, conn)]))
                conn.cv.notify()

    def _mark_sent(self, trades: list) -> None:
        if trades and isinstance(trades[0], tuple) and trades[0][0] is PUSH_MARK:
            self._push(trades[0][1])
        else:
            super()._mark_sent(trades)

    def _push(self, conn: Any) -> None:
        view, off = memoryview(self.stream), 0
        self.pushed_at = time.time()
        while off < len(view):
            try:
                off += conn.sock.send(view[off:off + (1 << 20)])
            except socket.timeout:
                continue
            except OSError:
                log.warning("push stopped after %d of %d bytes: the client went away", off, len(view))
                return


def run_producer(stream: bytes, n: int, workdir: Path, rep: int) -> dict[str, Any]:
    topic = bc.create_topic("ingest")
    wm = bc.Watermarks(topic)
    server = PushServer(stream).start()
    log_path = workdir / f"producer-{rep}.log"
    args = ["--ws-url", server.url("v2"), "--topic", topic, "--bootstrap", bc.BOOTSTRAP, "--stats-interval", "5"]
    for p in bc.USER_PAIRS:
        args += ["--pair", p]
    proc = bc.start_script(bc.PRODUCER, args, log_path)
    try:
        wait_until(lambda: server.pushed_at or proc.poll() is not None, 60, 0.002, "the producer's subscription")
        if server.pushed_at is None:
            raise RuntimeError(f"producer exited early: {log_path.read_text()[-2000:]}")
        cpu0 = bc.proc_cpu_s(proc.pid)
        wait_until(lambda: wm.total() >= n, 600, 0.005, f"{n} records acknowledged")
        t_end = time.time()
        cpu1, rss = bc.proc_cpu_s(proc.pid), bc.proc_peak_rss_mb(proc.pid)
    finally:
        rc = bc.stop_process(proc, signal.SIGINT)
        server.stop()
        wm.close()
        bc.delete_topics([topic])
    final = [ln for ln in log_path.read_text().splitlines() if "final stats" in ln]
    wall = t_end - server.pushed_at
    return {"rate": n / wall, "wall_s": wall, "cpu_s": cpu1 - cpu0, "cpu_us_per_trade": (cpu1 - cpu0) / n * 1e6,
            "cpu_util": (cpu1 - cpu0) / wall, "peak_rss_mib": rss, "exit_code": rc,
            "final_stats": final[-1].split("final stats ", 1)[1] if final else None}


def run_bare_ws(stream: bytes, n: int, n_frames: int, validate_utf8: bool = False) -> dict[str, Any]:
    server = PushServer(stream).start()
    try:
        out = subprocess.run([bc.PYTHON, str(bc.REPO_ROOT / "bench" / "ceiling_workers.py"), "ws-recv", "--url",
                              server.url("v2"), "--frames", str(n_frames)] + (["--validate-utf8"] if validate_utf8
                                                                              else []), capture_output=True, text=True,
                             timeout=600, cwd=bc.REPO_ROOT, env=bc.script_env())
    finally:
        server.stop()
    if out.returncode != 0:
        raise RuntimeError(f"ws-recv failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    wall = result["t_last"] - server.pushed_at
    return {"rate": n / wall, "wall_s": wall}


def run_kafka_only(frames_file: Path) -> dict[str, Any]:
    topic = bc.create_topic("kafka-ceiling")
    try:
        out = subprocess.run([bc.PYTHON, str(bc.REPO_ROOT / "bench" / "ceiling_workers.py"), "kafka-produce",
                              "--frames-file", str(frames_file), "--topic", topic], capture_output=True, text=True,
                             timeout=600, cwd=bc.REPO_ROOT, env=bc.script_env())
    finally:
        bc.delete_topics([topic])
    if out.returncode != 0:
        raise RuntimeError(f"kafka-produce failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    wall = result["t1"] - result["t0"]
    return {"rate": result["n"] / wall, "wall_s": wall, "delivered": result["delivered"]}


def decode_options(frames: list[str], repeat: int = 3) -> dict[str, Any]:
    """CPU µs per trade of JSON decoders on the same frames, in this process (best of `repeat`). Only a decoder that
    keeps a JSON number's exact text qualifies for the producer (price/size are money)."""
    import json as stdlib_json

    from lakehouse.producer import protocol, records

    codecs = {records.native_pair(p, "v2"): records.PairCodec(p, records.native_pair(p, "v2"), "v2") for p in bc.USER_PAIRS}
    n = sum(f.count('"trade_id"') for f in frames)
    options: dict[str, Any] = {
        "json.loads (floats: inexact, reference only)": stdlib_json.loads,
        "json.loads parse_float=Num (exact)": lambda f: stdlib_json.loads(f, parse_float=records.Num),
        "load_frame (the producer's: msgspec if installed, else the line above)": protocol.load_frame,
        "parse_frame: decode + records (the producer's whole parse)":
            lambda f: protocol.parse_frame(f, "2026-01-01T00:00:00.000000Z", codecs, "v2"),
    }
    try:
        import orjson
        options["orjson.loads (floats: inexact, not usable)"] = orjson.loads
    except ImportError:
        pass
    try:
        import msgspec
        dec = msgspec.json.Decoder(float_hook=records.Num)
        options["msgspec float_hook=Num (exact)"] = dec.decode
    except ImportError:
        options["msgspec float_hook=Num (exact)"] = None  # not installed
    out = {}
    for name, fn in options.items():
        if fn is None:
            out[name] = "not installed"
            continue
        best = min(_timed(fn, frames) for _ in range(repeat))
        out[name] = round(best / n * 1e6, 3)
    return out


def _timed(fn: Any, frames: list[str]) -> float:
    t0 = time.perf_counter()
    for f in frames:
        fn(f)
    return time.perf_counter() - t0


def summarize(reps: list[dict[str, Any]], n: int) -> dict[str, Any]:
    def med(kind: str, key: str) -> Optional[float]:
        return median([r[kind][key] for r in reps])

    producer, bare, kafka = med("producer", "rate"), med("bare_ws", "rate"), med("kafka_only", "rate")
    bare_utf8 = med("bare_ws_utf8", "rate")
    # the ratio of each repetition's own figures, then the median (both measured back to back)
    ratio_a = median([r["producer"]["rate"] / r["bare_ws"]["rate"] for r in reps])
    ratio_b = median([r["producer"]["rate"] / r["kafka_only"]["rate"] for r in reps])
    bound = "the producer process (CPU-bound: %.0f%% of one core)" % (100 * med("producer", "cpu_util"))
    return {
        "trades": n, "producer_rate": producer, "bare_ws_rate": bare, "kafka_only_rate": kafka,
        "bare_ws_validating_utf8_rate": bare_utf8,
        "bare_ws_us_per_trade": 1e6 / bare if bare else None,
        "ratio_to_bare_ws": ratio_a, "ratio_to_kafka_only": ratio_b,
        "producer_cpu_us_per_trade": med("producer", "cpu_us_per_trade"),
        "producer_cpu_util": med("producer", "cpu_util"), "producer_peak_rss_mib": med("producer", "peak_rss_mib"),
        "target_ratio_a": verdict(ratio_a, TARGET_RATIO_A), "target_rate": verdict(producer, TARGET_RATE),
        "bound": bound,
    }


def summary_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        bc.summary_row("1 producer ingest", "trades/s acked", s["producer_rate"], "bare WS recv", s["bare_ws_rate"],
                       s["ratio_to_bare_ws"], f">= {TARGET_RATIO_A} of bare WS", s["target_ratio_a"], s["bound"]),
        bc.summary_row("1 producer ingest", "trades/s acked", s["producer_rate"], "confluent-kafka only",
                       s["kafka_only_rate"], s["ratio_to_kafka_only"], f">= {TARGET_RATE:,}/s", s["target_rate"],
                       s["bound"]),
        bc.summary_row("1 producer ingest", "CPU µs/trade; peak RSS MiB",
                       f"{s['producer_cpu_us_per_trade']:.1f}; {s['producer_peak_rss_mib']:.0f}", "", None, None,
                       "", "", ""),
    ]


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small: 100,000 trades, 3 repetitions")
    p.add_argument("--trades", type=int, help="trades per repetition (default 500,000; quick 100,000)")
    p.add_argument("--reps", type=int, help="repetitions (default 5; quick 3)")
    p.add_argument("--max-batch", type=int, default=5, help="max trades per frame (default %(default)s)")
    args = p.parse_args(argv)
    args.trades = args.trades or (100_000 if args.quick else 500_000)
    args.reps = args.reps or (3 if args.quick else 5)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    load_before = bc.load_average()
    frames = bc.v2_trade_frames(args.trades, args.max_batch)
    stream = b"".join(encode_frame(1, f.encode()) for f in frames)
    log.info("%d trades in %d frames (%.1f MB on the wire); %d repetitions", args.trades, len(frames),
             len(stream) / 1e6, args.reps)
    reps = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        frames_file = workdir / "frames.jsonl"
        frames_file.write_text("".join(json.dumps(f) + "\n" for f in frames))
        for i in range(args.reps):
            rep = {"producer": run_producer(stream, args.trades, workdir, i),
                   "bare_ws": run_bare_ws(stream, args.trades, len(frames)),
                   "kafka_only": run_kafka_only(frames_file),
                   "bare_ws_utf8": run_bare_ws(stream, args.trades, len(frames), validate_utf8=True)}
            log.info("rep %d: producer %.0f/s (cpu %.0f%%), bare WS %.0f/s, kafka only %.0f/s", i,
                     rep["producer"]["rate"], 100 * rep["producer"]["cpu_util"], rep["bare_ws"]["rate"],
                     rep["kafka_only"]["rate"])
            reps.append(rep)
    s = summarize(reps, args.trades)
    s["decode_us_per_trade"] = decode_options(frames[: max(1, len(frames) // 5)])
    rows = summary_rows(s)
    payload = {"name": NAME, "quick": args.quick, "params": vars(args), "frames": len(frames),
               "load_before": load_before, "load_after": bc.load_average(), "machine": bc.machine_info(),
               "summary": s, "reps": reps, "rows": rows}
    path = bc.write_results(NAME, payload)
    print(table([[r["figure"], r["value"], r["ceiling_name"], r["ceiling"], r["ratio"], r["target"], r["status"]]
                 for r in rows], ["figure", "value", "ceiling", "ceiling value", "ratio", "target", "status"]))
    print(f"bare WS with library UTF-8 validation (wsaccel={bc.machine_info()['wsaccel']}): "
          f"{s['bare_ws_validating_utf8_rate']:,.0f} trades/s vs {s['bare_ws_rate']:,.0f} skipping it")
    print("JSON decode options, CPU µs/trade: " + "; ".join(f"{k}: {v}" for k, v in s["decode_us_per_trade"].items()))
    print(f"bound by: {s['bound']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
