"""One run in one pass: every derived file of a run rebuilt from its logs (spec §8.5).

The original needed one invocation per file. :func:`regenerate_run` rebuilds ``agent/result.json``
from ``agent/stdout.log`` (or ``output.txt``), ``command_log.json`` and ``stderr.log`` with the
canonical token keys and ``api_calls`` = ``num_turns`` (spec §8.4); ``judge/result.json`` as the
consensus of the valid ``judge_NN`` slots (:mod:`experiment.consensus`); ``run_result.json``; the
run's ``report.json/md``. A run whose agent finished but has no valid judgment is *not* given a
result: it is reported as ``needs_judges`` with the slots to run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from experiment import aggregate, reports
from experiment.backups import backup_stamp
from experiment.consensus import consensus, invalid_slots, load_slots
from experiment.durable import write_batch
from experiment.errors import ExperimentError
from experiment.failures import parse_claude_output
from experiment.jsonio import dumps
from experiment.layout import ExperimentLayout, RunKey, RunPaths
from experiment.models import (
    AgentResult,
    ClaudeOutput,
    CommandLog,
    JudgeSummary,
    JudgeTiming,
    RunOutcome,
    RunReport,
    RunResult,
    grade_for_score,
    utc_now_iso,
)
from experiment.regenerate.clock import parse_time
from experiment.regenerate.files import Writer, read_dict, read_text

Outcome = Literal["regenerated", "unchanged", "needs_judges", "not_finished", "error"]
"""What a regeneration did to one run (see ``RunRegeneration.outcome``)."""

_MODEL_LINE = re.compile(r"^\*\*Model\*\*:\s*(\S+)", re.MULTILINE)
_WORKSPACE_CHANGE = re.compile(r"^- `([^`]+)` \((created|modified)\)\s*$")
_CANONICAL_TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


class RunRegeneration(BaseModel):
    """What :func:`regenerate_run` did to one run."""

    run: str = Field(description="The run's label, e.g. T0/00/run_01.")
    outcome: Outcome = Field(
        description="regenerated (files written), unchanged (nothing to write), needs_judges (agent "
        "finished, no valid judgment), not_finished (the agent did not finish), error."
    )
    written: list[str] = Field(default_factory=list, description="Files written, relative to the experiment.")
    missing_judge_slots: list[int] = Field(
        default_factory=list, description="1-based judge slots with no valid judgment (the judges to run)."
    )
    message: str = Field(default="", description="One line: why, or what was rebuilt.")
    judge_passed: bool | None = Field(
        default=None, description="The consensus pass verdict, when there is one."
    )

    @property
    def key(self) -> RunKey:
        """The run this entry is about."""
        return RunKey.parse(self.run)

    @property
    def checkpoint_outcome(self) -> RunOutcome | None:
        """The run's ``completed_runs`` value after this regeneration (None: leave it alone)."""
        if self.outcome in ("regenerated", "unchanged") and self.judge_passed is not None:
            return "passed" if self.judge_passed else "failed"
        if self.outcome == "needs_judges":
            return "agent_complete"
        return None


def valid_agent_result(data: dict[str, Any] | None) -> bool:
    """The rerun_judges rule, plus canonical token keys: exit code, token stats and cost present,
    and not the crash record (exit -1 with all four token counts 0). A file with the legacy
    ``cache_*_input_tokens`` keys (written by the original's regeneration, spec §8.4) is rebuilt."""
    if not data or not all(k in data for k in ("exit_code", "token_stats", "cost_usd")):
        return False
    tokens = data.get("token_stats")
    if not isinstance(tokens, dict) or not all(k in tokens for k in _CANONICAL_TOKEN_KEYS):
        return False
    try:
        result = AgentResult.model_validate(data)
    except ValidationError:
        return False
    return not (result.exit_code == -1 and result.token_stats.total_tokens == 0)


def agent_result_from_logs(paths: RunPaths) -> AgentResult | str:
    """Rebuild ``agent/result.json`` from the logs; a one-line reason (str) when it cannot be."""
    stdout = read_text(paths.agent_stdout)
    if not stdout or not stdout.strip():
        stdout = read_text(paths.agent_output)
    if not stdout or not stdout.strip():
        return "the agent produced no output (stdout.log and output.txt empty or missing)"
    parsed = parse_claude_output(stdout)
    if parsed is None:
        return "agent stdout holds no Claude Code JSON result"
    try:
        output = ClaudeOutput.model_validate(parsed)
    except ValidationError:
        return "agent stdout is not a Claude Code result object"
    log_data = read_dict(paths.command_log)
    if log_data is None:
        return "agent/command_log.json missing or unreadable (the exit code is unknown)"
    try:
        log = CommandLog.model_validate(log_data)
    except ValidationError:
        return "agent/command_log.json is not a command log"
    if not log.commands:
        return "agent/command_log.json records no command"
    return AgentResult(
        exit_code=log.commands[0].exit_code,
        stdout=stdout,
        stderr=read_text(paths.agent_stderr) or "",
        token_stats=output.token_stats,
        cost_usd=float(output.total_cost_usd or 0.0),
        api_calls=int(output.num_turns or 0),
    )


