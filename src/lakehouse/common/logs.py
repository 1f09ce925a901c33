"""The log format of the project's commands (jobs, audits, the chart): one line per event, with time, level and
logger; LOG_LEVEL sets the level."""

from __future__ import annotations

import logging
import os


def configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
