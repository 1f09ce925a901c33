"""Print records of the trades topic, like `rpk topic consume crypto.trades -n 5`, on any Kafka-API broker: the entry
point. The code is lakehouse.broker.consume (src/lakehouse/broker/consume.py).

Usage:
    python ingestion/consume_trades.py -n 5                   # the last 5 records of crypto.trades (newest last)
    python ingestion/consume_trades.py -n 5 --from-start      # the first 5, as rpk does by default
    python ingestion/consume_trades.py --topic crypto.trades --bootstrap localhost:19092 -n 20
"""

from lakehouse.broker.consume import main

if __name__ == "__main__":
    raise SystemExit(main())
