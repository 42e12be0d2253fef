"""The aggregate rebuild: subtest, tier and experiment files recomputed from the run results.

Each tier is folded by :mod:`~experiment.regenerate.tier_fold`; statistics come from
:mod:`experiment.aggregate`, markdown from :mod:`experiment.reports`, the wall-clock fields from
:mod:`experiment.regenerate.clock`; every file goes through a
:class:`~experiment.regenerate.files.Writer`, so it is backed up and written only on change.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from experiment import aggregate, reports
from experiment.backups import backup_stamp
from experiment.durable import write_batch
from experiment.forked import forked_map
from experiment.jsonio import load_model, read_json
from experiment.layout import ExperimentLayout
from experiment.models import ExperimentConfig, ExperimentResult, TierResult, utc_now_iso
from experiment.regenerate.clock import Interval, experiment_clock, experiment_clock_known
from experiment.regenerate.files import Writer, previous_model, read_dict
from experiment.regenerate.spill import TierSpill
from experiment.regenerate.tier_fold import FoldItem, FoldRunner, TierFold, fold_tier_item


class AggregateRebuild(BaseModel):
    """What :func:`rebuild_aggregates` did."""

    experiment: str = Field(description="Absolute experiment directory.")
    tiers: list[str] = Field(default_factory=list, description="Tiers whose files were rebuilt.")
    subtests: int = Field(default=0, description="Subtest reports rebuilt.")
    runs: int = Field(default=0, description="Run results aggregated.")
    skipped_runs: list[str] = Field(default_factory=list, description="Unreadable run_result.json files.")
    written: list[str] = Field(default_factory=list, description="Files written, relative to the experiment.")
    approximated: list[str] = Field(
        default_factory=list,
        description="Wall-clock fields derived from timing files because their previous file was gone.",
    )
    moved_aside: list[str] = Field(
        default_factory=list,
        description="Stale aggregate dirs an earlier version wrote outside completed/, now under .backups/.",
    )
    best_tier: str | None = Field(default=None, description="Frontier tier.")
    frontier_cop: float | None = Field(
        default=None, description="Frontier cost-of-pass (null: nothing passed)."
    )
    total_cost: float = Field(default=0.0, description="Experiment cost (summed).")


def _move_stale_aside(layout: ExperimentLayout, tier: str, stamp: str, summary: AggregateRebuild) -> None:
    """Move ``<exp>/T0`` of a phased experiment (aggregates only) to ``.backups/<stamp>/T0``."""
    stale = layout.stale_tier_dir(tier)
    if stale is None:
        return
    # A subtest's config_manifest.json exists only there when an earlier version's workspace
    # setup wrote it: keep it where ProjectScylla looks for it (copied, the original moves aside).
    for manifest in stale.glob("*/config_manifest.json"):
        kept = layout.subtest_file(tier, manifest.parent.name, manifest.name)
        if not kept.exists() and kept.parent.is_dir():
            shutil.copy2(manifest, kept)
    target = layout.backups_dir / stamp / tier
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate, counter = target, 0
    while candidate.exists() or candidate.is_symlink():
        counter += 1
        candidate = target.with_name(f"{tier}.{counter}")
    os.rename(stale, candidate)
    summary.moved_aside.append(f"{tier} -> {candidate.relative_to(layout.root)}")


def _previous_tier_order(layout: ExperimentLayout, previous: ExperimentResult | None) -> list[str]:
    """The tier order ProjectScylla recorded (the order its tiers finished, which its report's
    children follow): the previous ``result.json``, else the previous ``report.json`` children,
    else ``tier_comparison.json``; empty when none is readable."""
    if previous is not None and previous.tier_results:
        return list(previous.tier_results)
    children = (read_dict(layout.experiment_file("report.json")) or {}).get("children")
    if isinstance(children, list):
        tiers = [str(c["tier"]) for c in children if isinstance(c, dict) and isinstance(c.get("tier"), str)]
        if tiers:
            return tiers
    return list(read_dict(layout.experiment_file("tier_comparison.json")) or {})


def _ordered(ids: Iterable[str], previous_order: Sequence[str]) -> list[str]:
    """The previous file's order for the ids it listed, then the rest sorted (T0..T6)."""
    wanted = set(ids)
    head = [i for i in previous_order if i in wanted]
    return head + sorted(wanted - set(head))


