"""The aggregate rebuild: subtest, tier and experiment files recomputed from the run results.

Statistics come from :mod:`experiment.aggregate`, markdown from :mod:`experiment.reports`, the
wall-clock fields from :mod:`experiment.regenerate.clock`; every file goes through one
:class:`~experiment.regenerate.files.Writer`, so it is backed up and written only on change.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field, ValidationError

from experiment import aggregate, reports
from experiment.backups import backup_stamp
from experiment.durable import write_batch
from experiment.forked import forked_map
from experiment.jsonio import load_model, read_json
from experiment.layout import ExperimentLayout, RunKey
from experiment.models import (
    BestSubtest,
    ExperimentConfig,
    ExperimentResult,
    RunResult,
    ScyllaModel,
    SubtestResult,
    TierResult,
    utc_now_iso,
)
from experiment.regenerate.clock import Interval, experiment_clock, tier_clock
from experiment.regenerate.files import Writer, read_dict, read_dict_without_runs
from experiment.regenerate.run_reads import RunRead, RunReader, reader
from experiment.regenerate.spill import TierSpill, without_runs

_Model = TypeVar("_Model", bound=BaseModel)


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


def _previous(path: Path, model: type[_Model], *, runs: bool = True) -> _Model | None:
    """The previous version of a derived file, or None when it is missing or invalid; without the
    subtests' runs unless ``runs`` (a result.json read for its clock and order fields)."""
    data = read_dict(path) if runs else read_dict_without_runs(path)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def _previous_tier(layout: ExperimentLayout, tier: str, *, runs: bool = True) -> TierResult | None:
    """The tier's previous ``result.json``: where ProjectScylla keeps it, else the stale copy an
    earlier scylla-repair wrote to ``<exp>/T0`` of a phased experiment (without the runs unless
    ``runs``)."""
    previous = _previous(layout.tier_file(tier, "result.json"), TierResult, runs=runs)
    stale = layout.stale_tier_dir(tier)
    if previous is None and stale is not None:
        previous = _previous(stale / "result.json", TierResult, runs=runs)
    return previous


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


def _run_result(run: RunRead) -> RunResult | None:
    """The run's result, or None when its ``run_result.json`` is unreadable or invalid."""
    if run.result is None:
        return None
    try:
        return RunResult.model_validate(run.result)
    except ValidationError:
        return None


def _summarize_subtests(
    layout: ExperimentLayout, tier: str, summary: AggregateRebuild, read: RunReader
) -> tuple[dict[str, SubtestResult], list[Interval]]:
    """The tier's subtests with at least one readable run result, and the known (start, end) of
    those runs; the label of each unreadable ``run_result.json`` goes to ``summary.skipped_runs``."""
    keys = [
        RunKey(tier, subtest, number)
        for subtest in layout.recorded_subtests(tier)
        for number in layout.recorded_run_numbers(tier, subtest)
    ]
    reads = read([layout.run_dir_str(key) for key in keys])
    by_subtest: dict[str, list[RunResult]] = {}
    intervals: list[Interval] = []
    for key, run in zip(keys, reads, strict=True):
        if run is None:
            continue
        result = _run_result(run)
        if result is None:
            summary.skipped_runs.append(key.label)
            continue
        by_subtest.setdefault(key.subtest, []).append(result)
        if run.interval:
            intervals.append(run.interval)
    subtests = {}
    for subtest, runs in by_subtest.items():
        summary.runs += len(runs)
        subtests[subtest] = aggregate.summarize_subtest(tier, subtest, runs)
    return subtests, intervals


def _write_reports(
    out: Writer, file: Callable[[str], Path], report: ScyllaModel, markdown: str, summary_md: str
) -> None:
    """The ``report.json``, ``report.md`` and ``summary.md`` that a tier and the experiment both have."""
    out.model(file("report.json"), report)
    out.text(file("report.md"), markdown)
    out.text(file("summary.md"), summary_md)


