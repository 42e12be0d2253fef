"""``config/experiment.json``: the experiment's configuration and the model aliases it accepts."""

from __future__ import annotations

import hashlib
import json
import re
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
        """First 16 hex of sha256 over the sorted-key config, minus run-selection fields (§5.1)."""
        data = self.model_dump(mode="json")
        for key in list(data):
            if key in {"max_subtests", "tiers_to_run", "keep_failed_workspaces"} or key.startswith(
                ("parallel_", "until_", "from_", "filter_", "max_concurrent_")
            ):
                data.pop(key)
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
