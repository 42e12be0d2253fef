"""The judge: prompt sections, the saved prompt, parsing, and real HTTP to the local Messages server."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed, FailureClass
from experiment.layout import RunKey
from experiment.scan import ExperimentContext, load_context
from operations.agent import AgentSettings, run_agent
from operations.archive import archive_run
from operations.judge import (
    CLOSING_LINE,
    JudgeAuthError,
    JudgeConfigError,
    JudgeParseError,
    JudgeSettings,
    build_judge_prompt,
    ensure_judge_prompt,
    parse_judgment,
    run_judge_slot,
)
from operations.workspace import WorkspaceInfo, prepare_workspace
from simulation.claude_log import fake_claude_path
from simulation.generator import generate_experiment
from simulation.messages_server import MessagesServer, ServerBehavior

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"
KEY = RunKey("T1", "01", 1)
SECRET = "sk-test-JUDGESECRET789"
MODEL = "claude-opus-4-5-20251101"


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExperimentContext, WorkspaceInfo]:
    """A run whose agent (the fake claude) created hello.py; shared by the read-only prompt tests."""
    root = tmp_path_factory.mktemp("judge")
    gen = generate_experiment(
        root / "exp", tiers=["T1"], subtests_per_tier=1, runs_per_subtest=1, tiers_dir=TIERS
    )
    ctx = load_context(gen.path, TIERS)
    archive_run(ctx.layout, KEY, gen.path / "repo")
    info = prepare_workspace(ctx, KEY, base_repo=gen.path / "repo")
    settings = AgentSettings(claude_binary=str(fake_claude_path()), extra_env={"FAKE_CLAUDE_MODE": "success"})
    assert run_agent(info.run_dir, info.workspace, settings).failure is None
    return ctx, info


@pytest.fixture
def server():
    with MessagesServer(ServerBehavior()) as srv:
        yield srv


def _settings(url: str, **overrides) -> JudgeSettings:
    return JudgeSettings(base_url=url, api_key=SecretStr(SECRET), **overrides)


def _slot(run_dir: Path, n: int = 1) -> Path:
    return run_dir / "judge" / f"judge_{n:02d}"


def _assert_no_secret(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# -- the prompt ------------------------------------------------------------------------------------


def test_prompt_sections(judged_run) -> None:
    ctx, info = judged_run
    prompt = build_judge_prompt(ctx, info.run_dir, info.workspace)
    headings = [
        "## Rubric (Evaluation Criteria)",
        "## Task Given to Agent",
        "## Agent's Output",
        "## Workspace State After Agent Execution",
        "## Git Diff (Patchfile)",
        "## Build/Lint/Test Pipeline Results",
    ]
    positions = [prompt.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "```yaml\n" + (ctx.root / "rubric.yaml").read_text().rstrip() in prompt
    assert (ctx.root / "prompt.md").read_text().strip() in prompt
    assert (info.run_dir / "agent" / "stdout.log").read_text().strip() in prompt
    # The agent's change only: the configuration commit is the baseline, not task_commit.
    assert "- `hello.py` (modified)" in prompt
    assert "CLAUDE.md" not in prompt.split("## Workspace State")[1].split("## Build")[0]
    assert '+print("Hello, World!")' in prompt
    assert "**Overall Status**: ALL PASSED ✓" in prompt
    assert "### Running: python hello.py\nExit code: 0\nOutput:\nHello, World!" in prompt
    assert prompt.rstrip().endswith(CLOSING_LINE)
    commands = info.run_dir / "commands"
    # ProjectScylla's replayable pipeline: one script per step, run_all.sh, each step's output.
    assert {
        "python_check.sh",
        "python_format.sh",
        "python_test.sh",
        "precommit.sh",
        "run_all.sh",
        "python_build_output.log",
        "python_format_output.log",
        "python_test_output.log",
        "precommit_output.log",
    } <= {p.name for p in commands.iterdir()}
    assert not list(info.workspace.rglob("__pycache__"))  # the pipeline leaves no byte code behind


def test_saved_prompt_is_reused(judged_run, tmp_path: Path) -> None:
    ctx, info = judged_run
    run_dir = tmp_path / "run_01"
    shutil.copytree(info.run_dir / "agent", run_dir / "agent")
    (run_dir / "task_prompt.md").write_text((info.run_dir / "task_prompt.md").read_text())
    first = ensure_judge_prompt(ctx, run_dir, info.workspace)
    assert (run_dir / "judge_prompt.md").read_text() == first
    # The workspace is later reset or deleted: the saved prompt still describes the agent's work.
    second = ensure_judge_prompt(ctx, run_dir, tmp_path / "deleted-workspace")
    assert second == first and "hello.py" in second


def test_concurrent_slots_build_the_prompt_once(judged_run, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ctx, info = judged_run
    run_dir = tmp_path / "run_01"
    shutil.copytree(info.run_dir / "agent", run_dir / "agent")
    with ThreadPoolExecutor(4) as pool:
        prompts = list(pool.map(lambda _: ensure_judge_prompt(ctx, run_dir, info.workspace), range(4)))
    assert len(set(prompts)) == 1 and (run_dir / "judge_prompt.md").read_text() == prompts[0]


def test_missing_workspace_and_other_language(judged_run, tmp_path: Path) -> None:
    ctx, info = judged_run
    prompt = build_judge_prompt(ctx, info.run_dir, tmp_path / "gone")
    assert "workspace no longer exists" in prompt and prompt.rstrip().endswith(CLOSING_LINE)
    ctx2 = load_context(ctx.root, TIERS)
    ctx2.config.language = "mojo"
    mojo = build_judge_prompt(ctx2, tmp_path, info.workspace)  # ProjectScylla's mojo pipeline
    if shutil.which("pixi"):
        return
    assert (
        "### Mojo Build (FAILED)\n```\nBuild tool not found: [Errno 2] No such file or directory: 'pixi'"
        in mojo
    )
    assert "### Mojo Test (PASSED)\n```\nmojo test not available, skipping\n```" in mojo


# -- parsing ---------------------------------------------------------------------------------------

JUDGMENT = {"score": 0.3, "passed": True, "grade": "A", "reasoning": "ok", "categories": {"f": {"items": {}}}}


@pytest.mark.parametrize(
    "text",
    [
        "Here it is:\n```json\n" + json.dumps(JUDGMENT) + "\n```\nDone.",
        "```\n" + json.dumps(JUDGMENT, indent=2) + "\n```",
        json.dumps(JUDGMENT),
        "My verdict follows. " + json.dumps(JUDGMENT) + " That is all {not json}.",
        "```python\nprint(1)\n```\n```json\n" + json.dumps(JUDGMENT) + "\n```",
    ],
)
def test_parse_variants(text: str) -> None:
    judgment = parse_judgment(text)
    assert judgment.score == 0.3
    assert judgment.grade == "D"  # recomputed from the score; the LLM's "A" is ignored
    assert judgment.passed is True  # the LLM's own boolean
    assert judgment.criteria_scores == {"f": {"items": {}}}
    assert judgment.is_valid


def test_parse_clamps_and_legacy_criteria() -> None:
    judgment = parse_judgment('{"score": 1.7, "passed": "false", "criteria_scores": {"a": 1}}')
    assert (judgment.score, judgment.grade, judgment.passed) == (1.0, "S", False)
    assert judgment.criteria_scores == {"a": 1}
    assert parse_judgment('{"score": -2}').score == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("I cannot evaluate this.", "does not contain valid JSON"),
        ('```json\n{"passed": true}\n```', "missing required 'score'"),
        ('{"score": "high"}', "not a number"),
    ],
)
def test_parse_failures(text: str, message: str) -> None:
    with pytest.raises(JudgeParseError, match=message) as caught:
        parse_judgment(text)
    assert isinstance(caught.value, ValueError)


# -- settings --------------------------------------------------------------------------------------


def test_missing_key_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(RepairBlocked) as caught:
        JudgeSettings.from_env()
    assert str(caught.value).startswith("ANTHROPIC_API_KEY is not set")
    assert "\n" not in str(caught.value)


def test_unusable_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as caught:
        JudgeSettings(base_url="http://127.0.0.1:9", api_key=SecretStr("sk-bad KEY-value"))
    assert "sk-bad" not in str(caught.value)


def test_settings_from_env_hide_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    settings = JudgeSettings.from_env()
    assert settings.base_url == "http://127.0.0.1:9"
    assert settings.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in settings.model_dump_json()


# -- slots over HTTP -------------------------------------------------------------------------------


def test_valid_slot_persists_everything(server, tmp_path: Path) -> None:
    outcome = run_judge_slot(tmp_path, 1, MODEL, "Judge this.", _settings(server.url))
    slot = _slot(tmp_path)
    assert outcome.valid and 0.7 <= outcome.score <= 1.0 and outcome.attempts == 1
    judgment = json.loads((slot / "judgment.json").read_text())
    assert judgment["is_valid"] is True and judgment["score"] == outcome.score
    assert set(judgment["criteria_scores"]) == {"functional", "code_quality"}
    assert "```json" in (slot / "response.txt").read_text()
    assert (slot / "stdout.log").read_text() == (slot / "response.txt").read_text()
    assert f"**Model**: {MODEL}" in (slot / "MODEL.md").read_text()
    assert json.loads((slot / "timing.json").read_text())["judge_duration_seconds"] > 0
    assert (slot / "replay.sh").stat().st_mode & 0o111
    assert not (slot / "error.log").exists()
    assert outcome.input_tokens > 0 and outcome.output_tokens > 0
    assert server.stats()["by_model"] == {MODEL: 1}
    _assert_no_secret(tmp_path)


def test_429_raises_with_retry_after_and_persists(tmp_path: Path) -> None:
    with MessagesServer(ServerBehavior(fail_sequence=["429"], retry_after=7)) as srv:
        with pytest.raises(AttemptFailed) as caught:
            run_judge_slot(tmp_path, 2, MODEL, "Judge this.", _settings(srv.url))
        failure = caught.value.failure
        assert failure.kind is FailureClass.RATE_LIMITED and failure.retry_after_seconds == 7.0
        slot = _slot(tmp_path, 2)
        judgment = json.loads((slot / "judgment.json").read_text())
        assert judgment == {
            "score": 0.0,
            "passed": False,
            "grade": "F",
            "reasoning": judgment["reasoning"],
            "is_valid": False,
        }
        assert judgment["reasoning"].startswith("Judge failed:")
        timing = json.loads((slot / "timing.json").read_text())
        assert timing["failed"] is True and "429" in timing["error"]
        assert "rate_limited" in (slot / "error.log").read_text()
        # The retry (the caller's policy) succeeds and overwrites the failure record.
        outcome = run_judge_slot(tmp_path, 2, MODEL, "Judge this.", _settings(srv.url))
        assert outcome.valid
        assert json.loads((slot / "judgment.json").read_text())["is_valid"] is True
        assert "failed" not in json.loads((slot / "timing.json").read_text())
        assert not (slot / "error.log").exists()
    _assert_no_secret(tmp_path)


@pytest.mark.parametrize(
    ("fault", "kind"), [("529", FailureClass.RATE_LIMITED), ("500", FailureClass.INFRASTRUCTURE)]
)
def test_transient_server_errors(tmp_path: Path, fault: str, kind: FailureClass) -> None:
    with MessagesServer(ServerBehavior(fail_sequence=[fault])) as srv, pytest.raises(AttemptFailed) as caught:
        run_judge_slot(tmp_path, 1, MODEL, "Judge this.", _settings(srv.url))
    assert caught.value.failure.kind is kind and caught.value.failure.transient
    assert json.loads((_slot(tmp_path) / "judgment.json").read_text())["is_valid"] is False


def test_malformed_once_then_valid_after_reminder(tmp_path: Path) -> None:
    with MessagesServer(ServerBehavior(fail_sequence=["malformed"])) as srv:
        outcome = run_judge_slot(tmp_path, 1, MODEL, "Judge this.", _settings(srv.url))
        assert srv.stats()["requests"] == 2
    assert outcome.valid and outcome.attempts == 2
    stdout = (_slot(tmp_path) / "stdout.log").read_text()
    assert stdout.startswith("I cannot evaluate this.") and "```json" in stdout


def test_malformed_twice_records_invalid_without_raising(tmp_path: Path) -> None:
    with MessagesServer(ServerBehavior(fail_sequence=["malformed", "malformed"])) as srv:
        outcome = run_judge_slot(tmp_path, 3, MODEL, "Judge this.", _settings(srv.url))
        assert srv.stats()["requests"] == 2
    assert not outcome.valid and outcome.score is None and outcome.passed is None  # nothing to average
    assert outcome.failure_kind is FailureClass.JUDGE_INVALID
    slot = _slot(tmp_path, 3)
    judgment = json.loads((slot / "judgment.json").read_text())
    assert judgment["is_valid"] is False and judgment["score"] == 0.0 and judgment["grade"] == "F"
    assert "does not contain valid JSON" in judgment["reasoning"]
    assert (slot / "response.txt").read_text() == "I cannot evaluate this."
    assert (slot / "error.log").exists()


def test_timeout_connection_404_and_401(tmp_path: Path) -> None:
    with MessagesServer(ServerBehavior(latency=1.0)) as srv:
        with pytest.raises(AttemptFailed) as caught:
            run_judge_slot(tmp_path, 1, MODEL, "x", _settings(srv.url, timeout_seconds=0.2))
        assert caught.value.failure.kind is FailureClass.TIMEOUT
    with MessagesServer(ServerBehavior()) as srv:
        with pytest.raises(JudgeConfigError) as caught_404:
            run_judge_slot(tmp_path, 1, MODEL, "x", _settings(srv.url + "/wrong-prefix"))
        assert "404" in str(caught_404.value) and "\n" not in str(caught_404.value)

        # The server answers 401 to a request without a key: drop the header on the way out.
        def strip_key(request: httpx.Request) -> None:
            del request.headers["x-api-key"]

        with (
            httpx.Client(event_hooks={"request": [strip_key]}) as client,
            pytest.raises(JudgeAuthError) as caught_401,
        ):
            run_judge_slot(tmp_path, 1, MODEL, "x", _settings(srv.url), client)
        assert "401" in str(caught_401.value) and SECRET not in str(caught_401.value)
        assert json.loads((_slot(tmp_path) / "judgment.json").read_text())["is_valid"] is False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AttemptFailed) as caught:
        run_judge_slot(tmp_path, 1, MODEL, "x", _settings(f"http://127.0.0.1:{port}"))
    assert caught.value.failure.kind is FailureClass.INFRASTRUCTURE
    _assert_no_secret(tmp_path)
