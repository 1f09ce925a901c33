"""The docs check: what README.md, BENCHMARKS.md and docs/*.md tell a user works as written.

- every `make <target>` in their code (fenced blocks and inline code) is a target of the Makefile;
- every `--flag` written after a script (`python spark/jobs/x.py --flag`, also after spark-submit's own flags), and
  every flag in a table marked `<!-- docs-check: flags <script> -->`, is in that script's `--help` (run once per
  script and subcommand with this checkout's package, cached);
- every relative link and image resolves to a file, and every `#anchor` to a heading of its page (GitHub's slugs);
- README.md is at most 15,000 bytes;
- no project-history words: "seed" as the project's origin (the fake Kraken's `--seed` flag is fine), "issue N";
- every ```python block carries a marker: `<!-- docs-check: lake -->` blocks RUN, each in its own process, against a
  small Bronze, Silver and Gold written with the project's own schemas (tests/docs_lake.py) in a temporary folder,
  with that folder as the working directory, so `data/gold/ohlcv_1m` resolves as it does in a user's checkout;
  `<!-- docs-check: compile -->` blocks (the Spark snippets: a unit test starts no JVM) are only compiled.

Each check is a pure function returning the problems it found; the last tests feed each one a broken document to
show it can fail.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = [README, REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_BYTES = 15_000
MARKER = re.compile(r"<!--\s*docs-check:\s*(.+?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
SNIPPET_TIMEOUT_S = 60


# ---------------------------------------------------------------------------------------------------------------------
# Reading a Markdown page


@dataclass(frozen=True)
class Block:
    page: str
    line: int           # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # the docs-check comment on the line(s) just before the fence


@dataclass(frozen=True)
class Page:
    name: str
    prose: list[tuple[int, str]]  # (line number, text) outside fenced blocks
    blocks: list[Block]


def parse(name: str, text: str) -> Page:
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        before = [line for _, line in prose[-2:] if line.strip()]
        marker = next((MARKER.search(line)[1] for line in reversed(before) if MARKER.search(line)), None)
        blocks.append(Block(name, start + 1, m[1], "\n".join(body), marker))
    return Page(name, prose, blocks)


def read_pages() -> list[Page]:
    return [parse(str(path.relative_to(REPO)), path.read_text(encoding="utf-8")) for path in DOCS]


def inline_code(line: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", line)


def code_lines(page: Page) -> list[tuple[int, str]]:
    """Every line of shell-like code on the page: fenced blocks (not Python, JSON, YAML) with backslash
    continuations joined, and inline code spans in the prose."""
    out: list[tuple[int, str]] = []
    for block in page.blocks:
        if block.lang in ("python", "json", "yaml", "promql"):
            continue
        joined, first = "", block.line
        for n, line in enumerate(block.text.splitlines(), start=block.line + 1):
            if not joined:
                first = n
            if line.endswith("\\"):
                joined += line[:-1] + " "
                continue
            out.append((first, joined + line))
            joined = ""
        if joined:
            out.append((first, joined))
    for n, line in page.prose:
        out += [(n, span) for span in inline_code(line)]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# (a) make targets


def makefile_targets(makefile: Path = REPO / "Makefile") -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", makefile.read_text(), flags=re.M))


MAKE_CALL = re.compile(r"(?:^|[\s;&|($])make\s+(?:[A-Z_]+=\S+\s+)*([a-z][a-z-]*)")


def unknown_make_targets(pages: list[Page], targets: set[str]) -> list[str]:
    problems = []
    for page in pages:
        for n, line in code_lines(page):
            for target in MAKE_CALL.findall(line):
                if target not in targets:
                    problems.append(f"{page.name}:{n}: `make {target}` is not a Makefile target")
    return problems


# ---------------------------------------------------------------------------------------------------------------------
# (b) script flags


# Scripts the docs may name before they exist (none today); every other script's flags are checked.
PENDING_SCRIPTS: set[str] = set()
SCRIPT = re.compile(r"(?<![\w/.-])((?:ingestion|spark|infra|bench)/[\w/]+\.py)\b")
FLAG = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*)")


@functools.lru_cache(maxsize=None)
def help_text(script: str, sub: str | None = None) -> str:
    """`python <script> [sub] --help` with this checkout's package; cached per script and subcommand."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    argv = [sys.executable, script, *([sub] if sub else []), "--help"]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}"
    return result.stdout


def script_flags(script: str, sub: str | None = None) -> set[str]:
    flags = set(FLAG.findall(help_text(script)))
    if sub:
        flags |= set(FLAG.findall(help_text(script, sub)))
    return flags


