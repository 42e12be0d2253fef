"""The rerun flow on a local Dask cluster (prefect-dask): the scale-out task runner option."""

from __future__ import annotations

from prefect_dask import DaskTaskRunner

from experiment.scan import ScanFilters, load_context, scan_in_process
from flows.rerun_agents import rerun_agents
from simulation.generator import generate_experiment
from tests.flows.simulated import TIERS, simulated_provider


def test_rerun_flow_on_a_local_dask_cluster(tmp_path, monkeypatch):
    generated = generate_experiment(
        tmp_path / "fullruns" / "2026-01-20T06-13-07-dask",
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=2,
        mix={"completed": 0.5, "failed": 0.25, "results": 0.25},
        seed=3,
        tiers_dir=TIERS,
    )
    exp = generated.path
    # Threads in this process: the fake claude on PATH and the judge server's URL reach the tasks
    # through the environment, as they would on a real Dask worker started with that environment.
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    with simulated_provider(monkeypatch, tmp_path) as provider:
        summary = rerun_agents.with_options(task_runner=runner)(str(exp), tiers_dir=str(TIERS))
        failed = [r for r, s in generated.truth.items() if s == "failed"]
        assert provider.agent_starts() == len(failed)
    assert summary.failed == 0 and summary.succeeded == len(failed)
    assert summary.regenerated == sum(1 for s in generated.truth.values() if s == "results")
    report = scan_in_process(load_context(exp, TIERS), ScanFilters())
    assert report.counts["completed"] == report.total_expected