def _agent_duration(paths: RunPaths) -> float:
    timing = read_dict(paths.agent_timing)
    if timing is not None and "agent_duration_seconds" in timing:
        return float(timing["agent_duration_seconds"])
    log = read_dict(paths.command_log)
    commands = (log or {}).get("commands") or []
    if commands and isinstance(commands[0], dict):
        return float(commands[0].get("duration_seconds") or 0.0)
    return 0.0


def _slot_times(paths: RunPaths, slots: Iterable[int]) -> list[tuple[datetime, float]]:
    """(end, seconds) of every slot ``timing.json`` with a readable ``measured_at``."""
    times = []
    for slot in slots:
        data = read_dict(paths.judge_slot(slot) / "timing.json") or {}
        end = parse_time(data.get("measured_at"))
        seconds = data.get("judge_duration_seconds")
        if end is not None and isinstance(seconds, int | float) and not isinstance(seconds, bool):
            times.append((end, max(0.0, float(seconds))))
    return times


def ensure_judge_timing(out: Writer, paths: RunPaths, slots: Iterable[int]) -> float:
    """Write ``judge/timing.json`` of a judged run that has none (ProjectScylla writes it for every
    judged run, and its resume reads ``judge_duration`` from it, 0.0 when missing).

    A valid existing file is kept. Otherwise the duration is the wall span of the slots' timings
    (from the earliest start, ``measured_at`` minus the duration, to the latest end), capped at
    their sum so slots judged on different days do not count the days between; ``measured_at`` is
    the latest slot end (now when no slot has a timing), so rebuilding it twice gives the same file.

    Returns the file's ``judge_duration_seconds``, so the caller need not read back a file that a
    write batch has not renamed into place yet.
    """
    existing = read_dict(paths.judge_timing)
    if existing is not None:
        try:
            JudgeTiming.model_validate(existing)
            if "judge_duration_seconds" in existing:
                return float(existing["judge_duration_seconds"])
        except ValidationError:
            pass
    times = _slot_times(paths, slots)
    if times:
        start = min(end.timestamp() - seconds for end, seconds in times)
        last = max(end for end, _ in times)
        duration = min(last.timestamp() - start, sum(seconds for _, seconds in times))
        measured_at = last.isoformat()
    else:
        duration, measured_at = 0.0, utc_now_iso()
    out.model(paths.judge_timing, JudgeTiming(judge_duration_seconds=duration, measured_at=measured_at))
    return duration


def _judge_duration(paths: RunPaths, slots: Iterable[int], known: float | None = None) -> float:
    """``judge/timing.json`` (the wall time of all judges; it reproduces the sample exactly;
    ``known`` when the caller just wrote it), else the sum of the slot timings (the original's
    rule; over-counts HEAD's cumulative slots)."""
    if known is not None:
        return known
    timing = read_dict(paths.judge_timing)
    if timing is not None and "judge_duration_seconds" in timing:
        return float(timing["judge_duration_seconds"])
    total = 0.0
    for slot in slots:
        data = read_dict(paths.judge_slot(slot) / "timing.json")
        if data:
            total += float(data.get("judge_duration_seconds") or 0.0)
    return total


def _judge_model(paths: RunPaths, slot: int, judge_models: Sequence[str]) -> str:
    text = read_text(paths.judge_slot(slot) / "MODEL.md")
    match = _MODEL_LINE.search(text or "")
    if match:
        return match.group(1)
    if 1 <= slot <= len(judge_models):
        return judge_models[slot - 1]
    return "unknown"


def workspace_changes(run_dir: Path) -> list[tuple[str, str]]:
    """Files the agent created/modified, as the judge prompt recorded them at agent time."""
    text = read_text(Path(run_dir) / "judge_prompt.md") or ""
    changes, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line.startswith("## Workspace State")
            continue
        if inside and (match := _WORKSPACE_CHANGE.match(line)):
            changes.append((match.group(1), match.group(2)))
    return changes


def regenerate_run(
    experiment_dir: Path,
    key: RunKey,
    *,
    judge_models: Sequence[str],
    stamp: str | None = None,
    layout: ExperimentLayout | None = None,
) -> RunRegeneration:
    """Rebuild every derived file of one run from its logs, in one pass (see the module docstring).

    ``judge_models`` is the config's list: one slot each. ``stamp`` names the backup generation
    (default: now); a flow passes one stamp to all its runs. ``layout`` is the experiment's, when
    the caller has one (a chunk resolves the experiment's path once, not once per run).
    """
    stamp = stamp or backup_stamp()
    try:
        layout = layout or ExperimentLayout(Path(experiment_dir))
        return _regenerate_run(layout, key, list(judge_models), stamp)
    except (ExperimentError, OSError, ValueError) as exc:
        message = str(exc) if isinstance(exc, ExperimentError) else f"{exc.__class__.__name__}: {exc}"
        return RunRegeneration(run=key.label, outcome="error", message=message.splitlines()[0])


