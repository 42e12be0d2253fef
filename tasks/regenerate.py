"""Regeneration as Prefect tasks: runs in chunks of ~50, then the aggregates, then the checkpoint.

One Prefect task per run costs ~25 ms (client + server record), more than regenerating the run
itself (~4 ms), so :func:`regenerate_runs` takes a chunk of run labels, like
:mod:`tasks.classify`; the per-run outcomes are inside its result. The bodies are the plain
functions of :mod:`experiment.regenerate`, the very ones the in-process CLI and the rerun flow
call. No caching for now (``cache_policy=None``): regeneration is cheap and must see the files
as they are.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from experiment.models import Checkpoint
from experiment.regenerate import (
    AggregateRebuild,
    RunRegeneration,
    rebuild_aggregates,
    rebuild_checkpoint,
    regenerate_chunk,
)


def regenerate_runs_fn(
    experiment_dir: str, labels: list[str], judge_models: list[str], stamp: str | None = None
) -> list[RunRegeneration]:
    """Regenerate a chunk of runs (plain function)."""
    return regenerate_chunk(Path(experiment_dir), labels, judge_models=judge_models, stamp=stamp)


@task(name="regenerate-runs", task_run_name="regenerate {labels[0]} (+{extra_count})", cache_policy=None)  # type: ignore[call-overload, untyped-decorator]  # None: no policy; stubs lack it
def regenerate_runs(
    experiment_dir: str,
    labels: list[str],
    judge_models: list[str],
    stamp: str | None = None,
    extra_count: int = 0,
) -> list[RunRegeneration]:
    """Rebuild agent result, consensus, run_result and run reports for a chunk of runs."""
    return regenerate_runs_fn(experiment_dir, labels, judge_models, stamp)


@task(name="rebuild-aggregates", task_run_name="rebuild-aggregates", cache_policy=None)  # type: ignore[call-overload, untyped-decorator]  # None: no policy; stubs lack it
def rebuild_aggregates_task(
    experiment_dir: str, tiers: list[str] | None = None, stamp: str | None = None
) -> AggregateRebuild:
    """Rebuild subtest, tier and experiment results and reports."""
    return rebuild_aggregates(Path(experiment_dir), tiers=tiers, stamp=stamp)


@task(name="rebuild-checkpoint", task_run_name="rebuild-checkpoint", cache_policy=None)  # type: ignore[call-overload, untyped-decorator]  # None: no policy; stubs lack it
def rebuild_checkpoint_task(experiment_dir: str, stamp: str | None = None) -> Checkpoint:
    """Rebuild checkpoint.json from the run dirs on disk (the old one is backed up)."""
    return rebuild_checkpoint(Path(experiment_dir), stamp=stamp)
