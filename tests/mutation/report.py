"""Summarise a `mutmut run` (make mutants): mutants, killed, survived, per module, and each survivor either with the
reason it may live (tests/mutation/survivors/<module>.md, e.g. lakehouse.producer.records.md) or marked UNEXPLAINED.
A mutant no unit test reaches ("no tests") needs a reason as much as a survivor does: its function is listed whole
(I/O, covered by integration tests) or it is UNEXPLAINED. An accepted name that matches no mutant any more (a renamed
module or function) is listed as stale.

Usage:
    python tests/mutation/report.py data/mutants     # exit 1 when a survivor is unexplained
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def accepted(text: str) -> dict[str, str]:
    """Lines "- `module.x_function__mutmut_N`: reason" (one mutant) or "- `module.x_function`: reason" (every mutant
    of the function) -> {name: reason}."""
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^- `([^`]+)`: (.+)$", text, re.MULTILINE)}


def reason_for(mutant: str, reasons: dict[str, str]) -> str | None:
    """The accepted reason for one mutant: its own line, else its whole function's line, else None."""
    return reasons.get(mutant) or reasons.get(mutant.rsplit("__mutmut_", 1)[0])


def results(mutants_dir: Path) -> dict[str, str]:
    """{mutant name: status} from mutmut's .meta files."""
    out = {}
    for meta in sorted(mutants_dir.glob("mutants/**/*.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = STATUS.get(code, "suspicious")
    return out


def stale_names(reasons: dict[str, str], found: dict[str, str]) -> list[str]:
    """Accepted names (a mutant, or a whole function) that match no mutant of this run: the module, function or
    mutant was renamed or removed, so the line no longer explains anything."""
    functions = {name.rsplit("__mutmut_", 1)[0] for name in found}
    return sorted(name for name in reasons if name not in found and name not in functions)


def main(argv: list[str]) -> int:
    mutants_dir = Path(argv[1] if len(argv) > 1 else "data/mutants")
    found = results(mutants_dir)
    if not found:
        print(f"no mutmut results under {mutants_dir}/mutants: run `make mutants` first", file=sys.stderr)
        return 2
    reasons: dict[str, str] = {}
    for listing in sorted((HERE / "survivors").glob("*.md")):  # one file per module: <module>.md
        reasons.update(accepted(listing.read_text()))
    by_module: dict[str, Counter] = defaultdict(Counter)
    for name, status in found.items():
        by_module[name.split(".x")[0]][status] += 1
    total = Counter(found.values())
    print(f"{len(found)} mutants: " + ", ".join(f"{n} {s}" for s, n in total.most_common()))
    for module, counts in sorted(by_module.items()):
        print(f"  {module}: " + ", ".join(f"{n} {s}" for s, n in counts.most_common()))
    unexplained = 0
    for name in sorted(n for n, s in found.items() if s in ("survived", "no tests", "timeout", "suspicious")):
        reason = reason_for(name, reasons)
        unexplained += reason is None
        print(f"  {name}: {found[name]}: {reason or 'UNEXPLAINED (mutmut show ' + name + ')'}")
    for name in stale_names(reasons, found):
        print(f"  stale: {name} is listed in tests/mutation/survivors/ but matches no mutant (renamed? removed?)")
    score = total["killed"] / max(1, total["killed"] + total["survived"] + total["no tests"])
    print(f"score {score:.1%} (killed / (killed + survived + no tests)); {unexplained} unexplained mutant(s)")
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
