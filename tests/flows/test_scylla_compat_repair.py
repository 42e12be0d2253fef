"""A repair writes what ProjectScylla reads, where it reads it, on both layouts (issue 11).

The repair runs end to end (real git, the fake ``claude``, the local Messages server). Every file
it writes validates against the ProjectScylla-shaped models, has the umask's mode (or keeps its
own), every judged run has ``judge/timing.json``, and a second repair or a regeneration with
nothing left to do changes no byte and no mode of the experiment (``.prefect/`` aside).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiment.scan import ScanFilters, load_context, scan_in_process
from flows.regenerate import regenerate_results
from flows.rerun_agents import rerun_agents
from simulation.generator import generate_experiment
from tests.compat.files import mode_problems, snapshot, written_since
from tests.compat.scylla_shapes import CheckpointShape, JudgeTimingShape, check_experiment
from tests.flows.simulated import TIERS, simulated_provider

EVERY_STATUS = {"completed": 0.4, "results": 0.2, "failed": 0.2, "partial": 0.1, "missing": 0.1}
TASK_FILES = ("workspace", "repo")
"""The agent's worktree and the task repository: git's files, not results."""


def judged_runs_without_timing(exp: Path) -> list[str]:
    missing = []
    for result in exp.rglob("judge/result.json"):
        if ".failed" in result.parts or ".backups" in result.parts:
            continue
        timing = result.parent / "timing.json"
        if not timing.is_file():
            missing.append(str(result.parent.parent.relative_to(exp)))
        else:
            JudgeTimingShape.model_validate(json.loads(timing.read_text()))
    return missing


@pytest.mark.parametrize("layout", ["flat", "phased"])
def test_a_repair_writes_what_projectscylla_reads_and_a_second_one_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
):
    generated = generate_experiment(
        tmp_path / "results" / f"2026-01-20T06-13-07-{layout}",
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        mix=EVERY_STATUS,
        seed=13,
        tiers_dir=TIERS,
        layout=layout,
    )
    exp = generated.path
    before = snapshot(exp)
    with simulated_provider(monkeypatch, tmp_path):
        summary = rerun_agents(str(exp), tiers_dir=str(TIERS))
        assert summary.failed == 0 and summary.aggregates_rebuilt
        report = scan_in_process(load_context(exp, TIERS), ScanFilters())
        assert report.counts["completed"] == report.total_expected

        after = snapshot(exp)
        written = [
            p for p in written_since(before, after) if not any(part in TASK_FILES for part in p.split("/"))
        ]
        assert written
        assert check_experiment(exp) == []
        assert mode_problems(before, after, written) == []
        assert judged_runs_without_timing(exp) == []
        checkpoint = CheckpointShape.model_validate(json.loads((exp / "checkpoint.json").read_text()))
        assert checkpoint.version == "3.1" and checkpoint.status == "completed"
        assert checkpoint.tier_states == {"T0": "complete", "T1": "complete"}
        if layout == "phased":  # aggregates (and repaired runs) only where ProjectScylla reads them
            assert not list(exp.glob("T*"))
            assert not list(exp.glob("in_progress/T*/*/run_*"))

        settled = snapshot(exp)
        again = rerun_agents(str(exp), tiers_dir=str(TIERS))
        assert not again.runs
        assert snapshot(exp) == settled
        regenerate_results(str(exp), tiers_dir=str(TIERS))
        assert snapshot(exp) == settled


@pytest.mark.parametrize("layout", ["flat", "phased"])
def test_the_regenerate_flow_writes_what_projectscylla_reads(tmp_path: Path, layout: str):
    exp = generate_experiment(
        tmp_path / f"exp-{layout}",
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        mix={"completed": 0.5, "results": 0.5},
        seed=17,
        with_base_repo=False,
        layout=layout,
    ).path
    for timing in exp.rglob("judge/timing.json"):  # judged runs whose timing was never written
        if not (timing.parent.parent / "run_result.json").is_file():
            timing.unlink()
    before = snapshot(exp)
    summary = regenerate_results(str(exp))
    after = snapshot(exp)
    written = written_since(before, after)
    assert summary.regenerated > 0 and written
    assert check_experiment(exp) == []
    assert mode_problems(before, after, written) == []
    assert judged_runs_without_timing(exp) == []
    if layout == "phased":
        assert not list(exp.glob("T*"))
    regenerate_results(str(exp))
    assert snapshot(exp) == after
