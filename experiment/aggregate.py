"""Subtest, tier and experiment statistics: pure functions of ``RunResult`` objects (spec §4.2).

Nothing here reads or writes a file; :mod:`experiment.regenerate` loads the run results, calls
these functions, and writes what they return. The rules, in the original's terms:

* **Subtest** (runs sorted by number): ``pass_rate`` = passed/n; mean, median and the *sample*
  standard deviation of the consensus scores (0 when n = 1); ``consistency`` =
  max(0, 1 − std/mean), 0 when the mean is 0; mean and total cost; summed tokens; the grade
  distribution in order of first appearance, its mode (ties: the first grade seen), and the
  min/max grade by F < D < C < B < A < S.
* **Best subtest of a tier**: highest median score; equal medians rank by subtest id (ascending),
  so the outcome never depends on the order files were found. One subtest wins with margin 1.0
  ("Only sub-test in tier"). When the top two are within 0.05, the one with fewer total tokens
  (input + output + cache creation + cache read) wins, the higher-ranked one on equal tokens, and
  ``tiebreaker_result`` is a vote for it (ProjectScylla's ``JudgeVote`` shape).
* **Tier**: total cost and tokens summed over its subtests; ``cost_of_pass`` = mean cost / pass
  rate of its best subtest, ``None`` when that pass rate is 0.
* **Experiment**: the frontier is the tier with the lowest cost-of-pass (tiers with pass rate 0
  skipped; ``None`` when no tier qualifies: the original wrote a bare ``Infinity``, which is not
  JSON, so we write ``null``). Totals (cost, tokens) are really summed over the tiers; the
  original's regenerate left them at zero (spec §8.14).

Wall-clock fields (a tier's ``total_duration``, the experiment's ``started_at``,
``completed_at`` and ``total_duration_seconds``) are not functions of the run results; the
caller supplies them (see :func:`experiment.regenerate.rebuild_aggregates`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from experiment.models import (
    BestSubtest,
    ExperimentReport,
    ExperimentReportBest,
    ExperimentReportChild,
    ExperimentReportSummary,
    ExperimentResult,
    RunReport,
    RunResult,
    SubtestReport,
    SubtestReportChild,
    SubtestReportSummary,
    SubtestResult,
    TierComparison,
    TierComparisonEntry,
    TierReport,
    TierReportBest,
    TierReportChild,
    TierReportSummary,
    TierResult,
    TokenStats,
    Vote,
    grade_for_score,
)

GRADE_ORDER = ("F", "D", "C", "B", "A", "S")
"""Worst to best."""
TIE_MARGIN = 0.05
"""Top-two median difference below which the token tie-breaker decides."""
ONLY_SUBTEST = "Only sub-test in tier"
TIEBREAKER_REASON = "Tie-breaker: fewest total tokens"


def _score(run: RunResult) -> float:
    return float(run.judge_score) if run.judge_score is not None else 0.0


def _grade(run: RunResult) -> str:
    return run.judge_grade or grade_for_score(_score(run))


def _child_report(child: str | None) -> str:
    """Relative link from a report to a child's ``report.json`` (``""`` when there is no child)."""
    return f"./{child}/report.json" if child else ""


# --------------------------------------------------------------------------------------------------
# Subtests
# --------------------------------------------------------------------------------------------------


