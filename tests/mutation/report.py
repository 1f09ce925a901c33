"""Summarise a `mutmut run` (make mutants): mutants, killed, survived, per module, and each survivor either with the
reason it was accepted (tests/mutation/survivors.md) or marked UNEXPLAINED.

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


def accepted_survivors(text: str) -> dict[str, str]:
    """survivors.md lines "- `module.x_function__mutmut_N`: reason" -> {mutant: reason}."""
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^- `([^`]+)`: (.+)$", text, re.MULTILINE)}


def results(mutants_dir: Path) -> dict[str, str]:
    """{mutant name: status} from mutmut's .meta files."""
    out = {}
    for meta in sorted(mutants_dir.glob("mutants/**/*.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = STATUS.get(code, "suspicious")
    return out


def main(argv: list[str]) -> int:
    mutants_dir = Path(argv[1] if len(argv) > 1 else "data/mutants")
    found = results(mutants_dir)
    if not found:
        print(f"no mutmut results under {mutants_dir}/mutants: run `make mutants` first", file=sys.stderr)
        return 2
    accepted = accepted_survivors((HERE / "survivors.md").read_text())
    by_module: dict[str, Counter] = defaultdict(Counter)
    for name, status in found.items():
        by_module[name.split(".x")[0]][status] += 1
    total = Counter(found.values())
    print(f"{len(found)} mutants: " + ", ".join(f"{n} {s}" for s, n in total.most_common()))
    for module, counts in sorted(by_module.items()):
        print(f"  {module}: " + ", ".join(f"{n} {s}" for s, n in counts.most_common()))
    unexplained = 0
    for name in sorted(n for n, s in found.items() if s in ("survived", "timeout", "suspicious")):
        reason = accepted.get(name)
        unexplained += reason is None
        print(f"  {name}: {found[name]}: {reason or 'UNEXPLAINED (mutmut show ' + name + ')'}")
    score = total["killed"] / max(1, total["killed"] + total["survived"])
    print(f"score {score:.1%} (killed / (killed + survived)); {unexplained} unexplained survivor(s)")
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
