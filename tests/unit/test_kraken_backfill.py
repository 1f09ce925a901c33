"""Unit tests of the REST backfill: the reply parser, the backfill thread's steps (with REST and Kafka in memory),
the refill of undelivered records, and the fake Kraken's REST trades against its WebSocket trades (same ts_event)."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time

import pytest

from lakehouse.fake_kraken.server import FakeKraken
from lakehouse.producer import backfill, cli, gaps, records, rest, session

CODEC = records.PairCodec("XBT/USDT", "BTC/USDT", "v2")


def element(tid: int, price: str = "83744.30000", ts: str = "1790000000.1234567") -> list:
    return [price, "0.10000000", records.Num(ts), "b", "l", "", tid]


class MemoryKafka:
    def __init__(self) -> None:
        self.values: list[dict] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: object = None) -> None:
        assert key == b"XBT/USDT"
        self.values.append(json.loads(value))


class ScriptedRest:
    """fetch_trades stand-in: answers from a list of (trades, cursor) or RestError, recording each call."""

    def __init__(self, *answers) -> None:
        self.answers, self.calls = list(answers), []

    def __call__(self, base: str, pair: str, since: int, timeout: float):
        self.calls.append((pair, since))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def worker(fetch=None, check=None, *extra: str) -> backfill.Backfiller:
    config = cli.parse_config(["--pair", "XBT/USDT", "--rest-interval", "0.001", "--backoff-initial", "0.001",
                               "--backoff-max", "0.002", *extra])
    return backfill.Backfiller(config.backfill, {"XBT/USDT": CODEC}, MemoryKafka(), session.Stats(), gaps.GapBook(),
                               gaps.UndeliveredBook(), lambda: True, session.RateLimitedLog(),
                               fetch=fetch or ScriptedRest(), check_topic=check or (lambda *a: set()))


def open_gap(w: backfill.Backfiller, first: int, last: int, since: int = 5) -> gaps.Gap:
    gap = gaps.Gap("XBT/USDT", first, last, since, time.monotonic())
    w.gaps.add(gap)
    return gap


def run_until_idle(w: backfill.Backfiller, limit: int = 50) -> None:
    for _ in range(limit):
        if not w.step() and not len(w.gaps):
            return
        time.sleep(0.003)
    raise AssertionError("the backfill did not finish")


def test_reply_parser_cursor_bounds():
    """`last` as a number or as up to 30 digits of text."""
    assert rest.parse_trades_reply(b'{"error":[],"result":{"A":[],"last":' + b"7" * 30 + b"}}")[1] == int("7" * 30)
    assert rest.parse_trades_reply(b'{"error":[],"result":{"A":[],"last":"' + b"7" * 30 + b'"}}')[1] == int("7" * 30)
    assert rest.parse_trades_reply(b'{"error":[],"result":{"A":[["1","2",3,"b","m","",4]],"last":5}}') == (
        [["1", "2", 3, "b", "m", "", 4]], 5)


def test_reply_parser_takes_the_legacy_key_and_the_cursor():
    body = (b'{"error":[],"result":{"XXBTZUSD":[["1.5","2",1688669597.8277369,"b","m","",61044952]],'
            b'"last":"1688671969993150842"}}')
    trades, last = rest.parse_trades_reply(body)
    assert last == 1688671969993150842 and trades[0][2] == "1688669597.8277369" and trades[0][6] == 61044952


@pytest.mark.parametrize("body,message,limited", [
    (b'{"error":["EAPI:Rate limit exceeded"]}', "Kraken error: EAPI:Rate limit exceeded", True),
    (b'{"error":["EGeneral:Too many requests"]}', "Kraken error: EGeneral:Too many requests", True),
    (b'{"error":["EQuery:Unknown asset pair"]}', "Kraken error: EQuery:Unknown asset pair", False),
    (b'{"error":["EQuery:Unknown asset pair", {"code": 7}]}',
     "Kraken error: EQuery:Unknown asset pair; {'code': 7}", False),
    (b'{"error":"EService:Unavailable"}', "Kraken error: 'EService:Unavailable'", False),
    (b"<html>502</html>", "reply is not JSON: b'<html>502</html>'", False),
    (b'{"error":[],"result":{"A":[],"B":[],"last":"1"}}',
     "reply without one list of trades: {'A': [], 'B': [], 'last': '1'}", False),
    (b'{"error":[],"result":{"A":{}, "last":"1"}}', "reply without one list of trades: {'A': {}, 'last': '1'}", False),
    (b'{"error":[],"result":[[1]]}', "reply without one list of trades: [[1]]", False),
    (b'{"error":[],"result":{"A":[]}}', "reply without a `last` cursor: None", False),
    (b'{"error":[],"result":{"A":[],"last":"12a"}}', "reply without a `last` cursor: '12a'", False),
    (b'{"error":[],"result":{"A":[],"last":"' + b"1" * 31 + b'"}}',
     "reply without a `last` cursor: '" + "1" * 31 + "'", False),
    (b"[1]", "reply is not a JSON object: [1]", False),
])
def test_reply_parser_errors(body, message, limited):
    with pytest.raises(rest.RestError, match="^" + re.escape(message) + "$") as exc:
        rest.parse_trades_reply(body)
    assert exc.value.rate_limited is limited


LONG = ["x" * 50] * 8  # its repr is over 400 characters
OK_REPLY = b'{"error":[],"result":{"XXBTZUSD":[["1.5","2",1688669597.8277369,"b","m","",7]],"last":"9"}}'


@pytest.mark.parametrize("reply,prefix,quoted,limit", [
    (LONG, "reply is not a JSON object: ", LONG, 120),
    ({"error": {"EService": LONG}}, "Kraken error: ", {"EService": LONG}, 120),
    ({"error": ["EQuery:Unknown asset pair", {"detail": LONG}]}, "Kraken error: EQuery:Unknown asset pair; ",
     {"detail": LONG}, 80),
    ({"error": [], "result": {"A": LONG, "B": []}}, "reply without one list of trades: ", {"A": LONG, "B": []}, 120),
    ({"error": [], "result": {"A": [], "last": LONG}}, "reply without a `last` cursor: ", LONG, 60),
])
def test_reply_parser_errors_quote_the_reply_cut_short(reply, prefix, quoted, limit):
    with pytest.raises(rest.RestError) as exc:
        rest.parse_trades_reply(json.dumps(reply).encode())
    assert str(exc.value) == prefix + records.short(quoted, limit)
    assert len(str(exc.value)) == len(prefix) + limit


def test_kraken_error_text_cut_at_200_characters():
    with pytest.raises(rest.RestError) as exc:
        rest.parse_trades_reply(json.dumps({"error": ["E" * 300]}).encode())
    assert str(exc.value) == "Kraken error: " + "E" * 200


@pytest.mark.parametrize("base,url", [
    ("https://api.kraken.com", "https://api.kraken.com/0/public/Trades?pair=XBTUSDT&since=0&count=1000"),
    ("https://api.kraken.com/", "https://api.kraken.com/0/public/Trades?pair=XBTUSDT&since=0&count=1000"),
    ("http://proxy.example:8080/KRAKEN-BOX/",
     "http://proxy.example:8080/KRAKEN-BOX/0/public/Trades?pair=XBTUSDT&since=0&count=1000"),
])
def test_trades_url_asks_for_1000_trades_under_the_base_path(base, url):
    assert rest.trades_url(base, "XBTUSDT", 0) == url
    assert rest.trades_url(base, "XBT/USDT", 1688671969993150842, 10) == url.replace("XBTUSDT", "XBT%2FUSDT").replace(
        "since=0", "since=1688671969993150842").replace("count=1000", "count=10")


class RestStub(http.server.BaseHTTPRequestHandler):
    """Answers by the first path segment of the base URL: /ok (a reply of one trade), /429 and /503 (HTTP errors),
    /silent (no answer for a second, then the connection is closed); records each request's User-Agent."""

    user_agents: list = []

    def do_GET(self) -> None:
        RestStub.user_agents.append(self.headers.get("User-Agent"))
        mode = self.path.split("/")[1]
        if mode == "ok":
            self.send_response(200)
            self.send_header("Content-Length", str(len(OK_REPLY)))
            self.end_headers()
            self.wfile.write(OK_REPLY)
        elif mode == "silent":
            time.sleep(1.0)
            self.close_connection = True
        else:
            self.send_error(int(mode))

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def rest_stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RestStub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_fetch_trades_reads_one_reply_and_names_itself(rest_stub):
    RestStub.user_agents.clear()
    assert rest.fetch_trades(rest_stub + "/ok", "XBTUSD", 0, 5) == ([["1.5", "2", "1688669597.8277369", "b", "m", "", 7]],
                                                                    9)
    assert RestStub.user_agents == ["kraken-trades-ws-backfill"]


