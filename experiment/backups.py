"""Backups of experiment files: ``<exp>/.backups/<UTC stamp>/<path relative to the experiment>``.

Every derived file a regeneration overwrites, and a checkpoint a repair migrates, is copied here
first; a stale directory is moved here instead of being deleted. Backups are never overwritten.
"""

from __future__ import annotations

import functools
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from experiment.durable import current_batch, link_unique
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
    """mkdir -p, once per process per directory (a backup pass creates thousands of files)."""
    if path not in _made_dirs:
        path.mkdir(parents=True, exist_ok=True)
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
    """Copy ``path`` to ``<exp>/.backups/<stamp>/<relative path>`` before it is overwritten.

    The copy is written to a temp file and *linked* into place, which fails instead of replacing
    an existing backup, so an older backup is never overwritten (a second backup of the same file
    under the same stamp gets ``.1``, ``.2``, ...). Returns the backup path (None: nothing to back up;
    inside a :func:`~experiment.durable.write_batch` the name it will get at the batch's commit).
    """
    path = Path(path)
    if not path.is_file():
        return None
    layout = _layout(Path(experiment_dir))
    target = layout.backups_dir / stamp / relative_to_experiment(layout.root, path)
    _ensure_dir(target.parent)
    mode = file_mode_for(path)  # the backup is as readable as the file it keeps
    try:
        fd, tmp = temp_file_beside(target, mode)
    except FileNotFoundError:  # removed since we created it
        _made_dirs.discard(target.parent)
        _ensure_dir(target.parent)
        fd, tmp = temp_file_beside(target, mode)
    batch = current_batch()
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            shutil.copyfileobj(src, out)
            if batch is None:
                out.flush()
                os.fsync(out.fileno())
        if batch is not None:  # linked at the batch's commit, after one sync (experiment.durable)
            batch.link_later(tmp, os.fspath(target))
            tmp = ""
            return target
        return Path(link_unique(tmp, os.fspath(target)))
    finally:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
