"""run_agent with the fake claude CLI: real subprocesses, real git, every agent/ file checked."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from experiment.failures import AttemptFailed, FailureClass
from experiment.layout import RunKey
from experiment.models import ExperimentConfig
from experiment.scan import load_context
from operations.agent import AgentSettings, build_command, run_agent
from operations.archive import archive_run
from operations.workspace import WorkspaceInfo, prepare_workspace
from simulation.claude_log import fake_claude_path
from simulation.generator import generate_experiment

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"
KEY = RunKey("T1", "01", 1)
AGENT_FILES = {
    "prompt.md",
    "command_log.json",
    "cmd_0000_stdout.log",
    "cmd_0000_stderr.log",
    "replay.sh",
    "stdout.log",
    "stderr.log",
    "output.txt",
    "result.json",
    "timing.json",
    "MODEL.md",
}
TOKEN_KEYS = {"input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"}


@pytest.fixture
def prepared(tmp_path: Path) -> WorkspaceInfo:
    gen = generate_experiment(
        tmp_path / "exp", tiers=["T1"], subtests_per_tier=1, runs_per_subtest=1, tiers_dir=TIERS
    )
    ctx = load_context(gen.path, TIERS)
    archive_run(ctx.layout, KEY, gen.path / "repo")
    return prepare_workspace(ctx, KEY, base_repo=gen.path / "repo")


def _settings(mode: str = "success", **overrides) -> AgentSettings:
    values = {
        "claude_binary": str(fake_claude_path()),
        "model": "claude-sonnet-4-5-20250929",
        "timeout_seconds": 30,
        "extra_env": {"FAKE_CLAUDE_MODE": mode},
    }
    values.update(overrides)
    return AgentSettings(**values)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True).stdout.strip()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_success_writes_every_file_and_commits(prepared: WorkspaceInfo) -> None:
    outcome = run_agent(prepared.run_dir, prepared.workspace, _settings())
    agent = prepared.run_dir / "agent"

    assert {p.name for p in agent.iterdir()} == AGENT_FILES
    assert outcome.failure is None and outcome.exit_code == 0 and not outcome.timed_out
    stdout = (agent / "stdout.log").read_text()
    claude = json.loads(stdout)
    result = _json(agent / "result.json")
    assert set(result) == {"exit_code", "stdout", "stderr", "token_stats", "cost_usd", "api_calls"}
    assert set(result["token_stats"]) == TOKEN_KEYS
    assert result["api_calls"] == claude["num_turns"] == outcome.api_calls == 6
    assert result["cost_usd"] == claude["total_cost_usd"] == outcome.cost_usd
    assert result["token_stats"]["cache_read_tokens"] == claude["usage"]["cache_read_input_tokens"]
    assert result["stdout"] == stdout == (agent / "output.txt").read_text()
    assert (agent / "cmd_0000_stdout.log").read_text() == stdout

    log = _json(agent / "command_log.json")
    assert log["total_commands"] == 1
    entry = log["commands"][0]
    assert entry["command"] == [
        str(fake_claude_path()),
        "--model",
        "claude-sonnet-4-5-20250929",
        "--print",
        "--output-format",
        "json",
        "--dangerously-skip-permissions",
        str(prepared.prompt_file),
    ]
    assert entry["cwd"] == str(prepared.workspace)
    assert entry["exit_code"] == 0 and entry["duration_seconds"] > 0
    assert entry["stdout_file"] == "cmd_0000_stdout.log"
    assert set(entry["env_vars"]) >= {"PATH", "HOME"}
    assert _json(agent / "timing.json")["agent_duration_seconds"] == pytest.approx(outcome.duration_seconds)

    model_md = (agent / "MODEL.md").read_text()
    assert "**Model**: claude-sonnet-4-5-20250929" in model_md
    assert "**Claude Code Version**: 2.1.12 (Claude Code)" in model_md
    replay = (agent / "replay.sh").read_text()
    assert replay.startswith("#!/bin/bash\n") and "set -e" in replay and "set -x" in replay
    assert f"cd {prepared.workspace}\n" in replay
    assert os.access(agent / "replay.sh", os.X_OK)

    ws = prepared.workspace
    assert (ws / "hello.py").read_text() == 'print("Hello, World!")\n'
    assert outcome.committed
    assert _git(ws, "log", "-1", "--format=%s") == "[scylla] Agent changes"
    assert "hello.py" in _git(ws, "show", "--name-only", "--format=", "HEAD")
    assert _git(ws, "status", "--porcelain") == ""


def test_genuine_failure(prepared: WorkspaceInfo) -> None:
    outcome = run_agent(prepared.run_dir, prepared.workspace, _settings("fail"))
    assert outcome.exit_code == 1
    assert outcome.failure_kind is FailureClass.AGENT_FAILED
    assert not outcome.failure.transient
    outcome.raise_if_transient()  # a genuine failure is not retried
    result = _json(prepared.run_dir / "agent" / "result.json")
    assert result["exit_code"] == 1 and result["api_calls"] == 2
    assert "simulated agent crash" in (prepared.run_dir / "agent" / "stderr.log").read_text()
    assert not outcome.committed  # nothing changed, nothing committed


def test_rate_limit_is_quota_window_with_retry_after(prepared: WorkspaceInfo) -> None:
    outcome = run_agent(prepared.run_dir, prepared.workspace, _settings("rate_limit"))
    assert outcome.failure_kind is FailureClass.QUOTA_WINDOW
    assert outcome.retry_after_seconds is not None and 0 < outcome.retry_after_seconds <= 86400
    assert "hit your limit" in outcome.failure_message
    with pytest.raises(AttemptFailed) as caught:
        outcome.raise_if_transient()
    assert caught.value.failure.retry_after_seconds == outcome.retry_after_seconds
    # The outcome survives serialisation (a persisted Prefect result).
    again = type(outcome).model_validate_json(outcome.model_dump_json())
    assert again.failure == outcome.failure


def test_hang_times_out_and_records_crash(prepared: WorkspaceInfo, tmp_path: Path) -> None:
    log_path = tmp_path / "fake.log"
    settings = _settings("hang", timeout_seconds=2, kill_grace_seconds=1)
    settings.extra_env["FAKE_CLAUDE_LOG"] = str(log_path)
    started = time.monotonic()
    outcome = run_agent(prepared.run_dir, prepared.workspace, settings)
    assert time.monotonic() - started < 10
    agent = prepared.run_dir / "agent"
    assert outcome.timed_out and outcome.exit_code == -1
    assert outcome.failure_kind is FailureClass.TIMEOUT
    assert "timed out" in (agent / "stderr.log").read_text()
    assert (agent / "output.txt").read_text() == ""
    result = _json(agent / "result.json")
    assert result["exit_code"] == -1 and result["stdout"] == "" and result["api_calls"] == 0
    assert result["token_stats"] == dict.fromkeys(TOKEN_KEYS, 0)
    assert _json(agent / "command_log.json")["commands"][0]["exit_code"] == -1
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    pid = next(e["pid"] for e in events if e["event"] == "start")
    assert not _alive(pid)


def test_timeout_kills_the_whole_process_group(prepared: WorkspaceInfo, tmp_path: Path) -> None:
    """A child that ignores SIGTERM is killed too: SIGTERM, grace, SIGKILL to the group."""
    pid_file = tmp_path / "child.pid"
    script = f"trap '' TERM; sleep 300 & echo $! > {pid_file}; wait"
    settings = AgentSettings(command=["bash", "-c", script], timeout_seconds=1, kill_grace_seconds=0.5)
    outcome = run_agent(prepared.run_dir, prepared.workspace, settings)
    assert outcome.failure_kind is FailureClass.TIMEOUT
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_missing_binary_is_infrastructure(prepared: WorkspaceInfo, tmp_path: Path) -> None:
    settings = _settings(claude_binary=str(tmp_path / "no-such-claude"))
    outcome = run_agent(prepared.run_dir, prepared.workspace, settings)
    agent = prepared.run_dir / "agent"
    assert outcome.exit_code == -1
    assert outcome.failure_kind is FailureClass.INFRASTRUCTURE and outcome.failure.transient
    assert {p.name for p in agent.iterdir()} == AGENT_FILES
    assert "no-such-claude" in (agent / "stderr.log").read_text()
    assert "**Claude Code Version**: unknown" in (agent / "MODEL.md").read_text()
    assert _json(agent / "result.json")["exit_code"] == -1


def test_secrets_never_written(prepared: WorkspaceInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-SECRET123")
    settings = _settings(extra_env={"FAKE_CLAUDE_MODE": "success", "MY_SERVICE_TOKEN": "tok-SECRET456"})
    assert "tok-SECRET456" not in repr(settings)
    run_agent(prepared.run_dir, prepared.workspace, settings)
    agent = prepared.run_dir / "agent"
    for name in ("replay.sh", "command_log.json"):
        text = (agent / name).read_text()
        assert "sk-test-SECRET123" not in text and "SECRET456" not in text, name
    env_vars = _json(agent / "command_log.json")["commands"][0]["env_vars"]
    assert env_vars["MY_SERVICE_TOKEN"] == "[REDACTED]"
    assert env_vars["FAKE_CLAUDE_MODE"] == "success"
    assert "# export MY_SERVICE_TOKEN='[REDACTED]'" in (agent / "replay.sh").read_text()


def test_claudecode_is_stripped(prepared: WorkspaceInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDECODE", "1")
    settings = AgentSettings(command=["bash", "-c", "echo ${CLAUDECODE:-unset}"])
    outcome = run_agent(prepared.run_dir, prepared.workspace, settings)
    assert (prepared.run_dir / "agent" / "stdout.log").read_text() == "unset\n"
    assert outcome.failure_kind is FailureClass.AGENT_FAILED  # exit 0 without a JSON result


def test_command_template_and_from_config(tmp_path: Path) -> None:
    config = ExperimentConfig(
        experiment_id="x",
        task_repo="r",
        task_commit="c",
        task_prompt_file="p",
        language="python",
        models=["claude-opus-4-5-20251101"],
        timeout_seconds=120,
        max_turns=7,
    )
    settings = AgentSettings.from_config(config)
    assert (settings.model, settings.timeout_seconds, settings.max_turns) == (
        "claude-opus-4-5-20251101",
        120,
        7,
    )
    argv = build_command(settings, Path("/r/agent/prompt.md"), Path("/r/workspace"))
    assert argv[-3:] == ["--max-turns", "7", "/r/agent/prompt.md"]
    with_agent = AgentSettings.from_config(config, extra_args=["--agent", "chief-architect"])
    assert build_command(with_agent, Path("/p.md"), Path("/ws"))[-3:] == [
        "--agent",
        "chief-architect",
        "/p.md",
    ]
    custom = AgentSettings.from_config(
        config,
        max_turns=None,
        command=["agent", "-m", "{model}", "--max-turns", "{max_turns}", "--in={workspace}", "{prompt_file}"],
    )
    assert build_command(custom, Path("/p.md"), Path("/ws")) == [
        "agent",
        "-m",
        "claude-opus-4-5-20251101",
        "--in=/ws",
        "/p.md",
    ]


def test_an_agent_that_ended_before_the_repair_died_is_recognised_from_its_streamed_output(prepared):
    """SIGKILL right after the agent exited: only its streamed stdout/stderr are on disk."""
    from operations.agent import finished_agent, recover_agent

    run_dir, workspace = prepared.run_dir, prepared.workspace
    assert finished_agent(run_dir) is None  # nothing ran yet
    done = run_agent(run_dir, workspace, _settings())
    agent = run_dir / "agent"
    for name in ("result.json", "timing.json", "output.txt", "MODEL.md", "cmd_0000_stdout.log"):
        (agent / name).unlink()  # as if the repair died before recording anything:
    for name in ("stdout", "stderr"):  # only the live streams are on disk then
        (agent / f"{name}.log").rename(agent / f"{name}.live.log")
    finished = finished_agent(run_dir)
    assert finished is not None and finished.final and finished.failure is None
    again = recover_agent(run_dir, workspace, _settings(), finished)
    assert again.cost_usd == done.cost_usd and again.failure_kind is None
    assert {p.name for p in agent.iterdir()} >= AGENT_FILES
    assert json.loads((agent / "result.json").read_text())["exit_code"] == 0


def test_a_half_written_or_transient_attempt_is_not_a_finished_agent(prepared):
    from operations.agent import finished_agent

    run_dir, workspace = prepared.run_dir, prepared.workspace
    run_agent(run_dir, workspace, _settings("overloaded"))
    finished = finished_agent(run_dir)
    assert finished is not None and not finished.final  # a 529: run it again
    for name in ("result.json", "timing.json"):
        (run_dir / "agent" / name).unlink()
    (run_dir / "agent" / "stdout.log").write_text('{"type":"result","is_err')  # cut mid-line
    assert finished_agent(run_dir) is None


def test_a_run_whose_agent_is_running_or_was_killed_mid_agent_is_partial(prepared):
    """The streamed output is not under ProjectScylla's names while the agent runs: its
    classifier (and ours) reads ``agent/stderr.log`` without output as "ran and failed"."""
    import threading

    from experiment.status import RunStatus, classify_run

    run_dir, workspace = prepared.run_dir, prepared.workspace
    agent = run_dir / "agent"
    settings = _settings("hang", timeout_seconds=2, kill_grace_seconds=1)
    worker = threading.Thread(target=run_agent, args=(run_dir, workspace, settings))
    worker.start()
    deadline = time.monotonic() + 20
    while not (agent / "stdout.live.log").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (agent / "stdout.live.log").exists() and not (agent / "stderr.log").exists()
    assert classify_run(run_dir).status is RunStatus.PARTIAL  # as a SIGKILL of the repair leaves it
    worker.join()
    assert classify_run(run_dir).status is RunStatus.FAILED  # timed out: recorded as the original does
    assert not list(agent.glob("*.live.log"))  # recorded under ProjectScylla's names only


def test_the_agent_binary_is_asked_its_version_once_per_file(tmp_path):
    """``--version`` of the real claude costs a Node start per run: asked once per binary file."""
    from operations.agent.records import claude_version

    calls = tmp_path / "calls"
    binary = tmp_path / "agent-cli"
    binary.write_text(f"#!/bin/sh\necho x >> {calls}\necho '9.9.9 (Simulated Code)'\n")
    binary.chmod(0o755)
    env = {"PATH": os.environ["PATH"]}
    assert claude_version(str(binary), env, tmp_path) == "9.9.9 (Simulated Code)"
    assert claude_version(str(binary), env, tmp_path) == "9.9.9 (Simulated Code)"
    assert calls.read_text().count("x") == 1
    binary.write_text(binary.read_text().replace("9.9.9", "10.0.0"))  # replaced mid-repair
    assert claude_version(str(binary), env, tmp_path) == "10.0.0 (Simulated Code)"
    assert calls.read_text().count("x") == 2