def rebuild_aggregates(
    experiment_dir: Path,
    *,
    tiers: Sequence[str] | None = None,
    stamp: str | None = None,
    processes: int = 1,
    folds: FoldRunner | None = None,
) -> AggregateRebuild:
    """Rebuild subtest, tier (only ``tiers``, default all of ``tiers_to_run``) and experiment files.

    One tier at a time (:mod:`~experiment.regenerate.tier_fold`: its runs are read, folded and
    dropped; :mod:`~experiment.regenerate.spill` streams the experiment file), as one write batch
    (:mod:`experiment.durable`). The tiers are folded by ``folds`` when given (the CLI's pipeline,
    :mod:`~experiment.regenerate.pipeline`), else by ``processes`` forked workers when more than
    one (only where no other thread is at work: :mod:`experiment.forked`), else here.
    """
    layout = ExperimentLayout(experiment_dir)
    config = load_model(layout.config_path, ExperimentConfig)
    raw_config = read_json(layout.config_path)
    rebuild = list(tiers) if tiers else list(config.tiers_to_run)
    summary = AggregateRebuild(experiment=str(layout.root))
    out = Writer(layout.root, stamp or backup_stamp(), summary.written)
    now = utc_now_iso()
    tier_results: dict[str, TierResult] = {}  # without their runs: the full text is in the spill
    previous_exp = previous_model(layout.experiment_file("result.json"), ExperimentResult, runs=False)
    spans = not experiment_clock_known(layout, previous_exp)  # the runs' timing files are needed
    items = [
        FoldItem(str(layout.root), tier, tier in rebuild, out.stamp, now, spans)
        for tier in config.tiers_to_run
    ]
    known: list[Interval] = []

    with write_batch() as batch, TierSpill() as spill:
        with _fold_runner(folds, min(processes, len(items))) as run_folds:
            for fold in run_folds(items):
                batch.adopt(fold.renames, fold.backups)
                _account(summary, fold)
                known += [fold.span] if fold.span else []
                if fold.text is not None and fold.result is not None:
                    spill.add(fold.tier, fold.text)
                    tier_results[fold.tier] = fold.result
                del fold

        # The experiment: wall-clock values from the previous file, else from the timing files.
        order = _ordered(tier_results, _previous_tier_order(layout, previous_exp))
        tier_results = {t: tier_results[t] for t in order}
        started, completed, total_duration = experiment_clock(
            layout, previous_exp, known, tier_results, summary.approximated
        )
        result = aggregate.build_experiment(
            raw_config if isinstance(raw_config, dict) else config.to_json_dict(),
            tier_results,
            started_at=started,
            completed_at=completed,
            total_duration_seconds=total_duration,
        )
        out.chunks(layout.experiment_file("result.json"), spill.experiment_chunks(result))
        out.reports(
            layout.experiment_file,
            aggregate.experiment_report(result, config.experiment_id, now),
            reports.render_experiment_report(result, config.experiment_id, result.config, now),
            reports.render_experiment_summary(result),
        )
        out.model(layout.experiment_file("tier_comparison.json"), aggregate.tier_comparison(tier_results))
    for tier in summary.tiers:  # after the batch's commit: the new files are in place first
        _move_stale_aside(layout, tier, out.stamp, summary)
    summary.best_tier = result.best_overall_tier
    summary.frontier_cop = result.frontier_cop
    summary.total_cost = result.total_cost
    return summary


@contextmanager
def _fold_runner(given: FoldRunner | None, processes: int) -> Iterator[FoldRunner]:
    """``given``, else the folds over ``processes`` forked workers (here when fewer than two)."""
    if given is not None:
        yield given
        return
    with forked_map(processes) as map_:
        yield lambda items: map_(fold_tier_item, items)


def _account(summary: AggregateRebuild, fold: TierFold) -> None:
    """Add one tier's fold to the rebuild's report (in tier order, as the folds come back)."""
    summary.runs += fold.runs
    summary.skipped_runs.extend(fold.skipped_runs)
    summary.approximated.extend(fold.approximated)
    summary.written.extend(fold.written)  # the list the rebuild's Writer appends to
    if fold.rebuilt and fold.result is not None:
        summary.tiers.append(fold.tier)
        summary.subtests += len(fold.result.subtest_results)
