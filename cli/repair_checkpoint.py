"""``repair-checkpoint EXPERIMENT_DIR``: rebuild ``checkpoint.json`` from the run dirs on disk.

A run with a readable ``run_result.json`` is recorded as passed or failed (its ``judge_passed``);
a run whose agent finished without a result as ``agent_complete``. Runs the command cannot see,
unknown fields and the experiment's other states are kept. The old file is backed up under
``<exp>/.backups/<stamp>/checkpoint.json`` first and the new one is written atomically (v3.1).
"""

from __future__ import annotations

import json
from collections import Counter

import typer

from cli.common import (
    ExperimentDirArgument,
    JsonOption,
    PlainUsage,
    VerboseOption,
    end_process,
    make_app,
    run_command,
    setup_logging,
)
from experiment.backups import backup_stamp
from experiment.layout import require_experiment_dir
from experiment.regenerate import rebuild_checkpoint

app = make_app(__doc__.split("\n")[0])


@app.command(cls=PlainUsage)
def repair_checkpoint(
    experiment_dir: ExperimentDirArgument,
    as_json: JsonOption = False,
    verbose: VerboseOption = 0,
) -> int:
    """Rebuild checkpoint.json from the run dirs on disk (the old file is kept first)."""
    setup_logging(verbose)
    layout = require_experiment_dir(experiment_dir)
    corrupt_before = set(layout.checkpoint_path.parent.glob(f"{layout.checkpoint_path.name}.corrupt-*"))
    stamp = backup_stamp()
    checkpoint = rebuild_checkpoint(layout.root, stamp=stamp)
    backup = layout.backups_dir / stamp / layout.checkpoint_path.relative_to(layout.root)
    set_aside = sorted(
        set(layout.checkpoint_path.parent.glob(f"{layout.checkpoint_path.name}.corrupt-*")) - corrupt_before
    )
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
        "backup": str(backup) if backup.exists() else None,
        "set_aside": [str(p) for p in set_aside],
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return 0
    typer.echo(f"Rebuilt {result['checkpoint']} (v{checkpoint.version}, status {checkpoint.status})")
    for key, value in completed_runs.items():
        typer.echo(f"  {key + ':':<16}{value:>6}")
    if backup.exists():
        typer.echo(f"The previous file is kept as {backup}")
    for path in set_aside:
        typer.echo(f"The previous file was unreadable; it is kept as {path}")
    if not backup.exists() and not set_aside:
        typer.echo("There was no previous checkpoint: nothing to back up.")
    return 0


def main(argv: list[str] | None = None) -> None:
    end_process(run_command(app, argv, "repair-checkpoint"))
