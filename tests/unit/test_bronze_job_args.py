"""The Bronze job's flags and pure functions: no Spark, no broker."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lakehouse.bronze import job as bronze


def test_seed_defaults() -> None:
    args = bronze.parse_args([])
    assert (args.bootstrap, args.topic, args.out, args.checkpoint, args.startingOffsets, args.trigger) == (
        "localhost:19092", "crypto.trades", "data/bronze/crypto_trades", "data/checkpoints/kafka_to_bronze_trades",
        "earliest", "2000 milliseconds")
    assert args.failOnDataLoss is True and args.available_now is False and args.maxOffsetsPerTrigger == 50_000


@pytest.mark.parametrize("text", ["earliest", "latest", '{"crypto.trades": {"0": 42, "1": -2}}'])
def test_starting_offsets_accepted(text: str) -> None:
    assert bronze.parse_starting_offsets(text) == text


@pytest.mark.parametrize("text", ["beginning", "", "{}", '{"t": {"x": 1}}', '{"t": {"0": -3}}', "[1]", '{"t": 5}'])
def test_starting_offsets_rejected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        bronze.parse_starting_offsets(text)


def test_source_options_pass_client_settings_with_kafka_prefix() -> None:
    args = bronze.parse_args(["--topic", "t1", "--maxOffsetsPerTrigger", "5000", "--failOnDataLoss", "false",
                              "--minOffsetsPerTrigger", "100", "--maxTriggerDelay", "30s"])
    options = bronze.kafka_source_options(args, {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"})
    assert options == {
        "kafka.bootstrap.servers": "localhost:19092", "subscribe": "t1", "startingOffsets": "earliest",
        "failOnDataLoss": "false", "maxOffsetsPerTrigger": "5000", "minOffsetsPerTrigger": "100",
        "maxTriggerDelay": "30s", "kafka.security.protocol": "SASL_SSL", "kafka.sasl.mechanism": "PLAIN",
    }


def test_kafka_properties_file(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text("# secured cluster\nsecurity.protocol=SASL_SSL\n\n! comment\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                    "username=\"u\" password=\"p=q\";\n")
    assert bronze.read_kafka_properties(path) == {
        "security.protocol": "SASL_SSL",
        "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" '
                            'password="p=q";',
    }


@pytest.mark.parametrize("line, message", [("group.id=mine", "group.id is managed"), ("no-equals-sign", "key=value")])
def test_kafka_properties_file_refuses(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "client.properties"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        bronze.read_kafka_properties(path)


def test_unreachable_brokers_names_each_server() -> None:
    problem = bronze.unreachable_brokers("127.0.0.1:1,localhost:2", timeout_s=1)
    assert problem is not None and "127.0.0.1:1" in problem and "localhost:2" in problem
    assert bronze.unreachable_brokers("nonsense") == "--bootstrap 'nonsense' is not host:port"
