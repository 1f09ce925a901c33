"""Stage a copy of the project for mutmut (make mutants): the project's folders copied into the target folder, and
mutmut's settings added to the copy's pyproject.toml: mutate the pure core (mutation_targets.PATHS, under src/) and
run the unit tests that cover it (mutation_targets.TESTS). mutmut names each mutant after the module it lives in, from
its path under src/ (lakehouse.producer.records.x_iso_from_rfc3339__mutmut_2): the name the tests import.

Usage:
    python tests/mutation/stage.py data/mutants    # then: cd data/mutants && mutmut run
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# src/ is what mutmut copies and mutates; the others are copied alongside for the tests (scripts they run by path,
# the demo recording, the Spark log configuration).
COPIED = ["src", "tests", "infra", "bench", "spark", "ingestion"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.egg-info")

MUTMUT_CONFIG = """
[tool.mutmut]
source_paths = ["src"]
only_mutate = {paths}
pytest_add_cli_args_test_selection = {tests}
also_copy = ["infra/", "bench/", "spark/", "ingestion/"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]
"""


def stage(target: Path, paths: list[str], tests: list[str]) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in COPIED:
        shutil.copytree(REPO_ROOT / name, target / name, ignore=IGNORED)
    config = MUTMUT_CONFIG.format(paths=[f"src/{p}" for p in paths], tests=tests).replace("'", '"')
    (target / "pyproject.toml").write_text((REPO_ROOT / "pyproject.toml").read_text() + config)


if __name__ == "__main__":
    from mutation_targets import PATHS, TESTS  # noqa: E402

    stage(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "data" / "mutants", PATHS, TESTS)
