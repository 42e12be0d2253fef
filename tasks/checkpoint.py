"""Keep ``checkpoint.json`` true at the end of a repair.

Per-run entries are written as each run finishes (``tasks/steps.py`` finalize step, through the
single writer in :mod:`experiment.locks`). At the end, the experiment's own status follows what
is on disk: ``completed`` when every expected run is complete, otherwise it is left as it was.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from experiment.locks import update_checkpoint
from experiment.scan import load_context


def settle_checkpoint(experiment_dir: str, all_complete: bool) -> str | None:
    """Mark the experiment completed in its checkpoint when nothing is left to repair."""
    if not all_complete:
        return None
    context = load_context(Path(experiment_dir))

    def complete(checkpoint) -> None:
        checkpoint.status = "completed"
        checkpoint.experiment_state = "complete"
        checkpoint.pid = None

    return update_checkpoint(context.layout, context.config, complete).status


settle_checkpoint_task = task(name="settle-checkpoint", cache_policy=NO_CACHE)(settle_checkpoint)
