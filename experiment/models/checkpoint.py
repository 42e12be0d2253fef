"""``checkpoint.json``: the v3.1 model (migrating v2.0 and v3.0 on load) and the raw v2.0 shape."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from experiment.errors import FormatError
from experiment.jsonio import atomic_write_json, read_json, validate_model
from experiment.models.base import ScyllaModel, utc_now_iso
from experiment.models.config import ExperimentConfig

RunOutcome = Literal["passed", "failed", "agent_complete"]
"""Values of ``completed_runs``; anything else is rejected."""

CheckpointStatus = Literal["running", "paused_rate_limit", "completed", "failed", "interrupted", "rerunning"]

RUN_STATES: tuple[str, ...] = (
    "pending",
    "dir_structure_created",
    "worktree_created",
    "symlinks_applied",
    "config_committed",
    "baseline_captured",
    "prompt_written",
    "replay_generated",
    "agent_complete",
    "agent_changes_committed",
    "diff_captured",
    "promoted_to_completed",
    "judge_pipeline_run",
    "judge_prompt_built",
    "judge_complete",
    "run_finalized",
    "report_written",
    "checkpointed",
    "worktree_cleaned",
    "failed",
    "rate_limited",
)
"""The v3.1 run states: 19 sequential ones, then the terminal ``failed`` and ``rate_limited``."""

_V30_TO_V31 = {
    "workspace_configured": "config_committed",
    "agent_ready": "replay_generated",
    "judge_ready": "judge_prompt_built",
    "run_complete": "report_written",
}
_OUTCOME_TO_STATE = {
    "passed": "report_written",
    "failed": "report_written",
    "agent_complete": "agent_complete",
}

CompletedRuns = dict[str, dict[str, dict[str, RunOutcome]]]


class _CheckpointFields(ScyllaModel):
    """The fields v2.0 and v3.1 checkpoints share, in file order (each version sets ``version``)."""

    version: str
    """Format version."""
    experiment_id: str = ""
    """Experiment id."""
    experiment_dir: str = ""
    """Absolute experiment dir on the machine that ran it (do not trust)."""
    config_hash: str = ""
    """Hash of the config (never validated by the repair)."""
    completed_runs: CompletedRuns = Field(default_factory=dict)
    """tier -> subtest -> run number (string) -> passed|failed|agent_complete."""
    started_at: str | None = None
    """Experiment start."""
    last_updated_at: str | None = None
    """Last save (set by ``Checkpoint.save``)."""
    status: CheckpointStatus = "running"
    """Experiment status (``rerunning`` for a checkpoint created by a repair)."""
    rate_limit_source: str | None = None
    """``agent`` or ``judge`` while paused on a rate limit."""
    rate_limit_until: str | None = None
    """When the rate-limit pause ends."""
    pause_count: int = 0
    """Rate-limit pauses so far."""
    pid: int | None = None
    """PID of the process that owns the checkpoint."""


class CheckpointV2(_CheckpointFields):
    """A raw v2.0 ``checkpoint.json`` (as in the sample), validated without migration."""

    version: str = "2.0"
    """Format version (``2.0``)."""


def _migrate_checkpoint(data: dict[str, Any]) -> dict[str, Any]:
    """v2.0 / v3.0 -> v3.1 in memory (spec §5.1 "Loading"); the input dict is not modified."""
    version = data.get("version", "1.0")
    if version == "3.1":
        return data
    data = json.loads(json.dumps(data))  # deep copy of plain JSON data
    if version == "2.0":
        run_states: dict[str, dict[str, dict[str, str]]] = {}
        for tier, subtests in (data.get("completed_runs") or {}).items():
            for subtest, runs in subtests.items():
                for run, outcome in runs.items():
                    state = _OUTCOME_TO_STATE.get(outcome, outcome)
                    run_states.setdefault(tier, {}).setdefault(subtest, {})[run] = state
        data["run_states"] = run_states
        data["subtest_states"] = {t: dict.fromkeys(s, "runs_in_progress") for t, s in run_states.items()}
        data["tier_states"] = dict.fromkeys(run_states, "subtests_running")
        data["experiment_state"] = "tiers_running"
        data["last_heartbeat"] = data.get("last_updated_at")
    elif version == "3.0":
        for subtests in (data.get("run_states") or {}).values():
            for runs in subtests.values():
                for run, state in runs.items():
                    runs[run] = _V30_TO_V31.get(state, state)
    else:
        raise ValueError(f"Incompatible checkpoint version {version}")
    data["version"] = "3.1"
    return data


class Checkpoint(_CheckpointFields):
    """``checkpoint.json`` as v3.1; validating a v2.0 or v3.0 dict migrates it in memory first.

    ``completed_runs`` and ``run_states`` use string run numbers (``"1"``) as in the file; the
    methods take ints. Use ``Checkpoint.load(path)`` for one-line errors, ``Checkpoint.from_any``
    for a dict of any supported version, and ``CheckpointV2`` to see a v2.0 file unmigrated.
    """

    version: str = "3.1"
    """Format version; always ``3.1`` after loading."""
    experiment_state: str = "initializing"
    """Experiment state machine state."""
    tier_states: dict[str, str] = Field(default_factory=dict)
    """tier -> tier state."""
    subtest_states: dict[str, dict[str, str]] = Field(default_factory=dict)
    """tier -> subtest -> subtest state."""
    run_states: dict[str, dict[str, dict[str, str]]] = Field(default_factory=dict)
    """tier -> subtest -> run number (string) -> one of ``RUN_STATES``."""
    last_heartbeat: str | None = None
    """Last liveness heartbeat (zombie detection)."""

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return _migrate_checkpoint(data)
        return data

    @classmethod
    def from_any(cls, data: dict[str, Any]) -> Checkpoint:
        """Validate a v2.0, v3.0 or v3.1 dict (migrating to 3.1); other versions raise ValueError."""
        version = data.get("version", "1.0") if isinstance(data, dict) else None
        if version not in {"2.0", "3.0", "3.1"}:
            raise ValueError(f"Incompatible checkpoint version {version}")
        return cls.model_validate(data)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read and migrate ``path``; any problem is a one-line ``FormatError`` naming the file."""
        data = read_json(path)
        version = data.get("version", "1.0") if isinstance(data, dict) else None
        if version not in {"2.0", "3.0", "3.1"}:
            raise FormatError(
                f"Incompatible checkpoint version {version}",
                path,
                "move it aside; the repair creates a fresh checkpoint",
            )
        return validate_model(data, cls, path)

    @classmethod
    def fresh(cls, config: ExperimentConfig, experiment_dir: Path | str) -> Checkpoint:
        """A new v3.1 checkpoint for a repair of an experiment that has none (status ``rerunning``)."""
        now = utc_now_iso()
        return cls(
            version="3.1",
            experiment_id=config.experiment_id,
            experiment_dir=str(Path(experiment_dir).resolve()),
            config_hash=config.config_hash(),
            completed_runs={},
            started_at=now,
            last_updated_at=now,
            status="rerunning",
            rate_limit_source=None,
            rate_limit_until=None,
            pause_count=0,
            pid=os.getpid(),
            experiment_state="tiers_running",
            tier_states={},
            subtest_states={},
            run_states={},
            last_heartbeat=now,
        )

    def mark_run(
        self, tier: str, subtest: str, run_number: int, outcome: RunOutcome, *, run_state: str | None = None
    ) -> None:
        """Record a run's outcome in ``completed_runs`` and its state in ``run_states``.

        The state defaults to ``report_written`` for passed/failed and ``agent_complete`` for
        agent_complete; pass ``run_state="failed"`` (or any of ``RUN_STATES``) to override it.
        """
        if outcome not in _OUTCOME_TO_STATE:
            raise ValueError(f"invalid run outcome {outcome!r}; expected passed, failed or agent_complete")
        state = run_state or _OUTCOME_TO_STATE[outcome]
        if state not in RUN_STATES:
            raise ValueError(f"invalid run state {state!r}")
        key = str(int(run_number))
        self.completed_runs.setdefault(tier, {}).setdefault(subtest, {})[key] = outcome
        self.run_states.setdefault(tier, {}).setdefault(subtest, {})[key] = state
        # Mutating nested containers does not mark the fields as set; do it so they are dumped.
        self.__pydantic_fields_set__.update({"completed_runs", "run_states"})

    def unmark_run(self, tier: str, subtest: str, run_number: int) -> None:
        """Forget a run in ``completed_runs`` and ``run_states`` (empty parents are removed)."""
        key = str(int(run_number))
        for table in (self.completed_runs, self.run_states):
            runs = table.get(tier, {}).get(subtest)
            if runs is None:
                continue
            runs.pop(key, None)
            if not runs:
                del table[tier][subtest]
            if not table[tier]:
                del table[tier]

    def run_outcome(self, tier: str, subtest: str, run_number: int) -> str | None:
        """The ``completed_runs`` value of a run, or None."""
        return self.completed_runs.get(tier, {}).get(subtest, {}).get(str(int(run_number)))

    def save(self, path: Path) -> None:
        """Set ``last_updated_at`` to now and write atomically (temp file + rename)."""
        self.last_updated_at = utc_now_iso()
        atomic_write_json(path, self.to_json_dict())
