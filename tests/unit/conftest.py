"""Fixtures of the unit tests: a local Spark session without jars (the DataFrame transforms need no broker, Kafka or
Delta)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_spark():
    """A local session of our own; or, when this pytest process already runs one (the integration tests' session,
    in the same xdist worker), that one, left running (its time zone is UTC too)."""
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is not None:
        assert running.conf.get("spark.sql.session.timeZone") == "UTC"
        yield running
        return
    session = (SparkSession.builder.master("local[1]").appName("unit-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    yield session
    session.stop()
    # Also end this JVM: it was started without the Kafka/Delta jars, and a later session in the same pytest process
    # (the integration tests' `spark` fixture) must start its own JVM with them.
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    gateway.shutdown()
    if getattr(gateway, "proc", None) is not None:  # the JVM process pyspark launched (else it idles until exit)
        gateway.proc.kill()
        gateway.proc.wait(30)
    SparkContext._gateway, SparkContext._jvm = None, None
