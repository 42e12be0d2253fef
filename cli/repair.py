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
from typing import TYPE_CHECKING, Any

import typer

from cli.common import EXIT_FAILED_RERUNS, EXIT_OK, interruptible, quiet_terminal
from cli.local_server import ui_link_hook
from cli.output import RerunCounts, classification_block, grouped_lists, readable_reason, rerun_block
from experiment.preflight import check_can_repair
from experiment.scan import ExperimentContext, ScanFilters, ScanReport, scan_in_process
from experiment.status import RunStatus

if TYPE_CHECKING:
    from operations.summary import RepairSummary


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
    judge_system_prompt: Path | None = None,
    as_json: bool,
    verbose: int,
) -> int:
    report = scan_in_process(context, filters)
    # Every refusal (no base repo, no tiers dir, no API key when judges are needed, another repair
    # running) is one line and exit 2 here, before Prefect starts and before anything changes.
    check_can_repair(context, report)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # no first-run usage notice from Prefect's client
    from experiment.locks import RepairLock
    from operations.agent import stop_agents
    from operations.unstarted import put_back_all

    if not report.to_rerun():  # no agent: maybe no judge either, then no Prefect (issue 13)
        done = _results_only(context, filters, report, tiers_dir, judge_system_prompt, skip_regenerate)
        if done is not None:
            return _report(done, filters, as_json)
    # Taken now, atomically (flock), and held through the flow (which re-enters it): of two
    # repairs started together, the second gets one line, never a flow traceback. Ctrl+C / SIGTERM
    # (stop the agents: their own sessions do not get the terminal's SIGINT; exit 130) is handled
    # from before the lock: Prefect's import alone takes seconds, and a Ctrl+C there ended without
    # the resume line, or was lost and the repair ran on to exit 0 (the Ctrl+C test, fresh clone).
    with (
        interruptible(stop_agents, before_exit=put_back_all),
        RepairLock(context.layout).hold(description="rerun-agents"),
    ):
        summary = _run_flow(
            context,
            filters,
            tiers_dir,
            skip_regenerate,
            max_concurrent,
            judge_rpm,
            max_in_flight,
            max_cost,
            agent_command,
            judge_system_prompt,
            as_json,
            verbose,
        )
    return _report(summary, filters, as_json)


def _report(summary: RepairSummary, filters: ScanFilters, as_json: bool) -> int:
    """Print the repair's summary (text or ``--json``); the exit code."""
    if as_json:
        typer.echo(json.dumps(summary.to_json_dict(), indent=2))
    else:
        print_summary(summary, filters)
    return EXIT_FAILED_RERUNS if summary.failed else EXIT_OK


def _results_only(
    context: ExperimentContext,
    filters: ScanFilters,
    report: ScanReport,
    tiers_dir: Path | None,
    judge_system_prompt: Path | None,
    skip_regenerate: bool,
) -> RepairSummary | None:
    """The repair in-process when it needs neither agent nor judge (see operations.results_only)."""
    from experiment.cost import estimate_repair_cost
    from operations.judge.system_prompt import judge_system_prompt_choice
    from operations.results_only import repair_results_only

    _, notes = judge_system_prompt_choice(
        context, judge_system_prompt, tiers_dir, has_work=bool(report.to_regenerate())
    )
    return repair_results_only(
        context,
        filters,
        report,
        skip_regenerate=skip_regenerate,
        estimated_cost_usd=estimate_repair_cost(report, context.layout).total_usd,
        notes=notes,
    )


def _run_flow(
    context: ExperimentContext,
    filters: ScanFilters,
    tiers_dir: Path | None,
    skip_regenerate: bool,
    max_concurrent: int,
    judge_rpm: int | None,
    max_in_flight: int | None,
    max_cost: float | None,
    agent_command: str | None,
    judge_system_prompt: Path | None,
    as_json: bool,
    verbose: int,
) -> RepairSummary:
    from cli.local_server import use_background_server

    ui_url = use_background_server(lambda line: typer.echo(line, err=True))  # before Prefect loads
    from cli.progress import terminal_progress
    from flows.rerun_agents import rerun_agents, summary_of

    quiet_terminal(verbose)  # after Prefect configured logging: -v/-vv decide what the terminal shows
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
        judge_system_prompt=str(judge_system_prompt.expanduser().absolute()) if judge_system_prompt else None,
    )
    show_progress = sys.stderr.isatty() and not as_json
    with terminal_progress(enabled=show_progress):
        # The flow run ends Failed when a rerun failed (the exit 1 below); its data is the summary.
        repair = rerun_agents.with_options(on_running=[ui_link_hook(ui_url)])
        return summary_of(repair(**parameters, return_state=True))


def print_summary(summary: RepairSummary, filters: ScanFilters) -> None:
    """The failures, the runs still broken (in scope, then outside ``--status``), the blocks."""
    final = summary.after or summary.before
    failures = [r for r in summary.runs if r.outcome in ("failed", "deferred")]
    if failures:
        typer.echo("RERUN FAILURES:")
        for record in failures[:50]:
            typer.echo(f"  - {record.run}: {record.outcome}: {readable_reason(record.reason or '')}")
        typer.echo("")
    for note in summary.notes:
        typer.echo(f"Note: {note}")
    broken = [e for e in final.entries if e.status is not RunStatus.COMPLETED]
    in_scope = [e for e in broken if not filters.statuses or e.status in filters.statuses]
    outside = [e for e in broken if e not in in_scope]
    if in_scope:
        typer.echo("STILL NOT COMPLETED:")
        typer.echo(grouped_lists(final.model_copy(update={"entries": in_scope})))
    if outside:
        wanted = ", ".join(s.value for s in filters.statuses)
        typer.echo(f"NOT SELECTED BY --status {wanted} (left alone by this repair):")
        typer.echo(grouped_lists(final.model_copy(update={"entries": outside, "statuses": []})))
    typer.echo(classification_block(final))
    typer.echo(
        rerun_block(
            RerunCounts(succeeded=summary.succeeded, failed=summary.failed, regenerated=summary.regenerated)
        )
    )
    typer.echo(f"Agent cost of this repair: ${summary.cost_usd:.4f}")