def _write_tier(
    out: Writer, layout: ExperimentLayout, result: TierResult, text: str, selection: BestSubtest, now: str
) -> None:
    """Every file of a rebuilt tier: its subtest reports, result, best subtest and reports."""
    tier = result.tier_id
    for sid, sub in result.subtest_results.items():
        out.model(layout.subtest_file(tier, sid, "report.json"), aggregate.subtest_report(sub, now))
        out.text(layout.subtest_file(tier, sid, "report.md"), reports.render_subtest_report(sub, now))
    out.text(layout.tier_file(tier, "result.json"), text)
    out.model(layout.tier_file(tier, "best_subtest.json"), selection)
    _write_reports(
        out,
        partial(layout.tier_file, tier),
        aggregate.tier_report(result, now),
        reports.render_tier_report(result, now),
        reports.render_tier_summary(result),
    )


def rebuild_aggregates(
    experiment_dir: Path,
    *,
    tiers: Sequence[str] | None = None,
    stamp: str | None = None,
    reader_processes: int = 1,
) -> AggregateRebuild:
    """Rebuild subtest, tier (only ``tiers``, default all of ``tiers_to_run``) and experiment files.

    One tier at a time (its runs are read, folded and dropped; :mod:`~experiment.regenerate.spill`
    streams the experiment file), as one write batch (:mod:`experiment.durable`). The run files
    are read by ``reader_processes`` forked processes when more than one (only where no other
    thread is at work: :mod:`experiment.forked`).
    """
    layout = ExperimentLayout(experiment_dir)
    config = load_model(layout.config_path, ExperimentConfig)
    raw_config = read_json(layout.config_path)
    rebuild = list(tiers) if tiers else list(config.tiers_to_run)
    summary = AggregateRebuild(experiment=str(layout.root))
    out = Writer(layout.root, stamp or backup_stamp(), summary.written)
    now = utc_now_iso()
    tier_results: dict[str, TierResult] = {}  # without their runs: the full text is in the spill
    intervals_all: list[Interval] = []
    moved: list[str] = []

    with write_batch(), TierSpill() as spill, forked_map(reader_processes) as map_:
        for tier in config.tiers_to_run:
            previous_tier = _previous_tier(layout, tier, runs=False)
            if tier not in rebuild and previous_tier is not None:
                full = _previous_tier(layout, tier)
                if full is not None:
                    spill.add(tier, full)
                    tier_results[tier] = without_runs(full)
                continue
            subtests, intervals = _summarize_subtests(layout, tier, summary, reader(map_))
            intervals_all.extend(intervals)
            if not subtests:
                continue
            duration, inherited = tier_clock(layout, tier, previous_tier, intervals, summary.approximated)
            tier_result, selection = aggregate.build_tier(
                tier, subtests, total_duration=duration, inherited_from=inherited
            )
            del subtests
            text = spill.add(tier, tier_result)
            if tier in rebuild:  # otherwise computed for the experiment totals only
                summary.tiers.append(tier)
                summary.subtests += len(tier_result.subtest_results)
                _write_tier(out, layout, tier_result, text, selection, now)
                moved.append(tier)
            tier_results[tier] = without_runs(tier_result)
            del tier_result, text

        # The experiment: wall-clock values from the previous file, else from the timing files.
        previous_exp = _previous(layout.experiment_file("result.json"), ExperimentResult, runs=False)
        order = _ordered(tier_results, _previous_tier_order(layout, previous_exp))
        tier_results = {t: tier_results[t] for t in order}
        started, completed, total_duration = experiment_clock(
            layout, previous_exp, intervals_all, tier_results, summary.approximated
        )
        result = aggregate.build_experiment(
            raw_config if isinstance(raw_config, dict) else config.to_json_dict(),
            tier_results,
            started_at=started,
            completed_at=completed,
            total_duration_seconds=total_duration,
        )
        out.chunks(layout.experiment_file("result.json"), spill.experiment_chunks(result))
        _write_reports(
            out,
            layout.experiment_file,
            aggregate.experiment_report(result, config.experiment_id, now),
            reports.render_experiment_report(result, config.experiment_id, result.config, now),
            reports.render_experiment_summary(result),
        )
        out.model(layout.experiment_file("tier_comparison.json"), aggregate.tier_comparison(tier_results))
    for tier in moved:  # after the batch's commit: the new files are in place first
        _move_stale_aside(layout, tier, out.stamp, summary)
    summary.best_tier = result.best_overall_tier
    summary.frontier_cop = result.frontier_cop
    summary.total_cost = result.total_cost
    return summary
