"""A local fake of Kraken's public API for tests, benchmarks and the offline demo: the WebSocket trade channel (v2 and
v1), REST trades, a simulated market or a replayed recording, and faults on demand.

    server.py   the server (FakeKraken), its market, REST answers, faults, recordings and replay pace
    cli.py      its command line (`python ingestion/fake_kraken.py`, or `python -m lakehouse.fake_kraken.cli`)
"""
