"""Issue 25: every layer reads in bounded batches by default, stated in rows, with one home for each default (the
layer's own job), the same in the separate jobs and in the one application (all_layers). No Spark."""

from __future__ import annotations

import pytest

from lakehouse.bronze import job as bronze_job
from lakehouse.gold import job as gold_job
from lakehouse.pipeline import all_layers
from lakehouse.silver import job as silver_job


def test_bronze_caps_records_per_batch_by_default():
    args = bronze_job.parse_args([])
    assert args.maxOffsetsPerTrigger == bronze_job.DEFAULT_MAX_OFFSETS_PER_TRIGGER == 50_000
    assert bronze_job.kafka_source_options(args, {})["maxOffsetsPerTrigger"] == "50000"
    assert bronze_job.kafka_source_options(bronze_job.parse_args(["--maxOffsetsPerTrigger", "7"]), {})[
        "maxOffsetsPerTrigger"] == "7"


def test_silver_caps_bronze_files_per_batch_and_so_rows():
    args = silver_job.parse_args([])
    assert args.max_files_per_trigger == silver_job.DEFAULT_MAX_FILES_PER_TRIGGER == 4
    assert silver_job.MAX_ROWS_PER_BATCH == 4 * 50_000 == 200_000
    assert silver_job.parse_args(["--max-files-per-trigger", "2"]).max_files_per_trigger == 2


def test_gold_caps_silver_files_per_batch():
    assert gold_job.parse_args([]).max_files_per_trigger == gold_job.DEFAULT_MAX_FILES_PER_TRIGGER == 10


@pytest.mark.parametrize("job, flag", [(bronze_job, "--maxOffsetsPerTrigger"), (silver_job, "--max-files-per-trigger"),
                                       (gold_job, "--max-files-per-trigger")])
def test_a_bound_cannot_be_switched_off(job, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        job.parse_args([flag, "0"])
    assert exc.value.code == 2 and flag in capsys.readouterr().err


@pytest.mark.parametrize("job, text", [(bronze_job, "(default 50000)"), (silver_job, "at most 200000 rows"),
                                       (silver_job, "(default 4)"), (gold_job, "default 10)")])
def test_help_states_the_bound(job, text, capsys):
    with pytest.raises(SystemExit):
        job.parse_args(["--help"])
    assert text in " ".join(capsys.readouterr().out.split())


def test_all_layers_gets_the_jobs_bounds_and_passes_its_own_on():
    default = all_layers.parse_args([]).layer_args
    assert default["bronze"].maxOffsetsPerTrigger == 50_000
    assert default["silver"].max_files_per_trigger == 4
    assert default["gold"].max_files_per_trigger == 10
    given = all_layers.parse_args(["--maxOffsetsPerTrigger", "1000", "--silver-max-files-per-trigger", "3"]).layer_args
    assert (given["bronze"].maxOffsetsPerTrigger, given["silver"].max_files_per_trigger) == (1000, 3)
