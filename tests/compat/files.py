"""Snapshots of an experiment's files, to tell what a pass wrote and that a no-op pass wrote nothing."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from experiment.jsonio import executable_mode, process_umask

OWN_BOOKKEEPING = ".prefect"
"""Our own state inside the experiment (locks, Prefect results): not an experiment file."""


@dataclass(frozen=True)
class FileState:
    """What a pass may change about one file."""

    digest: str
    mode: int
    inode: int


def snapshot(experiment: Path) -> dict[str, FileState]:
    """Every regular file of the experiment (``.prefect/`` aside), by posix relative path."""
    states = {}
    for dirpath, dirnames, filenames in os.walk(experiment):
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) == experiment and d == OWN_BOOKKEEPING)]
        for name in filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            states[path.relative_to(experiment).as_posix()] = FileState(
                digest, stat.S_IMODE(info.st_mode), info.st_ino
            )
    return states


def written_since(before: dict[str, FileState], after: dict[str, FileState]) -> list[str]:
    """Files created or replaced (new inode) or rewritten in place (new content) between snapshots."""
    return sorted(
        path
        for path, state in after.items()
        if path not in before or before[path].inode != state.inode or before[path].digest != state.digest
    )


def umask_mode(path: str = "") -> int:
    """The mode ``open(path, "w")`` gives a new file in this process; a shell script we write is
    executable as well (:func:`experiment.jsonio.executable_mode`)."""
    if path.endswith(".sh"):
        return executable_mode()
    return 0o666 & ~process_umask()


def _expected_mode(before: dict[str, FileState], after: dict[str, FileState], path: str) -> int:
    """A replaced file keeps its mode, a moved one (same inode and content) too, a backup has its
    original's, anything else (including a file of a rerun whose old attempt was archived) is new
    and gets the umask's. (A replaced file's old inode lives on under ``.backups/``, hard-linked
    there by the regeneration's batch: that is its backup, not an archive.)"""
    now = after[path]
    if path in before:
        old = before[path]
        archived = any(
            (s.inode, s.digest) == (old.inode, old.digest)
            for p, s in after.items()
            if p != path and not p.startswith(".backups/")
        )
        if not archived:  # replaced in place; an archived run's file was moved away, this one is new
            return old.mode
    moved = [s.mode for s in before.values() if (s.inode, s.digest) == (now.inode, now.digest)]
    if moved:
        return moved[0]
    parts = path.split("/")
    if parts[0] == ".backups" and len(parts) > 2:
        original = "/".join(parts[2:])
        stem, _, counter = original.rpartition(".")
        for candidate in (original, stem if counter.isdigit() else None):
            if candidate in before:
                return before[candidate].mode
    return umask_mode(path)


def mode_problems(before: dict[str, FileState], after: dict[str, FileState], written: list[str]) -> list[str]:
    """Written files whose mode is not what :func:`_expected_mode` says it must be."""
    problems = []
    for path in written:
        want = _expected_mode(before, after, path)
        if after[path].mode != want:
            problems.append(f"{path}: {oct(after[path].mode)}, expected {oct(want)}")
    return problems
