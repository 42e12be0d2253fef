"""Putting back a run whose new attempt was prepared but whose agent never started (Ctrl+C).

A repair holds the run's agent slot from before the archive to the agent's end and checks the
stop flag first, so a stop normally finds the run untouched. The one window left is the few
hundred ms between the archive and the agent's start: if the stop lands there, the fresh run dir
(worktree, prompt files, no agent output) is removed and the archived attempt moved back, so
the run has the status and files it had before and ``.failed/`` holds no attempt that never ran.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from experiment.layout import ExperimentLayout, RunKey
from operations.workspace import remove_worktree

log = logging.getLogger(__name__)


def agent_started(run_dir: Path) -> bool:
    """True once the agent step wrote its command log (it does so just before spawning)."""
    return (Path(run_dir) / "agent" / "command_log.json").exists()


def put_back_unstarted(
    layout: ExperimentLayout, key: RunKey, base_repo: Path, archived_to: str | Path | None
) -> bool:
    """Undo the archive and workspace of ``key`` if its agent never started; True if undone."""
    run_dir = layout.run_dir(key)
    if agent_started(run_dir):
        return False
    if run_dir.exists():
        remove_worktree(base_repo, run_dir / "workspace", key.branch)
        shutil.rmtree(run_dir, ignore_errors=True)
    if archived_to is not None and Path(archived_to).exists() and not run_dir.exists():
        os.rename(archived_to, run_dir)
    log.info("Interrupted before its agent started: %s put back as it was", key.label)
    return True
