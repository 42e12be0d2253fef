"""Pydantic models of every JSON file the repair reads or writes: one schema per file, one package.

The files are ProjectScylla's (see ``spec/scylla-format.md`` §1.3-1.6 and §5). Three rules hold for
every model here:

* **Unknown fields are kept** (``extra="allow"``): a newer ProjectScylla may add keys, and a file we
  rewrite must not lose them.
* **Round trip**: ``Model.model_validate(data).to_json_dict() == data`` for every real file. The dump
  uses ``exclude_unset`` so a default never appears in a file that did not have it; a model we build
  from scratch sets every field by keyword, so all of them are written.
* **Canonical output**: legacy inputs are accepted (the ``cache_*_input_tokens`` token keys of the
  regeneration bug, a singular ``judge_model``, a bare ``Infinity`` cost-of-pass, a v2.0 checkpoint)
  but we always write the canonical form, so ProjectScylla's readers see correct data (spec §8.4).

One module per part of the experiment tree: :mod:`~experiment.models.base` (the shared base and
helpers), :mod:`~experiment.models.agent`, :mod:`~experiment.models.judge`,
:mod:`~experiment.models.run`, :mod:`~experiment.models.subtest`, :mod:`~experiment.models.tier`,
:mod:`~experiment.models.experiment_result`, :mod:`~experiment.models.config` and
:mod:`~experiment.models.checkpoint`. Import the names from here: ``from experiment.models import X``.

The submodules load on first use (PEP 562): building all ~50 pydantic classes costs 0.2 s
of CPU, and the dry run needs only :class:`ExperimentConfig` (see bench/README.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiment.models.agent import (
        AgentResult,
        AgentTiming,
        ClaudeOutput,
        CommandLog,
        CommandLogEntry,
        TokenStats,
    )
    from experiment.models.base import FiniteFloat, ScyllaModel, grade_for_score, utc_now_iso
    from experiment.models.checkpoint import (
        RUN_STATES,
        Checkpoint,
        CheckpointStatus,
        CheckpointV2,
        RunOutcome,
    )
    from experiment.models.config import MODEL_ALIASES, ExperimentConfig
    from experiment.models.experiment_result import (
        ExperimentReport,
        ExperimentReportBest,
        ExperimentReportChild,
        ExperimentReportSummary,
        ExperimentResult,
    )
    from experiment.models.judge import JudgeConsensus, JudgeSummary, JudgeTiming, Judgment
    from experiment.models.run import RunReport, RunResult
    from experiment.models.subtest import (
        ConfigManifest,
        SubtestReport,
        SubtestReportChild,
        SubtestReportSummary,
        SubtestResult,
    )
    from experiment.models.tier import (
        BestSubtest,
        TierComparison,
        TierComparisonEntry,
        TierReport,
        TierReportBest,
        TierReportChild,
        TierReportSummary,
        TierResult,
        Vote,
    )

_SUBMODULE = {
    "AgentResult": "agent",
    "AgentTiming": "agent",
    "ClaudeOutput": "agent",
    "CommandLog": "agent",
    "CommandLogEntry": "agent",
    "TokenStats": "agent",
    "FiniteFloat": "base",
    "ScyllaModel": "base",
    "grade_for_score": "base",
    "utc_now_iso": "base",
    "RUN_STATES": "checkpoint",
    "Checkpoint": "checkpoint",
    "CheckpointStatus": "checkpoint",
    "CheckpointV2": "checkpoint",
    "RunOutcome": "checkpoint",
    "MODEL_ALIASES": "config",
    "ExperimentConfig": "config",
    "ExperimentReport": "experiment_result",
    "ExperimentReportBest": "experiment_result",
    "ExperimentReportChild": "experiment_result",
    "ExperimentReportSummary": "experiment_result",
    "ExperimentResult": "experiment_result",
    "JudgeConsensus": "judge",
    "JudgeSummary": "judge",
    "JudgeTiming": "judge",
    "Judgment": "judge",
    "RunReport": "run",
    "RunResult": "run",
    "ConfigManifest": "subtest",
    "SubtestReport": "subtest",
    "SubtestReportChild": "subtest",
    "SubtestReportSummary": "subtest",
    "SubtestResult": "subtest",
    "BestSubtest": "tier",
    "TierComparison": "tier",
    "TierComparisonEntry": "tier",
    "TierReport": "tier",
    "TierReportBest": "tier",
    "TierReportChild": "tier",
    "TierReportSummary": "tier",
    "TierResult": "tier",
    "Vote": "tier",
}
"""Which submodule defines each public name."""


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first use, and cache the name here."""
    try:
        submodule = _SUBMODULE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULE])


__all__ = [
    "AgentResult",
    "AgentTiming",
    "BestSubtest",
    "Checkpoint",
    "CheckpointStatus",
    "CheckpointV2",
    "ClaudeOutput",
    "CommandLog",
    "CommandLogEntry",
    "ConfigManifest",
    "ExperimentConfig",
    "ExperimentReport",
    "ExperimentReportBest",
    "ExperimentReportChild",
    "ExperimentReportSummary",
    "ExperimentResult",
    "FiniteFloat",
    "JudgeConsensus",
    "JudgeSummary",
    "JudgeTiming",
    "Judgment",
    "MODEL_ALIASES",
    "RUN_STATES",
    "RunOutcome",
    "RunReport",
    "RunResult",
    "ScyllaModel",
    "SubtestReport",
    "SubtestReportChild",
    "SubtestReportSummary",
    "SubtestResult",
    "TierComparison",
    "TierComparisonEntry",
    "TierReport",
    "TierReportBest",
    "TierReportChild",
    "TierReportSummary",
    "TierResult",
    "TokenStats",
    "Vote",
    "grade_for_score",
    "utc_now_iso",
]
