"""The terminal text users already know: the dry-run lists and the two summary blocks.

Labels follow the users' guide (``AGENT FAILED (3 runs):``, ``✓ Complete:``,
``Regenerated (missing results):``). The summary is printed once (the original printed it twice).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from experiment.scan import ScanReport
from experiment.status import GROUP_ORDER, SUMMARY_ORDER, RunStatus

RULE = "=" * 70
MAX_LISTED = 10


@dataclass
class RerunCounts:
    """The RERUN RESULTS block."""

    succeeded: int = 0
    failed: int = 0
    regenerated: int = 0


def _row(label: str, value: int) -> str:
    return f"{label:<36}{value:>3}"


def dry_run_banner() -> str:
    return "\n".join([RULE, "DRY RUN MODE - No changes will be made", RULE, ""])


def grouped_lists(report: ScanReport, max_listed: int = MAX_LISTED) -> str:
    """The per-status lists (only the status-filtered runs), at most 10 per group."""
    lines: list[str] = []
    selected = report.selected
    for status in GROUP_ORDER:
        group = [e for e in selected if e.status is status]
        if not group:
            continue
        noun = "run" if len(group) == 1 else "runs"
        lines.append(f"{status.title} ({len(group)} {noun}):")
        lines.extend(f"  - {e.run}: {readable_reason(e.reason)}" for e in group[:max_listed])
        if len(group) > max_listed:
            lines.append(f"  ... and {len(group) - max_listed} more")
        lines.append("")
    return "\n".join(lines)


def classification_block(report: ScanReport) -> str:
    counts = report.counts
    lines = [RULE, "RUN STATUS CLASSIFICATION", RULE, _row("Total expected runs:", report.total_expected)]
    for status in SUMMARY_ORDER:
        lines.append(_row(f"  {status.symbol} {status.summary_label}:", counts[status.value]))
    lines.append(_row("  - Skipped by filter:", report.skipped_by_filter))
    return "\n".join(lines)


def rerun_block(counts: RerunCounts) -> str:
    return "\n".join(
        [
            "",
            "RERUN RESULTS",
            RULE,
            _row("Successfully rerun:", counts.succeeded),
            _row("Failed rerun:", counts.failed),
            _row("Regenerated (missing results):", counts.regenerated),
            RULE,
        ]
    )


def regenerate_block(regenerated: int, examined: int) -> str:
    """``regenerate-results``' own block: it re-runs nothing, so it has no rerun counts."""
    return "\n".join(
        [
            "",
            "REGENERATE RESULTS",
            RULE,
            _row("Runs examined:", examined),
            _row("Regenerated (missing results):", regenerated),
            RULE,
        ]
    )


def plan_lines(report: ScanReport) -> str:
    """What a repair would do, in one short paragraph."""
    rerun = len(report.to_rerun())
    regen = len(report.to_regenerate())
    completed = sum(1 for e in report.selected if e.status is RunStatus.COMPLETED)
    return (
        f"Would re-run agent + judges for {rerun} run(s), regenerate results for {regen} run(s), "
        f"leave {completed} completed run(s) alone."
    )


def preflight_lines(problems: Sequence[Exception]) -> list[str]:
    """The dry run's verdict on the real run: what would refuse it, or that nothing would."""
    if not problems:
        return ["Preflight: nothing blocks the repair."]
    return [f"The repair would refuse: {problem}" for problem in problems]


_EPOCH_SUFFIX = re.compile(r"\|(\d{10})\b")


def readable_reason(reason: str) -> str:
    """A provider's ``...limit reached|1768903200`` as ``...limit reached (resets 2026-01-20 10:00 UTC)``."""

    def reset_time(match: re.Match[str]) -> str:
        return time.strftime(" (resets %Y-%m-%d %H:%M UTC)", time.gmtime(int(match.group(1))))

    return _EPOCH_SUFFIX.sub(reset_time, reason)
