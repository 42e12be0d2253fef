"""The non-dry-run path of ``rerun-agents``: run the Prefect flow and print what it did.

Prefect is imported here, and only here, so the dry run stays fast. Unless ``-v`` is given the
terminal shows only Prefect's errors and our warnings, while the run's INFO log still goes to the
Prefect API (the UI's Logs tab: lowering ``PREFECT_LOGGING_LEVEL`` instead would starve it); a Rich progress bar shows runs done / to do, failures and
cost while the repair runs (not when stdout is not a terminal, nor with ``--json``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from cli.common import EXIT_FAILED_RERUNS, EXIT_OK, interruptible, quiet_terminal
from cli.output import RerunCounts, classification_block, grouped_lists, rerun_block
from experiment.preflight import check_can_repair
from experiment.scan import ExperimentContext, ScanFilters, scan_in_process


def run_repair(
    context: ExperimentContext,
    filters: ScanFilters,
    *,
    tiers_dir: Path | None,
    skip_regenerate: bool,
    max_concurrent: int,
    judge_rpm: int | None,
    max_in_flight: int | None,
    max_cost: float | None,
    agent_command: str | None,
    as_json: bool,
    verbose: bool,
) -> int:
    report = scan_in_process(context, filters)
    check_can_repair(context, needs_agents=bool(report.to_rerun()))  # one line, before Prefect starts
    from experiment.locks import RepairLock

    RepairLock(context.layout).ensure_free()  # one line and exit 2 now, not a flow traceback later
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from cli.progress import terminal_progress
    from flows.rerun_agents import rerun_agents

    if not verbose:
        quiet_terminal()

    parameters: dict[str, Any] = dict(
        experiment_dir=str(context.root),
        statuses=list(filters.statuses) or None,
        tiers=list(filters.tiers) or None,
        subtests=list(filters.subtests) or None,
        runs=list(filters.runs) or None,
        tiers_dir=str(tiers_dir) if tiers_dir else None,
        skip_regenerate=skip_regenerate,
        max_concurrent=max_concurrent,
        judge_rpm=judge_rpm,
        max_in_flight=max_in_flight,
        max_cost=max_cost,
        agent_command=shlex.split(agent_command) if agent_command else None,
    )
    show_progress = sys.stdout.isatty() and not as_json
    from operations.agent import stop_agents

    # Ctrl+C: stop the agents (their own sessions do not get the terminal's SIGINT), exit 130.
    with interruptible(stop_agents), terminal_progress(enabled=show_progress):
        summary = rerun_agents(**parameters)
    if as_json:
        typer.echo(json.dumps(summary.to_json_dict(), indent=2))
    else:
        final = summary.after or summary.before
        failures = [r for r in summary.runs if r.outcome in ("failed", "deferred")]
        if failures:
            typer.echo("RERUN FAILURES:")
            for record in failures[:50]:
                typer.echo(f"  - {record.run}: {record.outcome}: {record.reason}")
            typer.echo("")
        for note in summary.notes:
            typer.echo(f"Note: {note}")
        remaining = final.model_copy(update={"statuses": [s for s in final.statuses]})
        if any(e.status.needs_agent or e.status.value == "results" for e in remaining.selected):
            typer.echo(
                grouped_lists(
                    remaining.model_copy(
                        update={"entries": [e for e in remaining.entries if e.status.value != "completed"]}
                    )
                )
            )
        typer.echo(classification_block(final))
        typer.echo(
            rerun_block(
                RerunCounts(
                    succeeded=summary.succeeded, failed=summary.failed, regenerated=summary.regenerated
                )
            )
        )
        typer.echo(f"Agent cost of this repair: ${summary.cost_usd:.4f}")
    return EXIT_FAILED_RERUNS if summary.failed else EXIT_OK
