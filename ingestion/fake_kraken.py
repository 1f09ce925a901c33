"""A local fake of Kraken's public WebSocket (v2 at /v2, v1 at /) and REST trades, for tests and the offline demo:
its entry point. The fake itself is the package lakehouse.fake_kraken (src/lakehouse/fake_kraken/: the server in
server.py, these flags in cli.py); `python -m lakehouse.fake_kraken.cli` runs the same.

Usage:
    python ingestion/fake_kraken.py --port 8765 --pairs BTC/USDT,ETH/USD,DOGE/USD --rate 200 --seed 7
    python ingestion/fake_kraken.py --port 8765 --replay ingestion/recordings/kraken_v2_demo.jsonl --pace 10x
    python ingestion/fake_kraken.py --write-recording /tmp/market.jsonl --minutes 25 --rate 4 --seed 11
    # then: python ingestion/kraken_trades_ws.py --ws-url ws://127.0.0.1:8765/v2 --pair XBT/USDT

Faults and inspection over plain HTTP on the same port: curl http://127.0.0.1:8765/control/<action> (the list is in
src/lakehouse/fake_kraken/server.py).
"""

from lakehouse.fake_kraken.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
