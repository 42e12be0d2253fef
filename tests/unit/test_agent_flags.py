"""A rerun's claude argv: its finished siblings' recorded flags, else the subtest definition's
(ProjectScylla's rules); this run's model and prompt; what the fake claude actually received."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from experiment.layout import RunKey
from experiment.scan import ExperimentContext, load_context
from experiment.tiers import TiersDir, clear_cache
from operations.agent import AgentSettings, agent_flags, run_agent, settings_for_run
from operations.agent.flags import recorded_flags
from operations.archive import archive_run
from operations.workspace import prepare_workspace
from simulation.claude_log import fake_claude_path, starts
from simulation.generator import generate_experiment

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-test001-dryrun"
HEAD = [
    "--model",
    "claude-opus-4-5-20251101",
    "--print",
    "--output-format",
    "json",
    "--dangerously-skip-permissions",
]


def _experiment(tmp_path: Path, runs: int, max_turns: int | None = None) -> ExperimentContext:
    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=runs,
        mix={"completed": 1.0},
        tiers_dir=TIERS,
    )
    if max_turns is not None:
        config_path = gen.path / "config" / "experiment.json"
        config = json.loads(config_path.read_text())
        config["max_turns"] = max_turns
        config_path.write_text(json.dumps(config))
    return load_context(gen.path, TIERS)


def _record_flags(ctx: ExperimentContext, key: RunKey, flags: list[str]) -> None:
    """Make a finished run's command log say it ran with ``flags`` (as a newer ProjectScylla would)."""
    path = ctx.layout.run_paths(key).command_log
    data = json.loads(path.read_text())
    argv = data["commands"][0]["command"]
    data["commands"][0]["command"] = [*argv[:-1], *flags, argv[-1]]
    path.write_text(json.dumps(data))


def _rerun(ctx: ExperimentContext, key: RunKey, tmp_path: Path, **settings) -> list[str]:
    """Archive, prepare and run ``key`` with the fake claude; the argv the fake received."""
    repo = ctx.root / "repo"
    archive_run(ctx.layout, key, repo)
    info = prepare_workspace(ctx, key, base_repo=repo)
    log = tmp_path / "claude.jsonl"
    base = AgentSettings.from_config(
        ctx.config,
        claude_binary=str(fake_claude_path()),
        model="claude-opus-4-5-20251101",
        timeout_seconds=30,
        extra_env={"FAKE_CLAUDE_LOG": str(log)},
        **settings,
    )
    agent, _ = settings_for_run(base, ctx, key)
    outcome = run_agent(info.run_dir, info.workspace, agent)
    assert outcome.succeeded, outcome.failure_message
    (event,) = starts(log)
    recorded = json.loads((info.run_dir / "agent" / "command_log.json").read_text())["commands"][0]["command"]
    assert recorded[1:] == event["argv"]  # what we wrote down is what claude got
    assert event["argv"][-1] == str(info.run_dir / "agent" / "prompt.md")
    return event["argv"]


def test_recorded_flags_of_the_sample_and_of_a_newer_command() -> None:
    log = json.loads((SAMPLE / "T0" / "00" / "run_01" / "agent" / "command_log.json").read_text())
    assert recorded_flags(log["commands"][0]["command"]) == []
    argv = ["claude", *HEAD, "--system-prompt", "", "--agent", "x", "--max-turns", "5", "/r/agent/prompt.md"]
    assert recorded_flags(argv) == ["--system-prompt", "", "--agent", "x", "--max-turns", "5"]
    assert recorded_flags(["agent", "-m", "x", "/p.md"]) is None  # not a claude print command


def test_rerun_gets_the_flags_its_completed_siblings_recorded(tmp_path: Path) -> None:
    ctx = _experiment(tmp_path, runs=3, max_turns=7)
    flags = ["--system-prompt", "", "--tools", "", "--agent", "chief-architect", "--max-turns", "9"]
    for n in (2, 3):
        _record_flags(ctx, RunKey("T0", "01", n), flags)

    argv = _rerun(ctx, RunKey("T0", "01", 1), tmp_path)

    # The siblings' flags verbatim (their --max-turns, not the config's), this run's model and prompt.
    assert argv[:-1] == [*HEAD, *flags]


def test_siblings_recording_no_flags_win_over_the_definition(tmp_path: Path) -> None:
    """T0/00 says system_prompt_mode: none, but its runs ran without --system-prompt (the sample's
    ProjectScylla version): the rerun is run like them."""
    ctx = _experiment(tmp_path, runs=2)
    assert _rerun(ctx, RunKey("T0", "00", 1), tmp_path)[:-1] == HEAD


def test_without_siblings_the_definition_decides(tmp_path: Path) -> None:
    ctx = _experiment(tmp_path, runs=1, max_turns=4)
    argv = _rerun(ctx, RunKey("T0", "00", 1), tmp_path)
    assert argv[:-1] == [*HEAD, "--system-prompt", "", "--max-turns", "4"]  # system_prompt_mode: none


def test_disagreeing_siblings_majority_and_callers_own_choice(tmp_path: Path) -> None:
    ctx = _experiment(tmp_path, runs=4)
    _record_flags(ctx, RunKey("T0", "01", 2), ["--agent", "a"])
    _record_flags(ctx, RunKey("T0", "01", 3), ["--agent", "b"])
    _record_flags(ctx, RunKey("T0", "01", 4), ["--agent", "b"])
    chosen = agent_flags(ctx, RunKey("T0", "01", 1), None)
    assert (chosen.flags, chosen.source) == (["--agent", "b"], "siblings")
    assert "run_03, run_04" in chosen.detail and "1 sibling(s) recorded other flags" in chosen.detail

    template = AgentSettings(command=["agent", "{prompt_file}"])
    assert settings_for_run(template, ctx, RunKey("T0", "01", 1))[0] is template


def test_definition_rules_tools_and_agent(tmp_path: Path) -> None:
    """ProjectScylla's rules: tools_enabled false -> --tools "", agents.names[0] -> --agent (no .md)."""
    ctx = _experiment(tmp_path, runs=1)
    shared = tmp_path / "tests" / "claude-code" / "shared"
    (shared / "subtests" / "t3").mkdir(parents=True)
    (shared / "tiers.yaml").write_text("tiers:\n  T3:\n    tools_enabled: false\n")
    (shared / "subtests" / "t3" / "01-chief.yaml").write_text(
        "name: chief\ndescription: d\nagents:\n  names: [chief-architect.md, other.md]\n"
    )
    clear_cache()
    custom = replace(ctx, tiers_dir=TiersDir(test_dir=None, shared_dir=shared))
    flags = agent_flags(custom, RunKey("T3", "01", 1), 3)
    assert flags.source == "definition"
    assert flags.flags == ["--tools", "", "--agent", "chief-architect", "--max-turns", "3"]


@pytest.mark.parametrize("mode", ["none", "default"])
def test_fake_claude_accepts_the_flags(mode: str, tmp_path: Path) -> None:
    from simulation.fake_claude import parse_args

    opts = parse_args(["--print", "--system-prompt", "", "--tools", "", "--agent", mode, "/p.md"])
    assert opts["prompt"] == "/p.md"
