"""``rerun-judges EXPERIMENT_DIR``: judge again the judge slots that have no valid judgment.

Only runs whose agent finished are judged (``completed`` and ``results``), slot by slot: a
missing or invalid ``judge_NN`` is re-judged, also in runs where every judge is invalid. No agent
is ever run. The dry run reads the files in-process (no Prefect); a real run runs the
``rerun-judges`` Prefect flow.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from cli.common import (
    EXIT_FAILED_RERUNS,
    EXIT_OK,
    ExperimentDirArgument,
    JsonOption,
    RunsOption,
    SkipRegenerateOption,
    SubtestOption,
    TierOption,
    TiersDirOption,
    VerboseOption,
    end_process,
    interruptible,
    make_app,
    quiet_terminal,
    run_command,
    setup_logging,
)
from cli.output import RULE, dry_run_banner
from experiment.judge_slots import JudgeScan, parse_judge_statuses, scan_judge_slots
from experiment.scan import ScanFilters, load_context, scan_in_process
from operations.rejudge import RejudgeSummary

app = make_app(__doc__.split("\n")[0])
MAX_LISTED = 10


def _row(label: str, value: int) -> str:
    return f"{label:<36}{value:>4}"


def slot_lists(scan: JudgeScan, max_listed: int = MAX_LISTED) -> str:
    """The runs with slots to judge, at most ``max_listed`` shown."""
    todo = scan.to_judge()
    if not todo:
        return "No judge slot needs a judge.\n"
    lines = [f"JUDGE SLOTS TO RE-JUDGE ({len(todo)} run{'s' if len(todo) != 1 else ''}):"]
    lines += [f"  - {run.line()}" for run in todo[:max_listed]]
    if len(todo) > max_listed:
        lines.append(f"  ... and {len(todo) - max_listed} more")
    return "\n".join(lines) + "\n"


def classification_block(scan: JudgeScan) -> str:
    """Per-slot counts, like ProjectScylla's JUDGE SLOT CLASSIFICATION block."""
    lines = [RULE, "JUDGE SLOT CLASSIFICATION", RULE]
    lines.append(_row("Total judge slots:", sum(len(r.slots) for r in scan.runs)))
    for number, (model, counts) in enumerate(zip(scan.judge_models, scan.per_slot(), strict=True), start=1):
        lines.append(f"  judge_{number:02d} ({model}):")
        lines.append(
            f"    ✓ complete: {counts['complete']:4d}    ○ missing: {counts['missing']:4d}    "
            f"✗ invalid: {counts['invalid']:4d}"
        )
    lines.append(_row("Runs with no valid judge:", sum(1 for r in scan.runs if r.no_valid_judge)))
    lines.append(_row("Agent not finished (rerun-agents):", scan.agent_not_finished))
    lines.append(_row("  - Skipped by filter:", scan.skipped_by_filter))
    return "\n".join(lines)


def results_block(summary: RejudgeSummary) -> str:
    return "\n".join(
        [
            "",
            "RERUN RESULTS",
            RULE,
            _row("Judge slots re-judged:", summary.slots_rejudged),
            _row("Judge slots still invalid:", summary.slots_failed),
            _row("Runs finalized:", summary.runs_finalized),
            RULE,
        ]
    )


def print_summary(summary: RejudgeSummary, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.to_json_dict(), indent=2))
        return
    if summary.dry_run:
        typer.echo(dry_run_banner())
        typer.echo(slot_lists(summary.before))
    problems = [r for r in summary.runs if r.outcome in ("failed", "deferred")]
    if problems:
        typer.echo("JUDGE FAILURES:")
        typer.echo("\n".join(f"  - {r.run}: {r.outcome}: {r.reason}" for r in problems[:50]) + "\n")
    for note in summary.notes:
        typer.echo(f"Note: {note}")
    typer.echo(classification_block(summary.after or summary.before))
    typer.echo(results_block(summary))
    before = summary.before
    if summary.dry_run:
        without = sum(1 for r in before.to_judge() if r.no_valid_judge)
        typer.echo(
            f"Would re-judge {before.slots_to_judge} judge slot(s) in {len(before.to_judge())} run(s) "
            f"({without} with no valid judge); no agent is run."
        )


@app.command()
def rerun_judges(
    experiment_dir: ExperimentDirArgument,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show which judge slots would be re-judged; change nothing.")
    ] = False,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only runs with this status (repeatable): completed, results (default both).",
        ),
    ] = None,
    tier: TierOption = None,
    subtest: SubtestOption = None,
    runs: RunsOption = None,
    skip_regenerate: SkipRegenerateOption = False,
    tiers_dir: TiersDirOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
    judge_rpm: Annotated[
        int | None,
        typer.Option("--judge-rpm", min=1, help="Judge requests per minute (the provider's budget)."),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option("--max-in-flight", min=1, help="Concurrent judge requests the provider allows."),
    ] = None,
) -> int:
    setup_logging(verbose)
    filters = ScanFilters.from_options(tier, subtest, runs, parse_judge_statuses(status or ()))
    context = load_context(experiment_dir, tiers_dir)
    if dry_run:
        report = scan_in_process(context, filters)
        scan = scan_judge_slots(report, context.layout, context.config.judge_models)
        print_summary(RejudgeSummary(experiment=str(context.root), dry_run=True, before=scan), as_json)
        return EXIT_OK
    from experiment.locks import RepairLock
    from experiment.preflight import check_can_judge

    check_can_judge(context)  # one line, before Prefect starts
    RepairLock(context.layout).ensure_free()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from cli.local_server import use_background_server

    use_background_server(lambda line: typer.echo(line, err=True))  # before Prefect loads
    from flows.rerun_judges import rerun_judges as rerun_judges_flow

    quiet_terminal(int(verbose))  # the terminal stays quiet; the run's log still reaches the API

    with interruptible(lambda: None):  # no agent to stop: Ctrl+C ends the flow, exit 130
        summary = rerun_judges_flow(
            experiment_dir=str(context.root),
            statuses=list(filters.statuses),
            tiers=list(filters.tiers) or None,
            subtests=list(filters.subtests) or None,
            runs=list(filters.runs) or None,
            tiers_dir=str(tiers_dir) if tiers_dir else None,
            skip_regenerate=skip_regenerate,
            judge_rpm=judge_rpm,
            max_in_flight=max_in_flight,
        )
    print_summary(summary, as_json)
    failed = summary.slots_failed or any(r.outcome == "failed" for r in summary.runs)
    return EXIT_FAILED_RERUNS if failed else EXIT_OK


def main(argv: list[str] | None = None) -> None:
    end_process(run_command(app, argv, "rerun-judges"))
