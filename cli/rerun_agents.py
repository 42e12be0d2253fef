"""``rerun-agents EXPERIMENT_DIR``: classify every run, then repair the broken ones.

The dry run classifies in-process with exactly the code the scan flow's tasks run, and imports
neither Prefect nor a server (``import prefect`` alone costs 0.85 s). A real repair runs the
``rerun-agents`` Prefect flow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    EXIT_CODES_HELP,
    STATUS_HELP,
    ExperimentDirArgument,
    JsonOption,
    PlainUsage,
    RunsOption,
    SkipRegenerateOption,
    SubtestOption,
    TierOption,
    TiersDirOption,
    VerboseOption,
    end_process,
    make_app,
    run_command,
    setup_logging,
)
from cli.output import (
    RerunCounts,
    classification_block,
    dry_run_banner,
    grouped_lists,
    plan_lines,
    preflight_lines,
    rerun_block,
)
from experiment.cost import estimate_repair_cost
from experiment.preflight import preflight_problems
from experiment.scan import ScanFilters, load_context, parse_statuses, scan_in_process
from operations.judge.system_prompt import system_prompt_for, tiers_starts

app = make_app(__doc__.split("\n")[0])

HELP = """Classify every run of an experiment, then repair the broken ones.

Failed, partial and missing runs get a fresh agent and judges (the old attempt is moved whole
to .failed/); results runs are regenerated from their logs; completed runs are never touched.
--dry-run shows the plan and what would block it, changing nothing. Ctrl+C stops cleanly: runs
whose agent had not started are left exactly as they were, a run stopped mid-agent becomes
partial, and the same command resumes."""


@app.command(help=HELP, epilog=STATUS_HELP + "\n\n" + EXIT_CODES_HELP, cls=PlainUsage)
def rerun_agents(
    experiment_dir: ExperimentDirArgument,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Classify and show what would be done; change nothing.")
    ] = False,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only act on runs with this status (repeatable): completed, results, failed, partial, missing.",
        ),
    ] = None,
    tier: TierOption = None,
    subtest: SubtestOption = None,
    runs: RunsOption = None,
    skip_regenerate: SkipRegenerateOption = False,
    tiers_dir: TiersDirOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = 0,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Agents running at once.")
    ] = 4,
    judge_rpm: Annotated[
        int | None,
        typer.Option("--judge-rpm", min=1, help="Judge requests per minute (the provider's budget)."),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            "--max-in-flight",
            min=1,
            help="Concurrent provider calls (agents + judges) the provider allows; adapts down on 429s.",
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", min=0, help="Start no new rerun once this many USD are spent."),
    ] = None,
    agent_command: Annotated[
        str | None,
        typer.Option(
            "--agent-command",
            metavar="ARGV",
            help="Another agent's command line; {model}, {prompt_file}, {workspace}, {max_turns} are filled in.",
        ),
    ] = None,
    judge_system_prompt: Annotated[
        Path | None,
        typer.Option(
            "--judge-system-prompt",
            metavar="FILE",
            help="The judges' system prompt. Default: config/judge/system_prompt.md of the ProjectScylla "
            "checkout the tiers dir belongs to (without one, judgments are not comparable).",
        ),
    ] = None,
) -> int:
    setup_logging(verbose)
    filters = ScanFilters.from_options(tier, subtest, runs, parse_statuses(status or ()))
    context = load_context(experiment_dir, tiers_dir)
    system_prompt = system_prompt_for(context, judge_system_prompt, tiers_dir)  # a wrong file: one line
    if not dry_run:
        from cli.repair import run_repair

        return run_repair(
            context,
            filters,
            tiers_dir=tiers_dir,
            skip_regenerate=skip_regenerate,
            max_concurrent=max_concurrent,
            judge_rpm=judge_rpm,
            max_in_flight=max_in_flight,
            max_cost=max_cost,
            agent_command=agent_command,
            judge_system_prompt=judge_system_prompt,
            as_json=as_json,
            verbose=verbose,
        )
    report = scan_in_process(context, filters)
    estimate = estimate_repair_cost(report, context.layout)
    judging = bool(report.to_rerun() or report.to_regenerate())
    judge_notes = (
        [system_prompt.not_comparable_note(tiers_starts(context, tiers_dir))]
        if judging and not system_prompt.comparable
        else []
    )
    if as_json:
        data = report.to_json_dict()
        data["estimated_cost_usd"] = round(estimate.total_usd, 6) if estimate.total_usd is not None else None
        data["judge_system_prompt"] = system_prompt.record()
        data["notes"] = [*report.notes, *judge_notes]
        data["would_refuse"] = [str(problem) for problem in preflight_problems(context, report)]
        typer.echo(json.dumps(data, indent=2))
        return 0
    typer.echo(dry_run_banner())
    for note in [*report.notes, *judge_notes]:
        typer.echo(f"Note: {note}")
    typer.echo(grouped_lists(report))
    typer.echo(classification_block(report))
    typer.echo(rerun_block(RerunCounts()))
    typer.echo(plan_lines(report))
    typer.echo(estimate.line())
    for line in preflight_lines(preflight_problems(context, report)):
        typer.echo(line)
    return 0


def main(argv: list[str] | None = None) -> None:
    end_process(run_command(app, argv, "rerun-agents"))
