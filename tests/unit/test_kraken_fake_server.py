"""The fake Kraken over loopback: the protocol details the producer relies on (kraken-ws.md §6)."""

from __future__ import annotations

import json
import time

import pytest
import websocket

from lakehouse.fake_kraken.server import FakeKraken


@pytest.fixture
def server():
    with FakeKraken(pairs=["BTC/USDT", "DOGE/USD"], rate=0, history=60, seed=1, heartbeat_interval=0.3) as s:
        yield s


def test_v2_status_acks_error_snapshot_ping(server):
    ws = websocket.create_connection(server.url("v2"), timeout=5)
    status = json.loads(ws.recv())
    assert status["channel"] == "status" and status["data"][0]["connection_id"] > 2**63
    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT", "XBT/USD"],
                                                          "snapshot": True}, "req_id": 3}))
    ack = json.loads(ws.recv())
    assert ack["success"] is True and ack["result"]["symbol"] == "BTC/USDT" and ack["req_id"] == 3
    snap = json.loads(ws.recv(), parse_float=str)
    assert snap["type"] == "snapshot" and len(snap["data"]) == 50
    ids = [t["trade_id"] for t in snap["data"]]
    assert ids == list(range(ids[0], ids[0] + 50)) and ids[-1] == server.last_trade_id("BTC/USDT")
    err = json.loads(ws.recv())
    assert err["success"] is False and err["error"] == "Currency pair not supported XBT/USD"
    ws.send(json.dumps({"method": "ping", "req_id": 9}))
    assert json.loads(ws.recv())["method"] == "pong"
    t0 = time.monotonic()
    assert json.loads(ws.recv()) == {"channel": "heartbeat"} and time.monotonic() - t0 < 1.5
    server.step(4, "BTC/USDT")
    got = []
    while len(got) < 4:
        msg = json.loads(ws.recv())
        if msg.get("channel") == "trade":
            got += msg["data"]
    assert [t["trade_id"] for t in got] == list(range(ids[-1] + 1, ids[-1] + 5))
    ws.close()


def test_v1_dialect_and_batches_share_timestamp(server):
    ws = websocket.create_connection(server.url("v1"), timeout=5)
    assert json.loads(ws.recv())["connectionID"] > 2**63
    ws.send(json.dumps({"event": "subscribe", "pair": ["XDG/USD", "DOGE/USD", "XBT-USDT"],
                        "subscription": {"name": "trade"}, "reqid": 1}))
    replies = [json.loads(ws.recv()) for _ in range(3)]
    assert [r["status"] for r in replies] == ["subscribed", "error", "error"]
    assert replies[2]["errorMessage"] == "Currency pair not in ISO 4217-A3 format XBT-USDT"
    server.step(5, "DOGE/USD")
    frames = []
    while sum(len(f[1]) for f in frames) < 5:
        msg = json.loads(ws.recv())
        if isinstance(msg, list):
            frames.append(msg)
    for f in frames:
        assert f[-2:] == ["trade", "XDG/USD"] and len({t[2] for t in f[1]}) == 1  # one timestamp per batch
        assert all(len(t) == 6 and t[3] in "bs" and t[4] in "lm" for t in f[1])
    ws.close()


def test_faults_drop_close_freeze(server):
    ws = websocket.create_connection(server.url("v2"), timeout=5)
    ws.recv()
    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"],
                                                          "snapshot": False}}))
    ws.recv()
    server.close_connections(1001)
    while True:
        op, frame = ws.recv_data_frame(True)
        if op == 8:
            assert frame.data[2:].decode() == "CloudFlare WebSocket proxy restarting"
            assert int.from_bytes(frame.data[:2], "big") == 1001
            break
    server.rate_limit_next(1)
    ws = websocket.create_connection(server.url("v2"), timeout=5)
    ws.recv()
    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"]}}))
    assert json.loads(ws.recv()) == {"Error": "Exceeded msg rate"}
    server.drop_connections()
    with pytest.raises((websocket.WebSocketException, ConnectionError)):
        ws.recv()


