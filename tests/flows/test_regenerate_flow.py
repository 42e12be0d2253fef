"""The regenerate-results flow under Prefect: the same outcome as the in-process CLI, chunked
tasks, the aggregates rebuilt with real totals, and a markdown artifact."""

from __future__ import annotations

import json
from pathlib import Path

from experiment.regenerate import RegenerateSummary
from flows.regenerate import regenerate_results
from simulation.generator import generate_experiment
from tasks.artifacts import artifact_key
from tests.integration.services import wait_for


def test_regenerate_flow_on_generated_experiment(tmp_path: Path):
    generated = generate_experiment(
        tmp_path / "exp-regen",
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=30,  # 120 runs, ~36 results runs -> one chunk; the rest stay as they are
        mix={"completed": 0.6, "results": 0.3, "failed": 0.1},
        seed=3,
        with_base_repo=False,
    )
    exp = generated.path
    results = sorted(run for run, status in generated.truth.items() if status == "results")
    state = regenerate_results(str(exp), return_state=True)
    assert state.is_completed()
    summary: RegenerateSummary = state.result()
    assert summary.regenerated == len(results)
    assert sorted(r.run for r in summary.runs) == results
    for run in results:
        assert (exp / run / "run_result.json").is_file() and (exp / run / "agent/result.json").is_file()
    result = json.loads((exp / "result.json").read_text())
    tiers = {t: json.loads((exp / t / "result.json").read_text()) for t in ("T0", "T1")}
    assert result["total_cost"] == sum(t["total_cost"] for t in tiers.values()) > 0
    assert result["token_stats"]["cache_read_tokens"] > 0
    assert summary.aggregates is not None and set(summary.aggregates.tiers) == {"T0", "T1"}

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        # The server records task runs from their events, after the flow returns.
        def recorded():
            names = [
                t.name for t in client.read_task_runs() if t.flow_run_id == state.state_details.flow_run_id
            ]
            done = {
                prefix
                for prefix in ("regenerate ", "rebuild-aggregates")
                for n in names
                if n.startswith(prefix)
            }
            return names if len(done) == 2 else None

        names = wait_for(recorded, 60, "the regeneration's task runs on the server", interval=0.2)
        assert [n for n in names if n.startswith("regenerate ")] == [
            f"regenerate {results[0]} (+{len(results) - 1})"
        ]
        assert any(n.startswith("rebuild-aggregates") for n in names)
        key = artifact_key("regenerate", exp)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        assert artifacts and "Regenerated results" in artifacts[0].data


def test_regenerate_flow_skip_aggregates(fixture_experiment: Path):
    (fixture_experiment / "T1/01/run_01/run_result.json").unlink()
    before = (fixture_experiment / "result.json").stat().st_mtime_ns
    summary = regenerate_results(str(fixture_experiment), tiers=["T1"], skip_aggregates=True)
    assert summary.regenerated == 1 and summary.aggregates is None
    assert (fixture_experiment / "T1/01/run_01/run_result.json").is_file()
    assert (fixture_experiment / "result.json").stat().st_mtime_ns == before