def subcommands(script: str) -> set[str]:
    return {name for group in re.findall(r"\{([\w,-]+)\}", help_text(script)) for name in group.split(",")}


def flag_uses(line: str) -> list[tuple[str, str | None, list[str]]]:
    """(script, subcommand or None, flags written after it) for each repository script a code line runs; the flags
    end at a shell comment, a separator or the next script."""
    found = []
    matches = list(SCRIPT.finditer(line))
    for k, m in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(line)
        rest = re.split(r"\s#|&&|\|\||;|\|", line[m.end():end])[0]
        if not (REPO / m[1]).is_file():
            found.append((m[1], None, []))  # reported by unknown_flags unless pending
            continue
        words = rest.split()
        sub = words[0] if words and not words[0].startswith("-") and words[0] in subcommands(m[1]) else None
        found.append((m[1], sub, FLAG.findall(rest)))
    return found


def marked_flag_tables(page: Page) -> list[tuple[int, str, list[str]]]:
    """(line, script, flags) for each table right after a `<!-- docs-check: flags <script> -->` comment."""
    out = []
    prose = page.prose
    for idx, (n, line) in enumerate(prose):
        m = MARKER.search(line)
        if not (m and m[1].startswith("flags ")):
            continue
        script, flags = m[1].split(None, 1)[1], []
        for _, row in prose[idx + 1:]:
            if not row.startswith("|"):
                if flags or row.strip():
                    break
                continue
            flags += FLAG.findall(row)
        out.append((n, script, flags))
    return out


def unknown_flags(pages: list[Page]) -> list[str]:
    problems = []
    for page in pages:
        for n, line in code_lines(page):
            for script, sub, flags in flag_uses(line):
                if not (REPO / script).is_file():
                    if script not in PENDING_SCRIPTS:
                        problems.append(f"{page.name}:{n}: no script {script}")
                    continue
                known = script_flags(script, sub)
                problems += [f"{page.name}:{n}: {script} has no {flag}" for flag in flags if flag not in known]
        for n, script, flags in marked_flag_tables(page):
            if not flags:
                problems.append(f"{page.name}:{n}: the flags table for {script} lists no flag")
            if not (REPO / script).is_file():
                problems.append(f"{page.name}:{n}: no script {script}")
                continue
            known = script_flags(script)
            problems += [f"{page.name}:{n}: {script} has no {flag} (flags table)" for flag in flags
                         if flag not in known]
    return problems


# ---------------------------------------------------------------------------------------------------------------------
# (c) links and anchors


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*_]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Page) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in page.prose:
        m = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m[1])
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(pages: list[Page], root: Path = REPO) -> list[str]:
    by_name = {page.name: page for page in pages}
    problems = []
    for page in pages:
        folder = (root / page.name).parent
        for n, line in page.prose:
            line = re.sub(r"`[^`\n]*`", "", line)  # a link inside inline code is code, not a link
            for target in LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                path_part, _, anchor = target.partition("#")
                if not path_part:  # an anchor on this page
                    if anchor not in anchors(page):
                        problems.append(f"{page.name}:{n}: link to {target}: no heading #{anchor} in {page.name}")
                    continue
                path = (folder / path_part).resolve()
                if not path.exists():
                    problems.append(f"{page.name}:{n}: link to {target}: no such file")
                    continue
                if anchor and path.suffix == ".md":
                    name = str(path.relative_to(root.resolve()))
                    linked = by_name.get(name) or parse(name, path.read_text(encoding="utf-8"))
                    if anchor not in anchors(linked):
                        problems.append(f"{page.name}:{n}: link to {target}: no heading #{anchor} in {name}")
    return problems


# ---------------------------------------------------------------------------------------------------------------------
# (e) project-history words


HISTORY = [(re.compile(r"(?<!--)\bseed\w*", re.I), "the project's origin ('seed')"),
           (re.compile(r"\bissues?\s*#?\d+", re.I), "an issue number")]


def history_words(pages: list[Page]) -> list[str]:
    problems = []
    for page in pages:
        lines = [*page.prose, *((b.line, line) for b in page.blocks for line in b.text.splitlines())]
        for n, line in lines:
            for pattern, what in HISTORY:
                problems += [f"{page.name}:{n}: {what}: {m[0]!r}" for m in pattern.finditer(line)]
    return problems


# ---------------------------------------------------------------------------------------------------------------------
# (f) Python snippets


def python_blocks(pages: list[Page]) -> list[Block]:
    return [block for page in pages for block in page.blocks if block.lang == "python"]


