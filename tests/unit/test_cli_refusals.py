"""Issue 12, items 4-7: every refusal is one line and exit 2, the dry run predicts it, and nothing
on disk changes (checksum of the whole tree, mtimes included).

No Prefect here: each refusal happens before the real run imports it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.common import run_command
from cli.demo import MARKER, prepare_demo_dir
from cli.demo import app as demo_app
from cli.rerun_agents import app
from simulation.generator import generate_experiment
from tests.unit.test_cli_dry_run import tree_digest

TIERS = Path(__file__).parents[1] / "fixtures" / "scylla-tiers"
REPO = Path(__file__).parents[2]


def experiment(tmp_path: Path, mix: dict[str, float]) -> Path:
    return generate_experiment(
        tmp_path / "2026-01-20T06-13-07-refusals",
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=4,
        mix=mix,
        seed=4,
        tiers_dir=TIERS,
    ).path


def refuses(capsys, exp: Path, *args: str) -> str:
    """Run the real repair; assert one line, exit 2 and an untouched tree; return the line."""
    before = tree_digest(exp)
    assert run_command(app, [str(exp), *args], "rerun-agents") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), captured.err
    assert captured.out == ""
    assert tree_digest(exp) == before
    return lines[0]


def dry_run_predicts(capsys, exp: Path, expected: str, *args: str) -> None:
    before = tree_digest(exp)
    assert run_command(app, [str(exp), "--dry-run", *args], "rerun-agents") == 0
    out = capsys.readouterr().out
    assert f"The repair would refuse: {expected}" in out, out
    assert tree_digest(exp) == before


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-a-secret")


def test_no_base_repository(tmp_path, capsys):
    exp = experiment(tmp_path, {"completed": 0.5, "missing": 0.5})
    shutil.rmtree(exp / "repo")
    dry_run_predicts(capsys, exp, "Base repository not found", "--tiers-dir", str(TIERS))
    assert "Base repository not found" in refuses(capsys, exp, "--tiers-dir", str(TIERS))


def test_no_tiers_dir(tmp_path, capsys):
    exp = experiment(tmp_path, {"completed": 0.5, "failed": 0.5})
    dry_run_predicts(capsys, exp, "Could not auto-detect tiers directory")
    assert "Could not auto-detect tiers directory" in refuses(capsys, exp)


def test_no_api_key_when_only_judges_are_needed(tmp_path, capsys, monkeypatch):
    exp = experiment(tmp_path, {"completed": 0.5, "results": 0.5})
    for judge in exp.glob("T0/00/run_*/judge/judge_01"):
        if not (judge.parents[1] / "run_result.json").exists():
            shutil.rmtree(judge)  # a results run that needs a judge again
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    args = ("--status", "results", "--tiers-dir", str(TIERS))
    dry_run_predicts(capsys, exp, "ANTHROPIC_API_KEY is not set", *args)
    assert "ANTHROPIC_API_KEY is not set" in refuses(capsys, exp, *args)


def test_results_that_need_no_judge_need_no_api_key(tmp_path, capsys, monkeypatch):
    exp = experiment(tmp_path, {"completed": 0.5, "results": 0.5})
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert run_command(app, [str(exp), "--dry-run", "--status", "results"], "rerun-agents") == 0
    assert "Preflight: nothing blocks the repair." in capsys.readouterr().out


def test_another_repair_running(tmp_path, capsys):
    exp = experiment(tmp_path, {"completed": 0.5, "missing": 0.5})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from experiment.layout import ExperimentLayout; "
            "from experiment.locks import RepairLock\n"
            "with RepairLock(ExperimentLayout(sys.argv[1])).hold(description='test'):\n"
            "    print('held', flush=True); time.sleep(60)",
            str(exp),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        dry_run_predicts(capsys, exp, "Another repair is already running", "--tiers-dir", str(TIERS))
        line = refuses(capsys, exp, "--tiers-dir", str(TIERS))
        assert "Another repair is already running on this experiment" in line and f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()


def test_demo_refuses_a_directory_it_did_not_create(tmp_path, capsys):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    assert run_command(demo_app, ["--dir", str(target)], "scylla-demo") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "scylla-demo did not create it" in lines[0]
    assert [p.name for p in target.iterdir()] == ["thesis.tex"]
    assert (target / "thesis.tex").read_text() == "precious"


def test_demo_reuses_an_empty_or_its_own_directory(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_demo_dir(empty)
    assert (empty / MARKER).is_file()
    (empty / "old-demo-output").mkdir()
    prepare_demo_dir(empty)  # an earlier demo's: replaced
    assert sorted(p.name for p in empty.iterdir()) == [MARKER]
