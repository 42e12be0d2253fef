"""The nightly repair's knowledge: which experiments live under a root, and the night's report.

An experiment is a directory holding ``config/experiment.json``. The walk does not descend into
an experiment (its runs, ``.failed/`` and worktrees hold no other experiments) nor into hidden
directories, so a root with thousands of runs is listed in milliseconds.

Prefect-free; ``flows/nightly_repair.py`` drives it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from experiment.errors import ConfigError
from experiment.layout import ExperimentLayout

ENV_ROOT = "SCYLLA_EXPERIMENTS_ROOT"
"""Where the nightly repair looks when its ``experiments_root`` parameter is not given."""


def resolve_root(experiments_root: str | None) -> Path:
    """The root to scan: the parameter, else ``$SCYLLA_EXPERIMENTS_ROOT``; one-line errors."""
    value = experiments_root or os.environ.get(ENV_ROOT)
    if not value:
        raise ConfigError(
            "No experiments root",
            "nightly-repair",
            f"pass --param experiments_root='\"/path\"' or set {ENV_ROOT} in the worker's environment",
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        raise ConfigError("Experiments root not found", root, "check the path on the worker's machine")
    return root.resolve()


def find_experiments(root: Path) -> list[Path]:
    """Every experiment directory below ``root`` (``root`` itself included), sorted."""
    found: list[Path] = []
    for current, dirs, _ in os.walk(root):
        here = Path(current)
        if ExperimentLayout(here).config_path.is_file():
            found.append(here)
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found)


def idle_minutes(experiment: Path) -> float:
    """Minutes since the experiment's checkpoint (else config) last changed."""
    layout = ExperimentLayout(experiment)
    for path in (layout.checkpoint_path, layout.config_path):
        try:
            return (time.time() - path.stat().st_mtime) / 60.0
        except OSError:
            continue
    return float("inf")


Verdict = Literal["repaired", "partly repaired", "nothing to do", "skipped", "error"]


class ExperimentNight(BaseModel):
    """What the night did to one experiment."""

    experiment: str = Field(description="The experiment directory.")
    verdict: Verdict = Field(description="The outcome in two words.")
    flow_run: str | None = Field(default=None, description="The subflow run's name, if one ran.")
    flow_run_url: str | None = Field(default=None, description="The subflow run's page in the UI, if known.")
    to_repair: int = Field(default=0, description="Runs in scope needing a rerun or regeneration before.")
    succeeded: int = Field(default=0, description="Reruns that succeeded.")
    failed: int = Field(default=0, description="Reruns that failed.")
    regenerated: int = Field(default=0, description="Runs regenerated from their logs.")
    deferred: int = Field(default=0, description="Runs left for later (cap, breaker, quota window).")
    cost_usd: float = Field(default=0.0, description="Agent money spent on this experiment.")
    estimated_cost_usd: float | None = Field(default=None, description="The estimate made before.")
    note: str = Field(default="", description="Why it was skipped, stopped or failed (one line).")


class NightlyReport(BaseModel):
    """The night's summary: one row per experiment, the money, the guardrails that fired."""

    root: str = Field(description="The experiments root that was scanned.")
    started: str = Field(description="When the night began (local time).")
    max_cost_usd: float | None = Field(default=None, description="The night's budget cap.")
    experiments: list[ExperimentNight] = Field(default_factory=list, description="One row per experiment.")

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd for e in self.experiments)

    def markdown(self) -> str:
        budget = f" of a ${self.max_cost_usd:.2f} cap" if self.max_cost_usd is not None else " (no cap)"
        lines = [
            f"# Nightly repair of `{self.root}`",
            "",
            f"* Started: {self.started}",
            f"* Experiments found: **{len(self.experiments)}**",
            f"* Agent money spent: **${self.cost_usd:.4f}**{budget}; judges not included",
            f"* Reruns: {sum(e.succeeded for e in self.experiments)} succeeded, "
            f"{sum(e.failed for e in self.experiments)} failed, "
            f"{sum(e.deferred for e in self.experiments)} left for later; "
            f"{sum(e.regenerated for e in self.experiments)} runs regenerated",
            "",
            "| experiment | verdict | to repair | ok | failed | regenerated | later | cost (USD) | estimate | note |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for e in self.experiments:
            estimate = f"{e.estimated_cost_usd:.4f}" if e.estimated_cost_usd is not None else ""
            name = f"`{Path(e.experiment).name}`"
            name = f"[{name}]({e.flow_run_url})" if e.flow_run_url else name
            lines.append(
                f"| {name} | {e.verdict} | {e.to_repair} | {e.succeeded} | {e.failed} | "
                f"{e.regenerated} | {e.deferred} | {e.cost_usd:.4f} | {estimate} | {e.note.replace('|', '/')} |"
            )
        return "\n".join(lines)
