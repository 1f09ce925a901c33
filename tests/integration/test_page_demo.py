"""The live page during `make demo`, in a real headless browser (Debian's chromium, driven by Playwright), with the
whole pipeline: fake Kraken replay -> producer -> broker -> Bronze -> Silver -> Gold, and the page server the runner
starts.

- While the pipeline starts, `make status` (infra/status.py) says so and exits 0; once every layer has run a batch it
  is healthy (exit 0).
- The page shows candles for every demo pair (clicked through as a user does). The newest bar the page shows, sampled
  while trades flow, equals a Decimal reference computed from the topic (the same trades: the first trade_count
  unique trades of that minute in the pair's Kafka order); some samples are live (Gold trails, with 10-s triggers).
- /metrics parses as Prometheus text and the producer's trades counter rises; /api/status lists every component.
- Once Gold holds every trade, every bar the page holds equals Gold's row, none is live.
- A layer killed (kill -9 of the Spark application, the runner paused so that it does not stop the rest): exit 1,
  the page shows the layers failed, with the reason; once the runner has stopped everything: exit 2.
LAKEHOUSE_PAGE_SCREENSHOT=docs/page.png saves the page's screenshot there, taken while the newest bar is live and
Gold's closed bars show beside it (the README's picture).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import PYTHON, REPO_ROOT, script_env, wait_until
from tests.integration.producer_helpers import delta_rows
from tests.integration.test_demo_pipeline import free_port, recorded_trades
from tests.integration.test_page_server import get
from tests.unit.test_page_live import reference_bars

from lakehouse.broker.consume import read_to_end
from lakehouse.page.trades import parse_trade

pytestmark = pytest.mark.integration

PAIRS = ["ETH/USD", "XBT/USDT", "XDG/USD"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def status_cli(data: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "infra/status.py", "--data-dir", str(data), *flags], cwd=REPO_ROOT,
                          env=script_env(), capture_output=True, text=True, timeout=60)


def topic_records(bootstrap: str, topic: str) -> list[tuple[bytes, int, int]]:
    """Every record of the topic: (value, partition, offset), each partition in order."""
    return [(m.value(), m.partition(), m.offset()) for m in read_to_end(bootstrap, topic)]


def reference_prefix(records: list, symbol: str, window_start: str, count: int) -> dict:
    """The bar of the first `count` unique trades of the pair's minute, in Kafka order, by the independent reference."""
    from datetime import datetime

    minute_us = int(datetime.fromisoformat(window_start.replace("Z", "+00:00")).timestamp()) * 1_000_000
    mine = []
    for raw, partition, offset in records:
        trade, _ = parse_trade(raw, partition, offset, None)
        if trade is not None and trade.symbol == symbol and trade.ts_event_us // 60_000_000 * 60_000_000 == minute_us:
            mine.append((raw, partition, offset))
    mine.sort(key=lambda r: (r[1], r[2]))
    for end in range(1, len(mine) + 1):
        bar = reference_bars(mine[:end]).get((symbol, minute_us))
        if bar and bar["trade_count"] == count:
            return bar
    raise AssertionError(f"no prefix of {symbol} {window_start} has {count} trades")