def test_freeze_silences_open_connections_only(server):
    """A frozen connection stays open and gets nothing (no trade, no heartbeat: what the producer's watchdog is
    for); a connection opened after the freeze works normally."""
    frozen = websocket.create_connection(server.url("v2"), timeout=5)
    frozen.recv()
    frozen.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"],
                                                              "snapshot": False}}))
    frozen.recv()
    wait = time.monotonic() + 5
    while json.loads(frozen.recv()).get("channel") != "heartbeat":  # heartbeats every 0.3 s before the freeze
        assert time.monotonic() < wait
    assert server.freeze_connections() == 1
    frozen.settimeout(0.25)
    drained = time.monotonic() + 1  # what was on its way before the freeze may still arrive, briefly
    with pytest.raises(websocket.WebSocketTimeoutException):
        while time.monotonic() < drained:
            frozen.recv()
    server.step(5)  # trades are made, none reaches the frozen connection
    frozen.settimeout(1.5)  # five heartbeat intervals
    with pytest.raises(websocket.WebSocketTimeoutException):
        frozen.recv()
    assert frozen.connected
    fresh = websocket.create_connection(server.url("v2"), timeout=5)
    fresh.recv()
    fresh.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"],
                                                             "snapshot": False}}))
    fresh.recv()
    assert json.loads(fresh.recv())["channel"] == "heartbeat"
    frozen.close()
    fresh.close()


def test_recording_reader_names_file_and_line(tmp_path):
    from lakehouse.fake_kraken.server import RecordingError, read_recording

    path = tmp_path / "rec.jsonl"
    path.write_text('{"t": 1.0, "frame": "{}"}\n\n{"t": 2.0, "frame": "x"\n')
    with pytest.raises(RecordingError, match=rf"^{path}:3: not JSON"):
        read_recording(str(path))
    path.write_text('{"t": 1.0, "frame": "{}"}\n{"t": "soon", "frame": "{}"}\n')
    with pytest.raises(RecordingError, match=rf'^{path}:2: expected {{"t": epoch seconds, "frame": text}}'):
        read_recording(str(path))
    path.write_text('{"t": 1, "frame": "a"}\n\n')
    assert read_recording(str(path)) == [{"t": 1, "frame": "a"}]


def test_cli_bad_recording_or_pairs_is_a_clear_error(tmp_path):
    from tests.helpers import run_script

    path = tmp_path / "rec.jsonl"
    path.write_text('{"t": 1.0, "frame": "{}"}\n[1, 2]\n')
    result = run_script("ingestion/fake_kraken.py", "--port", "0", "--replay", str(path), timeout=30)
    assert result.returncode == 2 and result.stderr.strip().endswith(
        f'error: {path}:2: expected {{"t": epoch seconds, "frame": text}}, got \'[1, 2]\'')
    assert "Traceback" not in result.stderr
    result = run_script("ingestion/fake_kraken.py", "--port", "0", "--replay", str(tmp_path / "missing.jsonl"),
                        timeout=30)
    assert result.returncode == 2 and "cannot read the recording" in result.stderr
    result = run_script("ingestion/fake_kraken.py", "--port", "0", "--pairs", "BTCUSDT", timeout=30)
    assert result.returncode == 2 and "expected comma-separated BASE/QUOTE pairs" in result.stderr


@pytest.mark.parametrize("query,status,error", [
    ("step?n=abc", 400, "n='abc': expected an integer in 0..100000"),
    ("step?n=5&pair=FOO/BAR", 400, "pair='FOO/BAR': not one of BTC/USDT, DOGE/USD"),
    ("close?code=99999", 400, "code='99999': expected an integer in 1000..4999"),
    ("status?system=party", 400, "system='party': expected one of online, maintenance, cancel_only, post_only"),
    ("launch", 404, "unknown action 'launch'"),
])
def test_control_bad_parameters_are_400_naming_them(server, query, status, error):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/control/{query}", timeout=5)
    assert exc.value.code == status and json.loads(exc.value.read()) == {"error": error}
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/control/step?n=2", timeout=5) as ok:
        assert json.loads(ok.read()) == {"generated": 4}


