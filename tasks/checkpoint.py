"""Keep ``checkpoint.json`` true at the end of a repair: derived from the disk, never stale.

Per-run entries are written as each run finishes (``tasks/steps.py`` finalize step, through the
single writer in :mod:`experiment.locks`). A crash can fall between a run's ``run_result.json``
and its checkpoint entry; the resumed repair then sees the run as completed and never finalizes
it again. So at the end, every completed run the scan found is reconciled with the checkpoint
(its entry added, or an ``agent_complete`` entry promoted, from ``run_result.json``), and the
experiment's own status follows the disk: ``completed`` when every expected run is complete,
otherwise it is left as it was. Entries are only added or promoted, never dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from experiment.layout import RunKey
from experiment.locks import update_checkpoint
from experiment.models import Checkpoint, RunOutcome
from experiment.regenerate import apply_to_checkpoint
from experiment.scan import ScanReport, load_context
from experiment.status import RunStatus


def _outcome_on_disk(run_result: Path) -> RunOutcome | None:
    """passed/failed from a run's ``run_result.json`` (None: unreadable, leave the entry alone)."""
    try:
        passed = json.loads(run_result.read_text(encoding="utf-8")).get("judge_passed")
    except (OSError, ValueError, AttributeError):
        return None
    return ("passed" if passed else "failed") if isinstance(passed, bool) else None


def settle_checkpoint(
    experiment_dir: str, all_complete: bool, completed_runs: list[str] | None = None
) -> str | None:
    """Reconcile the completed runs' entries and, when nothing is left, mark the experiment done.

    ``completed_runs`` are run labels (``T0/00/run_01``) the final scan classified completed;
    only those missing from ``completed_runs`` or recorded as ``agent_complete`` are read.
    Returns the checkpoint's status, or None when nothing had to be written.
    """
    context = load_context(Path(experiment_dir))
    keys = [RunKey.parse(label) for label in completed_runs or ()]

    def stale(checkpoint: Checkpoint) -> list[RunKey]:
        recorded = checkpoint.completed_runs
        return [
            k
            for k in keys
            if recorded.get(k.tier, {}).get(k.subtest, {}).get(str(k.run_number)) not in ("passed", "failed")
        ]

    def settle(checkpoint: Checkpoint) -> None:
        for key in stale(checkpoint):
            apply_to_checkpoint(
                checkpoint, key, _outcome_on_disk(context.layout.run_dir(key) / "run_result.json")
            )
        if all_complete:
            if checkpoint.status != "completed":  # a completed one keeps its pid: nothing to rewrite
                checkpoint.status = "completed"
                checkpoint.pid = None
            checkpoint.experiment_state = "complete"

    if not all_complete and keys:
        path = context.layout.checkpoint_path
        try:  # the common case: nothing to reconcile, so do not rewrite the file
            if path.exists() and not stale(Checkpoint.load(path)):
                return None
        except Exception:  # noqa: BLE001 - unreadable: update_checkpoint sets it aside
            pass
    elif not all_complete:
        return None
    return update_checkpoint(context.layout, context.config, settle).status


settle_checkpoint_task = task(name="settle-checkpoint", cache_policy=NO_CACHE)(settle_checkpoint)


def settle_from_scan(experiment_dir: str, after: ScanReport, whole_experiment: bool) -> str | None:
    """Settle the checkpoint from the repair's final scan.

    The experiment is marked done only when the scan covered it whole (no tier, subtest or run
    filter) and every expected run is complete; a filtered scan cannot see the rest.
    """
    nothing_left = after.counts["completed"] == after.total_expected
    completed = [e.run for e in after.entries if e.status is RunStatus.COMPLETED]
    result: str | None = settle_checkpoint_task(experiment_dir, whole_experiment and nothing_left, completed)
    return result
