"""Kraken public WebSocket trades -> Kafka (one JSON message per trade, keyed by pair): the producer's entry point.

The producer itself is the package lakehouse.producer (src/lakehouse/producer/: flags and start-up in cli.py);
`python -m lakehouse.producer.cli` runs the same. `--help` lists every flag.

Usage:
    python ingestion/kraken_trades_ws.py --pair XBT/USDT --bootstrap localhost:19092 --topic crypto.trades
    python ingestion/kraken_trades_ws.py --pair XBT/USDT --pair ETH/USD --pair DOGE/USD --api v1
    python ingestion/kraken_trades_ws.py --pair XBT/USDT --no-resume     # a restart re-sends the 50-trade snapshot
    # against the local fake Kraken (ingestion/fake_kraken.py):
    python ingestion/fake_kraken.py --port 8765 --pairs BTC/USDT,ETH/USD --rate 100 &
    python ingestion/kraken_trades_ws.py --ws-url ws://127.0.0.1:8765/v2 --pair XBT/USDT --pair ETH/USD
    #   (--rest-url defaults to http://127.0.0.1:8765 there: the fake serves REST trades too)
"""

from lakehouse.producer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
