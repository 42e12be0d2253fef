"""What every rerun task needs to know, passed as one small, secret-free parameter.

Secrets never travel through task parameters (Prefect records parameters and may persist them):
the judge API key is read from the environment inside the process that calls the API. The
per-process registries below turn the settings into the loaded context and the shared provider
budget exactly once per flow run.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

from experiment.scan import ExperimentContext, load_context
from operations.agent import AgentSettings
from operations.budget import ProviderBudget


class RepairSettings(BaseModel):
    """The parameters of one repair (one flow run of ``rerun-agents``)."""

    experiment_dir: str = Field(description="Absolute path of the experiment.")
    repair_id: str = Field(description="Identifies this repair; a resumed repair keeps its id.")
    tiers_dir: str | None = Field(default=None, description="Explicit tiers dir, else auto-detected.")
    agent: AgentSettings = Field(description="How to run the agent (no secrets).")
    judge_base_url: str | None = Field(default=None, description="Overrides ANTHROPIC_BASE_URL.")
    judge_timeout_seconds: float = Field(default=300.0, description="Timeout of one judge request.")
    judge_system_prompt: str | None = Field(
        default=None,
        description="The judge system prompt file; None: the ProjectScylla checkout's "
        "config/judge/system_prompt.md found from the tiers dir, else our (non-comparable) fallback.",
    )
    max_agents: int = Field(default=4, ge=1, description="Parallel agents (--max-concurrent).")
    judge_rpm: int | None = Field(default=None, ge=1, description="Judge requests per minute.")
    max_in_flight: int = Field(default=8, ge=1, description="Concurrent provider calls before adapting.")
    max_cost_usd: float | None = Field(default=None, description="No new rerun once this is spent.")

    @property
    def results_dir(self) -> Path:
        """Where Prefect persists step results: inside the experiment."""
        return Path(self.experiment_dir) / ".prefect" / "results"


@lru_cache(maxsize=32)
def _context(experiment_dir: str, tiers_dir: str | None) -> ExperimentContext:
    return load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)


def context_for(settings: RepairSettings) -> ExperimentContext:
    """The experiment's loaded context, once per process."""
    return _context(settings.experiment_dir, settings.tiers_dir)


def base_repo_for(settings: RepairSettings) -> Path:
    """The experiment's base repository (where run worktrees are registered)."""
    context = context_for(settings)
    return context.layout.find_base_repo(context.config.task_repo)


_BUDGETS: dict[str, ProviderBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def budget_for(settings: RepairSettings) -> ProviderBudget:
    """The provider budget shared by every task of this repair in this process."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(settings.repair_id)
        if budget is None:
            budget = ProviderBudget(
                max_agents=settings.max_agents,
                judge_rpm=settings.judge_rpm,
                max_in_flight=settings.max_in_flight,  # agents count too: never above the provider limit
                max_cost_usd=settings.max_cost_usd,
            )
            _BUDGETS[settings.repair_id] = budget
        return budget


def forget(settings: RepairSettings) -> None:
    with _BUDGETS_LOCK:
        _BUDGETS.pop(settings.repair_id, None)
