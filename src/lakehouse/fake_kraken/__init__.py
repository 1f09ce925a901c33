"""A local fake of Kraken's public API for tests, benchmarks and the offline demo: the WebSocket trade channel (v2 and
v1), REST trades, a simulated market or a replayed recording, and faults on demand.

    server.py      the server (FakeKraken): listens, routes, keeps the connections, sends trades, holds the faults
    market.py      the simulated market: prices, sizes, ids, times, the trade history
    kraken_ws.py   Kraken's WebSocket API: answers to subscribe/ping requests, the frames' texts
    websocket.py   RFC 6455, server end: the handshake, frames, one connection's reader and writer
    rest.py        REST /0/public/Trades from the market's history, with its faults
    control.py     the /control/<action> faults and inspection over HTTP
    plain_http.py  reading an HTTP request and answering it
    recording.py   recordings: read, replayed at a pace, simulated and written
    cli.py         its command line (`python ingestion/fake_kraken.py`, or `python -m lakehouse.fake_kraken.cli`)
"""
