"""The project's shared defaults, in one place: the repository's folders, Kafka's address and topic, and where each
layer and its checkpoint live.

Standard library only, and nothing is read but the environment: the local broker's script imports this before any
virtualenv exists (`make broker-up`).
"""

from __future__ import annotations

from pathlib import Path

# The checkout this package is installed from (editable, `make setup`): data/, .cache/, spark/conf/, infra/ live there.
REPO_ROOT = Path(__file__).resolve().parents[2]
