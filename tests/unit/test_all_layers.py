"""all_layers.py: the three layers' own flags, derived from the one application's (same paths, checkpoints and
defaults as each job run alone)."""

from __future__ import annotations

import pytest

from lakehouse.pipeline import all_layers, layers


def test_layers_live_where_the_jobs_put_them_under_data_dir():
    paths = layers.layer_paths("/lake")
    assert paths == {
        "bronze": "/lake/bronze/crypto_trades", "bronze_checkpoint": "/lake/checkpoints/kafka_to_bronze_trades",
        "silver": "/lake/silver/crypto_trades", "quarantine": "/lake/silver/crypto_trades_quarantine",
        "silver_checkpoint": "/lake/checkpoints/bronze_to_silver_trades", "gold": "/lake/gold/ohlcv_1m",
        "gold_checkpoint": "/lake/checkpoints/silver_to_gold_ohlcv"}
    assert layers.layer_paths("data")["bronze"] == "data/bronze/crypto_trades"  # the jobs' own defaults


def test_each_layer_gets_its_own_job_flags():
    args = all_layers.parse_args(["--data-dir", "/lake", "--topic", "t", "--bootstrap", "b:1", "--silver-trigger",
                                  "5 seconds", "--maintenance-every", "off"])
    bronze, silver, gold = (args.layer_args[k] for k in ("bronze", "silver", "gold"))
    assert (bronze.bootstrap, bronze.topic, bronze.out, bronze.trigger, bronze.startingOffsets) == (
        "b:1", "t", "/lake/bronze/crypto_trades", "20000 milliseconds", "earliest")
    assert (silver.bronze, silver.out, silver.trigger, silver.maintenance_every) == (
        "/lake/bronze/crypto_trades", "/lake/silver/crypto_trades", "5000 milliseconds", 0.0)
    assert (gold.silver, gold.out, gold.checkpoint) == (
        "/lake/silver/crypto_trades", "/lake/gold/ohlcv_1m", "/lake/checkpoints/silver_to_gold_ohlcv")
    assert not any(a.available_now for a in args.layer_args.values())
    assert list(all_layers.parse_args(["--layers", "2"]).layer_args) == ["bronze", "silver"]
    assert all(a.available_now for a in all_layers.parse_args(["--available-now"]).layer_args.values())


@pytest.mark.parametrize("argv", [["--maintenance-every", "sometimes"], ["--gold-trigger", "soon"],
                                  ["--startingOffsets", "beginning"]])
def test_bad_flags_exit_2_naming_the_flag(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        all_layers.parse_args(argv)
    assert exc.value.code == 2 and argv[0] in capsys.readouterr().err


def test_pairing_problems_of_every_layer(tmp_path):
    args = all_layers.parse_args(["--data-dir", str(tmp_path)])
    assert all_layers.pairing_problems(args.layer_args) == []
    gold_commits = tmp_path / "checkpoints" / "silver_to_gold_ohlcv" / "commits"
    gold_commits.mkdir(parents=True)
    (gold_commits / "4").touch()
    [problem] = all_layers.pairing_problems(args.layer_args)
    assert "silver_to_gold_ohlcv has committed batches 0..4" in problem and "ohlcv_1m is not there" in problem
