"""The flags the Spark jobs share and how they are read: --trigger, whole numbers, true/false, --master, and
--drain-on-stop/--drain-timeout.

Pure Python (no Spark import).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

DEFAULT_DRAIN_TIMEOUT_S = 60.0  # how long --drain-on-stop may take to land what the input holds
TRIGGER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
UNIT_MILLISECONDS = {
    **dict.fromkeys(["ms", "millisecond", "milliseconds"], 1),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], 1000),
    **dict.fromkeys(["m", "min", "mins", "minute", "minutes"], 60_000),
    **dict.fromkeys(["h", "hour", "hours"], 3_600_000),
}


def parse_trigger(text: str) -> str:
    """Validate a processing-time trigger such as "2 seconds", "500 milliseconds", "1 minute"; return Spark's form.

    Raises argparse.ArgumentTypeError with a message a user understands (argparse names the flag).
    """
    match = TRIGGER_RE.match(text or "")
    unit = match.group(2).lower() if match else None
    if unit not in UNIT_MILLISECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an interval; use a number and a unit, e.g. \"2 seconds\", \"500 milliseconds\", "
            f"\"1 minute\"")
    milliseconds = float(match.group(1)) * UNIT_MILLISECONDS[unit]
    if milliseconds < 1 or milliseconds != int(milliseconds):
        raise argparse.ArgumentTypeError(f"{text!r}: the interval must be a whole number of milliseconds, >= 1 ms")
    return f"{int(milliseconds)} milliseconds"


def parse_seconds(text: str) -> int:
    """argparse type: an interval ("1 hour", "90 seconds") in whole seconds."""
    milliseconds = int(parse_trigger(text).split()[0])
    if milliseconds % 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: use whole seconds")
    return milliseconds // 1000


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number >= 1")
    return value


def parse_bool(text: str) -> bool:
    """argparse type: true/false (also 1/0, yes/no)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: use true or false")


def trigger_kwargs(trigger: str, available_now: bool) -> dict[str, Any]:
    """The keyword arguments for DataStreamWriter.trigger()."""
    return {"availableNow": True} if available_now else {"processingTime": trigger}


def add_master_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=None,
                        help="Spark master, e.g. spark://127.0.0.1:7077 (make cluster-up's); default $SPARK_MASTER, "
                             "else local[*]. On a cluster the job ships its Python modules and the Kafka/Delta jars "
                             "to the executors itself. Under spark-submit, spark-submit's own --master applies")


def add_drain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--drain-on-stop", action="store_true",
                        help="on Ctrl-C/SIGTERM, after the running batch, land what the input holds now before "
                             "stopping (the pipeline runner stops the layers this way, in order)")
    parser.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT_S,
                        help="longest time --drain-on-stop may take (default %(default)s s)")