def unmarked_python(pages: list[Page]) -> list[str]:
    return [f"{b.page}:{b.line}: a python block without <!-- docs-check: lake --> or <!-- docs-check: compile -->"
            for b in python_blocks(pages) if b.marker not in ("lake", "compile")]


PAGES = read_pages()
LAKE_SNIPPETS = [b for b in python_blocks(PAGES) if b.marker == "lake"]
COMPILE_SNIPPETS = [b for b in python_blocks(PAGES) if b.marker == "compile"]


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.docs_lake import write_lake

    root = tmp_path_factory.mktemp("docs-lake")
    write_lake(root)
    return root


# ---------------------------------------------------------------------------------------------------------------------
# The checks on the real docs


def test_readme_is_at_most_15_000_bytes():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (at most {README_MAX_BYTES})"


def test_every_make_target_exists():
    assert unknown_make_targets(PAGES, makefile_targets()) == []


def test_every_script_flag_exists():
    assert unknown_flags(PAGES) == []


def test_every_relative_link_resolves():
    assert broken_links(PAGES) == []


def test_no_project_history_words():
    assert history_words(PAGES) == []


def test_every_python_snippet_is_checked():
    assert unmarked_python(PAGES) == []
    assert LAKE_SNIPPETS, "no runnable snippet found: the markers are gone?"


@pytest.mark.parametrize("block", COMPILE_SNIPPETS, ids=lambda b: f"{b.page}:{b.line}")
def test_spark_snippet_compiles(block: Block):
    compile(block.text, f"{block.page}:{block.line}", "exec")


@pytest.mark.parametrize("block", LAKE_SNIPPETS, ids=lambda b: f"{b.page}:{b.line}")
def test_snippet_runs_against_a_small_lake(block: Block, lake_root: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", block.text], cwd=lake_root, env=env, capture_output=True,
                            text=True, timeout=SNIPPET_TIMEOUT_S)
    assert result.returncode == 0, f"{block.page}:{block.line} exited {result.returncode}:\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), f"{block.page}:{block.line} printed nothing"


# ---------------------------------------------------------------------------------------------------------------------
# Each check can fail: a broken page is caught


BROKEN = """# Title

## A section

Run `make no-such-target`, then:

```bash
python spark/jobs/kafka_to_bronze_trades.py --bootstrap localhost:19092 --no-such-flag
python infra/cluster.py status --json --bogus
python bench/no_such_bench.py --quick
```

<!-- docs-check: flags ingestion/kraken_trades_ws.py -->
| flag | what |
|---|---|
| `--pair` | ok |
| `--not-a-producer-flag` | wrong |

See [a dead link](docs/nothing.md), [a dead anchor](#no-such-section) and [a good one](#a-section).
As the seed README said, issue 27 asks for it; `--seed 7` is fine.

```python
print("unmarked")
```
"""


def test_the_checks_catch_a_broken_page():
    page = parse("BROKEN.md", BROKEN)
    assert unknown_make_targets([page], makefile_targets()) == [
        "BROKEN.md:5: `make no-such-target` is not a Makefile target"]
    assert unknown_flags([page]) == [
        "BROKEN.md:8: spark/jobs/kafka_to_bronze_trades.py has no --no-such-flag",
        "BROKEN.md:9: infra/cluster.py has no --bogus",
        "BROKEN.md:10: no script bench/no_such_bench.py",
        "BROKEN.md:13: ingestion/kraken_trades_ws.py has no --not-a-producer-flag (flags table)"]
    assert broken_links([page]) == ["BROKEN.md:19: link to docs/nothing.md: no such file",
                                    "BROKEN.md:19: link to #no-such-section: no heading #no-such-section in BROKEN.md"]
    assert history_words([page]) == ["BROKEN.md:20: the project's origin ('seed'): 'seed'",
                                     "BROKEN.md:20: an issue number: 'issue 27'"]
    assert unmarked_python([page]) == [
        "BROKEN.md:22: a python block without <!-- docs-check: lake --> or <!-- docs-check: compile -->"]


def test_slugs_follow_github():
    assert slug("Watch it: make status, the page, metrics") == "watch-it-make-status-the-page-metrics"
    assert slug("Silver + Gold batch against a bare Delta commit") == "silver--gold-batch-against-a-bare-delta-commit"
    assert slug("Gaps filled from Kraken's REST trades") == "gaps-filled-from-krakens-rest-trades"
    assert slug("3) Kafka → **Bronze** (raw audit trail)") == "3-kafka--bronze-raw-audit-trail"
