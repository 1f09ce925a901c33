"""This machine's processes as Linux's /proc shows them: the pids, a process's command line, its state, and the tree
of parents and children. Standard library only (the local broker's script uses it before any virtualenv exists)."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def pids() -> list[int]:
    """Every process id /proc lists now."""
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...] (utime is [11]); None when the
    process is gone."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_argv(pid: int) -> list[str] | None:
    """A live process's command line as a list; None when it is gone (or a zombie, whose cmdline is empty)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1] or None


def command_line(pid: int) -> str | None:
    """A process's command line as one text, each argument followed by a space ("sleep 313 "); None when it is gone."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def is_running(pid: int) -> bool:
    """pid is a live process: /proc lists it and it is not a zombie (dead, waiting to be reaped)."""
    fields = stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def children_of() -> dict[int, list[int]]:
    """Every live process's children, {parent pid: [child pids]}, from each process's parent in /proc/<pid>/stat."""
    tree: dict[int, list[int]] = {}
    for pid in pids():
        fields = stat_fields(pid)
        try:
            parent = int(fields[1]) if fields else None
        except (IndexError, ValueError):
            parent = None
        if parent is not None:
            tree.setdefault(parent, []).append(pid)
    return tree


def descendants(pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    """pid's descendants (its children, theirs, ...) in `tree` (children_of()), or in /proc now."""
    tree = children_of() if tree is None else tree
    found, todo = [], list(tree.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found
