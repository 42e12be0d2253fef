"""What must hold before a repair moves anything: one check for the dry run and the real run.

:func:`preflight_problems` lists every reason the repair would refuse (base repository, tiers
dir, judge API key when judges are needed, another repair running) and touches nothing on disk,
so the dry run prints exactly what the real run would refuse. The CLI calls
:func:`check_can_repair` before it starts Prefect (one line, exit 2, nothing changed); the flow
calls it again for deployments.
"""

from __future__ import annotations

import os

from experiment.errors import RepairBlocked
from experiment.layout import RunKey
from experiment.locks import RepairLock
from experiment.scan import ExperimentContext, ScanReport


def judges_needed(context: ExperimentContext, report: ScanReport) -> bool:
    """True when the repair will call a judge: any agent rerun, or a ``results`` run with a
    judge slot that has no valid judgment (those slots are re-judged, the rest kept)."""
    if report.to_rerun():
        return True
    from experiment.consensus import invalid_slots, load_slots  # judgments: only results runs need them

    total = len(context.config.judge_models)
    for entry in report.to_regenerate():
        paths = context.layout.run_paths(RunKey.parse(entry.run))
        if invalid_slots(load_slots(paths.judge_dir, total, paths.judge_slots_on_disk())):
            return True
    return False


def _api_key_problem() -> RepairBlocked | None:
    if os.environ.get("ANTHROPIC_API_KEY", "").strip():
        return None
    return RepairBlocked(
        "ANTHROPIC_API_KEY is not set",
        None,
        "export ANTHROPIC_API_KEY=... (judges call the Anthropic Messages API; "
        "ANTHROPIC_BASE_URL selects a compatible server)",
    )


def preflight_problems(
    context: ExperimentContext, report: ScanReport, *, check_lock: bool = True
) -> list[RepairBlocked]:
    """Every reason a repair of ``report``'s runs would refuse, in the order the user fixes them."""
    problems: list[RepairBlocked] = []
    if report.to_rerun():
        try:
            context.layout.find_base_repo(context.config.task_repo)
        except RepairBlocked as exc:
            problems.append(exc)
        try:
            context.require_tiers_dir()
        except RepairBlocked as exc:
            problems.append(exc)
    if judges_needed(context, report) and (missing_key := _api_key_problem()) is not None:
        problems.append(missing_key)
    lock = RepairLock(context.layout)
    if check_lock and lock.busy():
        problems.append(lock.blocked())
    return problems


def check_can_repair(context: ExperimentContext, report: ScanReport, *, check_lock: bool = True) -> None:
    """Raise the first problem of :func:`preflight_problems` (one line), if any."""
    problems = preflight_problems(context, report, check_lock=check_lock)
    if problems:
        raise problems[0]


def check_can_judge(context: ExperimentContext, *, check_lock: bool = True) -> None:
    """Raise what would stop a judges-only repair (``rerun-judges``): no API key, a repair running."""
    if (missing_key := _api_key_problem()) is not None:
        raise missing_key
    lock = RepairLock(context.layout)
    if check_lock and lock.busy():
        raise lock.blocked()
