"""Stage a copy of the project for mutmut (make mutants): the modules the tests import as top-level names
(ingestion/*, spark/jobs/*) copied into src/, so the names mutmut derives from file paths are the names the tests
import; tests/ and the rest of the project copied alongside, unchanged.

Usage:
    python tests/mutation/stage.py data/mutants    # then: cd data/mutants && mutmut run
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_FOLDERS = ["ingestion", "spark/jobs"]  # on the tests' pythonpath (pyproject.toml)
COPIED = ["tests", "infra", "bench", "spark/conf", "ingestion/recordings"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")

# The pure core and the unit tests that cover it (see tests/mutation/survivors.md for what is left and why).
MUTMUT_CONFIG = """
[tool.mutmut]
paths_to_mutate = {paths}
tests_dir = {tests}
also_copy = ["src/", "tests/", "infra/", "bench/", "spark/", "ingestion/"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]
"""


def stage(target: Path, paths: list[str], tests: list[str]) -> None:
    if target.exists():
        shutil.rmtree(target)
    (target / "src").mkdir(parents=True)
    for folder in MODULE_FOLDERS:
        for item in (REPO_ROOT / folder).iterdir():
            if item.suffix == ".py":
                shutil.copy2(item, target / "src" / item.name)
            elif item.is_dir() and (item / "__init__.py").exists():
                shutil.copytree(item, target / "src" / item.name, ignore=IGNORED)
    for name in COPIED:
        shutil.copytree(REPO_ROOT / name, target / name, ignore=IGNORED)
    for folder in MODULE_FOLDERS:  # scripts the tests run by path stay where they are
        for item in (REPO_ROOT / folder).glob("*.py"):
            (target / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, target / folder / item.name)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    pyproject = pyproject.replace('pythonpath = [".", "ingestion", "spark/jobs"]', 'pythonpath = ["src", "."]')
    pyproject += MUTMUT_CONFIG.format(paths=[f"src/{p}" for p in paths], tests=tests).replace("'", '"')
    (target / "pyproject.toml").write_text(pyproject)


if __name__ == "__main__":
    from mutation_targets import PATHS, TESTS  # noqa: E402

    stage(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "data" / "mutants", PATHS, TESTS)