def summarize_subtest(tier_id: str, subtest_id: str, runs: Iterable[RunResult]) -> SubtestResult:
    """The SubTestResult of a subtest's runs (not yet selected as best)."""
    ordered = sorted(runs, key=lambda r: r.run_number)
    n = len(ordered)
    scores = [_score(r) for r in ordered]
    costs = [float(r.cost_usd) for r in ordered]
    mean = statistics.fmean(scores) if n else 0.0
    std = statistics.stdev(scores) if n > 1 else 0.0
    consistency = max(0.0, 1.0 - std / mean) if mean > 0 else 0.0
    grades = [_grade(r) for r in ordered]
    distribution: dict[str, int] = {}
    for grade in grades:
        distribution[grade] = distribution.get(grade, 0) + 1
    modal = max(distribution, key=lambda g: distribution[g]) if distribution else None  # first on ties
    ranked = sorted((g for g in distribution if g in GRADE_ORDER), key=GRADE_ORDER.index)
    total_cost = sum(costs)
    return SubtestResult(
        subtest_id=subtest_id,
        tier_id=tier_id,
        runs=ordered,
        pass_rate=(sum(1 for r in ordered if r.judge_passed) / n) if n else 0.0,
        mean_score=mean,
        median_score=statistics.median(scores) if n else 0.0,
        std_dev_score=std,
        mean_cost=total_cost / n if n else 0.0,
        total_cost=total_cost,
        token_stats=TokenStats.sum(r.token_stats for r in ordered),
        consistency=consistency,
        grade_distribution=distribution,
        modal_grade=modal,
        min_grade=ranked[0] if ranked else None,
        max_grade=ranked[-1] if ranked else None,
        selected_as_best=False,
        selection_reason="",
        rate_limit_info=None,
    )


def subtest_report(result: SubtestResult, generated_at: str) -> SubtestReport:
    """The subtest ``report.json``."""
    return SubtestReport(
        subtest_id=result.subtest_id,
        tier_id=result.tier_id,
        summary=SubtestReportSummary(
            total_runs=len(result.runs),
            passed=sum(1 for r in result.runs if r.judge_passed),
            pass_rate=result.pass_rate,
            mean_score=result.mean_score,
            median_score=result.median_score,
            std_dev=result.std_dev_score,
            total_cost=result.total_cost,
            consistency=result.consistency,
            grade_distribution=dict(result.grade_distribution),
            modal_grade=result.modal_grade,
            min_grade=result.min_grade,
            max_grade=result.max_grade,
        ),
        token_stats=result.token_stats,
        children=[
            SubtestReportChild(
                run_number=r.run_number,
                score=r.judge_score,
                passed=r.judge_passed,
                report=_child_report(f"run_{r.run_number:02d}"),
            )
            for r in result.runs
        ],
        generated_at=generated_at,
    )


def run_report(run: RunResult, generated_at: str, previous: RunReport | None = None) -> RunReport:
    """The run ``report.json``; ``process_metrics`` of a previous report are kept."""
    report = RunReport(
        run_number=run.run_number,
        score=run.judge_score,
        grade=run.judge_grade,
        passed=run.judge_passed,
        cost_usd=run.cost_usd,
        duration_seconds=run.duration_seconds,
        generated_at=generated_at,
    )
    if previous is not None and previous.process_metrics is not None:
        report.process_metrics = previous.process_metrics
    return report


# --------------------------------------------------------------------------------------------------
# Tiers
# --------------------------------------------------------------------------------------------------


def _vote_reasoning(result: SubtestResult) -> str:
    return (
        f"Pass rate: {result.pass_rate:.1%}, Mean score: {result.mean_score:.3f}, "
        f"Consistency: {result.consistency:.3f}"
    )


