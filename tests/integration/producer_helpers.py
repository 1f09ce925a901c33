"""Helpers for the Kraken producer integration tests: run the producer as a user does, read the topic back exactly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from lakehouse.broker.consume import read_to_end
from lakehouse.fake_kraken.server import FakeKraken
from tests.helpers import start_script, wait_until

PRODUCER = "ingestion/kraken_trades_ws.py"
STARTED: list[subprocess.Popen] = []  # every producer started by start_producer (see kill_leftover_producers)
V2_PAIRS = {"XBT/USDT": "BTC/USDT", "ETH/USD": "ETH/USD", "DOGE/USD": "DOGE/USD"}  # user spelling -> fake's pair
V1_PAIRS = {"BTC/USDT": "BTC/USDT", "ETH/USD": "ETH/USD", "XDG/USD": "DOGE/USD"}
ISO_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
# fast reconnects for tests: the watchdog stays above the fake's 0.5 s heartbeat interval
FAST_FLAGS = ["--watchdog", "2.5", "--backoff-initial", "0.1", "--backoff-max", "0.5", "--stats-interval", "1",
              "--ack-timeout", "5", "--linger-ms", "2", "--flush-timeout", "20"]


def start_producer(tmp_path: Path, url: str, bootstrap: str, topic: str, pairs: list[str], api: str,
                   *extra: str) -> tuple[subprocess.Popen, Path]:
    log_path = tmp_path / f"producer-{uuid.uuid4().hex[:6]}.log"
    args = ["--ws-url", url, "--bootstrap", bootstrap, "--topic", topic, "--api", api, *FAST_FLAGS, *extra]
    for p in pairs:
        args += ["--pair", p]
    proc = start_script(PRODUCER, *args, log_path=log_path)
    STARTED.append(proc)
    return proc, log_path


def kill_leftover_producers() -> None:
    """After a test: kill -9 the process group of every producer it started that still runs (a failed assertion
    before stop_producer would otherwise leave it running for the rest of the session)."""
    import os

    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def stop_producer(proc: subprocess.Popen, timeout: float = 30) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def stats(log_path: Path, final: bool = False) -> dict[str, int]:
    """The last `stats`/`final stats` line of the producer's log as a dict (empty before the first one)."""
    marker = "final stats " if final else "stats "
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if marker in ln]
    if not lines:
        return {}
    return {k: int(v) for k, v in (kv.split("=") for kv in lines[-1].split(marker, 1)[1].split())}