def test_fetch_trades_refuses_a_reply_longer_than_the_cap(rest_stub, monkeypatch):
    monkeypatch.setattr(rest, "MAX_REPLY_BYTES", 40)
    with pytest.raises(rest.RestError) as exc:
        rest.fetch_trades(rest_stub + "/ok", "XBTUSD", 0, 5)
    assert str(exc.value) == f"reply is not JSON: {OK_REPLY[:40]!r}"


@pytest.mark.parametrize("path,message,limited", [
    ("/429", "HTTP 429 Too Many Requests from {base}", True),
    ("/503", "HTTP 503 Service Unavailable from {base}", False),
    ("/silent", "{base} unreachable: timed out", False),
])
def test_fetch_trades_failures(rest_stub, path, message, limited):
    base = rest_stub + path
    started = time.monotonic()
    with pytest.raises(rest.RestError) as exc:
        rest.fetch_trades(base, "XBTUSD", 0, 0.3)
    assert (str(exc.value), exc.value.rate_limited) == (message.format(base=base), limited)
    assert time.monotonic() - started < 0.9


def test_fetch_trades_from_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(rest.RestError) as exc:
        rest.fetch_trades(base, "XBTUSD", 0, 5)
    assert (str(exc.value), exc.value.rate_limited) == (f"{base} unreachable: [Errno 111] Connection refused", False)