def _regenerate_run(
    layout: ExperimentLayout, key: RunKey, judge_models: list[str], stamp: str
) -> RunRegeneration:
    exp = layout.root
    paths = layout.run_paths(key)
    if not paths.agent_dir.is_dir():
        return RunRegeneration(run=key.label, outcome="not_finished", message="the agent never started")
    out = Writer(exp, stamp)
    written = out.written

    # 1. The agent result: kept when valid, else rebuilt from the logs.
    existing = read_dict(paths.agent_result)
    if valid_agent_result(existing):
        agent = AgentResult.model_validate(existing)
    else:
        rebuilt = agent_result_from_logs(paths)
        if isinstance(rebuilt, str):
            return RunRegeneration(run=key.label, outcome="not_finished", message=rebuilt)
        agent = rebuilt
        out.model(paths.agent_result, agent)

    # 2. The judges' consensus: the valid slots only; none valid -> the run needs judges.
    total = len(judge_models)
    slots = load_slots(paths.judge_dir, total, paths.judge_slots_on_disk())
    missing = invalid_slots(slots)
    agreed = consensus(slots, total_judges=max(total, len(slots)))
    if agreed is None:
        return RunRegeneration(
            run=key.label,
            outcome="needs_judges",
            written=written,
            missing_judge_slots=missing,
            message=f"agent finished; no valid judgment among {len(slots)} judge slot(s)",
        )
    out.model(paths.judge_result, agreed)
    judge_timing = ensure_judge_timing(out, paths, [s.slot for s in slots])

    # 3. run_result.json: agent + judges + timings; unknown keys of a previous file are kept.
    judges = []
    for slot in slots:
        if slot.judgment is None:
            continue
        j = slot.judgment
        summary = JudgeSummary(
            model=_judge_model(paths, slot.slot, judge_models),
            score=j.score,
            passed=j.passed,
            grade=j.grade or (grade_for_score(j.score) if j.score is not None else None),
            reasoning=j.reasoning,
            judge_number=slot.slot,
        )
        if not j.valid:
            summary.is_valid = False
        judges.append(summary)
    agent_duration = _agent_duration(paths)
    judge_duration = _judge_duration(paths, [s.slot for s in slots], judge_timing)
    tokens = agent.token_stats
    run = RunResult(
        run_number=key.run_number,
        exit_code=agent.exit_code,
        token_stats=tokens,
        tokens_input=tokens.tokens_input,
        tokens_output=tokens.output_tokens,
        cost_usd=agent.cost_usd,
        duration_seconds=agent_duration + judge_duration,
        agent_duration_seconds=agent_duration,
        judge_duration_seconds=judge_duration,
        judge_score=agreed.score,
        judge_passed=agreed.passed,
        judge_grade=agreed.grade,
        judge_reasoning=agreed.reasoning,
        judges=judges,
        workspace_path=str(paths.workspace),
        logs_path=str(paths.agent_dir),
        command_log_path=str(paths.command_log),
        criteria_scores=agreed.criteria_scores or {},
    )
    previous = read_dict(paths.run_result)
    data = {**(previous or {}), **run.to_json_dict()} if previous else run.to_json_dict()
    out.text(paths.run_result, dumps(data))

    # 4. The run's reports.
    now = utc_now_iso()
    previous_report = None
    if (old_report := read_dict(paths.report_json)) is not None:
        try:
            previous_report = RunReport.model_validate(old_report)
        except ValidationError:
            previous_report = None
    out.model(paths.report_json, aggregate.run_report(run, now, previous_report))
    markdown = reports.render_run_report(key.label, run, now, workspace_changes(paths.run_dir))
    out.text(paths.report_md, markdown)

    valid = agreed.valid_judges or 0
    note = f"{valid}/{agreed.total_judges} judges valid"
    return RunRegeneration(
        run=key.label,
        outcome="regenerated" if written else "unchanged",
        written=written,
        missing_judge_slots=missing,
        message=f"rebuilt {len(written)} file(s); {note}" if written else f"up to date; {note}",
        judge_passed=agreed.passed,
    )


def regenerate_chunk(
    experiment_dir: Path, labels: Sequence[str], *, judge_models: Sequence[str], stamp: str | None = None
) -> list[RunRegeneration]:
    """:func:`regenerate_run` over a chunk of run labels (the unit of work of the flow's tasks),
    made durable as one write batch (one sync for the chunk, see :mod:`experiment.durable`)."""
    stamp = stamp or backup_stamp()
    layout = ExperimentLayout(Path(experiment_dir))
    with write_batch():
        return [
            regenerate_run(
                experiment_dir, RunKey.parse(label), judge_models=judge_models, stamp=stamp, layout=layout
            )
            for label in labels
        ]
