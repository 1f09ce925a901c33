"""The page server (infra/page.py) against the real broker and a real Gold Delta table (written here with delta-rs,
no Spark): /api/pairs, /api/bars (exact decimal strings, live bars replaced by Gold's rows once Gold holds their
trades), /api/status, /metrics parsed as Prometheus text with counters rising, bad records skipped and counted, and
the command line's errors (a busy port, a missing data folder, a bad flag). The browser test with the whole pipeline
is test_page_demo.py."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import PYTHON, REPO_ROOT, script_env, wait_until
from tests.unit.test_page_live import T0, reference_bars, value

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return 0, {}, b""


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for key, raw in records:
        producer.produce(topic, key=key.encode(), value=raw)
    assert producer.flush(30) == 0


def trades(symbol: str, first_id: int, specs: list[tuple[int, int, str, str]]) -> list[tuple[str, bytes]]:
    """(minute, second, price, size) -> records of one pair, trade ids from first_id, received now."""
    ingest = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [(symbol, value(symbol=symbol, trade_id=first_id + i, price=price, size=size, ts_ingest=ingest,
                           ts_event=f"2026-09-25T17:{48 + minute:02d}:{second:02d}.000000Z"))
            for i, (minute, second, price, size) in enumerate(specs)]


def write_gold(gold: Path, rows: list[dict], mode: str) -> None:
    """Gold's columns as the Gold job writes them (decimal(38,18), UTC timestamps, bar_date partitions)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    dec = pa.decimal128(38, 18)
    schema = pa.schema([("symbol", pa.string()), ("window_start", pa.timestamp("us", tz="UTC")),
                        ("window_end", pa.timestamp("us", tz="UTC")), ("open", dec), ("high", dec), ("low", dec),
                        ("close", dec), ("volume", dec), ("vwap", dec), ("trade_count", pa.int64()),
                        ("is_open", pa.bool_()), ("revision", pa.int32()), ("updated_at", pa.timestamp("us", tz="UTC")),
                        ("bar_date", pa.date32())])
    table = pa.Table.from_pylist([{
        "symbol": r["symbol"], "window_start": datetime.fromisoformat(r["window_start"].replace("Z", "+00:00")),
        "window_end": datetime.fromisoformat(r["window_start"].replace("Z", "+00:00")) + MINUTE,
        **{k: Decimal(r[k]) for k in ("open", "high", "low", "close", "volume", "vwap")},
        "trade_count": r["trade_count"], "is_open": False, "revision": 0,
        "updated_at": datetime.now(timezone.utc), "bar_date": datetime.fromisoformat(r["window_start"][:10]).date(),
    } for r in rows], schema=schema)
    write_deltalake(str(gold), table, partition_by=["bar_date"], mode=mode)


def as_rows(reference: dict, symbol: str, minute: int, **override) -> dict:
    key = (symbol, T0 + minute * 60_000_000)
    start = datetime.fromtimestamp(key[1] / 1e6, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"symbol": symbol, "window_start": start, **reference[key], **override}


def samples(port: int) -> dict:
    status_code, _, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status_code == 200, status_code
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