def test_rest_time_truncated_to_the_microsecond_and_source_rest():
    tid, value = CODEC.rest_value(element(7, ts="1688669597.8277369"), "2026-01-01T00:00:00.000000Z")
    rec = json.loads(value)
    assert tid == 7 and rec["ts_event"] == "2023-07-06T18:53:17.827736Z" and list(rec)[-1] == "source"
    assert rec["source"] == "rest" and (rec["price"], rec["size"], rec["side"]) == ("83744.30000", "0.10000000", "buy")
    assert json.loads(CODEC.rest_value(element(8, ts="1688669597.82"), "x")[1])["ts_event"].endswith("17.820000Z")
    for bad in (element(True), element(-1), element(9)[:6], element(9, ts="1e5"), [1, 2, 3, "x", "l", "", 9]):
        with pytest.raises(records.BadTrade):
            CODEC.rest_value(bad, "x")


@pytest.mark.parametrize("trade,tid,ts_event", [
    (element(0), 0, "2026-09-21T14:13:20.123456Z"), (element(2**63 - 1), 2**63 - 1, "2026-09-21T14:13:20.123456Z"),
    (element(7)[:2] + [1688669597] + element(7)[3:], 7, "2023-07-06T18:53:17.000000Z"),   # a time without decimals
])
def test_rest_trade_id_bounds_and_whole_second_times(trade, tid, ts_event):
    assert CODEC.rest_value(trade, "x")[0] == tid and json.loads(CODEC.rest_value(trade, "x")[1])["ts_event"] == ts_event


