"""Subtest, tier and experiment statistics (spec §4.2, §10 test_regenerate)."""

from __future__ import annotations

import json
import math

import pytest

from experiment import aggregate
from experiment.jsonio import dumps
from experiment.models import RunResult, TokenStats


def run(n: int, score: float, passed: bool = True, cost: float = 0.01, tokens: int = 100, **kw) -> RunResult:
    from experiment.models import grade_for_score

    stats = TokenStats(input_tokens=tokens, output_tokens=0, cache_creation_tokens=0, cache_read_tokens=0)
    return RunResult(
        run_number=n,
        exit_code=0,
        token_stats=stats,
        cost_usd=cost,
        judge_score=score,
        judge_passed=passed,
        judge_grade=kw.pop("grade", grade_for_score(score)),
        duration_seconds=kw.pop("duration", 10.0),
        **kw,
    )


def test_empty_subtest():
    sub = aggregate.summarize_subtest("T0", "00", [])
    assert sub.runs == [] and sub.pass_rate == 0.0 and sub.mean_score == 0.0 and sub.median_score == 0.0
    assert sub.modal_grade is None and sub.grade_distribution == {}


def test_two_runs_like_the_original_test():
    sub = aggregate.summarize_subtest("T0", "00", [run(2, 0.75, cost=0.012), run(1, 0.85, cost=0.010)])
    assert [r.run_number for r in sub.runs] == [1, 2]
    assert sub.pass_rate == 1.0
    assert sub.mean_score == pytest.approx(0.80)
    assert sub.median_score == pytest.approx(0.80)
    assert sub.mean_cost == pytest.approx(0.011)
    assert sub.total_cost == pytest.approx(0.022)
    assert sub.std_dev_score == pytest.approx(math.sqrt(0.005))  # sample stdev
    assert sub.consistency == pytest.approx(1 - math.sqrt(0.005) / 0.8)
    assert sub.token_stats.input_tokens == 200


def test_single_run_has_zero_stdev_and_full_consistency():
    sub = aggregate.summarize_subtest("T0", "00", [run(1, 0.5)])
    assert sub.std_dev_score == 0.0 and sub.consistency == 1.0


def test_consistency_zero_mean_and_clamped():
    assert aggregate.summarize_subtest("T0", "00", [run(1, 0.0), run(2, 0.0)]).consistency == 0.0
    assert aggregate.summarize_subtest("T0", "00", [run(1, 0.0), run(2, 1.0)]).consistency == 0.0


def test_grades_modal_first_on_tie_and_range():
    sub = aggregate.summarize_subtest(
        "T0", "00", [run(1, 0.9), run(2, 0.3), run(3, 0.95), run(4, 0.35), run(5, 1.0)]
    )
    assert sub.grade_distribution == {"A": 2, "D": 2, "S": 1}
    assert sub.modal_grade == "A"
    assert (sub.min_grade, sub.max_grade) == ("D", "S")
    assert sub.pass_rate == 1.0


def test_pass_rate_counts_judge_passed():
    sub = aggregate.summarize_subtest("T0", "00", [run(1, 0.9, True), run(2, 0.9, False)])
    assert sub.pass_rate == 0.5


def subs(**medians):
    out = {}
    for sid, (score, tokens) in medians.items():
        out[sid] = aggregate.summarize_subtest("T1", sid, [run(1, score, tokens=tokens)])
    return out


def test_single_subtest_wins_with_margin_one():
    best = aggregate.select_best_subtest(subs(**{"01": (0.9, 10)}))
    assert best.winning_subtest == "01" and best.margin == 1.0 and not best.tiebreaker_needed
    assert best.votes[0].reasoning == "Only sub-test in tier"
    assert best.votes[0].confidence == 1.0


def test_highest_median_wins_without_tie():
    best = aggregate.select_best_subtest(subs(**{"01": (0.6, 1), "02": (0.9, 1000)}))
    assert best.winning_subtest == "02"
    assert best.margin == pytest.approx(0.3)
    assert not best.tiebreaker_needed
    assert best.votes[0].reasoning.startswith("Pass rate: 100.0%, Mean score: 0.600")


