"""The nightly repair: every experiment under a root, one subflow each, within its guardrails
(budget cap, circuit breaker), and a markdown artifact for the night."""

from __future__ import annotations

from pathlib import Path

from experiment.nightly import find_experiments
from experiment.scan import ScanFilters, load_context, scan_in_process
from flows.nightly_repair import nightly_repair
from flows.rerun_agents import rerun_agents, summary_of
from simulation.generator import generate_experiment
from tasks.artifacts import artifact_key
from tests.flows.simulated import TIERS, simulated_provider


def make(root: Path, name: str, mix: dict[str, float], runs: int = 4, seed: int = 5):
    return generate_experiment(
        root / name,
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=runs,
        mix=mix,
        seed=seed,
        tiers_dir=TIERS,
    )


def statuses(exp: Path) -> dict[str, str]:
    report = scan_in_process(load_context(exp, TIERS), ScanFilters())
    return {e.run: e.status.value for e in report.entries}


def markdown_artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return found[0].data


def test_nightly_repairs_what_needs_it_and_summarises(tmp_path, monkeypatch):
    root = tmp_path / "fullruns"
    clean = make(root, "2026-01-19T01-00-00-clean", {"completed": 1.0})
    broken = make(
        root / "haiku", "2026-01-20T06-13-07-broken", {"completed": 0.5, "failed": 0.25, "results": 0.25}
    )
    (root / "notes").mkdir()  # not an experiment
    assert find_experiments(root) == sorted([clean.path, broken.path])
    with simulated_provider(monkeypatch, tmp_path) as provider:
        night = nightly_repair(str(root), min_idle_minutes=0, tiers_dir=str(TIERS))
        failed = [r for r, s in broken.truth.items() if s == "failed"]
        assert provider.agent_starts() == len(failed)
    rows = {Path(e.experiment).name: e for e in night.experiments}
    assert rows[clean.path.name].verdict == "nothing to do"
    row = rows[broken.path.name]
    assert row.verdict == "repaired" and row.succeeded == len(failed) and row.failed == 0
    assert row.regenerated == sum(1 for s in broken.truth.values() if s == "results")
    assert row.estimated_cost_usd and row.cost_usd > 0
    assert set(statuses(broken.path).values()) == {"completed"}
    text = markdown_artifact(artifact_key("nightly", root))
    assert "# Nightly repair" in text and broken.path.name in text and "nothing to do" in text


def test_budget_cap_stops_new_reruns_and_skips_the_next_experiment(tmp_path, monkeypatch):
    root = tmp_path / "fullruns"
    first = make(root, "a-first", {"completed": 0.25, "failed": 0.75}, runs=4)
    second = make(root, "b-second", {"completed": 0.5, "failed": 0.5}, runs=2)
    failed = sorted(r for r, s in first.truth.items() if s == "failed")
    with simulated_provider(monkeypatch, tmp_path) as provider:
        # Completed runs cost $0.05-0.30 each: one rerun's estimate alone reaches a $0.01 cap.
        night = nightly_repair(
            str(root), max_cost=0.01, min_idle_minutes=0, tiers_dir=str(TIERS), max_concurrent=1
        )
        assert provider.agent_starts() == 1
    a, b = night.experiments
    assert a.succeeded == 1 and a.deferred == len(failed) - 1 and a.verdict == "partly repaired"
    assert a.note.startswith("cost cap reached")
    assert b.verdict == "skipped" and b.note.startswith("budget spent")
    after = statuses(first.path)
    assert sum(1 for r in failed if after[r] == "failed") == len(failed) - 1  # never touched
    assert sum(1 for _ in first.path.glob("T0/*/.failed/*")) == 1  # only the one rerun archived
    assert set(statuses(second.path).values()) == {"completed", "failed"}


def test_circuit_breaker_trips_after_k_same_failures(tmp_path, monkeypatch):
    exp = make(
        tmp_path / "fullruns", "2026-01-20T06-13-07-breaker", {"completed": 0.25, "failed": 0.75}, runs=4
    ).path
    failed = [r for r, s in statuses(exp).items() if s == "failed"]
    assert len(failed) == 6
    with simulated_provider(monkeypatch, tmp_path) as provider:
        provider.script_rules([], default="fail")
        summary = summary_of(
            rerun_agents(
                str(exp), tiers_dir=str(TIERS), circuit_breaker=2, max_concurrent=1, return_state=True
            )
        )
        assert provider.agent_starts() == 2
    assert summary.failed == 2 and summary.deferred == len(failed) - 2
    assert summary.stopped and summary.stopped.startswith("circuit breaker: 2 reruns in a row")
    assert all(
        r.reason.startswith("not started: circuit breaker") for r in summary.runs if r.outcome == "deferred"
    )
    assert sum(1 for _ in exp.glob("T0/*/.failed/*")) == 2  # only the two attempted runs were archived
    text = markdown_artifact(artifact_key("repair-summary", exp))
    assert "circuit breaker" in text
