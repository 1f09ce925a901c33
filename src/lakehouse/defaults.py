"""The project's shared defaults, in one place: the repository's folders, Kafka's address and topic, and where each
layer and its checkpoint live.

Standard library only, and nothing is read but the environment: the local broker's script imports this before any
virtualenv exists (`make broker-up`).
"""

from __future__ import annotations

import os
from pathlib import Path

# The checkout this package is installed from (editable, `make setup`): data/, .cache/, spark/conf/, infra/ live there.
REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = REPO_ROOT / "data" / "logs"  # the runner's process logs and Spark's own log files

# Kafka
TOPIC = "crypto.trades"
LOCAL_BOOTSTRAP = "localhost:19092"  # the local broker (make broker-up) or Redpanda: the producer's, the runner's
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", LOCAL_BOOTSTRAP)  # the Spark jobs' and benchmarks' default

# Where each layer and its checkpoint live, relative to the folder a job runs in (the repo root, as the README runs
# them). A pipeline under another --data-dir lays them out the same way below it (lakehouse.pipeline.layers).
DATA_DIR = "data"
BRONZE_PATH = f"{DATA_DIR}/bronze/crypto_trades"
BRONZE_CHECKPOINT = f"{DATA_DIR}/checkpoints/kafka_to_bronze_trades"
SILVER_PATH = f"{DATA_DIR}/silver/crypto_trades"
QUARANTINE_PATH = f"{DATA_DIR}/silver/crypto_trades_quarantine"
SILVER_CHECKPOINT = f"{DATA_DIR}/checkpoints/bronze_to_silver_trades"
GOLD_PATH = f"{DATA_DIR}/gold/ohlcv_1m"
GOLD_CHECKPOINT = f"{DATA_DIR}/checkpoints/silver_to_gold_ohlcv"
GOLD_RECOMPUTE_PATH = f"{DATA_DIR}/gold/ohlcv_1m_recompute"  # the batch recompute's own table (not the stream's)
