"""``regenerate-results EXPERIMENT_DIR``: rebuild the derived result files from the logs.

No agent or judge is run. Every run that is classified ``results`` (its agent finished but
``agent/result.json``, ``judge/result.json`` or ``run_result.json`` is missing or unreadable) is
repaired in one pass; then subtest, tier and experiment results and reports are rebuilt
(``--skip-aggregates`` leaves them alone). Overwritten files are backed up under
``<exp>/.backups/<stamp>/``.

The command runs in-process with exactly the functions the ``regenerate-results`` Prefect flow's
tasks run (``experiment.regenerate``): importing Prefect and starting a server would cost more
than regenerating a thousand runs. Use the flow (``python -m flows.regenerate`` or its
deployment) to see the run in the Prefect UI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    EXIT_OK,
    ExperimentDirArgument,
    JsonOption,
    PlainUsage,
    RunsOption,
    SubtestOption,
    TierOption,
    TiersDirOption,
    VerboseOption,
    end_process,
    make_app,
    run_command,
    setup_logging,
)
from cli.output import RULE, regenerate_block
from experiment.regenerate import NOTHING_WRITTEN, regenerate_in_process
from experiment.scan import parse_runs

EXIT_NEEDS_WORK = 1
"""Some runs could not be regenerated (judges missing, agent not finished, or an error)."""

app = make_app(__doc__.split("\n")[0])


@app.command(cls=PlainUsage)
def regenerate_results(
    experiment_dir: ExperimentDirArgument,
    tier: TierOption = None,
    subtest: SubtestOption = None,
    runs: RunsOption = None,
    skip_aggregates: Annotated[
        bool, typer.Option("--skip-aggregates", help="Do not rebuild subtest, tier and experiment results.")
    ] = False,
    tiers_dir: TiersDirOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = 0,
) -> int:
    setup_logging(verbose)
    summary = regenerate_in_process(
        experiment_dir,
        tiers=tuple(tier or ()),
        subtests=tuple(subtest or ()),
        runs=parse_runs(runs),
        skip_aggregates=skip_aggregates,
        tiers_dir=tiers_dir,
    )
    code = EXIT_NEEDS_WORK if any(r.outcome in ("needs_judges", "error") for r in summary.runs) else EXIT_OK
    if as_json:
        typer.echo(json.dumps(summary.to_json_dict(), indent=2))
        return code
    pending = [r for r in summary.runs if r.outcome not in ("regenerated", "unchanged")]
    if pending:
        typer.echo(f"NOT REGENERATED ({len(pending)} runs):")
        for r in pending[:10]:
            slots = (
                f" (judge slots {', '.join(map(str, r.missing_judge_slots))})"
                if r.missing_judge_slots
                else ""
            )
            typer.echo(f"  - {r.run}: {r.outcome}{slots}: {r.message}")
        if len(pending) > 10:
            typer.echo(f"  ... and {len(pending) - 10} more")
        typer.echo(
            "Runs needing judges are repaired by: rerun-judges EXPERIMENT_DIR (judges only, no agent; "
            "rerun-agents EXPERIMENT_DIR judges them too)."
        )
    if verbose:
        for r in summary.runs:
            typer.echo(f"  {r.run}: {r.outcome}: {r.message}")
    typer.echo(regenerate_block(summary.regenerated, len(summary.runs)))
    if summary.aggregates is not None:
        a = summary.aggregates
        frontier = f"{a.best_tier} (${a.frontier_cop:.4f} per pass)" if a.frontier_cop is not None else "none"
        typer.echo(
            f"Aggregates: {len(a.tiers)} tier(s), {a.subtests} subtest(s), {a.runs} run(s); "
            f"{len(a.written)} file(s) written; frontier {frontier}; total cost ${a.total_cost:.4f}"
        )
        if a.approximated:
            typer.echo(f"Approximated from timing files: {', '.join(a.approximated)}")
    else:
        typer.echo("Aggregates: skipped (--skip-aggregates)")
    if summary.nothing_written:
        typer.echo(NOTHING_WRITTEN)
    backups = Path(summary.experiment) / ".backups" / summary.backup_stamp if summary.backup_stamp else None
    if backups is not None and backups.is_dir() and any(backups.iterdir()):
        typer.echo(f"Backups of overwritten files: {backups}")
    typer.echo(RULE)
    return code


def main(argv: list[str] | None = None) -> None:
    end_process(run_command(app, argv, "regenerate-results"))
