"""``checkpoint.json`` from the run dirs: one run's outcome applied, or the whole file rebuilt."""

from __future__ import annotations

from pathlib import Path

from experiment.backups import backup_stamp
from experiment.jsonio import load_model
from experiment.layout import ExperimentLayout, RunKey
from experiment.locks import update_checkpoint
from experiment.models import Checkpoint, ExperimentConfig, RunOutcome
from experiment.regenerate.files import read_dict
from experiment.status import RunStatus, classify_run

_FINAL_RUN_STATES = {"run_finalized", "report_written", "checkpointed", "worktree_cleaned"}


def apply_to_checkpoint(checkpoint: Checkpoint, key: RunKey, outcome: RunOutcome | None) -> None:
    """Record one run's on-disk outcome; a final run state is never moved backwards."""
    if outcome is None:
        return
    current = checkpoint.run_states.get(key.tier, {}).get(key.subtest, {}).get(str(key.run_number))
    state = None
    if outcome in ("passed", "failed") and current in _FINAL_RUN_STATES:
        state = current
    checkpoint.mark_run(key.tier, key.subtest, key.run_number, outcome, run_state=state)


def rebuild_checkpoint(experiment_dir: Path, *, stamp: str | None = None) -> Checkpoint:
    """Rebuild ``checkpoint.json`` from the run dirs on disk, after backing up the old one.

    For every run dir of the experiment's tiers: a readable ``run_result.json`` gives passed or
    failed (``judge_passed``); an agent that finished without a result gives ``agent_complete``;
    a failed agent is removed from ``completed_runs`` (run state ``failed``); a partial one is
    forgotten (it will start over). Runs without a dir, unknown fields and the other states are
    kept. ``experiment_dir`` is set to the current location. Saved atomically.
    """
    stamp = stamp or backup_stamp()
    layout = ExperimentLayout(experiment_dir)
    config = load_model(layout.config_path, ExperimentConfig)

    def rebuild(checkpoint: Checkpoint) -> None:
        for tier in config.tiers_to_run:
            for subtest in layout.recorded_subtests(tier):
                for number in layout.recorded_run_numbers(tier, subtest):
                    _rebuild_entry(checkpoint, layout, RunKey(tier, subtest, number))
        checkpoint.experiment_dir = str(layout.root)
        checkpoint.__pydantic_fields_set__.update({"completed_runs", "run_states", "experiment_dir"})

    # Through the single checkpoint writer: a running repair's entries are never overwritten
    # with a stale copy (an unreadable checkpoint is set aside, not lost), the old file is backed
    # up under ``stamp`` first, and an unchanged checkpoint is not rewritten at all.
    return update_checkpoint(layout, config, rebuild, backup_stamp=stamp)


def _rebuild_entry(checkpoint: Checkpoint, layout: ExperimentLayout, key: RunKey) -> None:
    """Bring one run's checkpoint entry in line with its dir (see :func:`rebuild_checkpoint`)."""
    paths = layout.run_paths(key)
    data = read_dict(paths.run_result)
    if data is not None and isinstance(data.get("judge_passed"), bool):
        apply_to_checkpoint(checkpoint, key, "passed" if data["judge_passed"] else "failed")
        return
    status = classify_run(paths.run_dir).status
    if status in (RunStatus.RESULTS, RunStatus.COMPLETED):
        apply_to_checkpoint(checkpoint, key, "agent_complete")
    elif status is RunStatus.FAILED:
        checkpoint.unmark_run(key.tier, key.subtest, key.run_number)
        checkpoint.run_states.setdefault(key.tier, {}).setdefault(key.subtest, {})[str(key.run_number)] = (
            "failed"
        )
    elif status is RunStatus.PARTIAL:
        checkpoint.unmark_run(key.tier, key.subtest, key.run_number)
