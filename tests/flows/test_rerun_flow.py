"""The rerun-agents flow end to end: real git, the fake claude, the local Messages server."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from experiment.errors import RepairBlocked
from experiment.models import Checkpoint
from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from flows.rerun_agents import rerun_agents, summary_of
from simulation.generator import generate_experiment
from tests.flows.simulated import TIERS, simulated_provider

EVERY_STATUS = {"completed": 0.4, "results": 0.2, "failed": 0.2, "partial": 0.1, "missing": 0.1}


def make_experiment(tmp_path: Path, **kwargs) -> tuple[Path, dict[str, str]]:
    options = dict(
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=5,
        mix=EVERY_STATUS,
        seed=11,
        tiers_dir=TIERS,
    )
    options.update(kwargs)
    generated = generate_experiment(tmp_path / "results" / "2026-01-20T06-13-07-test", **options)
    return generated.path, generated.truth


def classify(exp: Path) -> dict[str, str]:
    report = scan_in_process(load_context(exp, TIERS), ScanFilters())
    return {e.run: e.status.value for e in report.entries}


def archived(exp: Path) -> list[str]:
    return sorted(str(p.relative_to(exp)) for p in exp.glob("T*/*/.failed/*"))


@pytest.fixture
def prepared_at_once(monkeypatch) -> list[int]:
    """How many runs were between their archive and their agent's end, at each archive. A run is
    archived and its worktree built only once it may run its agent; before, every run of the
    repair was prepared at once (a Ctrl+C then had dozens to put back)."""
    import tasks.steps

    lock, open_runs, counts = threading.Lock(), set(), []
    archive, run_agent = tasks.steps.archive_run, tasks.steps.run_agent

    def archive_counting(layout, key, base_repo):
        with lock:
            open_runs.add(key.label)
            counts.append(len(open_runs))
        return archive(layout, key, base_repo)

    def agent_counting(run_dir, workspace, settings):
        try:
            return run_agent(run_dir, workspace, settings)
        finally:
            with lock:
                open_runs.discard("/".join(Path(run_dir).parts[-3:]))

    monkeypatch.setattr(tasks.steps, "archive_run", archive_counting)
    monkeypatch.setattr(tasks.steps, "run_agent", agent_counting)
    return counts


def test_full_repair_of_every_status(tmp_path, monkeypatch, prepared_at_once):
    exp, truth = make_experiment(tmp_path)
    with simulated_provider(monkeypatch, tmp_path) as provider:
        summary = summary_of(
            rerun_agents(str(exp), tiers_dir=str(TIERS), max_concurrent=2, return_state=True)
        )
        to_rerun = sorted(r for r, s in truth.items() if s in ("failed", "partial", "missing"))
        assert len(prepared_at_once) == len(to_rerun) > 2 and max(prepared_at_once) <= 2, prepared_at_once
        to_regenerate = sorted(r for r, s in truth.items() if s == "results")
        assert sorted(r.run for r in summary.runs if r.action == "rerun") == to_rerun
        assert sorted(r.run for r in summary.runs if r.action == "regenerate") == to_regenerate
        assert summary.failed == 0 and summary.succeeded == len(to_rerun)
        assert summary.regenerated == len(to_regenerate)
        assert set(classify(exp).values()) == {"completed"}

        # every old attempt archived (missing runs and empty dirs had nothing to archive... except empty dirs)
        existed = [r for r in to_rerun if (truth[r] != "missing")]
        for run in existed:
            tier, subtest, name = run.split("/")
            assert (exp / tier / subtest / ".failed" / name).is_dir(), run
        # completed runs were never touched by an agent
        for run, status in truth.items():
            if status == "completed":
                assert provider.agent_starts(f"/{run}/") == 0
        # each rerun's agent ran exactly once; results runs never ran an agent
        for run in to_rerun:
            assert provider.agent_starts(f"/{run}/") == 1, run
        # aggregates rebuilt, checkpoint updated
        assert summary.aggregates_rebuilt
        result = json.loads((exp / "result.json").read_text())
        assert result["total_cost"] > 0
        checkpoint = Checkpoint.load(exp / "checkpoint.json")
        for run in to_rerun:
            tier, subtest, name = run.split("/")
            assert checkpoint.completed_runs[tier][subtest][str(int(name[4:]))] in ("passed", "failed")
            assert checkpoint.run_states[tier][subtest][str(int(name[4:]))] == "report_written"
            # Released as ProjectScylla releases a finished run: no worktree stays registered,
            # the files stay (the generated siblings keep their workspace/), the branch stays.
            assert (exp / run / "workspace" / "hello.py").is_file() and not (
                exp / run / "workspace" / ".git"
            ).exists()
        worktrees = subprocess.run(
            ["git", "-C", str(exp / "repo"), "worktree", "list", "--porcelain"],
            capture_output=True,
            text=True,
        ).stdout
        assert worktrees.count("worktree ") == 1, worktrees  # the base repository's own only

        # A second invocation does nothing.
        before_archives, before_starts = archived(exp), provider.agent_starts()
        requests_before = provider.server.stats()["requests"]
        again = summary_of(rerun_agents(str(exp), tiers_dir=str(TIERS), return_state=True))
        assert again.runs == []
        assert archived(exp) == before_archives
        assert provider.agent_starts() == before_starts
        assert provider.server.stats()["requests"] == requests_before


def test_status_filter_touches_only_failed_runs(tmp_path, monkeypatch):
    exp, truth = make_experiment(tmp_path, seed=12)
    with simulated_provider(monkeypatch, tmp_path) as provider:
        summary = summary_of(
            rerun_agents(
                str(exp),
                statuses=[RunStatus.FAILED],
                tiers_dir=str(TIERS),
                skip_regenerate=True,
                return_state=True,
            )
        )
        failed = sorted(r for r, s in truth.items() if s == "failed")
        assert sorted(r.run for r in summary.runs) == failed
        after = classify(exp)
        for run, status in truth.items():
            expected = "completed" if status == "failed" else status
            assert after[run] == expected, run
        assert provider.agent_starts() == len(failed)
        assert not summary.aggregates_rebuilt


def test_cherry_picked_runs(tmp_path, monkeypatch):
    exp, truth = make_experiment(
        tmp_path, tiers=["T0"], subtests_per_tier=2, runs_per_subtest=8, mix={"failed": 1.0}, seed=3
    )
    with simulated_provider(monkeypatch, tmp_path) as provider:
        summary = summary_of(
            rerun_agents(
                str(exp),
                tiers=["T0"],
                subtests=["00"],
                runs=[1, 5, 7],
                tiers_dir=str(TIERS),
                return_state=True,
            )
        )
        assert sorted(r.run for r in summary.runs) == ["T0/00/run_01", "T0/00/run_05", "T0/00/run_07"]
        after = classify(exp)
        changed = sorted(r for r in truth if after[r] != truth[r])
        assert changed == ["T0/00/run_01", "T0/00/run_05", "T0/00/run_07"]
        assert provider.agent_starts() == 3


def test_agent_failure_is_recorded_and_reported(tmp_path, monkeypatch):
    exp, truth = make_experiment(
        tmp_path, tiers=["T0"], subtests_per_tier=1, runs_per_subtest=3, mix={"missing": 1.0}
    )
    with simulated_provider(monkeypatch, tmp_path) as provider:
        provider.script_rules([{"match": "T0/00/run_02", "modes": ["fail"]}])
        summary = summary_of(rerun_agents(str(exp), tiers_dir=str(TIERS), return_state=True))
        assert summary.succeeded == 2 and summary.failed == 1
        failed = next(r for r in summary.runs if r.outcome == "failed")
        assert failed.run == "T0/00/run_02"
        assert failed.failure_class == "agent_failed"
        assert "simulated" in failed.reason
        assert provider.agent_starts("T0/00/run_02") == 1, "a genuine failure is not retried"
        assert "T0/00/run_02" in summary.markdown() and "agent_failed" in summary.markdown()
        assert classify(exp)["T0/00/run_02"] == "failed"


def test_missing_base_repo_blocks_before_anything_moves(tmp_path, monkeypatch):
    exp, truth = make_experiment(tmp_path, mix={"failed": 0.5, "completed": 0.5})
    shutil.rmtree(exp / "repo")
    with (
        simulated_provider(monkeypatch, tmp_path),
        pytest.raises(RepairBlocked, match="Base repository not found"),
    ):
        rerun_agents(str(exp), tiers_dir=str(TIERS))
    assert archived(exp) == []
    assert classify(exp) == truth


def test_missing_api_key_blocks_before_anything_moves(tmp_path, monkeypatch):
    exp, truth = make_experiment(tmp_path, mix={"failed": 0.5, "completed": 0.5})
    with simulated_provider(monkeypatch, tmp_path):
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        with pytest.raises(RepairBlocked, match="ANTHROPIC_API_KEY is not set"):
            rerun_agents(str(exp), tiers_dir=str(TIERS))
    assert archived(exp) == []
