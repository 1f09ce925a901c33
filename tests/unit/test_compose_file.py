"""Static checks of infra/docker-compose.yml (no Docker engine runs on CI): the seed's ports and listeners."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.helpers import REPO_ROOT


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "infra/docker-compose.yml").read_text())


def redpanda_flags(compose: dict) -> dict[str, str]:
    """The `redpanda start` command as {flag: value}."""
    command = compose["services"]["redpanda"]["command"]
    flags, it = {}, iter(command[2:])
    for token in it:
        name, eq, value = token.partition("=")
        flags[name] = value if eq else next(it)
    return flags


def test_redpanda_container_is_named_for_the_readme_commands(compose: dict) -> None:
    assert compose["services"]["redpanda"]["container_name"] == "redpanda"


def test_images_are_pinned(compose: dict) -> None:
    for name, service in compose["services"].items():
        assert re.search(r":v\d+\.\d+\.\d+$", service["image"]), f"{name} image is not pinned: {service['image']}"


def test_dual_listeners_host_19092_containers_redpanda_29092(compose: dict) -> None:
    flags = redpanda_flags(compose)
    assert flags["--kafka-addr"] == "internal://0.0.0.0:29092,external://0.0.0.0:19092"
    assert flags["--advertise-kafka-addr"] == "internal://redpanda:29092,external://localhost:19092"
    assert "19092:19092" in compose["services"]["redpanda"]["ports"]


def test_topic_auto_create_is_on(compose: dict) -> None:
    # dev-container mode sets auto_create_topics_enabled: true (the seed's "topic auto-create is enabled")
    assert redpanda_flags(compose)["--mode"] == "dev-container"


def test_console_on_8080_talks_to_the_internal_listener(compose: dict) -> None:
    console = compose["services"]["console"]
    assert "8080:8080" in console["ports"]
    config = yaml.safe_load(console["environment"]["CONSOLE_CONFIG_FILE"])
    assert config["kafka"]["brokers"] == ["redpanda:29092"]
    assert config["redpanda"]["adminApi"]["urls"] == ["http://redpanda:9644"]
    assert console["networks"] == compose["services"]["redpanda"]["networks"]
