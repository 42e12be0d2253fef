"""Acceptance: a run re-judged by rerun-agents reads, to its judges, as its siblings read.

On a copy of the real sample, the judgments of two completed runs are stripped and re-judged
through the local Messages server; the rebuilt ``judge_prompt.md`` must have the stored one's
exact sequence of ``##``/``###`` headers and byte-identical rubric, task and agent-output
sections, and the judges must have been sent the checkout's system prompt.

Two things about the stored sample are undone first, because they happened after its judges ran
(in ProjectScylla's repository, not in the experiment): its markdown and YAML were later
auto-formatted (markdownlint collapsed double blank lines, yamllint reflowed ``rubric.yaml``), so
section bodies are compared without their surrounding blank lines and ``rubric.yaml`` is restored
from the stored prompt; and its workspaces were stored without their git worktree link, so each is
made a repository again with the agent's file (the one the stored prompt lists) left untracked.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from flows.rerun_agents import rerun_agents
from operations.judge import JUDGE_SYSTEM_PROMPT
from tests.conftest import (
    FAKE_JUDGE_SYSTEM_PROMPT,
    TIERS_FIXTURE,
    copy_fixture_experiment,
    make_fake_checkout,
    strip_judgments,
)
from tests.flows.simulated import simulated_provider

RUNS = ["T0/00/run_01", "T2/01/run_01"]


def headers(prompt: str) -> list[str]:
    return [line for line in prompt.split("\n") if re.match(r"###? ", line)]


def section(prompt: str, title: str) -> str:
    """The body of a top-level section: up to the next top-level section of the prompt."""
    tops = (
        "## Rubric (Evaluation Criteria)",
        "## Task Given to Agent",
        "## Agent's Output",
        "## Workspace State After Agent Execution",
        "## Build/Lint/Test Pipeline Results",
    )
    start = prompt.index(title + "\n") + len(title)
    ends = [prompt.find("\n" + top, start) for top in tops]
    end = min([e for e in ends if e > 0] or [len(prompt)])
    return prompt[start:end].strip("\n")


def prepare(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    exp = copy_fixture_experiment(tmp_path / "results" / "2026-01-20T06-13-07-test-001")
    stored = strip_judgments(exp, RUNS)
    rubric = section(stored[RUNS[0]], "## Rubric (Evaluation Criteria)")
    (exp / "rubric.yaml").write_text(rubric.removeprefix("```yaml\n").removesuffix("\n```"))
    for run in RUNS:
        workspace = exp / run / "workspace"
        agent_files = re.findall(r"^- `(.+)` \(created\)$", stored[run], re.MULTILINE)
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(workspace)]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run(
            [*git, "add", "-A", "--", ".", *[f":(exclude){name}" for name in agent_files]], check=True
        )
        subprocess.run([*git, "commit", "-qm", "[scylla] Initialize test configuration"], check=True)
    return exp, stored


def test_rejudged_runs_read_as_their_siblings(tmp_path, monkeypatch):
    exp, stored = prepare(tmp_path)
    checkout = make_fake_checkout(tmp_path / "ProjectScylla")
    with simulated_provider(monkeypatch, tmp_path, simulated_pipeline=False) as provider:
        summary = rerun_agents(str(exp), tiers_dir=str(checkout))
        assert provider.server.stats()["systems"] == [FAKE_JUDGE_SYSTEM_PROMPT]
        assert provider.agent_starts() == 0
    assert sorted(r.run for r in summary.runs if r.outcome == "regenerated") == RUNS
    assert not any("comparable" in note for note in summary.notes)
    for run in RUNS:
        new = (exp / run / "judge_prompt.md").read_text()
        assert headers(new) == headers(stored[run])
        for title in ("## Rubric (Evaluation Criteria)", "## Task Given to Agent", "## Agent's Output"):
            assert section(new, title) == section(stored[run], title), (run, title)
        assert "- `hello.py` (created)" in new and "CLAUDE.md" not in section(
            new, "## Workspace State After Agent Execution"
        )
        assert not list((exp / run / "workspace").rglob("__pycache__"))
        assert {p.name for p in (exp / run / "commands").iterdir()} == {
            p.name for p in (TIERS_FIXTURE.parent / "scylla-test001-dryrun" / run / "commands").iterdir()
        }
        for slot in sorted((exp / run / "judge").glob("judge_*")):
            request = json.loads((slot / "request.json").read_text())
            assert request["system_prompt"]["source"] == "checkout"
            assert request["system_prompt"]["path"] == str(checkout / "config" / "judge" / "system_prompt.md")
            assert {"model", "max_tokens", "temperature"} <= set(request)


def test_fallback_is_said_in_the_summary_and_the_slots(tmp_path, monkeypatch):
    exp, _ = prepare(tmp_path)
    with simulated_provider(monkeypatch, tmp_path, simulated_pipeline=False) as provider:
        summary = rerun_agents(str(exp), tiers_dir=str(TIERS_FIXTURE), runs=[1], tiers=["T0"])
        assert provider.server.stats()["systems"] == [JUDGE_SYSTEM_PROMPT]
    notes = [note for note in summary.notes if "NOT be comparable" in note]
    assert notes and "NOT be comparable" in summary.markdown()
    for slot in sorted((exp / RUNS[0] / "judge").glob("judge_*")):
        record = json.loads((slot / "request.json").read_text())["system_prompt"]
        assert record["source"] == "fallback" and record["comparable"] is False
        assert "not comparable" in (slot / "MODEL.md").read_text()