def gold_rows(gold: Path) -> dict[tuple[str, str], dict]:
    rows = delta_rows(gold, ["symbol", "window_start", "open", "high", "low", "close", "volume", "vwap",
                             "trade_count"])
    def d18(x):
        return None if x is None else format(x, "f")
    return {(r["symbol"], r["window_start"].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")):
            {**{k: d18(r[k]) for k in ("open", "high", "low", "close", "volume", "vwap")},
             "trade_count": r["trade_count"]} for r in rows}


def metric_samples(base: str) -> dict:
    code, _, body = get(f"{base}/metrics")
    assert code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


NEWEST_JS = """() => ({symbol: window.lakehouse.symbol, bars: window.lakehouse.bars.length,
  canvases: document.querySelectorAll('#chart canvas').length,
  shown: Object.fromEntries(['open','high','low','close','volume','vwap','trades'].map(
      k => [k, document.getElementById('bar-' + k).textContent])),
  window_start: document.getElementById('newest-window').textContent,
  state: document.getElementById('newest-state').textContent})"""


def take_screenshot_if_mixed(page, seen: dict, root: Path) -> None:
    """The page's picture once the newest bar is live and Gold's closed bars show beside it."""
    mixed = page.evaluate("() => { const b = window.lakehouse.bars; return b.length >= 8 && b[b.length - 1].live "
                          "&& b.some(x => !x.live); }")
    if mixed:
        time.sleep(2.5)  # the health panel filled in
        seen["screenshot"] = os.environ.get("LAKEHOUSE_PAGE_SCREENSHOT") or str(root / "page.png")
        page.screenshot(path=seen["screenshot"])


@pytest.fixture(scope="module")
def demo(bootstrap, tmp_path_factory):
    """make demo (10-s triggers) with the page; everything the test checks is gathered here, in the demo's order."""
    from confluent_kafka.admin import AdminClient
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("page-demo")
    data, topic, page_port = root / "data", f"page-demo-{uuid.uuid4().hex[:10]}", free_port()
    out = root / "runner.out"
    runner = subprocess.Popen(
        [PYTHON, "infra/run_pipeline.py", "--demo", "--topic", topic, "--data-dir", str(data), "--log-dir",
         str(data / "logs"), "--demo-port", str(free_port()), "--page-port", str(page_port), "--trigger", "10 seconds",
         "--drain-timeout", "20"],
        cwd=REPO_ROOT, env=script_env(), stdout=open(out, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{page_port}"
    seen: dict = {"samples": [], "pairs_shown": {}}
    try:
        wait_until(lambda: (data / "status" / "pipeline.json").exists(), 120, 0.2, "the runner's status")
        seen["starting"] = status_cli(data)
        wait_until(lambda: f"page: {base}/" in out.read_text(), 60, 0.2, "the page's URL line")
        wait_until(lambda: json.loads(get(f"{base}/api/pairs")[2] or b"[]") == PAIRS, 120, 1, "the demo's pairs")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/")
            for pair in PAIRS:  # a user clicks each pair's button
                page.click(f"#pairs button[data-symbol='{pair}']")
                page.wait_for_function("s => window.lakehouse.symbol === s && window.lakehouse.bars.length >= 2",
                                       arg=pair, timeout=60_000)
                seen["pairs_shown"][pair] = page.evaluate(NEWEST_JS)
            metrics_before = metric_samples(base)
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and len(seen["samples"]) < 24:  # the newest bar, while trades flow
                pair = PAIRS[len(seen["samples"]) % 3]
                page.click(f"#pairs button[data-symbol='{pair}']")
                page.wait_for_function("s => window.lakehouse.symbol === s && window.lakehouse.bars.length > 0",
                                       arg=pair, timeout=30_000)
                seen["samples"].append(page.evaluate(NEWEST_JS))
                if not seen.get("screenshot"):
                    take_screenshot_if_mixed(page, seen, root)
                time.sleep(4)
            seen["metrics"] = (metrics_before, metric_samples(base))
            wait_until(lambda: status_cli(data).returncode == 0 and "verdict: healthy" in status_cli(data).stdout,
                       240, 3, "make status: healthy")
            seen["healthy"] = status_cli(data, "--json")
            seen["api_status"] = json.loads(get(f"{base}/api/status")[2])
            expected = recorded_trades()
            gold = data / "gold" / "ohlcv_1m"
            def gold_complete() -> bool:
                if not seen.get("screenshot"):  # meanwhile: the picture, once Gold's bars and a live one both show
                    take_screenshot_if_mixed(page, seen, root)
                return sum(r["trade_count"] for r in delta_rows(gold, ["trade_count"])) >= len(expected)

            wait_until(gold_complete, 600, 3, f"all {len(expected)} trades in Gold")
            seen["records"] = topic_records(bootstrap, topic)
            seen["gold"] = gold_rows(gold)

            def page_bars(pair):
                page.click(f"#pairs button[data-symbol='{pair}']")
                page.wait_for_function("s => window.lakehouse.symbol === s && window.lakehouse.bars.length > 0",
                                       arg=pair, timeout=30_000)
                time.sleep(2.5)  # a poll or two after Gold's last version
                return page.evaluate("() => window.lakehouse.bars")

            wait_until(lambda: all(not any(b["live"] for b in page_bars(p)) for p in PAIRS), 120, 1,
                       "the page's bars all from Gold")
            seen["final"] = {pair: page_bars(pair) for pair in PAIRS}
            page.click("#pairs button[data-symbol='XBT/USDT']")
            time.sleep(2.5)
            page.screenshot(path=str(root / "page-gold.png"))
            # a layer killed: the runner paused (it would stop the rest), the Spark application killed
            spark_pid = json.loads((data / "status" / "bronze.json").read_text())["pid"]
            os.kill(runner.pid, signal.SIGSTOP)
            try:
                os.kill(spark_pid, signal.SIGKILL)
                wait_until(lambda: status_cli(data).returncode == 1, 30, 0.5, "make status: exit 1")
                seen["killed"] = status_cli(data)
                seen["killed_spark_pid"] = spark_pid
                page.wait_for_function("() => document.querySelector(\"#components tr[data-component='bronze']\")"
                                       " && document.querySelector(\"#components tr[data-component='bronze']\")"
                                       ".className === 'bad'", timeout=30_000)
                seen["killed_row"] = page.inner_text("#components tr[data-component='bronze']")
                seen["verdict_shown"] = page.inner_text("#verdict")
            finally:
                os.kill(runner.pid, signal.SIGCONT)
            browser.close()
        seen["runner_code"] = runner.wait(180)
        seen["after"] = status_cli(data)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        AdminClient({"bootstrap.servers": bootstrap}).delete_topics([topic])
    seen["output"] = out.read_text()
    return seen


def test_make_status_says_starting_then_healthy(demo) -> None:
    starting = demo["starting"]
    assert starting.returncode == 0, starting.stdout
    assert "verdict: starting (exit 0)" in starting.stdout
    assert re.search(r"^pipeline: one application, (starting|running)", starting.stdout, re.M), starting.stdout
    report = json.loads(demo["healthy"].stdout)
    assert (demo["healthy"].returncode, report["verdict"]) == (0, "healthy")
    assert [(c["name"], c["state"]) for c in report["components"]] == [
        ("producer", "running"), ("bronze", "running"), ("silver", "running"), ("gold", "running"),
        ("page", "running")]
    api = demo["api_status"]
    assert [c["name"] for c in api["components"]] == ["producer", "bronze", "silver", "gold", "page"]
    assert api["page"]["topic_reader"] == "reading"


def test_the_page_shows_candles_for_every_demo_pair(demo) -> None:
    for pair in PAIRS:
        shown = demo["pairs_shown"][pair]
        assert shown["symbol"] == pair and shown["bars"] >= 2 and shown["canvases"] > 0, shown
        assert re.fullmatch(r"\d+\.\d{18}", shown["shown"]["open"]), shown


def test_the_newest_bar_shown_equals_the_decimal_reference_from_the_topic(demo) -> None:
    records = demo["records"]
    assert len(demo["samples"]) >= 12
    for sample in demo["samples"]:
        shown = sample["shown"]
        ref = reference_prefix(records, sample["symbol"], sample["window_start"], int(shown["trades"]))
        assert {k: shown[k] for k in ("open", "high", "low", "close", "volume", "vwap")} == \
            {k: ref[k] for k in ("open", "high", "low", "close", "volume", "vwap")}, sample
    assert any(s["state"] == "live" for s in demo["samples"]), [s["state"] for s in demo["samples"]]


def test_once_gold_holds_every_trade_every_bar_shown_equals_golds_row(demo) -> None:
    gold = demo["gold"]
    for pair in PAIRS:
        bars = demo["final"][pair]
        assert len(bars) >= 20 and not any(b["live"] for b in bars)
        for bar in bars:
            assert {k: bar[k] for k in ("open", "high", "low", "close", "volume", "vwap", "trade_count")} == \
                gold[(pair, bar["window_start"])], bar
    assert sum(b["trade_count"] for p in PAIRS for b in demo["final"][p]) == \
        sum(r["trade_count"] for r in gold.values())


def test_metrics_parse_and_the_producers_counter_rises(demo) -> None:
    before, after = demo["metrics"]
    assert after[("lakehouse_producer_trades_total", ())] > before[("lakehouse_producer_trades_total", ())] > 0
    assert after[("lakehouse_page_live_trades_total", ())] > before[("lakehouse_page_live_trades_total", ())]
    assert after[("lakehouse_live_bar_latency_seconds_count", ())] > 0
    assert {labels for name, labels in after if name == "lakehouse_layer_up"} >= {
        (("layer", "bronze"),), (("layer", "silver"),)}


def test_a_killed_layer_then_nothing_running(demo) -> None:
    killed = demo["killed"]
    assert killed.returncode == 1, killed.stdout
    assert f"process {demo['killed_spark_pid']} is gone without stopping" in killed.stdout
    assert "verdict: unhealthy (exit 1)" in killed.stdout
    assert "failed" in demo["killed_row"] and "gone without stopping" in demo["killed_row"]
    assert demo["verdict_shown"].startswith("unhealthy")
    assert demo["runner_code"] == 1  # the runner saw the Spark application end and stopped the rest
    after = demo["after"]
    assert after.returncode == 2 and "verdict: nothing running (exit 2)" in after.stdout, after.stdout
    assert "Traceback" not in demo["output"]
