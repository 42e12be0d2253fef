"""Backups of experiment files: ``<exp>/.backups/<UTC stamp>/<path relative to the experiment>``.

Every derived file a regeneration overwrites, and a checkpoint a repair migrates, is kept here
first (a copy, or inside a write batch a hard link of the replaced inode: :mod:`experiment.durable`);
a stale directory is moved here instead of being deleted. Backups are never overwritten.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from experiment.durable import current_batch, keep_backup, link_unique
from experiment.jsonio import file_mode_for, temp_file_beside
from experiment.layout import ExperimentLayout


def backup_stamp() -> str:
    """A UTC stamp naming one backup generation (``20260120T061307Z``)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


_made_dirs: set[Path] = set()


@functools.lru_cache(maxsize=16)
def _layout(experiment_dir: Path) -> ExperimentLayout:
    """The experiment's layout, resolved once per process (a pass backs up thousands of files)."""
    return ExperimentLayout(experiment_dir)


def _ensure_dir(path: Path) -> None:
    """mkdir -p with one ``mkdir`` per new directory: a pass backs up thousands of files into a
    mirror of the run tree, and each directory made (parents too) is remembered for the process."""
    if path in _made_dirs:
        return
    try:
        os.mkdir(path)
    except FileNotFoundError:
        _ensure_dir(path.parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
    except FileExistsError:
        pass
    _made_dirs.add(path)


def relative_to_experiment(root: Path, path: Path) -> Path:
    """``path`` relative to the experiment (paths come from the layout, already absolute)."""
    try:
        return Path(path).relative_to(root)
    except ValueError:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve())
        except ValueError:
            return Path(Path(path).name)


def backup_file(experiment_dir: Path, path: Path, stamp: str) -> Path | None:
    """Keep ``path`` as ``<exp>/.backups/<stamp>/<relative path>`` before it is overwritten.

    Never over an existing backup: a second backup of the same file under the same stamp gets
    ``.1``, ``.2``, ... Returns the backup path (None: nothing to back up). Inside a
    :func:`~experiment.durable.write_batch` the backup is made at the batch's commit, as a hard
    link when the batch replaces the file (see that module), and the path returned is the name it
    will get; outside a batch it is a durable copy made now.
    """
    path = Path(path)
    if not path.is_file():
        return None
    layout = _layout(Path(experiment_dir))
    target = layout.backups_dir / stamp / relative_to_experiment(layout.root, path)
    _ensure_dir(target.parent)
    batch = current_batch()
    if batch is not None:
        batch.backup_later(os.fspath(path), os.fspath(target))
        return target
    kept = keep_backup(os.fspath(path), os.fspath(target), linked=False)
    return Path(kept) if kept is not None else None


def copy_unique(path: str, target: str) -> str:
    """Copy ``path`` to ``target`` (or ``target.1``, ...: never over an existing file), durably and
    with its permission bits (the backup is as readable as the file it keeps); returns the name.

    The copy is written to a temp file, fsynced, then *linked* into place, so a crash never leaves
    a half-written backup under a backup's name."""
    fd, tmp = temp_file_beside(Path(target), file_mode_for(Path(path)))
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        return link_unique(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