def select_best_subtest(subtests: Mapping[str, SubtestResult]) -> BestSubtest:
    """Rank by median score; single subtest: margin 1.0; top two within 0.05: fewest tokens."""
    if not subtests:
        return BestSubtest(
            winning_subtest=None,
            winning_score=0.0,
            votes=[],
            margin=0.0,
            tiebreaker_needed=False,
            tiebreaker_result=None,
        )
    ranked = sorted(subtests.values(), key=lambda s: (-s.median_score, s.subtest_id))
    if len(ranked) == 1:
        only = ranked[0]
        return BestSubtest(
            winning_subtest=only.subtest_id,
            winning_score=only.median_score,
            votes=[
                Vote(
                    subtest_id=only.subtest_id,
                    score=only.median_score,
                    confidence=only.consistency,
                    reasoning=ONLY_SUBTEST,
                )
            ],
            margin=1.0,
            tiebreaker_needed=False,
            tiebreaker_result=None,
        )
    top1, top2 = ranked[0], ranked[1]
    margin = top1.median_score - top2.median_score
    tie = margin < TIE_MARGIN
    winner = top1
    tiebreaker_result: Vote | None = None
    if tie:
        tokens1, tokens2 = top1.token_stats.total_tokens, top2.token_stats.total_tokens
        winner = top2 if tokens2 < tokens1 else top1
        # ProjectScylla's JudgeSelection takes a JudgeVote here: the winner, full confidence
        # (the rule is deterministic), and the token counts that decided it in the reasoning.
        tiebreaker_result = Vote(
            subtest_id=winner.subtest_id,
            score=winner.median_score,
            confidence=1.0,
            reasoning=(
                f"{TIEBREAKER_REASON} ({winner.token_stats.total_tokens:,}): "
                f"{top1.subtest_id} used {tokens1:,}, {top2.subtest_id} used {tokens2:,}"
            ),
        )
    return BestSubtest(
        winning_subtest=winner.subtest_id,
        winning_score=winner.median_score,
        votes=[
            Vote(
                subtest_id=s.subtest_id,
                score=s.median_score,
                confidence=s.consistency,
                reasoning=_vote_reasoning(s),
            )
            for s in sorted(subtests.values(), key=lambda s: s.subtest_id)
        ],
        margin=margin,
        tiebreaker_needed=tie,
        tiebreaker_result=tiebreaker_result,
    )


def cost_of_pass(result: SubtestResult | None) -> float | None:
    """mean_cost / pass_rate; None when nothing passed (never Infinity)."""
    if result is None or result.pass_rate <= 0:
        return None
    return result.mean_cost / result.pass_rate


def build_tier(
    tier_id: str,
    subtests: Mapping[str, SubtestResult],
    *,
    total_duration: float,
    inherited_from: Any = None,
) -> tuple[TierResult, BestSubtest]:
    """The tier ``result.json`` and ``best_subtest.json``; marks the winner in ``subtests``."""
    selection = select_best_subtest(subtests)
    ordered: dict[str, SubtestResult] = {}
    for sid in sorted(subtests):
        sub = subtests[sid].model_copy()
        sub.selected_as_best = sid == selection.winning_subtest
        if sub.selected_as_best:
            if selection.tiebreaker_needed:
                sub.selection_reason = (
                    f"Tie-breaker: fewest total tokens ({sub.token_stats.total_tokens:,}) among the top two "
                    f"median scores within {TIE_MARGIN} ({sub.median_score:.3f})"
                )
            else:
                sub.selection_reason = f"Highest median score ({sub.median_score:.3f})"
        else:
            sub.selection_reason = ""
        ordered[sid] = sub
    best = ordered.get(selection.winning_subtest) if selection.winning_subtest else None
    tier = TierResult(
        tier_id=tier_id,
        subtest_results=ordered,
        best_subtest=selection.winning_subtest,
        best_subtest_score=selection.winning_score,
        inherited_from=inherited_from,
        tiebreaker_needed=selection.tiebreaker_needed,
        total_cost=sum(s.total_cost for s in ordered.values()),
        total_duration=total_duration,
        cost_of_pass=cost_of_pass(best),
        token_stats=TokenStats.sum(s.token_stats for s in ordered.values()),
    )
    return tier, selection


def tier_report(tier: TierResult, generated_at: str) -> TierReport:
    """The tier ``report.json``."""
    best = tier.best_subtest
    return TierReport(
        tier=tier.tier_id,
        summary=TierReportSummary(
            total_subtests=len(tier.subtest_results),
            best_subtest=best,
            best_score=tier.best_subtest_score,
            total_cost=tier.total_cost,
            total_duration=tier.total_duration,
            tiebreaker_needed=tier.tiebreaker_needed,
        ),
        token_stats=tier.token_stats,
        best=TierReportBest(subtest=best, score=tier.best_subtest_score, report=_child_report(best)),
        children=[
            TierReportChild(
                id=sid,
                score=sub.median_score,
                pass_rate=sub.pass_rate,
                cost=sub.total_cost,
                selected=sub.selected_as_best,
                report=_child_report(sid),
            )
            for sid, sub in tier.subtest_results.items()
        ],
        generated_at=generated_at,
    )


