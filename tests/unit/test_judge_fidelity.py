"""Judges grade as ProjectScylla graded: its system prompt, its pipeline, its prompt layout.

ProjectScylla's own system prompt text is not ours to copy, so a "checkout" here is a small fake
in tmp_path: the BSD-3 tiers fixture plus a ``config/judge/system_prompt.md`` of test text.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from experiment.errors import RepairBlocked
from operations.judge import JudgeSettings, resolve_system_prompt, run_judge_slot
from operations.judge import pipeline as pipeline_module
from operations.judge.pipeline import run_pipeline
from operations.judge.pipeline_result import PipelineResult
from operations.judge.style import BASELINE_HEADER, PIPELINE_HEADER, PIPELINE_HEADER_AFTER, prompt_style
from operations.judge.system_prompt import CHECKOUT_SYSTEM_PROMPT, find_checkout_system_prompt
from simulation.messages_server import MessagesServer, ServerBehavior
from tests.conftest import FAKE_JUDGE_SYSTEM_PROMPT, TIERS_FIXTURE, make_fake_checkout, strip_judgments

CHECKOUT_TEXT = FAKE_JUDGE_SYSTEM_PROMPT
MODEL = "claude-opus-4-5-20251101"
make_checkout = make_fake_checkout


# -- the system prompt -----------------------------------------------------------------------------


def test_checkout_prompt_found_from_the_tiers_dir_or_an_ancestor(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "ProjectScylla")
    shared = checkout / "tests" / "claude-code" / "shared"
    for start in (checkout, shared, checkout / "tests"):
        assert find_checkout_system_prompt([start]) == checkout / CHECKOUT_SYSTEM_PROMPT
        found = resolve_system_prompt(None, [start])
        assert (found.source, found.text, found.comparable) == ("checkout", CHECKOUT_TEXT, True)
        assert found.sha256 == hashlib.sha256(CHECKOUT_TEXT.encode()).hexdigest()
    assert find_checkout_system_prompt([TIERS_FIXTURE]) is None


def test_explicit_file_wins_and_a_wrong_one_is_one_line(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "ProjectScylla")
    own = tmp_path / "mine.md"
    own.write_text("Mine.\n")
    chosen = resolve_system_prompt(own, [checkout])
    assert (chosen.source, chosen.path, chosen.text) == ("option", str(own), "Mine.\n")
    with pytest.raises(RepairBlocked) as caught:
        resolve_system_prompt(tmp_path / "missing.md", [checkout])
    assert "missing.md" in str(caught.value) and "\n" not in str(caught.value)


def test_fallback_is_ours_and_says_so() -> None:
    fallback = resolve_system_prompt(None, [TIERS_FIXTURE])
    assert fallback.source == "fallback" and fallback.path is None and not fallback.comparable
    note = fallback.not_comparable_note([TIERS_FIXTURE])
    assert "NOT be comparable" in note and str(TIERS_FIXTURE) in note and "--judge-system-prompt" in note


@pytest.mark.parametrize("source", ["checkout", "fallback"])
def test_slot_records_the_request_and_sends_that_system_prompt(tmp_path: Path, source: str) -> None:
    checkout = make_checkout(tmp_path / "ProjectScylla")
    system = resolve_system_prompt(None, [checkout] if source == "checkout" else [])
    settings = JudgeSettings(base_url="", api_key=SecretStr("test-key"), max_tokens=2048)
    with MessagesServer(ServerBehavior()) as server:
        settings.base_url = server.url
        assert run_judge_slot(tmp_path, 1, MODEL, "Judge this.", settings, system=system).valid
        assert server.stats()["systems"] == [system.text]
    slot = tmp_path / "judge" / "judge_01"
    request = json.loads((slot / "request.json").read_text())
    assert (request["model"], request["max_tokens"], request["temperature"]) == (MODEL, 2048, 1.0)
    assert request["system_prompt"] == {
        "source": source,
        "path": system.path,
        "sha256": hashlib.sha256(system.text.encode()).hexdigest(),
        "comparable": source == "checkout",
    }
    model_md = (slot / "MODEL.md").read_text()
    assert model_md.splitlines()[2] == f"**Model**: {MODEL}"  # what ProjectScylla's loader parses
    assert ("not comparable" in model_md) is (source == "fallback")
    replay = (slot / "replay.sh").read_text()
    assert ("--system-prompt" in replay) is (source == "checkout")
    assert "--max-tokens 2048 --temperature 1" in replay


# -- the pipeline ----------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path, real_pipeline_tools: None) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "b.py").write_text("print('B' * 600)\n")
    (ws / "a.py").write_text("import sys\n\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n")
    (ws / "pkg").mkdir()
    (ws / "pkg" / "mod.py").write_text("X = 1\n")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)  # ProjectScylla's workspaces are worktrees
    return ws


def test_python_pipeline_as_projectscylla_runs_it(workspace: Path) -> None:
    result = run_pipeline(workspace, "python")
    build = result.build_output
    # syntax check, then every root script in name order, each output cut to 500 characters
    assert build.startswith("Python syntax check passed\n\n## Script Execution Results\n\n\n")
    assert build.index("### Running: python a.py") < build.index("### Running: python b.py")
    assert "Exit code: 3\nStderr:\nto stderr\n" in build
    assert "Output:\n" + "B" * 500 + "\n" not in build and "Output:\n" + "B" * 500 in build
    assert result.build_passed  # a script's exit code is shown to the judge, not a build failure
    assert result.format_passed and not result.format_na  # our install's ruff ran
    assert "All checks passed!" in result.format_output
    assert result.test_passed and result.test_na and "collected 0 items" in result.test_output  # exit 5
    assert result.precommit_passed and result.precommit_na  # no .pre-commit-config.yaml
    assert result.all_passed
    assert not list(workspace.rglob("__pycache__")) and not list(workspace.rglob("*.pyc"))


def test_failures_and_missing_tools(workspace: Path, tmp_path: Path, monkeypatch) -> None:
    (workspace / "test_x.py").write_text("def test_x():\n    assert False\n")
    (workspace / "bad.py").write_text("import os\n")  # F401 for ruff
    result = run_pipeline(workspace, "python")
    assert not result.format_passed and "F401" in result.format_output
    assert not result.test_passed and not result.test_na
    text = result.prompt_text()
    assert text.startswith("**Overall Status**: SOME FAILED ✗\n\n### Python Build (PASSED)\n```\n")
    assert "### Python Format Check (FAILED)" in text and "### Python Test (FAILED)" in text
    # Only python on PATH: every tool is N/A with ProjectScylla's wording.
    only_python = tmp_path / "bin"
    only_python.mkdir()
    (only_python / "python").symlink_to(sys.executable)
    monkeypatch.setattr(pipeline_module, "tool_path", lambda: str(only_python))
    bare = run_pipeline(workspace, "python")
    assert (bare.format_passed, bare.format_na, bare.format_output) == (
        True,
        True,
        "ruff not available, skipping format check",
    )
    assert (bare.test_na, bare.test_output) == (True, "pytest not available, skipping")
    assert (bare.precommit_na, bare.precommit_output) == (True, "pre-commit not available, skipping")


def test_step_output_is_cut_to_2000_characters() -> None:
    result = PipelineResult(build_passed=True, build_output="x" * 2500, all_passed=False)
    assert "```\n" + "x" * 2000 + "\n```" in result.context_string()


# -- the prompt layout -----------------------------------------------------------------------------


def _run(root: Path, subtest: str, prompt: str | None = None) -> Path:
    run = root / "T0" / subtest / "run_01"
    run.mkdir(parents=True)
    if prompt is not None:
        (run / "judge_prompt.md").write_text(prompt)
    return run


def test_layout_follows_the_stored_prompts(tmp_path: Path) -> None:
    old = tmp_path / "old"
    _run(
        old,
        "00",
        f"## Workspace State After Agent Execution\n\nFiles modified/created by agent:\n- `a` (created)\n\n{PIPELINE_HEADER}\n\nx",
    )
    style = prompt_style(old, _run(old, "01"))
    assert (style.pipeline_header, style.baseline_body, style.changes_committed) == (
        PIPELINE_HEADER,
        None,
        False,
    )

    new = tmp_path / "new"
    baseline = "*note*\n\n**Overall Status**: ALL PASSED ✓\n\n### Python Build (PASSED)\n```\nok\n```"
    _run(
        new,
        "00",
        f"## Git Diff (Patchfile)\n\n```diff\n## Committed Changes\n```\n\n{BASELINE_HEADER}\n\n{baseline}\n\n"
        f"{PIPELINE_HEADER_AFTER}\n\ny",
    )
    style = prompt_style(new, _run(new, "01"))
    assert (style.pipeline_header, style.baseline_body, style.changes_committed) == (
        PIPELINE_HEADER_AFTER,
        baseline,
        True,
    )


def test_baseline_file_gives_the_section(tmp_path: Path) -> None:
    result = PipelineResult(build_passed=True, build_output="fine", all_passed=True)
    (tmp_path / "pipeline_baseline.json").write_text(json.dumps(result.model_dump()))
    style = prompt_style(tmp_path, _run(tmp_path, "00"))
    assert style.pipeline_header == PIPELINE_HEADER_AFTER
    assert style.baseline_body is not None and style.baseline_body.endswith(result.prompt_text())
    assert style.baseline_body.startswith("*This shows the build/lint/test status BEFORE the agent")


def test_committed_agent_work_shown_as_an_older_projectscylla_saw_it(tmp_path: Path) -> None:
    from operations.agent import AGENT_COMMIT_MESSAGE
    from operations.judge.changes import uncommitted_view

    ws = tmp_path / "ws"
    ws.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(ws)]
    (ws / "old.py").write_text("print(1)\n")
    (ws / "gone.txt").write_text("x\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "task"], check=True)
    (ws / "old.py").write_text("print(2)\n")
    (ws / "gone.txt").unlink()
    (ws / "new.py").write_text("print(3)\n")
    (ws / "CLAUDE.md").write_text("config\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", AGENT_COMMIT_MESSAGE], check=True)
    view = uncommitted_view(ws)
    assert view is not None
    state, patch, deleted = view
    assert state == (
        "Files modified/created by agent:\n- `gone.txt` (deleted)\n- `old.py` (modified)\n- `new.py` (created)"
    )
    assert patch.startswith("## Unstaged Changes\ndiff --git a/gone.txt") and "+print(2)" in patch
    assert "new.py" not in patch and "CLAUDE.md" not in patch
    assert deleted == ["gone.txt"]


# -- the dry run -----------------------------------------------------------------------------------


def test_dry_run_says_whether_judgments_will_be_comparable(fixture_experiment: Path, tmp_path: Path, capsys):
    from cli.common import run_command
    from cli.rerun_agents import app

    strip_judgments(fixture_experiment, ["T0/00/run_01"])
    checkout = make_fake_checkout(tmp_path / "ProjectScylla")
    dry = ["--dry-run", "--tiers-dir"]
    assert run_command(app, [str(fixture_experiment), *dry, str(TIERS_FIXTURE)], "rerun-agents") == 0
    out = capsys.readouterr().out
    assert "Note: Judge system prompt: ProjectScylla's judge system prompt was not found" in out
    assert "will NOT be comparable with the experiment's other judgments" in out
    assert run_command(app, [str(fixture_experiment), *dry, str(checkout)], "rerun-agents") == 0
    assert "comparable" not in capsys.readouterr().out
    assert (
        run_command(app, [str(fixture_experiment), *dry, str(TIERS_FIXTURE), "--json"], "rerun-agents") == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["judge_system_prompt"]["source"] == "fallback"
    assert any("NOT be comparable" in note for note in data["notes"])
    own = tmp_path / "system.md"
    own.write_text("Mine.\n")
    args = [str(fixture_experiment), *dry, str(TIERS_FIXTURE), "--json", "--judge-system-prompt", str(own)]
    assert run_command(app, args, "rerun-agents") == 0
    assert json.loads(capsys.readouterr().out)["judge_system_prompt"]["path"] == str(own)
    missing = [str(fixture_experiment), "--dry-run", "--judge-system-prompt", str(tmp_path / "nope.md")]
    assert run_command(app, missing, "rerun-agents") == 2
    assert "The judge system prompt file does not exist" in capsys.readouterr().err


def test_pipeline_tools_dir_is_preferred_to_ours(workspace: Path, tmp_path: Path, monkeypatch) -> None:
    """SCYLLA_PIPELINE_TOOLS names the toolchain the experiment ran with: its tools win over
    our install's, and what it lacks still comes from ours."""
    tools = tmp_path / "their-env"
    tools.mkdir()
    fake_ruff = tools / "ruff"
    fake_ruff.write_text("#!/bin/sh\necho 'their ruff 0.0.1'\nexit 0\n")
    fake_ruff.chmod(0o755)
    monkeypatch.setenv("SCYLLA_PIPELINE_TOOLS", str(tools))
    result = run_pipeline(workspace, "python")
    assert "their ruff 0.0.1" in result.format_output
    assert "collected 0 items" in result.test_output  # pytest: ours
    monkeypatch.delenv("SCYLLA_PIPELINE_TOOLS")
    assert "their ruff" not in run_pipeline(workspace, "python").format_output