@pytest.mark.parametrize("trade,message", [
    (element(9)[:6], "bad REST trade: not a list of [price, volume, time, side, ordertype, misc, trade_id]"),
    ("1,2,3,b,l,,9", "bad REST trade: not a list of [price, volume, time, side, ordertype, misc, trade_id]"),
    (element(9)[:3] + ["x", "l", "", 9], "bad REST trade: side or ordertype"),
    (element(9)[:3] + ["b", None, "", 9], "bad REST trade: side or ordertype"),
    (element(-1), "bad trade_id: -1"), (element(2**63), "bad trade_id: 9223372036854775808"),
    (element(True), "bad trade_id: True"),
    (element(9)[:2] + [None] + element(9)[3:], "bad epoch time: None"),
    (element(9)[:2] + [[1]] + element(9)[3:], "bad epoch time: [1]"),
    (element(9, ts="1e5"), "bad epoch time: '1e5'"),
])
def test_rest_trade_refusals_say_why(trade, message):
    with pytest.raises(records.BadTrade, match="^" + re.escape(message) + "$"):
        CODEC.rest_value(trade, "x")


@pytest.mark.parametrize("raw,decoded", [
    (b"1-2@3@4;5-5@7@8", [(1, 2, 3, 4), (5, 5, 7, 8)]),                    # a one-id gap too
    (b"9" * 20 + b"-" + b"9" * 20 + b"@1@2", [(10**20 - 1, 10**20 - 1, 1, 2)]),   # up to 20 digits a number
    (b"1" * 21 + b"-" + b"1" * 21 + b"@1@2;1-2@3@4", [(1, 2, 3, 4)]),
    (b"6-5@1@2;x-1@2@3;1-2@x@3;1-2-3@4@5;1-2@3@4@5;1@2@3;-1-2@3@4;1-2@3@4", [(1, 2, 3, 4)]),  # each malformed one left out
    ("1-2@3@4;5-6@7@8\u00e9".encode(), [(1, 2, 3, 4)]), (b"\xff;1-2@3@4", [(1, 2, 3, 4)]),   # not ASCII
    (b"", []), (None, []),
])
def test_gap_header_decoding_keeps_what_parses(raw, decoded):
    assert gaps.decode_gaps(raw) == decoded


def test_gap_header_encoding():
    two = [gaps.Gap("XBT/USDT", 1, 2, 3, 0.0, detected_ms=4), gaps.Gap("XBT/USDT", 5, 6, 7, 0.0, detected_ms=8)]
    assert gaps.encode_gaps(two) == b"1-2@3@4;5-6@7@8"
    assert gaps.decode_gaps(gaps.encode_gaps(two)) == [(1, 2, 3, 4), (5, 6, 7, 8)]


def test_gap_detected_ms_is_the_wall_clock_unless_given():
    before = int(time.time() * 1000)
    gap = gaps.Gap("XBT/USDT", 10, 20, 5, 0.0)
    assert before <= gap.detected_ms <= int(time.time() * 1000) and gap.asked == (10, 20)
    assert gaps.Gap("XBT/USDT", 10, 20, 5, 0.0, detected_ms=1234).detected_ms == 1234


def test_gap_book_headers_per_pair_and_due_gaps():
    book = gaps.GapBook()
    btc = gaps.Gap("XBT/USDT", 7, 7, 1, 0.0, next_try=5.0, detected_ms=2)
    eth = gaps.Gap("ETH/USD", 3, 4, 5, 0.0, next_try=9.0, detected_ms=6)
    book.add(btc)
    book.add(eth)
    assert book.headers == {b"XBT/USDT": [("kraken-open-gaps", b"7-7@1@2")],
                            b"ETH/USD": [("kraken-open-gaps", b"3-4@5@6")]}
    assert book.next_due(4.9) is None and book.next_due(5.0) is btc and book.next_due(9.0) is btc
    book.advance(btc, 8)    # every id produced: the gap is empty, its pair's header goes
    assert book.headers == {b"ETH/USD": [("kraken-open-gaps", b"3-4@5@6")]}
    book.remove(btc)
    assert book.next_due(8.9) is None and book.next_due(9.0) is eth and book.open_ranges() == [("ETH/USD", 3, 4)]