def test_tie_break_by_fewest_tokens():
    best = aggregate.select_best_subtest(subs(**{"01": (0.90, 500), "02": (0.88, 100)}))
    assert best.tiebreaker_needed and best.winning_subtest == "02"
    assert best.winning_score == pytest.approx(0.88)
    assert best.tiebreaker_result.subtest_id == "02"
    equal = aggregate.select_best_subtest(subs(**{"01": (0.90, 100), "02": (0.88, 100)}))
    assert equal.tiebreaker_needed and equal.winning_subtest == "01"


def test_tier_totals_and_cost_of_pass():
    sub_results = {
        "01": aggregate.summarize_subtest("T1", "01", [run(1, 0.9, True, 0.2), run(2, 0.9, False, 0.4)]),
        "02": aggregate.summarize_subtest("T1", "02", [run(1, 0.5, True, 0.1)]),
    }
    tier, best = aggregate.build_tier("T1", sub_results, total_duration=12.5)
    assert tier.best_subtest == "01" == best.winning_subtest
    assert tier.total_cost == pytest.approx(0.7)
    assert tier.cost_of_pass == pytest.approx(0.3 / 0.5)
    assert tier.token_stats.input_tokens == 300
    assert tier.subtest_results["01"].selected_as_best
    assert tier.subtest_results["01"].selection_reason == "Highest median score (0.900)"
    assert not tier.subtest_results["02"].selected_as_best
    report = aggregate.tier_report(tier, "now")
    assert [c.id for c in report.children] == ["01", "02"] and report.children[0].selected


def test_cost_of_pass_none_when_nothing_passed_and_frontier_written_as_infinity():
    sub = {"01": aggregate.summarize_subtest("T1", "01", [run(1, 0.1, False)])}
    tier, _ = aggregate.build_tier("T1", sub, total_duration=1.0)
    assert tier.cost_of_pass is None
    assert "Infinity" not in dumps(tier.to_json_dict())
    experiment = aggregate.build_experiment(
        {}, {"T1": tier}, started_at=None, completed_at=None, total_duration_seconds=0.0
    )
    assert experiment.frontier_cop is None and experiment.best_overall_tier is None
    # ProjectScylla's ExperimentResult requires a float: "nothing passed" is its bare Infinity,
    # the only non-JSON constant we ever write.
    text = dumps(experiment.to_json_dict())
    constants: list[str] = []
    data = json.loads(text, parse_constant=lambda c: constants.append(c) or float(c))
    assert constants == ["Infinity"] and data["frontier_cop"] == float("inf")


def test_frontier_empty_and_skips_zero_pass_rate():
    assert aggregate.frontier({}) == (None, None)
    tiers = {}
    for tid, (passed, cost) in {"T0": (False, 0.01), "T1": (True, 0.5), "T2": (True, 0.2)}.items():
        sub = {"01": aggregate.summarize_subtest(tid, "01", [run(1, 0.9, passed, cost)])}
        tiers[tid], _ = aggregate.build_tier(tid, sub, total_duration=1.0)
    assert aggregate.frontier(tiers) == ("T2", pytest.approx(0.2))


def test_experiment_totals_are_summed():
    tiers = {}
    for tid, cost in {"T0": 0.25, "T1": 0.5}.items():
        sub = {"01": aggregate.summarize_subtest(tid, "01", [run(1, 0.9, True, cost, tokens=7)])}
        tiers[tid], _ = aggregate.build_tier(tid, sub, total_duration=3.0)
    result = aggregate.build_experiment(
        {"experiment_id": "x"}, tiers, started_at="a", completed_at="b", total_duration_seconds=9.0
    )
    assert result.total_cost == pytest.approx(0.75)
    assert result.token_stats.input_tokens == 14
    assert result.best_overall_tier == "T0" and result.best_overall_subtest == "01"
    report = aggregate.experiment_report(result, "x", "now")
    assert report.summary.total_cost == pytest.approx(0.75) and report.summary.total_tiers == 2
    comparison = aggregate.tier_comparison(tiers).to_json_dict()
    assert comparison["T1"]["total_cost"] == 0.5


def test_wall_span():
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert aggregate.wall_span([]) == 0.0
    spans = [(t0, t0 + timedelta(seconds=5)), (t0 + timedelta(seconds=2), t0 + timedelta(seconds=9))]
    assert aggregate.wall_span(spans) == 9.0
