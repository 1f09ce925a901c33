"""Bronze, Silver and Gold in one Spark application: the three layers' streaming queries share one JVM.

Usage:
    python spark/jobs/all_layers.py --bootstrap localhost:19092 --topic crypto.trades --data-dir data

An entry point: the code is lakehouse.pipeline.all_layers (src/lakehouse/pipeline/all_layers.py); `python -m
lakehouse.pipeline.all_layers` runs the same.
"""

from lakehouse.pipeline.all_layers import main

if __name__ == "__main__":
    raise SystemExit(main())
