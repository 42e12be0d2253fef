"""``rerun-agents EXP`` (no --dry-run): text, --json, exit codes, one-line refusals."""

from __future__ import annotations

import json
import shutil

from cli.common import run_command
from cli.rerun_agents import app
from simulation.generator import generate_experiment
from tests.flows.simulated import TIERS, simulated_provider


def cli(*args) -> int:
    return run_command(app, [str(a) for a in args], "rerun-agents")


def experiment(tmp_path, **kwargs):
    options = dict(tiers=["T0"], subtests_per_tier=1, runs_per_subtest=4, seed=5, tiers_dir=TIERS)
    options.update(kwargs)
    return generate_experiment(tmp_path / "exp", **options)


def test_repair_prints_blocks_and_exits_0(tmp_path, monkeypatch, capsys):
    generated = experiment(
        tmp_path, mix={"completed": 0.25, "results": 0.25, "failed": 0.25, "missing": 0.25}
    )
    with simulated_provider(monkeypatch, tmp_path):
        assert cli(generated.path, "--tiers-dir", TIERS) == 0
    out = capsys.readouterr().out
    assert out.count("RUN STATUS CLASSIFICATION") == 1
    assert "  ✓ Complete:                         4" in out
    assert "Successfully rerun:                   2" in out
    assert "Failed rerun:                         0" in out
    assert "Regenerated (missing results):        1" in out


def test_failed_rerun_exits_1_and_says_why(tmp_path, monkeypatch, capsys):
    generated = experiment(tmp_path, mix={"missing": 1.0}, runs_per_subtest=2)
    with simulated_provider(monkeypatch, tmp_path) as provider:
        provider.script_rules([{"match": "run_02", "modes": ["fail"]}])
        assert cli(generated.path, "--tiers-dir", TIERS, "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["rerun"]["succeeded"] == 1 and data["rerun"]["failed"] == 1
    failed = [r for r in data["rerun"]["runs"] if r["outcome"] == "failed"]
    assert failed[0]["run"] == "T0/00/run_02" and failed[0]["failure_class"] == "agent_failed"
    assert data["counts"]["failed"] == 1 and data["counts"]["completed"] == 1


def test_no_tiers_dir_refuses_before_moving_anything(tmp_path, monkeypatch, capsys):
    generated = experiment(tmp_path, mix={"failed": 1.0})
    with simulated_provider(monkeypatch, tmp_path):
        assert cli(generated.path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: Could not auto-detect tiers directory") and "--tiers-dir" in err
    assert len(err.splitlines()) == 1
    assert not list(generated.path.glob("T*/*/.failed"))


def test_no_base_repo_refuses_before_moving_anything(tmp_path, monkeypatch, capsys):
    generated = experiment(tmp_path, mix={"failed": 1.0})
    shutil.rmtree(generated.path / "repo")
    with simulated_provider(monkeypatch, tmp_path):
        assert cli(generated.path, "--tiers-dir", TIERS) == 2
    err = capsys.readouterr().err
    assert "Base repository not found" in err and str(generated.path / "repo") in err
    assert not list(generated.path.glob("T*/*/.failed"))