def high_watermarks(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{uuid.uuid4().hex}"})
    try:
        md = c.list_topics(topic, timeout=10)
        total = 0
        for p in md.topics[topic].partitions:
            total += c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        c.close()


# How long a test waits for the producer to recover after its broker came back: a KRaft broker restarting on a loaded
# 2-core machine took over a minute (60 and 90 s waits timed out in a full run); passing runs take seconds.
RECOVERY_S = 180


def wait_topic_count(bootstrap: str, topic: str, n: int, timeout: float) -> None:
    wait_until(lambda: high_watermarks(bootstrap, topic) >= n, timeout, interval=0.3,
               what=f"{n} messages in {topic}")


def consume_all(bootstrap: str, topic: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Every message up to the current end of every partition, as dicts (key, value, partition, offset)."""
    return [{"key": m.key().decode("utf-8"), "value": json.loads(m.value().decode("utf-8")), "partition": m.partition(),
             "offset": m.offset()} for m in read_to_end(bootstrap, topic, timeout)]


def by_key(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Values per key, in offset order; asserts each key lives in a single partition."""
    out: dict[str, list[dict[str, Any]]] = {}
    parts: dict[str, set[int]] = {}
    for m in messages:
        out.setdefault(m["key"], []).append(m["value"])
        parts.setdefault(m["key"], set()).add(m["partition"])
    for key, ps in parts.items():
        assert len(ps) == 1, f"key {key} spread over partitions {ps}"
    return out


VALUE_FIELDS = ["symbol", "price", "size", "side", "ord_type", "trade_id", "ts_event", "ts_ingest", "api",
                "pair_native", "source"]


def strip_ingest(values: list[dict[str, Any]], api: str) -> list[dict[str, Any]]:
    """Check the fields the fake cannot know (ts_ingest, symbol, api, source "ws"), return the rest for an exact
    comparison."""
    rows = []
    for v in values:
        assert list(v) == VALUE_FIELDS, list(v)
        assert ISO_US.match(v["ts_ingest"]) and ISO_US.match(v["ts_event"]), v
        assert v["api"] == api and v["source"] == "ws", v
        rows.append({k: v[k] for k in ("pair_native", "price", "size", "side", "ord_type", "trade_id", "ts_event")})
    return rows


def expected(server: FakeKraken, api: str, pairs: dict[str, str]) -> dict[str, list[dict]]:
    sent = server.sent_trades(api)
    return {user: sent[native] for user, native in pairs.items()}


def assert_topic_matches(bootstrap: str, topic: str, server: FakeKraken, api: str, pairs: dict[str, str]) -> dict:
    want = expected(server, api, pairs)
    got = by_key(consume_all(bootstrap, topic))
    assert sorted(got) == sorted(k for k, v in want.items() if v)
    for user, rows in want.items():
        values = got.get(user, [])
        assert all(v["symbol"] == user for v in values)
        assert strip_ingest(values, api) == rows, f"{user}: topic differs from what the fake sent"
    return got


def total(server: FakeKraken, api: str) -> int:
    return sum(len(v) for v in server.sent_trades(api).values())


def topic_trades(bootstrap: str, topic: str) -> dict[str, list[tuple[int, str]]]:
    """{pair (the Kafka key): [(trade_id, source), ...] in trade_id order} of every v2 record in the topic: the
    topic-level completeness view (Silver-level checks can compare against it)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for m in consume_all(bootstrap, topic):
        v = m["value"]
        if v.get("api") == "v2":
            out.setdefault(m["key"], []).append((v["trade_id"], v["source"]))
    return {pair: sorted(rows) for pair, rows in out.items()}


def assert_each_id_once(got: dict[str, list[tuple[int, str]]], want: dict[str, list[int]]) -> dict[str, set[int]]:
    """Every wanted trade_id of each pair exactly once (and nothing else); returns {pair: ids with source "rest"}."""
    assert sorted(got) == sorted(p for p, ids in want.items() if ids)
    rest = {}
    for pair, ids in want.items():
        got_ids = [tid for tid, _ in got.get(pair, [])]
        doubled = sorted(t for t, n in Counter(got_ids).items() if n > 1)
        assert not doubled, f"{pair}: ids twice in the topic: {doubled[:20]}"
        missing = sorted(set(ids) - set(got_ids))
        assert not missing, f"{pair}: {len(missing)} ids missing, e.g. {missing[:20]}"
        assert got_ids == sorted(ids), f"{pair}: ids the market never made: {sorted(set(got_ids) - set(ids))[:20]}"
        rest[pair] = {tid for tid, source in got[pair] if source == "rest"}
    return rest


def assert_values_match_market(bootstrap: str, topic: str, server: FakeKraken, pairs: dict[str, str]) -> None:
    """Each record equals the market's trade: exactly for "ws" records; for "rest" ones the same ts_event, side,
    type and id, and price/size equal in value (REST quotes fixed decimals: "83744.30000" for 83744.3)."""
    from decimal import Decimal

    market = {user: {t["trade_id"]: t for t in server.market_trades("v2")[native]} for user, native in pairs.items()}
    for m in consume_all(bootstrap, topic):
        v, want = m["value"], market[m["key"]][m["value"]["trade_id"]]
        assert list(v) == VALUE_FIELDS and v["symbol"] == m["key"] and v["api"] == "v2", v
        got = {k: v[k] for k in want}
        if v["source"] == "rest":
            for name in ("price", "size"):
                assert Decimal(got[name]) == Decimal(want[name]), (v, want)
                got[name] = want[name]
        else:
            assert v["source"] == "ws", v
        assert got == want, (v, want)


def lake_trades(bootstrap: str, topic: str, workdir: Path) -> tuple[dict, dict]:
    """Land the topic in Bronze and Silver with the unchanged jobs (all_layers.py --available-now --layers 2, a fresh
    lake under `workdir`) and return (what Bronze holds, what Silver holds), each shaped as topic_trades() returns it:
    {pair: [(trade_id, source), ...] in trade_id order}."""
    import pyarrow.parquet as pq

    from lakehouse.lake.reader import read_table
    from tests.helpers import run_script

    lake = workdir / "lake"
    result = run_script("spark/jobs/all_layers.py", "--bootstrap", bootstrap, "--topic", topic, "--data-dir", str(lake),
                        "--layers", "2", "--available-now", "--maintenance-every", "off", timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pq.ParquetDataset(str(lake / "bronze/crypto_trades")).read(columns=["key", "value_raw"]).to_pylist()
    bronze: dict[str, list[tuple[int, str]]] = {}
    for row in rows:  # a fresh sink: no orphans to skip
        value = json.loads(row["value_raw"])
        bronze.setdefault(row["key"], []).append((value["trade_id"], value["source"]))
    silver: dict[str, list[tuple[int, str]]] = {}
    for row in read_table(str(lake / "silver/crypto_trades"), columns=["symbol", "trade_id", "source"]).to_pylist():
        silver.setdefault(row["symbol"], []).append((row["trade_id"], row["source"]))
    return ({pair: sorted(ids) for pair, ids in bronze.items()}, {pair: sorted(ids) for pair, ids in silver.items()})


def committed_rows(path: Path) -> int:
    """Rows in the Parquet files a sink committed in its _spark_metadata (0 before its first batch)."""
    import pyarrow.parquet as pq

    from lakehouse.bronze.audit import read_sink_log

    if not (path / "_spark_metadata").is_dir():
        return 0
    return sum(pq.ParquetFile(f).metadata.num_rows for f in read_sink_log(path).files)


def delta_rows(path: Path, columns: list[str]) -> list[dict]:
    """The rows of a Delta table (read as the README shows, without Spark); [] before the table exists."""
    from lakehouse.lake.reader import TableUnreadable, read_table

    try:
        return read_table(str(path), columns=columns).to_pylist()
    except TableUnreadable:
        return []
