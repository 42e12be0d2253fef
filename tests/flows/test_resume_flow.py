"""Resume = run the same flow again (CLI, deployment, or "Retry" in the UI, which re-runs the flow
with the same parameters): the unfinished repair keeps its id, so every agent that finished comes
back from its persisted result instead of being paid for again."""

from __future__ import annotations

from pathlib import Path

import pytest

import flows.rerun_agents as rerun_flow
from experiment.attempt import current_repair_id
from experiment.layout import ExperimentLayout
from experiment.scan import ScanFilters, load_context, scan_in_process
from flows.rerun_agents import rerun_agents, summary_of
from simulation.generator import generate_experiment
from tests.flows.simulated import TIERS, simulated_provider


class SimulatedCrash(RuntimeError):
    pass


def test_a_flow_rerun_after_a_crash_reuses_every_finished_agent(tmp_path, monkeypatch):
    exp = generate_experiment(
        tmp_path / "results" / "2026-01-20T06-13-07-resume",
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=3,
        mix={"missing": 1.0},
        seed=2,
        tiers_dir=TIERS,
    ).path
    prefect_dir = ExperimentLayout(exp).prefect_dir
    with simulated_provider(monkeypatch, tmp_path) as provider:
        # run_02's agent fails for real (not transient): an outcome, persisted like a success.
        provider.script_rules([{"match": "/run_02/", "modes": ["fail"]}])

        def crash(*args, **kwargs):
            raise SimulatedCrash("the worker died after every run's agent and judges")

        with monkeypatch.context() as patch:
            patch.setattr(rerun_flow, "rebuild_aggregates_task", crash)
            with pytest.raises(SimulatedCrash):
                rerun_agents(str(exp), tiers_dir=str(TIERS))
        repair_id, _ = current_repair_id(prefect_dir)
        assert provider.agent_starts() == 3
        archives = sorted(exp.glob("T0/00/.failed/*"))

        # The retry: same parameters, same unfinished repair id.
        summary = summary_of(rerun_agents(str(exp), tiers_dir=str(TIERS), return_state=True))
        assert f"Resumed the unfinished repair {repair_id}." in summary.notes
        assert provider.agent_starts() == 3  # nobody paid twice, not even the failed agent
        assert sorted(exp.glob("T0/00/.failed/*")) == archives  # its attempt was kept, not archived
        failed = [r for r in summary.runs if r.outcome == "failed"]
        assert [r.run for r in failed] == ["T0/00/run_02"]
        assert summary.aggregates_rebuilt

        # That repair finished: the next one is a new repair, and really re-runs the failed agent.
        provider.script_rules([])
        again = summary_of(rerun_agents(str(exp), tiers_dir=str(TIERS), return_state=True))
        assert provider.agent_starts("/run_02/") == 2
        assert again.failed == 0
        statuses = {e.status.value for e in scan_in_process(load_context(exp, TIERS), ScanFilters()).entries}
        assert statuses == {"completed"}
        assert Path(exp / "T0" / "00" / ".failed" / "run_02").is_dir()