def test_undelivered_records_put_back_go_before_newer_ones():
    book = gaps.UndeliveredBook()
    old, new = gaps.Failed(b"k", b"old", 0, 1), gaps.Failed(b"k", b"new", 1, 2)
    book.add(old)
    taken = book.take_all()
    book.add(new)           # failed while the first was being produced again
    book.put_back(taken)
    assert book.take_all() == [old, new] and len(book) == 0


def test_gap_filled_in_trade_id_order_over_two_pages():
    fetch = ScriptedRest(([element(i) for i in (99, 100, 101, 102)], 50),
                         ([element(i) for i in (104, 103, 105, 106)], 60))
    w = worker(fetch)
    open_gap(w, 100, 105)
    run_until_idle(w)
    assert [v["trade_id"] for v in w.producer.values] == [100, 101, 102, 103, 104, 105]
    assert {v["source"] for v in w.producer.values} == {"rest"}
    assert fetch.calls == [("XBTUSDT", 5), ("XBTUSDT", 50)]
    assert (w.stats.backfilled, w.stats.unfillable, len(w.gaps)) == (6, 0, 0)


def test_older_than_rest_history_and_skipped_ids_are_unfillable(caplog):
    fetch = ScriptedRest(([element(i) for i in (104, 105, 107, 111)], 50))
    w = worker(fetch)
    open_gap(w, 100, 110)
    with caplog.at_level("WARNING", logger="lakehouse.producer"):
        run_until_idle(w)
    assert [v["trade_id"] for v in w.producer.values] == [104, 105, 107]
    assert (w.stats.backfilled, w.stats.unfillable) == (3, 8)
    assert "trade_ids 100..103 (4 trades) cannot be filled: older than REST's history" in caplog.text
    assert "trade_ids 106..106 (1 trades) cannot be filled: not in REST's trades" in caplog.text
    assert "trade_ids 108..110 (3 trades) cannot be filled: not in REST's trades" in caplog.text


def test_rest_errors_back_off_then_fill(caplog):
    fetch = ScriptedRest(rest.RestError("Kraken error: EAPI:Rate limit exceeded", rate_limited=True),
                         rest.RestError("HTTP 502 Bad Gateway from x"), ([], 5),
                         ([element(i) for i in (100, 101)], 9))
    w = worker(fetch)
    gap = open_gap(w, 100, 101)
    with caplog.at_level("WARNING", logger="lakehouse.producer"):
        before = time.monotonic()
        w.step()
        # pushed back by the backoff: at least half of 2 x --rest-interval (0.002 s), however long step() took
        assert gap.next_try >= before + 0.001 and w.stats.rest_errors == 1
        run_until_idle(w, limit=2000)
    assert [v["trade_id"] for v in w.producer.values] == [100, 101] and w.stats.rest_errors == 2
    assert "REST call failed (Kraken error: EAPI:Rate limit exceeded, rate limited)" in caplog.text


def test_gap_given_up_after_the_limit():
    w = worker(ScriptedRest(), None, "--backfill-give-up", "5")
    gap = open_gap(w, 100, 109)
    gap.detected -= 6
    assert w.step() is True
    assert (w.stats.unfillable, len(w.gaps), w.producer.values) == (10, 0, [])


def test_refill_skips_what_the_topic_holds():
    seen = []

    def check(bootstrap, topic, since, wanted, timeout):
        seen.append((since, wanted))
        return {b'{"n":2}'}

    w = worker(None, check)
    for n, ts in ((1, 10_000_000), (2, 9_000_000), (3, 11_000_000)):
        w.undelivered.add(gaps.Failed(b"XBT/USDT", json.dumps({"n": n}, separators=(",", ":")).encode(), 1, ts))
    assert w.step() is True
    assert w.producer.values == [{"n": 1}, {"n": 3}]
    assert (w.stats.refilled, w.stats.refill_found, len(w.undelivered)) == (2, 1, 0)
    assert seen[0][0] == {1: 9_000_000 - backfill.REFILL_MARGIN_MS}


def test_refill_kept_when_the_topic_cannot_be_read():
    def check(*_a):
        raise RuntimeError("broker down")

    w = worker(None, check)
    w.undelivered.add(gaps.Failed(b"XBT/USDT", b"{}", -1, 0))
    w.step()
    assert (len(w.undelivered), w.producer.values, w.stats.refilled) == (1, [], 0)


