"""A pipeline's layers under one data folder: where each layer and its checkpoint live, and the command line each
layer's own job gets there. One home for what both ways of running the layers build: the one Spark application
(all_layers.py parses these command lines with each job's own parser) and the runner's separate jobs
(`infra/run_pipeline.py --separate-jobs` starts each job with one).

Pure functions, no Spark.
"""

from __future__ import annotations

from pathlib import Path

from lakehouse.defaults import (BRONZE_CHECKPOINT, BRONZE_PATH, DATA_DIR, GOLD_CHECKPOINT, GOLD_PATH, QUARANTINE_PATH,
                                SILVER_CHECKPOINT, SILVER_PATH)

LAYERS = ["bronze", "silver", "gold"]
# The pipeline's economical defaults (`make run`, infra/run_pipeline.py, all_layers.py; BENCHMARKS.md's footprint):
# Bronze lands the topic every 20 s and Silver, with Gold in the same pass, runs on the same 20-s clock, so a trade
# reaches its Gold bar within about two triggers, at a fraction of a core. Each job run on its own keeps its 2-s default.
PIPELINE_TRIGGERS = {"bronze": "20 seconds", "silver": "20 seconds", "gold": "20 seconds"}
PIPELINE_DRIVER_MEMORY = "512m"  # every layer's batches are bounded, so a catch-up fits in it too


def layer_paths(data_dir: str) -> dict[str, str]:
    """The jobs' default paths (data/...), under --data-dir instead of data/."""
    def under(default: str) -> str:
        return str(Path(data_dir) / Path(default).relative_to(DATA_DIR))

    return {"bronze": under(BRONZE_PATH), "bronze_checkpoint": under(BRONZE_CHECKPOINT),
            "silver": under(SILVER_PATH), "quarantine": under(QUARANTINE_PATH),
            "silver_checkpoint": under(SILVER_CHECKPOINT), "gold": under(GOLD_PATH),
            "gold_checkpoint": under(GOLD_CHECKPOINT)}


def layer_argv(data_dir: str, bootstrap: str, topic: str, triggers: dict[str, str],
               starting_offsets: str = "earliest") -> dict[str, list[str]]:
    """Each layer's job's flags for a pipeline under data_dir: its input, output and checkpoint (Bronze: the topic at
    bootstrap, from starting_offsets when new) and its trigger (triggers: {layer: interval}). Flags of one way of
    running them only (--available-now, --drain-on-stop, --master, ...) are added by the caller."""
    paths = layer_paths(data_dir)
    return {
        "bronze": ["--bootstrap", bootstrap, "--topic", topic, "--out", paths["bronze"],
                   "--checkpoint", paths["bronze_checkpoint"], "--startingOffsets", starting_offsets,
                   "--trigger", triggers["bronze"]],
        "silver": ["--bronze", paths["bronze"], "--out", paths["silver"], "--quarantine", paths["quarantine"],
                   "--checkpoint", paths["silver_checkpoint"], "--trigger", triggers["silver"]],
        "gold": ["--silver", paths["silver"], "--out", paths["gold"], "--checkpoint", paths["gold_checkpoint"],
                 "--trigger", triggers["gold"]],
    }
