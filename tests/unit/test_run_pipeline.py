"""The pipeline runner's pure parts: reading checkpoints to decide that a job has caught up with its input."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT

spec = importlib.util.spec_from_file_location("run_pipeline", REPO_ROOT / "infra/run_pipeline.py")
run_pipeline = importlib.util.module_from_spec(spec)
sys.modules["run_pipeline"] = run_pipeline  # dataclasses look their module up while the module runs
spec.loader.exec_module(run_pipeline)


def write_batch(checkpoint: Path, batch: int, source_offsets: str, committed: bool = True) -> None:
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    (checkpoint / "offsets" / str(batch)).write_text(f'v1\n{{"batchWatermarkMs":0}}\n{source_offsets}\n')
    if committed:
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}\n')


def test_latest_batch_id_reads_plain_and_compact_names(tmp_path: Path) -> None:
    for name in ["0", "1", "9.compact", "10", ".10.crc", "tmp-11"]:
        (tmp_path / name).touch()
    assert run_pipeline.latest_batch_id(tmp_path) == 10
    assert run_pipeline.latest_batch_id(tmp_path / "absent") == -1


def test_checkpoint_progress_is_the_last_committed_batch(tmp_path: Path) -> None:
    assert run_pipeline.checkpoint_progress(tmp_path) == (-1, None)
    write_batch(tmp_path, 0, '{"t":{"0":5,"1":3}}')
    write_batch(tmp_path, 1, '{"t":{"0":9,"1":3}}', committed=False)  # planned, not committed
    assert run_pipeline.checkpoint_progress(tmp_path) == (0, {"t": {"0": 5, "1": 3}})


def test_kafka_caught_up_needs_every_partition() -> None:
    assert run_pipeline.kafka_caught_up({"t": {"0": 5, "1": 3}}, {0: 5, 1: 3, 2: 0}, "t")
    assert not run_pipeline.kafka_caught_up({"t": {"0": 5, "1": 2}}, {0: 5, 1: 3}, "t")
    assert not run_pipeline.kafka_caught_up(None, {0: 1}, "t")
    assert run_pipeline.kafka_caught_up(None, {0: 0}, "t")  # an empty topic needs nothing


def test_file_source_caught_up() -> None:
    assert run_pipeline.file_source_caught_up({"logOffset": 4}, 4)
    assert not run_pipeline.file_source_caught_up({"logOffset": 3}, 4)
    assert not run_pipeline.file_source_caught_up(None, 0)
    assert run_pipeline.file_source_caught_up(None, -1)  # upstream wrote nothing yet


def test_query_checkpoints_finds_one_folder_per_query(tmp_path: Path) -> None:
    single = tmp_path / "single"
    write_batch(single, 0, '{"logOffset":0}')
    assert run_pipeline.query_checkpoints(single) == [single]
    multi = tmp_path / "multi"
    for query in ["silver", "quarantine"]:
        write_batch(multi / query, 0, '{"logOffset":0}')
    assert run_pipeline.query_checkpoints(multi) == [multi / "quarantine", multi / "silver"]
