"""Benchmark: the live page at a live rate: how soon a trade moves the page's current candle, and what the page
server costs.

The fake Kraken generates trades of three pairs at --rate trades/s (all pairs together) with real-time timestamps;
the producer sends them to a new topic; the page server (infra/page.py) reads the topic's tail; one page is open in
headless chromium (Debian's, driven by Playwright) on XBT/USDT, polling as a user's browser does. Over a measured
window:

  latency   from a trade's ts_ingest (the producer received it) to the moment the page drew a newest bar holding it
            (the page records each draw: time, minute, trade_count; the trade's rank in its minute comes from the
            topic, folded with the page's own rules); p50/p99 over the XBT/USDT trades received in the window
  server    the page server's CPU (user + system, all threads, /proc) as a share of one core, and its resident
            memory (median of 1-s samples, and the peak)
also the server's own histogram (lakehouse_live_bar_latency_seconds: ts_ingest -> live bar in the server).

With --pipeline, the whole pipeline runs too (infra/run_pipeline.py: producer, the Spark layers in one application,
the page), as `make run` runs it: the page then also reads Gold's new versions, and shares the 2 cores with Spark.

Targets (issue 24): p99 <= 2 s, server <= 5% of one core at 50 trades/s with one page open.
Results: a table, and bench/results/page_latency-<timestamp>.json.

Usage:
    python bench/page_latency.py                         # the page alone with the producer, 50 trades/s, 120-s window
    python bench/page_latency.py --pipeline              # with the whole pipeline (Spark), as make run
    python bench/page_latency.py --rate 50 --window 60 --quick
"""

from __future__ import annotations

import argparse
import calendar
import json
import logging
import re
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import bench_common as bc
from bench_stats import percentile, table, verdict
from lakehouse.broker.consume import read_to_end
from lakehouse.common.polling import wait_until
from lakehouse.gold.bars import minute_us
from lakehouse.page.live import LiveBook
from lakehouse.page.trades import parse_trade

NAME = "page_latency"
TARGET_P99_S = 2.0
TARGET_CPU_SHARE = 0.05
PAIR = "XBT/USDT"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