def test_fake_rest_trades_match_its_websocket_trades():
    """Same trade, two paths: equal ts_event, side, type, id and price/size values; REST pages chain by `last`."""
    with FakeKraken(pairs=["BTC/USD"], rate=0, history=0, seed=4, max_batch=9) as server:
        server.step(1500)
        base = f"http://127.0.0.1:{server.port}"
        trades, cursor = rest.fetch_trades(base, "XBTUSD", 0, 5)
        more, _ = rest.fetch_trades(base, "XBTUSD", cursor, 5)
    assert len(trades) == 1000 and len(more) == 500
    ws = {t.trade_id: json.loads(records.PairCodec("XBT/USD", "BTC/USD", "v2").v2_value(
        json.loads(t.v2_json(), parse_float=records.Num), "x")[1]) for t in server.history["BTC/USD"]}
    codec = records.PairCodec("XBT/USD", "BTC/USD", "v2")
    got = [json.loads(codec.rest_value(t, "x")[1]) for t in trades + more]
    assert [r["trade_id"] for r in got] == sorted(ws)
    assert any(len(str(t[2]).split(".")[1]) == 7 for t in trades)  # 7-decimal REST times do occur
    for r in got:
        w = ws[r["trade_id"]]
        assert (r["ts_event"], r["side"], r["ord_type"]) == (w["ts_event"], w["side"], w["ord_type"])
        assert records.Decimal(r["price"]) == records.Decimal(w["price"]) and r["source"] == "rest"


@pytest.mark.parametrize("ws_url,rest_url", [
    (None, "https://api.kraken.com"), ("wss://ws.kraken.com/v2", "https://api.kraken.com"),
    ("wss://beta-ws.kraken.com/v2", "https://api.kraken.com"), ("ws://127.0.0.1:8765/v2", "http://127.0.0.1:8765"),
    ("wss://proxy.example:9443/kraken/v2", "https://proxy.example:9443"),
])
def test_rest_url_follows_the_websocket_url(ws_url, rest_url):
    argv = ["--ws-url", ws_url] if ws_url else []
    assert cli.parse_args(argv).rest_url == rest_url
    assert cli.parse_args(argv + ["--rest-url", "http://other:1"]).rest_url == "http://other:1"


def test_backfill_and_topic_flags(capsys):
    args = cli.parse_args([])
    assert (args.no_backfill, args.rest_interval, args.rest_timeout, args.backfill_give_up) == (False, 1.0, 10.0, 3600)
    assert (args.partitions, args.replication_factor) == (3, None)
    for bad, message in ((["--rest-url", "ftp://x"], "expected http://... or https://..."),
                         (["--partitions", "0"], "--partitions must be > 0"),
                         (["--replication-factor", "0"], "--replication-factor must be > 0"),
                         (["--rest-interval", "0"], "--rest-interval must be > 0")):
        with pytest.raises(SystemExit) as exc:
            cli.parse_args(bad)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_gap_cursor_is_just_before_the_last_trade_produced():
    config = cli.parse_config(["--pair", "XBT/USDT"])
    ledger = session.TradeProducer(config.session, config.backfill, MemoryKafka(), lambda *a: None).ledger
    before = CODEC.v2_value({"symbol": "BTC/USDT", "side": "buy", "price": 1, "qty": 1, "ord_type": "limit",
                             "trade_id": 9, "timestamp": "2023-07-06T18:53:17.827736Z"}, "x")[1]
    assert ledger.gap_cursor("BTC/USDT", before, None) == 1688669597827736000 - 1000
    ledger.resume_from({"XBT/USDT": 9}, {"XBT/USDT": "2023-07-06T18:53:17.000001Z"})
    assert ledger.gap_cursor("BTC/USDT", None, before) == 1688669597000001000 - 1000
    ledger.resume_times.clear()
    assert ledger.gap_cursor("BTC/USDT", None, before) == 1688669597827736000 - 3600 * 10**9