@pytest.fixture
def page(bootstrap, new_topic, tmp_path):
    data, topic, port = tmp_path / "data", new_topic(3), free_port()
    data.mkdir()
    xbt = trades("XBT/USDT", 100, [(0, 5, "83744.3", "0.00044780"), (0, 5, "83744.1", "0.5"),
                                   (0, 59, "83750", "1.25"), (1, 0, "83751.5", "0.000001"), (1, 30, "83740", "2")])
    eth = trades("ETH/USD", 7, [(0, 1, "3201.17", "0.1"), (2, 2, "3199.5", "0.3")])
    bad = [("XBT/USDT", b"{not json"), ("XBT/USDT", value(price="12,5", trade_id=999)), ("ETH/USD", b"\xff")]
    copies = [xbt[0], xbt[3]]  # a reconnect's snapshot sends them again: each trade once
    produce(bootstrap, topic, xbt + eth + bad + copies)
    records = [(raw, 0, i) for i, (_, raw) in enumerate(xbt + eth + copies)]
    reference = reference_bars(records)
    gold = data / "gold" / "ohlcv_1m"
    # Gold holds XBT/USDT's minute 0 whole, minute 1 with one trade only (it trails), and a pair the topic lacks
    write_gold(gold, [as_rows(reference, "XBT/USDT", 0),
                      as_rows(reference, "XBT/USDT", 1, close="83751.5", low="83751.5", volume="0.000001",
                              vwap="83751.5", trade_count=1),
                      {"symbol": "XDG/USD", "window_start": "2026-09-25T17:40:00Z", "open": "0.1", "high": "0.1",
                       "low": "0.1", "close": "0.1", "volume": "10", "vwap": "0.1", "trade_count": 1}], mode="overwrite")
    proc = subprocess.Popen([PYTHON, "infra/page.py", "--data-dir", str(data), "--bootstrap", bootstrap,
                             "--topic", topic, "--port", str(port), "--lookback", "60"], cwd=REPO_ROOT,
                            env=script_env(), stdout=open(tmp_path / "page.log", "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: get(f"{base}/api/pairs")[2] == b'["ETH/USD","XBT/USDT","XDG/USD"]', 60, 0.5,
                   "the page server reading the topic and Gold")
        wait_until(lambda: samples(port).get(("lakehouse_page_records_total", ())) == 12, 30, 0.5, "12 records")
        yield {"base": base, "port": port, "reference": reference, "gold": gold, "bootstrap": bootstrap,
               "topic": topic, "proc": proc, "data": data, "log": tmp_path / "page.log"}
    finally:
        proc.terminate()
        code = proc.wait(20)
    assert code == 0  # SIGTERM is a stop on request
    assert "Traceback" not in (tmp_path / "page.log").read_text()


def bars(page: dict, symbol: str, minutes: int = 60) -> list[dict]:
    code, _, body = get(f"{page['base']}/api/bars?symbol={symbol.replace('/', '%2F')}&minutes={minutes}")
    assert code == 200, body
    return json.loads(body)


def test_bars_are_golds_rows_where_gold_caught_up_and_live_where_it_trails(page) -> None:
    ref = page["reference"]
    got = bars(page, "XBT/USDT")
    assert got == [
        {**as_rows(ref, "XBT/USDT", 0), "window_end": "2026-09-25T17:49:00Z", "live": False},
        {**as_rows(ref, "XBT/USDT", 1), "window_end": "2026-09-25T17:50:00Z", "live": True},
    ]
    assert got[0]["open"] == "83744.300000000000000000" and got[0]["close"] == "83750.000000000000000000"
    assert got[0]["trade_count"] == 3 and got[1]["trade_count"] == 2  # the copies counted once
    # VWAP exact: (83744.3*0.0004478 + 83744.1*0.5 + 83750*1.25) / 1.7504478, half-even to 18 places
    assert got[0]["vwap"] == ref[("XBT/USDT", T0)]["vwap"]
    assert [b["live"] for b in bars(page, "ETH/USD")] == [True, True]
    assert bars(page, "XDG/USD") == [{"symbol": "XDG/USD", "window_start": "2026-09-25T17:40:00Z",
                                      "window_end": "2026-09-25T17:41:00Z", "open": "0.100000000000000000",
                                      "high": "0.100000000000000000", "low": "0.100000000000000000",
                                      "close": "0.100000000000000000", "volume": "10.000000000000000000",
                                      "vwap": "0.100000000000000000", "trade_count": 1, "live": False}]
    assert [b["window_start"] for b in bars(page, "XBT/USDT", minutes=1)] == ["2026-09-25T17:49:00Z"]
    # Gold catches up with minute 1: its row replaces the live bar, and they are equal
    write_gold(page["gold"], [as_rows(ref, "XBT/USDT", 0), as_rows(ref, "XBT/USDT", 1)], mode="overwrite")
    wait_until(lambda: [b["live"] for b in bars(page, "XBT/USDT")] == [False, False], 30, 0.5, "Gold's minute 1")
    assert bars(page, "XBT/USDT")[1] == {**as_rows(ref, "XBT/USDT", 1), "window_end": "2026-09-25T17:50:00Z",
                                         "live": False}
    assert samples(page["port"])[("lakehouse_page_gold_mismatch_total", ())] == 0


def test_api_errors_and_etags(page) -> None:
    base = page["base"]
    assert get(f"{base}/api/bars")[0] == 400
    code, _, body = get(f"{base}/api/bars?symbol=XBT%2FUSDT&minutes=0")
    assert (code, json.loads(body)) == (400, {"error": "minutes='0': expected an integer in 1..1440"})
    assert get(f"{base}/api/bars?symbol=XBT%2FUSDT&minutes=abc")[0] == 400
    code, _, body = get(f"{base}/api/bars?symbol=BTC%2FEUR")
    assert (code, json.loads(body)) == (404, {"error": "unknown symbol 'BTC/EUR'",
                                              "pairs": ["ETH/USD", "XBT/USDT", "XDG/USD"]})
    code, headers, body = get(f"{base}/api/bars?symbol=XBT%2FUSDT")
    assert code == 200 and headers["etag"]
    assert get(f"{base}/api/bars?symbol=XBT%2FUSDT", {"If-None-Match": headers["etag"]})[:1] == (304,)
    code, _, html = get(f"{base}/")
    assert code == 200 and b"lightweight-charts.standalone.production.js" in html
    assert get(f"{base}/static/vendor/lightweight-charts.standalone.production.js")[0] == 200


def test_status_and_metrics_with_bad_records_counted_and_counters_rising(page) -> None:
    code, _, body = get(f"{page['base']}/api/status")
    report = json.loads(body)
    assert code == 200 and report["page"]["records"] == 12 and report["page"]["live_trades"] == 7
    assert report["page"]["bad_records"] == {"not JSON (or not a JSON object)": 1, "price ... is not a decimal": 1,
                                             "not valid UTF-8": 1}
    wait_until(lambda: any(c["name"] == "page" for c in json.loads(get(f"{page['base']}/api/status")[2])
                           ["components"]), 15, 0.5, "the page's own status")
    before = samples(page["port"])
    assert before[("lakehouse_page_live_trades_total", ())] == 7
    assert before[("lakehouse_page_bad_records_total", (("reason", "not valid UTF-8"),))] == 1
    assert before[("lakehouse_live_bar_latency_seconds_count", ())] == 7
    produce(page["bootstrap"], page["topic"], trades("ETH/USD", 9, [(2, 30, "3198", "1"), (3, 0, "3197", "1")]))
    wait_until(lambda: samples(page["port"])[("lakehouse_page_live_trades_total", ())] == 9, 30, 0.5, "2 more")
    after = samples(page["port"])
    assert after[("lakehouse_page_records_total", ())] == 14
    assert after[("lakehouse_live_bar_latency_seconds_count", ())] == 9
    assert after[("lakehouse_live_bar_latency_seconds_bucket", (("le", "+Inf"),))] == 9
    assert bars(page, "ETH/USD")[-1]["window_start"] == "2026-09-25T17:51:00Z"


def test_binds_loopback_by_default(page) -> None:
    port_hex = f"{page['port']:04X}"
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[1].endswith(f":{port_hex}") and line.split()[3] == "0A"]
    assert listening == [f"0100007F:{port_hex}"]  # 127.0.0.1 only


def test_command_line_errors(page, tmp_path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "infra/page.py", *args], cwd=REPO_ROOT, env=script_env(), capture_output=True,
                              text=True, timeout=60)

    busy = run("--data-dir", str(page["data"]), "--port", str(page["port"]))
    assert busy.returncode == 2
    assert busy.stderr.startswith(f"error: port {page['port']} on 127.0.0.1 is already in use by another program "
                                  f"(pid {page['proc'].pid}: ")
    missing = run("--data-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and f"error: the data folder {tmp_path / 'nowhere'} does not exist" in missing.stderr
    bad = run("--port", "99999")
    assert bad.returncode == 2 and "argument --port: 99999 is not a port (1..65535)" in bad.stderr
    assert run("--colour").returncode == 2
