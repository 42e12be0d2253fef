"""What a ``checkpoint.json`` write must look like to ProjectScylla, and whether one is needed at all.

Two rules of :func:`experiment.locks.update_checkpoint`, the single checkpoint writer:

* **No write without a change** (:func:`changes_the_file`). A checkpoint is rewritten only when an
  update changes what the file records. An older file (v2.0, v3.0) is migrated to v3.1 in memory
  on every load; the fields the migration *derives* (``run_states``, ``tier_states``, ...) are not
  recorded in that file, so deriving them again is not a change, and a repair with nothing to do
  leaves the file byte for byte as it was.
* **A written checkpoint is complete** (:func:`fill_states`). Its ``tier_states`` and
  ``subtest_states`` say what ProjectScylla's state machines would say for what is on disk, and
  its ``config_hash`` is computed ProjectScylla's way
  (:meth:`experiment.models.ExperimentConfig.config_hash`), so ProjectScylla resumes it.
"""

from __future__ import annotations

from typing import Any

from experiment.layout import ExperimentLayout
from experiment.models import Checkpoint, ExperimentConfig

_UNRECORDED = frozenset({"version", "last_updated_at", "last_heartbeat"})
"""Keys a save sets by itself: a difference in them alone is not a change."""
DONE_RUN_STATES = frozenset({"run_finalized", "report_written", "checkpointed", "worktree_cleaned", "failed"})
"""Run states after which ProjectScylla's subtest no longer waits for the run (``rate_limited``
runs are retried, so they are not done)."""
TIER_FILES = ("result.json", "best_subtest.json", "report.json")
"""A tier is ``complete`` for ProjectScylla once its result, selection and report are written."""


def changes_the_file(raw: dict[str, Any] | None, before: Checkpoint, after: Checkpoint) -> bool:
    """True when ``after`` differs from ``before`` (the checkpoint as loaded from ``raw``) in a
    field the file records: every field of a v3.1 file, only the file's own keys of an older one."""
    if raw is None:
        return True
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    keys = set(old) | set(new) if raw.get("version") == "3.1" else set(raw)
    return any(old.get(k) != new.get(k) for k in keys - _UNRECORDED)


def _subtest_state(
    runs: dict[str, str], expected: int, layout: ExperimentLayout, tier: str, subtest: str
) -> str:
    """``aggregated`` (every expected run done and the subtest report written), ``runs_complete``
    (every run done), ``runs_in_progress`` (some run recorded) or ``pending``."""
    done = {run for run, state in runs.items() if state in DONE_RUN_STATES}
    if done and all(str(n) in done for n in range(1, expected + 1)):
        report = layout.subtest_file(tier, subtest, "report.json")
        return "aggregated" if report.is_file() else "runs_complete"
    return "runs_in_progress" if runs else "pending"


def fill_states(checkpoint: Checkpoint, layout: ExperimentLayout, config: ExperimentConfig) -> None:
    """Set ``tier_states``, ``subtest_states`` and ``config_hash`` as ProjectScylla would have them.

    A subtest follows its runs (:func:`_subtest_state`); a tier is ``complete`` when all its
    recorded subtests are ``aggregated`` and its files are written where ProjectScylla reads them,
    ``subtests_running`` when any subtest has started, else ``pending``. A state of a tier or
    subtest that has no recorded run is kept as it is.
    """
    for tier, subtests in checkpoint.run_states.items():
        states = checkpoint.subtest_states.setdefault(tier, {})
        for subtest, runs in subtests.items():
            states[subtest] = _subtest_state(runs, config.runs_per_subtest, layout, tier, subtest)
        if states and all(s == "aggregated" for s in states.values()):
            written = all(layout.tier_file(tier, name).is_file() for name in TIER_FILES)
            checkpoint.tier_states[tier] = "complete" if written else "subtests_complete"
        elif any(s != "pending" for s in states.values()):
            checkpoint.tier_states[tier] = "subtests_running"
        else:
            checkpoint.tier_states.setdefault(tier, "pending")
    checkpoint.config_hash = config.config_hash()
    # ProjectScylla's checkpoint has these as strings ("" when unknown): null is rejected.
    checkpoint.started_at = checkpoint.started_at or ""
    checkpoint.last_heartbeat = checkpoint.last_heartbeat or checkpoint.last_updated_at or ""
    checkpoint.__pydantic_fields_set__.update(
        {"tier_states", "subtest_states", "config_hash", "started_at", "last_heartbeat"}
    )
