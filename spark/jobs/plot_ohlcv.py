"""Chart: the 1-minute candles and volume of one pair over a time range, from Gold, as a PNG (and an HTML page with the
PNG and the bars' exact values, if --html is given).

Usage:
    python spark/jobs/plot_ohlcv.py --gold data/gold/ohlcv_1m --symbol XBT/USDT \\
        --from 2026-01-01T00:00 --to 2026-01-01T02:00 --png docs/xbt_usdt.png --html docs/xbt_usdt.html

    # every bar of the pair Gold holds (e.g. after `make demo`)
    python spark/jobs/plot_ohlcv.py --symbol XBT/USDT --png data/charts/xbt_usdt.png

An entry point: the code is lakehouse.gold.chart (src/lakehouse/gold/chart.py); `python -m lakehouse.gold.chart` runs
the same.
"""

from lakehouse.gold.chart import main

if __name__ == "__main__":
    raise SystemExit(main())
