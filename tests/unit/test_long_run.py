"""The long-run benchmark's pure parts (bench/week_state.py): the shape of a week of Spark logs and Delta commits."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from bench.week_state import (DeltaWeek, batch_count, compact_layout, day_of, disk_kind, hadoop_crc,
                              kept_removed_bytes, retained_batches, rewrite_stats, write_compactible_log)


def test_a_week_of_20_s_batches():
    assert batch_count(7, 20) == 30_240
    assert batch_count(1, 2) == 43_200


def test_compact_layout_keeps_the_newest_compact_and_the_batches_after_it():
    assert compact_layout(-1) == (None, [])
    assert compact_layout(3) == (None, [0, 1, 2, 3])
    assert compact_layout(9) == (9, [])
    assert compact_layout(12) == (9, [10, 11, 12])
    assert compact_layout(30_239) == (30_239, [])
    assert compact_layout(30_241) == (30_239, [30_240, 30_241])


def test_a_checkpoint_keeps_its_last_20_batches():
    assert retained_batches(30_239) == range(30_220, 30_240)
    assert retained_batches(5) == range(0, 6)


def test_compact_file_lists_every_entry_up_to_it(tmp_path: Path):
    write_compactible_log(tmp_path, 12, lambda b: [{"path": f"f{b}"}], lambda b: 1_000_000 + b)
    compact = (tmp_path / "9.compact").read_text().splitlines()
    assert compact[0] == "v1" and [json.loads(line)["path"] for line in compact[1:]] == [f"f{b}" for b in range(10)]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["10", "11", "12", "9.compact"]
    assert (tmp_path / ".10.crc").exists()


def test_hadoop_crc_is_a_crc32_per_512_bytes():
    data = bytes(range(256)) * 3  # 768 bytes: two chunks
    crc = hadoop_crc(data)
    assert crc[:8] == b"crc\x00" + struct.pack(">i", 512)
    assert crc[8:] == struct.pack(">II", zlib.crc32(data[:512]), zlib.crc32(data[512:]))


def test_disk_kinds():
    assert disk_kind(Path("silver/crypto_trades/_delta_log/00000000000000000001.json")) == "delta_log"
    assert disk_kind(Path("bronze/crypto_trades/_spark_metadata/9.compact")) == "spark_metadata"
    assert disk_kind(Path("checkpoints/kafka_to_bronze_trades/offsets/3")) == "checkpoints"
    assert disk_kind(Path("silver/crypto_trades/trade_date=2026-01-01/part-0.parquet")) == "data"


def test_silver_week_compacts_every_20_files_and_hourly():
    week = DeltaWeek("trade_date", adds_per_batch=1, removes_per_batch=0, file_size=40_000)
    start = 1_767_225_600_000  # 2026-01-01 00:00 UTC
    week.run(start, batch_count(1, 20), 20_000)
    kinds = [(info["operation"], info.get("auto")) for _, info, _ in week.commits]
    assert kinds.count(("MERGE", None)) == 4_320
    autos = kinds.count(("OPTIMIZE", True))
    assert 4_320 // 20 <= autos <= 4_320 // 19 + 1  # the compacted file stays small (< 8 MB) and counts again
    assert kinds.count(("OPTIMIZE", False)) >= 20  # hourly rounds with small files left
    assert len(week.live[day_of(start)]) < 20
    assert sum(f.size for f in week.live[day_of(start)]) == 4_320 * 40_000  # compaction keeps the bytes


def test_gold_week_rewrites_its_file_each_batch():
    week = DeltaWeek("bar_date", adds_per_batch=1, removes_per_batch=1, file_size=30_000)
    week.run(1_767_225_600_000, 180, 20_000)
    assert len(week.commits) == 180 and len(week.removed) == 179
    assert kept_removed_bytes(week.removed, 1_767_225_600_000 + 3_600_000, 3 * 86_400_000) == 179 * 30_000
    assert kept_removed_bytes(week.removed, 1_767_225_600_000 + 5 * 86_400_000, 3 * 86_400_000) == 0


def test_a_week_without_auto_compaction_compacts_only_hourly():
    week = DeltaWeek("bar_date", adds_per_batch=1, removes_per_batch=0, file_size=30_000, auto_compact=False)
    week.run(1_767_225_600_000, 200, 20_000)  # 00:00 to 01:06: 200 files, one hourly round
    kinds = [(info["operation"], info.get("auto")) for _, info, _ in week.commits]
    assert kinds.count(("OPTIMIZE", True)) == 0 and kinds.count(("OPTIMIZE", False)) == 1 and len(kinds) == 201


def test_rewrite_stats_moves_times_and_ids():
    stats = json.dumps({"numRecords": 5, "minValues": {"trade_id": 10_000_000_001, "ts_event": "2026-12-03T18:00:01.000Z",
                                                       "open_key": {"ts_event_us": 5, "trade_id": 7}, "symbol": "ETH/USD",
                                                       "is_open": True},
                        "maxValues": {"trade_id": 10_000_000_005}, "nullCount": {"trade_id": 0}})
    moved = json.loads(rewrite_stats(stats, 1_767_225_600_000, 42))
    assert moved["minValues"]["trade_id"] == 42 and moved["maxValues"]["trade_id"] == 42
    assert moved["minValues"]["ts_event"] == "2026-01-01T00:00:00.000Z"
    assert moved["minValues"]["open_key"] == {"ts_event_us": 1_767_225_600_000_000, "trade_id": 42}
    assert moved["minValues"]["symbol"] == "ETH/USD" and moved["numRecords"] == 5 and moved["nullCount"]["trade_id"] == 0
    assert moved["minValues"]["is_open"] is False
    assert rewrite_stats(None, 0, 0) is None
