"""rerun-agents end to end: each rerun's claude argv (as the fake claude recorded it) carries the
flags its subtest's completed runs recorded, or, with no completed sibling, the definition's."""

from __future__ import annotations

import json
from pathlib import Path

from flows.rerun_agents import rerun_agents
from simulation.generator import generate_experiment
from tests.flows.simulated import TIERS, simulated_provider

HEAD = [
    "--model",
    "claude-sonnet-4-5-20250929",
    "--print",
    "--output-format",
    "json",
    "--dangerously-skip-permissions",
]
SIBLING_FLAGS = ["--tools", "", "--agent", "chief-architect", "--max-turns", "12"]


def fail(run_dir: Path) -> None:
    (run_dir / "agent" / "output.txt").write_text("")
    (run_dir / "agent" / "result.json").unlink()


def test_reruns_get_their_siblings_flags_or_the_definitions(tmp_path, monkeypatch):
    exp = generate_experiment(
        tmp_path / "exp",
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        mix={"completed": 1.0},
        tiers_dir=TIERS,
    ).path
    for run in ("00/run_01", "00/run_02", "00/run_03", "01/run_01"):
        fail(exp / "T0" / run)
    for run in ("01/run_02", "01/run_03"):  # a newer ProjectScylla recorded these flags
        path = exp / "T0" / run / "agent" / "command_log.json"
        data = json.loads(path.read_text())
        argv = data["commands"][0]["command"]
        data["commands"][0]["command"] = [*argv[:-1], *SIBLING_FLAGS, argv[-1]]
        path.write_text(json.dumps(data))

    with simulated_provider(monkeypatch, tmp_path) as provider:
        summary = rerun_agents(str(exp), tiers_dir=str(TIERS))
        starts = [e for e in provider.invocations() if e.get("event") == "start"]
    assert summary.failed == 0 and summary.succeeded == 4
    argv = {Path(e["cwd"]).parent.relative_to(exp).as_posix(): e["argv"] for e in starts}
    assert sorted(argv) == ["T0/00/run_01", "T0/00/run_02", "T0/00/run_03", "T0/01/run_01"]
    assert argv["T0/01/run_01"][:-1] == [*HEAD, *SIBLING_FLAGS]
    for run in ("T0/00/run_01", "T0/00/run_02", "T0/00/run_03"):  # T0/00: system_prompt_mode none
        assert argv[run][:-1] == [*HEAD, "--system-prompt", ""]
        assert argv[run][-1] == str(exp / run / "agent" / "prompt.md")