log = logging.getLogger(NAME)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(log_path: Path) -> int:
    """The fake Kraken's port from its start-up line (it was started with --port 0)."""
    found: dict[str, int] = {}

    def listening() -> bool:
        match = re.search(r"127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace")) if log_path.exists() else None
        if match:
            found["port"] = int(match.group(1))
        return bool(match)

    wait_until(listening, 60, 0.2, "the fake Kraken's port")
    return found["port"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def page_pid(port: int) -> int:
    from lakehouse.common.daemon import pid_listening_on

    return wait_until(lambda: pid_listening_on(port), 60, 0.5, "the page server listening")


def trade_ranks(bootstrap: str, topic: str) -> list[tuple[int, int, int]]:
    """(ts_ingest us, minute us, the bar's trade_count once this trade is in) of every XBT/USDT trade on the topic,
    folded with the page's own rules (each trade once)."""
    messages = read_to_end(bootstrap, topic, timeout_s=120)
    book, ranks = LiveBook(keep_minutes=600), []
    for partition in {m.partition() for m in messages}:
        book.reading_from_start(partition)
    for message in messages:
        trade, _ = parse_trade(message.value(), message.partition(), message.offset(), None)
        if trade is None or book.add(trade) != "added" or trade.symbol != PAIR:
            continue
        minute = minute_us(trade.ts_event_us)
        ranks.append((trade.ts_ingest_us, minute, book.pairs[PAIR].bars[minute].trade_count))
    return ranks


def latencies(ranks: list[tuple[int, int, int]], draws: list[dict], since_us: int, until_us: int) -> tuple[list, int]:
    """Seconds from each trade's ts_ingest to the first draw of its minute's bar with at least its rank (pure);
    (latencies, trades never drawn as the newest bar, e.g. a late trade of an earlier minute)."""
    by_minute: dict[int, list[tuple[int, int]]] = {}
    for draw in draws:
        start = calendar.timegm(time.strptime(draw["window_start"], "%Y-%m-%dT%H:%M:%SZ")) * 1_000_000
        by_minute.setdefault(start, []).append((int(draw["t"] * 1000), draw["trade_count"]))
    found, missing = [], 0
    for ingest, minute, rank in ranks:
        if not since_us <= ingest <= until_us:
            continue
        drawn = next((t for t, count in sorted(by_minute.get(minute, [])) if count >= rank and t >= ingest), None)
        if drawn is None:
            missing += 1
        else:
            found.append((drawn - ingest) / 1e6)
    return found, missing


def histogram_quantile(samples: dict[float, float], q: float) -> float | None:
    """A quantile from a Prometheus histogram's cumulative buckets {le: count}: the bucket's upper bound."""
    total = samples.get(float("inf"))
    if not total:
        return None
    for le in sorted(samples):
        if samples[le] >= q * total:
            return le
    return None


def server_histogram(base: str) -> dict[float, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    return {float(s.labels["le"]): s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "lakehouse_live_bar_latency_seconds_bucket"}


def run(rate: float, warmup: float, window: float, pipeline: bool, workdir: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    topic = bc.create_topic(f"page-{int(rate)}")
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    kraken = bc.start_script("ingestion/fake_kraken.py", ["--port", "0", "--pairs", ",".join(bc.NATIVE_PAIRS),
                                                          "--rate", str(rate), "--history", "0", "--start", "now"],
                             workdir / "kraken.log")
    procs = [kraken]
    port = free_port()
    try:
        ws = f"ws://127.0.0.1:{wait_for_port(workdir / 'kraken.log')}/v2"
        pairs = [a for p in bc.USER_PAIRS for a in ("--pair", p)]
        if pipeline:
            procs.append(bc.start_script("infra/run_pipeline.py", ["--ws-url", ws, "--topic", topic, "--data-dir",
                                                                   str(data), "--log-dir", str(data / "logs"),
                                                                   "--page-port", str(port), *pairs],
                                         workdir / "runner.log"))
        else:
            procs.append(bc.start_script("ingestion/kraken_trades_ws.py", ["--ws-url", ws, "--topic", topic, *pairs],
                                         workdir / "producer.log"))
            procs.append(bc.start_script("infra/page.py", ["--data-dir", str(data), "--topic", topic, "--port",
                                                           str(port)], workdir / "page.log"))
        pid = page_pid(port)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/")
            page.wait_for_function("p => document.querySelector(`#pairs button[data-symbol='${p}']`)", arg=PAIR,
                                   timeout=120_000)
            page.click(f"#pairs button[data-symbol='{PAIR}']")
            if pipeline:
                gold = data / "gold" / "ohlcv_1m" / "_delta_log"
                wait_until(lambda: gold.is_dir() and any(gold.glob("*1.json")), 600, 1, "Gold's first bars")
            time.sleep(warmup)
            rss: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(1.0):
                    rss.append(rss_mb(pid))

            sampler = threading.Thread(target=sample, daemon=True)
            cpu0, since = bc.proc_cpu_s(pid), time.time()
            sampler.start()
            time.sleep(window)
            cpu1, until = bc.proc_cpu_s(pid), time.time()
            stop.set()
            sampler.join()
            time.sleep(3)  # the draws of the window's last trades
            draws = page.evaluate("() => window.lakehouse.draws")
            histogram = server_histogram(base)
            browser.close()
        ranks = trade_ranks(bc.BOOTSTRAP, topic)
        found, missing = latencies(ranks, draws, int(since * 1e6), int((until - 2) * 1e6))
        return {"rate": rate, "pipeline": pipeline, "window_s": round(until - since, 1),
                "trades_measured": len(found), "trades_not_drawn": missing,
                "latency_p50_s": percentile(found, 50), "latency_p99_s": percentile(found, 99),
                "latency_max_s": max(found) if found else None,
                "server_cpu_share": round((cpu1 - cpu0) / (until - since), 4),
                "server_rss_mb_median": round(statistics.median(rss), 1) if rss else None,
                "server_rss_mb_peak": round(max(rss), 1) if rss else None,
                "server_histogram_p50_le_s": histogram_quantile(histogram, 0.5),
                "server_histogram_p99_le_s": histogram_quantile(histogram, 0.99),
                "load_average": bc.load_average()}
    finally:
        for proc in reversed(procs):
            bc.stop_process(proc, timeout=120)
        bc.delete_topics([topic])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="trades/s, all pairs together (default 50)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before the window (default 20)")
    parser.add_argument("--window", type=float, default=120.0, help="measured seconds (default 120)")
    parser.add_argument("--pipeline", action="store_true", help="run the whole pipeline too (make run)")
    parser.add_argument("--quick", action="store_true", help="a 60-s window, 10-s warm-up")
    args = parser.parse_args()
    if args.quick:
        args.window, args.warmup = 60.0, 10.0
    bc.configure_logging()
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        result = run(args.rate, args.warmup, args.window, args.pipeline, Path(tmp))
    rows = [["live bar latency p50 (s)", result["latency_p50_s"], "", ""],
            ["live bar latency p99 (s)", result["latency_p99_s"], f"<= {TARGET_P99_S}",
             verdict(result["latency_p99_s"], TARGET_P99_S, higher_is_better=False)],
            ["server CPU (share of one core)", result["server_cpu_share"], f"<= {TARGET_CPU_SHARE}",
             verdict(result["server_cpu_share"], TARGET_CPU_SHARE, higher_is_better=False)],
            ["server RSS median / peak (MB)", f"{result['server_rss_mb_median']} / {result['server_rss_mb_peak']}",
             "", ""]]
    print(f"page at {result['rate']:.0f} trades/s{' with the pipeline' if result['pipeline'] else ''}, "
          f"{result['window_s']} s window, {result['trades_measured']} {PAIR} trades measured "
          f"({result['trades_not_drawn']} not drawn as the newest bar); load {result['load_average']}")
    print(table(rows, ["figure", "value", "target", "verdict"]))
    mode = "with pipeline" if result["pipeline"] else "alone"
    summary = [bc.summary_row(NAME, f"live bar p99 s ({mode})", result["latency_p99_s"], "p50 s",
                              result["latency_p50_s"], None, f"<= {TARGET_P99_S}",
                              verdict(result["latency_p99_s"], TARGET_P99_S, higher_is_better=False),
                              "polls: the page asks each second"),
               bc.summary_row(NAME, f"server CPU share ({mode})", result["server_cpu_share"], "RSS MB",
                              result["server_rss_mb_median"], None, f"<= {TARGET_CPU_SHARE}",
                              verdict(result["server_cpu_share"], TARGET_CPU_SHARE, higher_is_better=False),
                              "JSON parsing of each record, one request a second")]
    path = bc.write_results(NAME, {"name": NAME, "result": result, "rows": summary, "machine": bc.machine_info()})
    print(f"results: {path}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