# --------------------------------------------------------------------------------------------------
# Experiment
# --------------------------------------------------------------------------------------------------


def frontier(tiers: Mapping[str, TierResult]) -> tuple[str | None, float | None]:
    """(tier, cost-of-pass) with the lowest cost-of-pass; (None, None) when no tier passed.

    The original returned ``(None, inf)``; ``None`` is what our JSON files hold instead of
    ``Infinity``. Ties go to the first tier in ``tiers`` order.
    """
    best_tier, best_cop = None, None
    for tier_id, tier in tiers.items():
        cop = tier.cost_of_pass
        if cop is None:
            continue
        if best_cop is None or cop < best_cop:
            best_tier, best_cop = tier_id, cop
    return best_tier, best_cop


def build_experiment(
    config: dict[str, Any],
    tiers: Mapping[str, TierResult],
    *,
    started_at: str | None,
    completed_at: str | None,
    total_duration_seconds: float,
) -> ExperimentResult:
    """The root ``result.json`` with really summed totals (cost and tokens over the tiers)."""
    tier_id, cop = frontier(tiers)
    return ExperimentResult(
        config=config,
        tier_results=dict(tiers),
        best_overall_tier=tier_id,
        best_overall_subtest=tiers[tier_id].best_subtest if tier_id else None,
        frontier_cop=cop,
        frontier_cop_tier=tier_id,
        total_cost=sum(t.total_cost for t in tiers.values()),
        total_duration_seconds=total_duration_seconds,
        token_stats=TokenStats.sum(t.token_stats for t in tiers.values()),
        started_at=started_at,
        completed_at=completed_at,
    )


def experiment_report(result: ExperimentResult, experiment_id: str, generated_at: str) -> ExperimentReport:
    """The root ``report.json``."""
    return ExperimentReport(
        experiment_id=experiment_id,
        summary=ExperimentReportSummary(
            total_tiers=len(result.tier_results),
            best_tier=result.best_overall_tier,
            best_subtest=result.best_overall_subtest,
            frontier_cop=result.frontier_cop,
            total_cost=result.total_cost,
            total_duration=result.total_duration_seconds,
            started_at=result.started_at,
            completed_at=result.completed_at,
        ),
        token_stats=result.token_stats,
        best=ExperimentReportBest(
            tier=result.best_overall_tier,
            subtest=result.best_overall_subtest,
            report=_child_report(result.best_overall_tier),
        ),
        children=[
            ExperimentReportChild(
                tier=tid,
                best_subtest=t.best_subtest,
                best_score=t.best_subtest_score,
                cost=t.total_cost,
                report=_child_report(tid),
            )
            for tid, t in result.tier_results.items()
        ],
        generated_at=generated_at,
    )


def tier_comparison(tiers: Mapping[str, TierResult]) -> TierComparison:
    """``tier_comparison.json``."""
    return TierComparison(
        {
            tid: TierComparisonEntry(
                best_subtest=t.best_subtest,
                best_score=t.best_subtest_score,
                total_cost=t.total_cost,
                tiebreaker_needed=t.tiebreaker_needed,
            )
            for tid, t in tiers.items()
        }
    )


# --------------------------------------------------------------------------------------------------
# Wall-clock approximations (used only when the previous file is gone)
# --------------------------------------------------------------------------------------------------


def wall_span(intervals: Sequence[tuple[datetime, datetime]]) -> float:
    """Seconds from the earliest start to the latest end of ``intervals`` (0 when empty)."""
    if not intervals:
        return 0.0
    start = min(i[0] for i in intervals)
    end = max(i[1] for i in intervals)
    return max(0.0, (end - start).total_seconds())
