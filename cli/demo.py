"""``scylla-demo``: a full repair of a generated experiment, with a SIMULATED agent and judges.

No network and no API key: the agent is the project's fake ``claude`` executable
(``simulation/bin/claude``, which speaks Claude Code's ``--print --output-format json``
protocol) and the judges are answered by the project's local Anthropic-Messages-compatible
server on 127.0.0.1 (``simulation/messages_server.py``). Everything else is real: git
worktrees, the Prefect flow (on Prefect's temporary local API), the files written.

    scylla-demo [--dir demo-output] [--runs-per-subtest 3] [--seed 1]
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import make_app, run_command
from experiment.errors import ExperimentError

REPO = Path(__file__).resolve().parents[1]
TIERS = REPO / "tests" / "fixtures" / "scylla-tiers"
MIX = {"completed": 0.5, "results": 0.15, "failed": 0.15, "partial": 0.1, "missing": 0.1}

app = make_app(__doc__.split("\n")[0])


def banner(text: str) -> None:
    typer.echo("\n" + "#" * 70 + f"\n# {text}\n" + "#" * 70)


MARKER = ".scylla-demo"
"""Left in every directory the demo creates: only such a directory is ever emptied by it."""


def prepare_demo_dir(directory: Path) -> None:
    """Create ``directory``, or empty one an earlier demo created; refuse anything else."""
    if directory.exists() and not directory.is_dir():
        raise ExperimentError("--dir is not a directory", directory, "pass a new or empty directory")
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / MARKER).is_file():
            raise ExperimentError(
                "Refusing to use --dir: it is not empty and scylla-demo did not create it",
                directory,
                "pass a new or empty directory",
            )
        shutil.rmtree(directory)  # an earlier demo's output: ours to replace
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("created by scylla-demo; it may empty this directory on its next run\n")


@app.command()
def demo(
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="Where to create the demo experiment: a new or empty directory, or an earlier demo's.",
        ),
    ] = Path("demo-output"),
    runs_per_subtest: Annotated[int, typer.Option("--runs-per-subtest", min=1)] = 3,
    seed: Annotated[int, typer.Option("--seed")] = 1,
) -> int:
    sys.path.insert(0, str(REPO))
    from cli.rerun_agents import app as rerun_app
    from simulation.claude_log import fake_claude_bin
    from simulation.generator import generate_experiment
    from simulation.messages_server import MessagesServer, ServerBehavior

    directory = directory.resolve()  # the agent runs in its worktree: every path must be absolute
    prepare_demo_dir(directory)
    # The bundled tier definitions are trimmed (no skills/): composing without them is expected here.
    logging.getLogger("operations.workspace").setLevel(logging.ERROR)
    experiment = generate_experiment(
        directory / "2026-01-20T06-13-07-demo",
        tiers=["T0", "T1", "T2"],
        subtests_per_tier=2,
        runs_per_subtest=runs_per_subtest,
        mix=MIX,
        seed=seed,
        tiers_dir=TIERS,
    ).path
    banner("SIMULATED agent (fake claude CLI) and judges (local Messages server on 127.0.0.1)")
    typer.echo(f"Experiment: {experiment}")
    with MessagesServer(ServerBehavior(rpm=600, fail_sequence=["429", "529"], retry_after=1)) as server:
        os.environ["PATH"] = f"{fake_claude_bin()}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        os.environ["ANTHROPIC_API_KEY"] = "demo-key-not-a-secret"
        os.environ["FAKE_CLAUDE_LOG"] = str(directory / "fake-claude.log")
        os.environ.setdefault("PREFECT_HOME", str((directory / ".prefect-home").resolve()))
        os.environ.setdefault("SCYLLA_REPAIR_EPHEMERAL", "1")  # leave no background server behind
        common = [str(experiment), "--tiers-dir", str(TIERS)]
        banner("1. What is broken? rerun-agents EXP --dry-run")
        run_command(rerun_app, [*common, "--dry-run"], "rerun-agents")
        banner("2. Repair it: rerun-agents EXP")
        code = run_command(rerun_app, common, "rerun-agents")
        banner("3. Again: a repaired experiment needs nothing (rerun-agents EXP --dry-run)")
        run_command(rerun_app, [*common, "--dry-run"], "rerun-agents")
        stats = server.stats()
    typer.echo(
        f"\nJudge server saw {stats['requests']} requests ({stats['by_status']}); "
        f"old attempts are under {experiment}/T*/*/.failed/"
    )
    return code


def main() -> None:
    sys.exit(run_command(app, sys.argv[1:], "scylla-demo"))
