"""Resolve the jars the Spark jobs need with Maven, once, into .cache/ (what `make setup` runs).

Usage:
    python spark/fetch_jars.py

An entry point: the code is lakehouse.spark.jars (src/lakehouse/spark/jars.py); `python -m lakehouse.spark.jars` runs
the same.
"""

from lakehouse.spark.jars import main

if __name__ == "__main__":
    raise SystemExit(main())
