"""``config/experiment.json``: the experiment's configuration and the model aliases it accepts."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field, field_validator, model_validator

from experiment.models.base import ScyllaModel

MODEL_ALIASES: dict[str, str] = {
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
    "opus-4.6": "claude-opus-4-6",
    "sonnet-4.6": "claude-sonnet-4-6",
    "opus-4.5": "claude-opus-4-5",
    "sonnet-4.5": "claude-sonnet-4-5",
    "haiku-4.5": "claude-haiku-4-5",
}
"""Short model names accepted in configs; full ids pass unchanged."""

_TIER_RE = re.compile(r"^T[0-6]$")


def _resolve_models(value: Any) -> Any:
    if isinstance(value, list):
        return [MODEL_ALIASES.get(v, v) if isinstance(v, str) else v for v in value]
    return value


class ExperimentConfig(ScyllaModel):
    """``config/experiment.json``; the config of record for every repair (spec §1.3)."""

    experiment_id: str
    """Experiment id (``test-001``)."""
    task_repo: str
    """URL of the task repository."""
    task_commit: str
    """Commit the workspaces are checked out at."""
    task_prompt_file: str
    """Prompt path, relative to the ProjectScylla checkout (not the experiment)."""
    language: str
    """Task language (``python``)."""
    models: list[str] = Field(default_factory=lambda: ["claude-sonnet-4-5-20250929"])
    """Agent model ids (aliases such as ``sonnet`` resolved)."""
    runs_per_subtest: int = Field(default=10, ge=1)
    """Runs per subtest (>= 1)."""
    tiers_to_run: list[str] = Field(default_factory=list)
    """Tiers (``T0``-``T6``); absent means none, i.e. zero expected runs."""
    judge_models: list[str] = Field(default_factory=lambda: ["claude-opus-4-6"])
    """Judge model ids, one judge slot each (legacy ``judge_model`` accepted)."""
    timeout_seconds: int = 3600
    """Agent timeout in seconds."""
    max_turns: int | None = None
    """Agent turn limit, or null."""
    max_subtests: int | None = None
    """Only the first N subtests of each tier, or null for all."""
    thinking_mode: str = "None"
    """``None``, ``Low``, ``High`` or ``UltraThink``."""
    skip_agent_teams: bool = False
    """Skip agent-team subtests."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_judge_model(cls, data: Any) -> Any:
        """A legacy singular ``judge_model`` becomes ``judge_models=[it]`` (and is not kept)."""
        if isinstance(data, dict) and "judge_model" in data:
            data = dict(data)
            legacy = data.pop("judge_model")
            if "judge_models" not in data and legacy:
                data["judge_models"] = [legacy]
        return data

    @field_validator("models", "judge_models", mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> Any:
        return _resolve_models(value)

    @field_validator("tiers_to_run")
    @classmethod
    def _tiers(cls, value: list[str]) -> list[str]:
        for tier in value:
            if not _TIER_RE.match(tier):
                raise ValueError(f"unknown tier {tier!r}; tiers are T0 to T6")
        return value

    def config_hash(self) -> str:
        """ProjectScylla's ``compute_config_hash`` of this config as its ``ExperimentConfig.load``
        reads the file: the first 16 hex digits of the sha256 of the sorted-key JSON of the fields
        it keeps (:data:`_HASHED_DEFAULTS`, :data:`_HASHED_CONSTANTS`), so a checkpoint we write resumes under ProjectScylla.

        Its loader reads only its own keys (unknown ones such as ``parallel_subtests`` are
        dropped), fills absent ones with *its* defaults, normalises model aliases and the prompt
        path, and the hash leaves out the run-selection fields (``tiers_to_run``,
        ``max_subtests``) and every runtime-only option.
        """
        data = self.model_dump(mode="json")
        present = set(self.model_fields_set) | set(self.model_extra or {})
        hashed: dict[str, Any] = {key: data[key] for key in ("experiment_id", "task_repo", "task_commit")}
        hashed["task_prompt_file"] = str(PurePosixPath(self.task_prompt_file))
        hashed["language"] = self.language
        for key, default in _HASHED_DEFAULTS.items():
            hashed[key] = data[key] if key in present and key in data else default
        for key in ("models", "judge_models"):
            hashed[key] = [_scylla_model_id(m) for m in hashed[key]]
        hashed.update(_HASHED_CONSTANTS)
        text = json.dumps(hashed, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_HASHED_DEFAULTS: dict[str, Any] = {
    "models": ["claude-sonnet-4-6"],
    "runs_per_subtest": 10,
    "judge_models": ["claude-opus-4-6"],
    "timeout_seconds": 3600,
    "max_turns": None,
    "skip_agent_teams": False,
    "thinking_mode": "None",
    "use_containers": False,
}
"""The hashed fields its loader reads from the file, with ProjectScylla's defaults for a file that
lacks them."""
_HASHED_CONSTANTS: dict[str, Any] = {"criteria_file": None, "rubric_file": None, "off_peak": False}
"""Hashed fields its loader never reads from the file: they always hash as these defaults."""


def _scylla_model_id(model: Any) -> Any:
    """ProjectScylla's alias normalisation: case- and space-insensitive lookup, else unchanged."""
    if isinstance(model, str):
        return MODEL_ALIASES.get(model.strip().lower(), model)
    return model
