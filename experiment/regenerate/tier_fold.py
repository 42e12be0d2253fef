"""One tier of an aggregate rebuild, folded on its own: read its runs, build the tier, render and
write its files, and hand back what the experiment level needs.

A fold touches only its tier's files and reads nothing another fold writes, so the folds of an
experiment can run side by side in forked workers (:mod:`experiment.forked`): the CLI's rebuild
folds one tier per core while its parent streams the finished ones into the experiment file. A
fold's writes are collected, not committed (:func:`~experiment.durable.collected_writes`): the
parent adopts them into its one write batch, so the rebuild stays one durable batch whether its
folds ran here or in workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import NamedTuple

from pydantic import ValidationError

from experiment import aggregate, reports
from experiment.durable import collected_writes
from experiment.jsonio import dumps
from experiment.layout import ExperimentLayout, RunKey
from experiment.models import BestSubtest, RunResult, SubtestResult, TierResult
from experiment.regenerate.clock import Interval, tier_clock, tier_clock_known
from experiment.regenerate.files import Writer, previous_model
from experiment.regenerate.run_reads import read_runs
from experiment.regenerate.spill import without_runs


class TierFold(NamedTuple):
    """What one tier's fold hands back to the rebuild (picklable: it crosses from a worker)."""

    tier: str
    text: str | None
    """The tier's full JSON (its ``result.json``, spilled into the experiment file); None when
    the tier has no readable run and no previous file, so it is left out of the experiment."""
    result: TierResult | None
    """The tier without the runs of its subtests but the best (:func:`~.spill.without_runs`)."""
    rebuilt: bool
    """Whether the tier's own files were rebuilt (else it was only computed, or kept as it was,
    for the experiment's totals)."""
    runs: int
    """Run results aggregated."""
    skipped_runs: list[str]
    """Labels of unreadable or invalid ``run_result.json`` files."""
    approximated: list[str]
    """Wall-clock fields derived from timing files because their previous file was gone."""
    span: Interval | None
    """(earliest agent start, latest judge end) over the tier's runs, when any is known."""
    written: list[str]
    """Files written, relative to the experiment (their temp files wait in ``renames``)."""
    renames: list[tuple[str, str]]
    backups: list[tuple[str, str]]
    """The fold's collected writes, for the rebuild's batch to adopt."""


def previous_tier(layout: ExperimentLayout, tier: str, *, runs: bool = True) -> TierResult | None:
    """The tier's previous ``result.json``: where ProjectScylla keeps it, else the stale copy an
    earlier scylla-repair wrote to ``<exp>/T0`` of a phased experiment (without the runs unless
    ``runs``)."""
    previous = previous_model(layout.tier_file(tier, "result.json"), TierResult, runs=runs)
    stale = layout.stale_tier_dir(tier)
    if previous is None and stale is not None:
        previous = previous_model(stale / "result.json", TierResult, runs=runs)
    return previous


def _valid(result: dict[str, object] | None) -> RunResult | None:
    """The run's result, or None when its ``run_result.json`` is unreadable or invalid."""
    if result is None:
        return None
    try:
        return RunResult.model_validate(result)
    except ValidationError:
        return None


def _summarize_subtests(
    layout: ExperimentLayout, tier: str, skipped: list[str], *, timings: bool
) -> tuple[dict[str, SubtestResult], list[Interval]]:
    """The tier's subtests with at least one readable run result, and the known (start, end) of
    those runs (read only when ``timings``); the label of each unreadable ``run_result.json``
    goes to ``skipped``."""
    keys = [
        RunKey(tier, subtest, number)
        for subtest in layout.recorded_subtests(tier)
        for number in layout.recorded_run_numbers(tier, subtest)
    ]
    by_subtest: dict[str, list[RunResult]] = {}
    intervals: list[Interval] = []
    runs = read_runs([layout.run_dir_str(key) for key in keys], timings=timings)
    for key, run in zip(keys, runs, strict=True):
        if run is None:
            continue
        result = _valid(run.result)
        if result is None:
            skipped.append(key.label)
            continue
        by_subtest.setdefault(key.subtest, []).append(result)
        if run.interval:
            intervals.append(run.interval)
    return {s: aggregate.summarize_subtest(tier, s, runs) for s, runs in by_subtest.items()}, intervals


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
    out.reports(
        partial(layout.tier_file, tier),
        aggregate.tier_report(result, now),
        reports.render_tier_report(result, now),
        reports.render_tier_summary(result),
    )


def fold_tier(root: str, tier: str, *, rebuild: bool, stamp: str, now: str, span: bool) -> TierFold:
    """Fold one tier of the experiment at ``root``.

    A tier not to ``rebuild`` that has a previous ``result.json`` is taken from it as it is; any
    other tier is built from its runs, and its files are written (backed up under ``stamp``,
    reports stamped ``now``) when ``rebuild``. The runs' timing files are read when the tier's
    clock must be approximated from them, or when the experiment's needs the tier's ``span``.
    """
    layout = ExperimentLayout(Path(root))
    written: list[str] = []
    skipped: list[str] = []
    approximated: list[str] = []
    with collected_writes() as batch:
        text = result = known = None
        runs = 0
        previous = previous_tier(layout, tier, runs=False)
        if not rebuild and previous is not None:
            if (full := previous_tier(layout, tier)) is not None:
                text, result = dumps(full.to_json_dict()), without_runs(full)
        else:
            timings = span or not tier_clock_known(layout, tier, previous)
            subtests, intervals = _summarize_subtests(layout, tier, skipped, timings=timings)
            runs = sum(len(s.runs) for s in subtests.values())
            known = (min(i[0] for i in intervals), max(i[1] for i in intervals)) if intervals else None
            if subtests:
                duration, inherited = tier_clock(layout, tier, previous, intervals, approximated)
                full, selection = aggregate.build_tier(
                    tier, subtests, total_duration=duration, inherited_from=inherited
                )
                del subtests
                text, result = dumps(full.to_json_dict()), without_runs(full)
                if rebuild:
                    _write_tier(Writer(layout.root, stamp, written), layout, full, text, selection, now)
    return TierFold(
        tier=tier,
        text=text,
        result=result,
        rebuilt=rebuild and result is not None,
        runs=runs,
        skipped_runs=skipped,
        approximated=approximated,
        span=known,
        written=written,
        renames=batch.renames,
        backups=batch.backups,
    )


class FoldItem(NamedTuple):
    """The arguments of one :func:`fold_tier` call, as one picklable item for a worker."""

    root: str
    tier: str
    rebuild: bool
    stamp: str
    now: str
    span: bool


def fold_tier_item(item: FoldItem) -> TierFold:
    """:func:`fold_tier` of one :class:`FoldItem`."""
    return fold_tier(
        item.root, item.tier, rebuild=item.rebuild, stamp=item.stamp, now=item.now, span=item.span
    )


FoldRunner = Callable[[list[FoldItem]], Iterator[TierFold]]
"""Folds every item and yields the folds in the items' order."""
