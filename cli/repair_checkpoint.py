"""``repair-checkpoint EXPERIMENT_DIR``: rebuild ``checkpoint.json`` from the run dirs on disk.

A run with a readable ``run_result.json`` is recorded as passed or failed (its ``judge_passed``);
a run whose agent finished without a result as ``agent_complete``. Runs the command cannot see,
unknown fields and the experiment's other states are kept. The old file is backed up under
``<exp>/.backups/<stamp>/checkpoint.json`` first and the new one is written atomically (v3.1).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from cli.common import make_app, run_command, setup_logging
from experiment.layout import require_experiment_dir
from experiment.regenerate import rebuild_checkpoint

app = make_app(__doc__.split("\n")[0])


@app.command()
def repair_checkpoint(
    experiment_dir: Annotated[
        Path, typer.Argument(help="The experiment directory (contains config/experiment.json).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show detailed logs.")] = False,
) -> int:
    setup_logging(verbose)
    layout = require_experiment_dir(experiment_dir)
    checkpoint = rebuild_checkpoint(layout.root)
    counts = Counter(
        outcome
        for subs in checkpoint.completed_runs.values()
        for runs in subs.values()
        for outcome in runs.values()
    )
    completed_runs = {k: counts.get(k, 0) for k in ("passed", "failed", "agent_complete")}
    result = {
        "checkpoint": str(layout.checkpoint_path),
        "version": checkpoint.version,
        "status": checkpoint.status,
        "completed_runs": completed_runs,
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return 0
    typer.echo(f"Rebuilt {result['checkpoint']} (v{checkpoint.version}, status {checkpoint.status})")
    for key, value in completed_runs.items():
        typer.echo(f"  {key + ':':<16}{value:>6}")
    typer.echo("The previous file is kept under .backups/ in the experiment directory.")
    return 0


def main(argv: list[str] | None = None) -> None:
    import sys

    sys.exit(run_command(app, argv, "repair-checkpoint"))
