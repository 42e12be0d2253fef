"""The rerun-agents dry run: text, --json, filters, exit codes, and that it changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.common import run_command
from cli.rerun_agents import app


def run_cli(*args: str) -> int:
    return run_command(app, [str(a) for a in args], "rerun-agents")


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
        digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


@pytest.fixture
def mutated(fixture_experiment: Path) -> Path:
    """The spec's §11 recipe: every status on the real experiment."""
    exp = fixture_experiment
    (exp / "T1/01/run_01/run_result.json").unlink()
    (exp / "T2/01/run_01/agent/result.json").unlink()
    (exp / "T3/01/run_01/agent/output.txt").unlink()
    (exp / "T4/01/run_01/run_result.json").unlink()
    (exp / "T4/01/run_01/agent/timing.json").unlink()
    shutil.rmtree(exp / "T5/01/run_01")
    (exp / "T6/01/run_01/agent/output.txt").write_text("")
    return exp


def test_dry_run_text_on_mutated_fixture(mutated: Path, capsys):
    before = tree_digest(mutated)
    assert run_cli(mutated, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "DRY RUN MODE - No changes will be made" in out
    assert "AGENT FAILED (2 runs):" in out
    assert "  - T3/01/run_01: Agent ran but failed" in out
    assert "AGENT COMPLETE MISSING RESULTS (2 runs):" in out
    assert "AGENT PARTIAL (1 run):" in out
    assert "NEVER STARTED (1 run):" in out
    assert "  - T5/01/run_01: Run never started" in out
    assert out.count("RUN STATUS CLASSIFICATION") == 1
    lines = {
        line.split(":")[0].strip(): line.split(":")[-1].strip() for line in out.splitlines() if ":" in line
    }
    assert lines["Total expected runs"] == "7"
    assert lines["✓ Complete"] == "1"
    assert lines["⚠ Agent complete, missing results"] == "2"
    assert lines["✗ Agent failed"] == "2"
    assert lines["⋯ Agent partial"] == "1"
    assert lines["○ Never started"] == "1"
    assert lines["- Skipped by filter"] == "0"
    assert "Regenerated (missing results):" in out
    assert tree_digest(mutated) == before, "a dry run must not change anything on disk"
    assert not (mutated / ".prefect").exists()


def test_json_output(mutated: Path, capsys):
    assert run_cli(mutated, "--dry-run", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["experiment"] == str(mutated.resolve())
    assert data["total_expected"] == 7
    assert data["counts"] == {"completed": 1, "results": 2, "failed": 2, "partial": 1, "missing": 1}
    assert data["skipped_by_filter"] == 0
    by_run = {r["run"]: r for r in data["runs"]}
    assert by_run["T5/01/run_01"] == {
        "run": "T5/01/run_01",
        "tier": "T5",
        "subtest": "01",
        "run_number": 1,
        "status": "missing",
        "reason": "Run never started",
    }
    assert by_run["T1/01/run_01"]["status"] == "results"
    assert by_run["T4/01/run_01"]["status"] == "partial"


def test_status_filter_narrows_lists_not_totals(mutated: Path, capsys):
    assert run_cli(mutated, "--dry-run", "--json", "--status", "failed", "--status", "never-started") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["completed"] == 1 and data["total_expected"] == 7
    assert sorted(r["run"] for r in data["runs"]) == ["T3/01/run_01", "T5/01/run_01", "T6/01/run_01"]


def test_tier_filter_restricts_scope_without_counting_skips(mutated: Path, capsys):
    assert run_cli(mutated, "--dry-run", "--json", "--tier", "T3", "--tier", "T5") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_expected"] == 2 and data["skipped_by_filter"] == 0
    assert {r["run"] for r in data["runs"]} == {"T3/01/run_01", "T5/01/run_01"}


def test_runs_filter_counts_skipped(tmp_path: Path, capsys):
    from simulation.generator import generate_experiment

    exp = generate_experiment(
        tmp_path / "gen", tiers=["T0"], subtests_per_tier=1, runs_per_subtest=5, seed=3
    ).path
    assert run_cli(exp, "--dry-run", "--json", "--runs", "1,3,5") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_expected"] == 3 and data["skipped_by_filter"] == 2
    assert [r["run_number"] for r in data["runs"]] == [1, 3, 5]


def test_at_most_ten_per_group(tmp_path: Path, capsys):
    from simulation.generator import generate_experiment

    exp = generate_experiment(
        tmp_path / "gen", tiers=["T0"], subtests_per_tier=3, runs_per_subtest=5, mix={"missing": 1.0}, seed=1
    ).path
    assert run_cli(exp, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "NEVER STARTED (15 runs):" in out
    assert "  ... and 5 more" in out
    assert sum(1 for line in out.splitlines() if line.startswith("  - T0/")) == 10


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--runs", "1,x"], "Invalid run numbers"),
        (["--runs", "0"], "Invalid run numbers"),
        (["--runs", "2"], "Run number out of range"),
        (["--tier", "T9"], "Unknown tier"),
        (["--tier", "t0"], "Unknown tier"),
        (["--status", "bogus"], "Unknown status"),
        (["--subtest", "99"], "Subtest not found"),
        (["--no-such-flag"], "No such option"),
    ],
)
def test_bad_filters_exit_2_with_one_line(mutated: Path, capsys, args, needle):
    before = tree_digest(mutated)
    assert run_cli(mutated, "--dry-run", *args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert tree_digest(mutated) == before


def test_bad_experiment_dirs(tmp_path: Path, capsys):
    assert run_cli(tmp_path / "nope", "--dry-run") == 2
    assert "Experiment directory not found" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert run_cli(tmp_path / "file", "--dry-run") == 2
    assert "Not a directory" in capsys.readouterr().err
    assert run_cli(tmp_path, "--dry-run") == 2
    assert "Experiment config not found" in capsys.readouterr().err
    (tmp_path / "config").mkdir()
    (tmp_path / "config/experiment.json").write_text("{not json")
    assert run_cli(tmp_path, "--dry-run") == 2
    err = capsys.readouterr().err
    assert "Invalid JSON" in err and "experiment.json" in err
    (tmp_path / "config/experiment.json").write_text(json.dumps({"experiment_id": "x"}))
    assert run_cli(tmp_path, "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert "experiment.json" in err and len(err.splitlines()) == 1


def test_broken_checkpoint_is_a_note_not_a_crash(mutated: Path, capsys):
    (mutated / "checkpoint.json").write_text("{")
    assert run_cli(mutated, "--dry-run") == 0
    assert "checkpoint.json unreadable" in capsys.readouterr().out


def test_phantom_subtests_from_newer_fixtures_do_not_appear(tmp_path: Path, capsys):
    # The experiment ran T4 with max_subtests=1 and finished; the tiers tree now has 14 T4 subtests.
    from tests.conftest import TIERS_FIXTURE, copy_fixture_experiment

    root = tmp_path / "checkout"
    shutil.copytree(TIERS_FIXTURE / "tests", root / "tests")
    exp = copy_fixture_experiment(root / "results" / "exp")
    config = json.loads((exp / "config/experiment.json").read_text())
    config["max_subtests"] = None
    (exp / "config/experiment.json").write_text(json.dumps(config))
    assert run_cli(exp, "--dry-run", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_expected"] == 7
    assert data["counts"]["missing"] == 0


def test_unfinished_tier_expects_tiers_dir_subtests(tmp_path: Path, capsys):
    from tests.conftest import TIERS_FIXTURE, copy_fixture_experiment

    root = tmp_path / "checkout"
    shutil.copytree(TIERS_FIXTURE / "tests", root / "tests")
    exp = copy_fixture_experiment(root / "results" / "exp")
    config = json.loads((exp / "config/experiment.json").read_text())
    config["max_subtests"] = 3
    (exp / "config/experiment.json").write_text(json.dumps(config))
    (exp / "T6/result.json").unlink()  # T6 not finished: its tiers-dir subtests are expected
    (exp / "T1/result.json").unlink()
    assert run_cli(exp, "--dry-run", "--json", "--tier", "T1", "--tier", "T6") == 0
    data = json.loads(capsys.readouterr().out)
    # T1 has 10 subtests in the tiers dir (max 3 kept), T6 has 1.
    assert data["total_expected"] == 4
    assert data["counts"] == {"completed": 2, "results": 0, "failed": 0, "partial": 0, "missing": 2}


def test_console_script_runs_without_importing_prefect(mutated: Path):
    # -X importtime lists every module the process imports, up to its last instant.
    code = "import sys; from cli.rerun_agents import main; main([sys.argv[1], '--dry-run'])"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, str(mutated)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "RUN STATUS CLASSIFICATION" in result.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "cli.rerun_agents" in imported and "experiment.scan" in imported
    assert not [m for m in imported if m.split(".")[0] == "prefect"], "the dry run must not import prefect"


def _console_script(tmp_path: Path, argv: list[str], prelude: str = "") -> subprocess.CompletedProcess[str]:
    """The rerun-agents console script's ``main`` in a fresh process; stdout goes to a file."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit handler ran', file=sys.stderr))\n"
        f"{prelude}\n"
        "from cli.rerun_agents import main\n"
        "main(sys.argv[1:])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    with (tmp_path / "stdout").open("w") as out:
        return subprocess.run(
            [sys.executable, "-c", code, *argv], stdout=out, stderr=subprocess.PIPE, text=True, env=env
        )


def test_console_script_without_a_flow_ends_after_its_atexit_handlers_and_all_its_output(
    mutated: Path, tmp_path: Path
):
    done = _console_script(tmp_path, [str(mutated), "--dry-run", "--json"])
    assert done.returncode == 0, done.stderr
    assert done.stderr == "atexit handler ran\n"
    assert json.loads((tmp_path / "stdout").read_text())["total_expected"] > 0  # flushed, whole

    refused = _console_script(tmp_path, [str(tmp_path / "nowhere"), "--dry-run"])
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1] == "atexit handler ran"
    assert "nowhere" in refused.stderr.splitlines()[0]


def test_console_script_waits_for_a_thread_still_at_work(mutated: Path, tmp_path: Path):
    marker = tmp_path / "thread-finished"
    prelude = (
        "import threading, time, pathlib\n"
        f"threading.Thread(target=lambda: (time.sleep(0.5), pathlib.Path({str(marker)!r}).touch())).start()"
    )
    done = _console_script(tmp_path, [str(mutated), "--dry-run"], prelude)
    assert done.returncode == 0, done.stderr
    assert marker.exists()  # the interpreter's normal exit joined the thread
