"""The cost estimate (mean of completed runs, subtest -> tier -> experiment fallback) and the
rerun gate (cost cap with in-flight estimates, circuit breaker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiment.cost import estimate_repair_cost
from experiment.guardrails import CircuitBreaker, RerunGate, failure_signature
from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from simulation.generator import generate_experiment

TIERS = Path(__file__).parents[1] / "fixtures" / "scylla-tiers"


def set_cost(exp: Path, run: str, cost: float) -> None:
    for name in ("run_result.json", "agent/result.json"):
        path = exp / run / name
        if path.is_file():
            data = json.loads(path.read_text())
            data["cost_usd"] = cost
            path.write_text(json.dumps(data))


@pytest.fixture
def experiment(tmp_path: Path):
    generated = generate_experiment(
        tmp_path / "exp",
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=4,
        mix={"completed": 0.5, "failed": 0.25, "results": 0.25},
        seed=2,
        tiers_dir=TIERS,
        with_base_repo=False,
    )
    return generated.path, generated.truth


def report_of(exp: Path, **filters):
    return scan_in_process(load_context(exp, TIERS), ScanFilters(**filters))


def test_mean_per_subtest_then_tier_then_experiment(experiment):
    exp, truth = experiment
    completed = sorted(r for r, s in truth.items() if s == "completed")
    by_subtest: dict[str, list[str]] = {}
    for run in completed:
        by_subtest.setdefault(run.rsplit("/", 1)[0], []).append(run)
    for group, runs in by_subtest.items():
        for i, run in enumerate(runs):
            set_cost(exp, run, 1.0 + i if group.startswith("T0") else 10.0)
    report = report_of(exp)
    estimate = estimate_repair_cost(report)
    reruns = report.to_rerun()
    assert estimate.reruns == len(reruns) > 0
    for entry in reruns:
        group = f"{entry.tier}/{entry.subtest}"
        if group in by_subtest:
            expected = sum(1.0 + i if group.startswith("T0") else 10.0 for i in range(len(by_subtest[group])))
            assert estimate.for_run(entry.run) == pytest.approx(expected / len(by_subtest[group]))
    assert estimate.total_usd == pytest.approx(sum(estimate.per_run.values()))
    assert "judges not included" in estimate.line() and f"{len(reruns)} reruns" in estimate.line()
    # results runs cost no agent money: a results-only repair is free
    results_only = estimate_repair_cost(report_of(exp, statuses=(RunStatus.RESULTS,)))
    assert results_only.reruns == 0 and results_only.total_usd == 0.0


def test_fallbacks_when_a_subtest_or_tier_has_no_completed_run(experiment):
    exp, truth = experiment
    for run, status in truth.items():
        if status == "completed":
            if run.startswith("T1"):
                (exp / run / "run_result.json").unlink()
                (exp / run / "agent/result.json").unlink(missing_ok=True)
            else:
                set_cost(exp, run, 2.0)
    estimate = estimate_repair_cost(report_of(exp))
    t1 = [r for r in estimate.per_run if r.startswith("T1")]
    assert t1 and all(estimate.per_run[r] == pytest.approx(2.0) for r in t1)  # experiment-wide mean
    assert estimate.basis.get("experiment") == len(t1)


def test_unknown_without_any_cost(experiment):
    exp, truth = experiment
    for run, status in truth.items():
        if status == "completed":
            (exp / run / "run_result.json").unlink()
            (exp / run / "agent/result.json").unlink(missing_ok=True)
    estimate = estimate_repair_cost(report_of(exp))
    assert estimate.total_usd is None and "unknown" in estimate.line()


def test_gate_counts_in_flight_runs_at_their_estimate():
    gate = RerunGate(max_cost_usd=1.0, estimates={"a": 0.4, "b": 0.4, "c": 0.4})
    assert gate.active and gate.may_start()
    gate.started("a")
    gate.started("b")
    assert gate.may_start()  # 0.8 projected
    gate.started("c")
    assert not gate.may_start() and gate.stopped.startswith("cost cap reached")
    gate.finished("a", "succeeded", 0.1, None, "")
    assert gate.may_start()  # the real cost was lower than the estimate
    assert not RerunGate().active


def test_circuit_breaker_needs_the_same_non_transient_reason_in_a_row():
    breaker = CircuitBreaker(3)
    crash = "agent failed (agent_failed: Error: simulated agent crash in /tmp/x/T0/00/run_01, 12 turns)"
    other = crash.replace("run_01", "run_02").replace("12", "3")
    assert failure_signature("agent_failed", crash) == failure_signature("agent_failed", other)
    breaker.record("failed", "agent_failed", crash)
    breaker.record("failed", "rate_limited", "gave up after retries (429)")  # transient: ignored
    breaker.record("failed", "agent_failed", other)
    breaker.record("succeeded", None, "")  # resets
    assert breaker.streak == 0
    for _ in range(2):
        breaker.record("failed", "agent_failed", crash)
    breaker.record("failed", "judge_invalid", "judges failed")  # a different reason restarts the count
    assert breaker.tripped is None and breaker.streak == 1
    for _ in range(2):
        breaker.record("failed", "judge_invalid", "judges failed")
    assert breaker.tripped and breaker.tripped.startswith("circuit breaker: 3 reruns in a row")
