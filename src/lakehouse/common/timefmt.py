"""Small pure time helpers: a whole UTC minute from the command line, and a UTC timestamp literal for Spark SQL.

Standard library only: the chart and the batch recompute use them, and the chart imports no Spark module.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone


def parse_minute(text: str) -> datetime:
    """'2026-01-01T00:00', '2026-01-01 00:00:00' or with a Z / +00:00 suffix -> an aware UTC datetime on a whole
    minute. A time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; use e.g. 2026-01-01T00:00 (UTC)") from None
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    if moment.second or moment.microsecond:
        raise argparse.ArgumentTypeError(f"{text!r}: bars are whole minutes; give a time on a minute (seconds 00)")
    return moment


def spark_timestamp(moment: datetime) -> str:
    """A UTC timestamp literal for Spark SQL (the session time zone is UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
