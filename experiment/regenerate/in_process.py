"""The whole regeneration pass without Prefect (the ``regenerate-results`` CLI) and its summary."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from experiment.backups import backup_stamp
from experiment.forked import forked_workers
from experiment.regenerate.aggregates import AggregateRebuild, rebuild_aggregates
from experiment.regenerate.pipeline import RegenerationPipeline
from experiment.regenerate.run import Outcome, RunRegeneration
from experiment.status import RunStatus

NOTHING_WRITTEN = "Nothing to change: every derived file is up to date (nothing written, nothing backed up)."
"""What a pass that changed no byte says."""


class RegenerateSummary(BaseModel):
    """The outcome of a regeneration pass: one entry per ``results`` run, plus the aggregates."""

    experiment: str = Field(description="Absolute experiment directory.")
    runs: list[RunRegeneration] = Field(default_factory=list, description="One entry per run in scope.")
    aggregates: AggregateRebuild | None = Field(
        default=None, description="The aggregate rebuild (None when skipped)."
    )
    backup_stamp: str = Field(
        default="", description="Name of this pass's backup dir under .backups/ (empty: nothing backed up)."
    )

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.runs if r.outcome == outcome)

    @property
    def regenerated(self) -> int:
        """Runs whose derived files were rebuilt (the RERUN RESULTS "Regenerated" line)."""
        return self.count("regenerated")

    @property
    def nothing_written(self) -> bool:
        """True when the pass changed no byte: no run file, no aggregate, no backup."""
        return not any(r.written for r in self.runs) and not (
            self.aggregates and (self.aggregates.written or self.aggregates.moved_aside)
        )

    @property
    def counts(self) -> dict[str, int]:
        return {
            o: self.count(o) for o in ("regenerated", "unchanged", "needs_judges", "not_finished", "error")
        }

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "regenerated": self.regenerated,
            "counts": self.counts,
            "backup_stamp": self.backup_stamp,
            "runs": [r.model_dump(mode="json") for r in self.runs],
            "aggregates": self.aggregates.model_dump(mode="json") if self.aggregates else None,
        }

    def to_markdown(self) -> str:
        """The flow's artifact: counts, the runs that still need work, the aggregate rebuild."""
        lines = [f"# Regenerated results: `{self.experiment}`", "", "| Outcome | Runs |", "|---|---|"]
        lines += [f"| {o} | {n} |" for o, n in self.counts.items()]
        pending = [r for r in self.runs if r.outcome in ("needs_judges", "not_finished", "error")]
        if pending:
            lines += [
                "",
                "## Runs that still need work",
                "",
                "| Run | Outcome | Judge slots | Why |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {r.run} | {r.outcome} | {', '.join(map(str, r.missing_judge_slots)) or '-'} | {r.message} |"
                for r in pending
            ]
        if self.aggregates is not None:
            a = self.aggregates
            cop = f"${a.frontier_cop:.4f}" if a.frontier_cop is not None else "N/A (nothing passed)"
            lines += [
                "",
                "## Aggregates",
                "",
                f"- Tiers rebuilt: {', '.join(a.tiers) or 'none'} ({a.subtests} subtests, {a.runs} runs)",
                f"- Files written: {len(a.written)}",
                f"- Frontier: {a.best_tier or 'none'} at {cop}; total cost ${a.total_cost:.4f}",
            ]
            if a.approximated:
                lines.append(f"- Approximated from timing files: {', '.join(a.approximated)}")
        if self.nothing_written:
            lines += ["", NOTHING_WRITTEN]
        if self.backup_stamp:
            lines += ["", f"Previous versions of overwritten files: `.backups/{self.backup_stamp}/`"]
        return "\n".join(lines) + "\n"


def regenerate_in_process(
    experiment_dir: Path,
    *,
    tiers: Sequence[str] = (),
    subtests: Sequence[str] = (),
    runs: Sequence[int] = (),
    skip_aggregates: bool = False,
    tiers_dir: Path | None = None,
) -> RegenerateSummary:
    """The ``regenerate-results`` pipeline without Prefect: scan, regenerate the ``results`` runs
    (one batch per tier) and rebuild the aggregates, each tier folded once its runs are done
    (:mod:`~experiment.regenerate.pipeline`)."""
    from experiment.scan import CHUNK_SIZE, PARALLEL_THRESHOLD, ScanFilters, load_context, scan_in_process

    context = load_context(Path(experiment_dir), tiers_dir)
    filters = ScanFilters(tuple(tiers), tuple(subtests), tuple(runs), (RunStatus.RESULTS,))
    report = scan_in_process(context, filters)
    stamp = backup_stamp()
    labels = [e.run for e in report.to_regenerate()]
    # Forked workers (experiment.forked; no other thread is at work in this process), one per
    # core, when there is more than a chunk of runs to regenerate or a large experiment to fold.
    cores = os.cpu_count() or 1
    processes = cores if len(report.entries) >= PARALLEL_THRESHOLD or len(labels) > CHUNK_SIZE else 1
    del report  # 10,000 classified runs: not needed past this point (peak memory)
    pipeline = None
    try:
        with forked_workers(processes) as workers:
            pipeline = RegenerationPipeline(
                workers, context.root, labels, judge_models=context.config.judge_models, stamp=stamp
            )
            aggregates = None
            if not skip_aggregates:
                aggregates = rebuild_aggregates(
                    context.root, tiers=list(tiers) or None, stamp=stamp, folds=pipeline.folds
                )
            results = pipeline.results()
    except BaseException:
        if pipeline is not None:
            pipeline.sweep_temp_files()
        raise
    backed_up = (context.layout.backups_dir / stamp).is_dir()
    return RegenerateSummary(
        experiment=str(context.root),
        runs=results,
        aggregates=aggregates,
        backup_stamp=stamp if backed_up else "",
    )