def test_rest_trades_format_legacy_key_depth_and_faults():
    import urllib.request

    with FakeKraken(pairs=["BTC/USD", "DOGE/USD"], rate=0, history=30, seed=2) as s:
        base = f"http://127.0.0.1:{s.port}"

        def get(query: str) -> dict:
            with urllib.request.urlopen(f"{base}/0/public/Trades?{query}", timeout=5) as r:
                return json.loads(r.read(), parse_float=str)

        reply = get("pair=XBTUSD&since=0")
        assert reply["error"] == [] and sorted(reply["result"]) == ["XXBTZUSD", "last"]  # Kraken's legacy key
        trades = reply["result"]["XXBTZUSD"]
        assert [t[6] for t in trades] == [t.trade_id for t in s.history["BTC/USD"]]
        assert trades[-1][3] in "bs" and trades[-1][4] in "ml" and trades[-1][5] == ""
        assert int(reply["result"]["last"]) == s.history["BTC/USD"][-1].ts_ns
        assert get(f"pair=XBTUSD&since={reply['result']['last']}")["result"]["XXBTZUSD"] == []
        assert sorted(get("pair=XDGUSD&since=0&count=5")["result"]) == ["XDGUSD", "last"]
        assert get("pair=NOPE")["error"] == ["EQuery:Unknown asset pair"]
        with urllib.request.urlopen(f"{base}/control/rest?depth=10&fault=ratelimit&n=1", timeout=5) as r:
            assert json.loads(r.read()) == {"faults_queued": 1, "down": False, "depth": 10, "page": 1000}
        assert get("pair=XBTUSD") == {"error": ["EAPI:Rate limit exceeded"]}
        assert len(get("pair=XBTUSD")["result"]["XXBTZUSD"]) == 10


@pytest.mark.parametrize("pace, speed", [("recorded", 1.0), ("fast", 0.0), ("10x", 10.0), ("2.5x", 2.5)])
def test_replay_pace(pace, speed):
    from lakehouse.fake_kraken.server import checked_pace, pace_speed

    assert checked_pace(pace) == pace and pace_speed(pace) == speed


@pytest.mark.parametrize("pace", ["slow", "0x", "-2x", "x", "10"])
def test_replay_pace_refuses_junk(pace):
    import argparse

    from lakehouse.fake_kraken.server import checked_pace

    with pytest.raises(argparse.ArgumentTypeError):
        checked_pace(pace)


def test_simulated_recording_is_real_format_contiguous_and_within_its_minutes():
    """--write-recording: v2 trade frames the producer parses, ids contiguous per pair, timestamps inside the span,
    the same recording for the same seed."""
    from lakehouse.fake_kraken.server import simulated_recording
    from lakehouse.producer.protocol import parse_frame
    from lakehouse.producer.records import PairCodec

    start_us = 1_790_000_000_000_000
    lines = list(simulated_recording(["BTC/USDT", "DOGE/USD"], minutes=3, rate=5, seed=4, start_us=start_us))
    assert lines == list(simulated_recording(["BTC/USDT", "DOGE/USD"], minutes=3, rate=5, seed=4, start_us=start_us))
    assert 600 < sum(len(json.loads(line["frame"])["data"]) for line in lines) < 1200  # about 5 trades/s
    codecs = {p: PairCodec(p, p, "v2") for p in ["BTC/USDT", "DOGE/USD"]}
    ids: dict[str, list[int]] = {}
    for line in lines:
        assert start_us / 1e6 <= line["t"] < start_us / 1e6 + 180
        kind, snapshot, records, bad = parse_frame(line["frame"], "2026-01-01T00:00:00.000000Z", codecs, "v2")[:4]
        assert kind == "trades" and not snapshot and not bad and records
        for codec, trade_id, _value in records:
            ids.setdefault(codec.user_pair, []).append(trade_id)
    for pair_ids in ids.values():
        assert pair_ids == list(range(pair_ids[0], pair_ids[0] + len(pair_ids)))



def test_halt_market_returns_once_every_made_trade_is_sent():
    """Tests read "everything the fake sent" right after halting the market: by then every made trade is on the wire
    and no other is made (a frame still queued made a producer test expect one trade too few)."""
    with FakeKraken(pairs=["BTC/USDT"], rate=0, history=0, seed=2, heartbeat_interval=5) as fake:
        ws = websocket.create_connection(fake.url("v2"), timeout=5)
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"],
                                                              "snapshot": False}}))
        while fake.counters["subscriptions"] < 1:
            time.sleep(0.01)
        mark_sent = fake._mark_sent

        def slow_mark_sent(trades):  # the writer thread is slow to finish a frame: it is written, not yet counted
            time.sleep(0.3)
            mark_sent(trades)

        fake._mark_sent = slow_mark_sent
        fake.step(5)
        made = fake.halt_market()
        sent = sum(map(len, fake.sent_trades("v2").values()))
        fake.step(3)  # after the halt: makes nothing
        assert (made, sent, fake.generated) == (5, 5, 5)
        ws.close()
