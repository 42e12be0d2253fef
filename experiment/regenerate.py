"""Regeneration: rebuild every derived file of an experiment from its logs, without any agent or judge.

Three entry points, all Prefect-free (the ``regenerate-results`` flow and CLI, and the rerun flow
after an agent and its judges finish, call exactly these):

* :func:`regenerate_run` repairs **one run in one pass** (the original needed one invocation per
  file, spec §8.5): ``agent/result.json`` from ``agent/stdout.log`` (or ``output.txt``),
  ``command_log.json`` and ``stderr.log`` with the canonical token keys and ``api_calls`` =
  ``num_turns`` (spec §8.4); ``judge/result.json`` as the consensus of the valid ``judge_NN``
  slots (:mod:`experiment.consensus`); ``run_result.json``; the run's ``report.json/md``. A run
  whose agent finished but has no valid judgment is *not* given a result: it is reported as
  ``needs_judges`` with the slots to run.
* :func:`rebuild_aggregates` rebuilds subtest reports, tier results/reports/summaries and the
  experiment result, report, summary and tier comparison (statistics in
  :mod:`experiment.aggregate`, markdown in :mod:`experiment.reports`).
* :func:`rebuild_checkpoint` rebuilds ``checkpoint.json`` from the ``run_result.json`` files.

Writing rules (one function each): a derived file is written only when its content changes
(:func:`write_if_changed`; timestamps such as ``generated_at`` and the machine-specific absolute
paths do not count as a change), and before any existing file is overwritten its previous
content is copied to ``<exp>/.backups/<UTC stamp>/<path relative to exp>`` (:func:`backup_file`),
atomically and never over an older backup. Every write is atomic.

Wall-clock fields are not functions of the run results. When the previous file exists its
values are kept (it is backed up anyway). When it is gone they are approximated from the timing
files, and the rebuild reports which fields are approximations:

* tier ``total_duration`` = the span from the earliest agent start (``agent/timing.json``
  ``measured_at`` − ``agent_duration_seconds``) to the latest judge end (``judge/timing.json``
  ``measured_at``) over the tier's runs. It leaves out the workspace setup before the first
  agent and the report writing after the last judge: 2.5-3.6 % (4-8 s) short on the sample.
* experiment ``started_at`` = the checkpoint's ``started_at`` (3 ms off on the sample), else the
  earliest agent start; ``completed_at`` = the latest judge end (10 ms off);
  ``total_duration_seconds`` = their difference (13 ms off).
* tier ``inherited_from`` (T5/T6) is not recorded anywhere else: kept from the previous file,
  else null.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from experiment import aggregate, reports
from experiment.consensus import consensus, invalid_slots, load_slots
from experiment.errors import ExperimentError, FormatError
from experiment.failures import parse_claude_output
from experiment.jsonio import atomic_write_text, dumps, load_model, read_json
from experiment.layout import ExperimentLayout, RunKey, RunPaths
from experiment.locks import update_checkpoint
from experiment.models import (
    AgentResult,
    Checkpoint,
    ClaudeOutput,
    CommandLog,
    ExperimentConfig,
    ExperimentResult,
    JudgeSummary,
    RunReport,
    RunResult,
    SubtestResult,
    TierResult,
    grade_for_score,
    utc_now_iso,
)
from experiment.status import RunStatus, classify_run

Outcome = Literal["regenerated", "unchanged", "needs_judges", "not_finished", "error"]

VOLATILE_KEYS = frozenset({"generated_at", "workspace_path", "logs_path", "command_log_path"})
"""Top-level JSON keys whose change alone does not make a file "changed" (timestamps and the
absolute paths of whichever machine last wrote the file)."""
_GENERATED_LINE = re.compile(r"^\*\*Generated\*\*: .*$", re.MULTILINE)
_MODEL_LINE = re.compile(r"^\*\*Model\*\*:\s*(\S+)", re.MULTILINE)
_WORKSPACE_CHANGE = re.compile(r"^- `([^`]+)` \((created|modified)\)\s*$")
_CANONICAL_TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
IO_THREADS = 16
"""Chunks regenerated at once by the in-process pass (I/O bound: fsync releases the GIL)."""
_FINAL_RUN_STATES = {"run_finalized", "report_written", "checkpointed", "worktree_cleaned"}


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


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
        return RunKey.parse(self.run)

    @property
    def checkpoint_outcome(self) -> Literal["passed", "failed", "agent_complete"] | None:
        """The run's ``completed_runs`` value after this regeneration (None: leave it alone)."""
        if self.outcome in ("regenerated", "unchanged") and self.judge_passed is not None:
            return "passed" if self.judge_passed else "failed"
        if self.outcome == "needs_judges":
            return "agent_complete"
        return None


class AggregateRebuild(BaseModel):
    """What :func:`rebuild_aggregates` did."""

    experiment: str = Field(description="Absolute experiment directory.")
    tiers: list[str] = Field(default_factory=list, description="Tiers whose files were rebuilt.")
    subtests: int = Field(default=0, description="Subtest reports rebuilt.")
    runs: int = Field(default=0, description="Run results aggregated.")
    skipped_runs: list[str] = Field(default_factory=list, description="Unreadable run_result.json files.")
    written: list[str] = Field(default_factory=list, description="Files written, relative to the experiment.")
    approximated: list[str] = Field(
        default_factory=list,
        description="Wall-clock fields derived from timing files because their previous file was gone.",
    )
    best_tier: str | None = Field(default=None, description="Frontier tier.")
    frontier_cop: float | None = Field(
        default=None, description="Frontier cost-of-pass (null: nothing passed)."
    )
    total_cost: float = Field(default=0.0, description="Experiment cost (summed).")


# --------------------------------------------------------------------------------------------------
# Backups and writes
# --------------------------------------------------------------------------------------------------


def backup_stamp() -> str:
    """A UTC stamp naming one backup generation (``20260120T061307Z``)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


_made_dirs: set[Path] = set()


def _ensure_dir(path: Path) -> None:
    """mkdir -p, once per process per directory (a backup pass creates thousands of files)."""
    if path not in _made_dirs:
        path.mkdir(parents=True, exist_ok=True)
        _made_dirs.add(path)


def _relative(root: Path, path: Path) -> Path:
    """``path`` relative to the experiment (paths come from the layout, already absolute)."""
    try:
        return Path(path).relative_to(root)
    except ValueError:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve())
        except ValueError:
            return Path(Path(path).name)


def backup_file(experiment_dir: Path, path: Path, stamp: str) -> Path | None:
    """Copy ``path`` to ``<exp>/.backups/<stamp>/<relative path>`` before it is overwritten.

    The copy is written to a temp file and *linked* into place, which fails instead of replacing
    an existing backup, so an older backup is never overwritten (a second backup of the same file
    under the same stamp gets ``.1``, ``.2``, ...). Returns the backup path (None: nothing to back up).
    """
    path = Path(path)
    if not path.is_file():
        return None
    layout = ExperimentLayout(experiment_dir)
    target = layout.backups_dir / stamp / _relative(layout.root, path)
    _ensure_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except FileNotFoundError:  # removed since we created it
        _made_dirs.discard(target.parent)
        _ensure_dir(target.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        candidate, counter = target, 0
        while True:
            try:
                os.link(tmp, candidate)
                return candidate
            except FileExistsError:
                counter += 1
                candidate = target.with_name(f"{target.name}.{counter}")
    finally:
        Path(tmp).unlink(missing_ok=True)


def _comparable_json(text: str) -> Any:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in VOLATILE_KEYS}
    return data


def _comparable_text(text: str) -> str:
    return _GENERATED_LINE.sub("**Generated**:", text)


def write_if_changed(experiment_dir: Path, path: Path, content: str, stamp: str, written: list[str]) -> bool:
    """Write ``content`` to ``path`` unless the file already says the same thing.

    JSON files are compared as data without :data:`VOLATILE_KEYS`; markdown without its
    ``**Generated**`` line. A changed existing file is backed up first (:func:`backup_file`).
    Appends the path (relative to the experiment) to ``written`` when it writes.
    """
    path = Path(path)
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    except (OSError, UnicodeDecodeError):
        old = ""  # unreadable: rewrite it (after the backup)
    if old is not None:
        if path.suffix == ".json":
            same = old == content or (
                (previous := _comparable_json(old)) is not None and previous == _comparable_json(content)
            )
        else:
            same = old == content or _comparable_text(old) == _comparable_text(content)
        if same:
            return False
        backup_file(experiment_dir, path, stamp)
    atomic_write_text(path, content)
    written.append(str(_relative(experiment_dir, path)))
    return True


def _write_model(experiment_dir: Path, path: Path, model: BaseModel, stamp: str, written: list[str]) -> bool:
    data = model.to_json_dict() if hasattr(model, "to_json_dict") else model.model_dump(mode="json")
    return write_if_changed(experiment_dir, path, dumps(data), stamp, written)


# --------------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------------


def _read_dict(path: Path) -> dict | None:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_text(path: Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def valid_agent_result(data: dict | None) -> bool:
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
    stdout = _read_text(paths.agent_stdout)
    if not stdout or not stdout.strip():
        stdout = _read_text(paths.agent_output)
    if not stdout or not stdout.strip():
        return "the agent produced no output (stdout.log and output.txt empty or missing)"
    parsed = parse_claude_output(stdout)
    if parsed is None:
        return "agent stdout holds no Claude Code JSON result"
    try:
        output = ClaudeOutput.model_validate(parsed)
    except ValidationError:
        return "agent stdout is not a Claude Code result object"
    log_data = _read_dict(paths.command_log)
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
        stderr=_read_text(paths.agent_stderr) or "",
        token_stats=output.token_stats,
        cost_usd=float(output.total_cost_usd or 0.0),
        api_calls=int(output.num_turns or 0),
    )


def _agent_duration(paths: RunPaths) -> float:
    timing = _read_dict(paths.agent_timing)
    if timing is not None and "agent_duration_seconds" in timing:
        return float(timing["agent_duration_seconds"])
    log = _read_dict(paths.command_log)
    commands = (log or {}).get("commands") or []
    if commands and isinstance(commands[0], dict):
        return float(commands[0].get("duration_seconds") or 0.0)
    return 0.0


def _judge_duration(paths: RunPaths, slots: Iterable[int]) -> float:
    """``judge/timing.json`` (the wall time of all judges; it reproduces the sample exactly),
    else the sum of the slot timings (the original's rule; over-counts HEAD's cumulative slots)."""
    timing = _read_dict(paths.judge_timing)
    if timing is not None and "judge_duration_seconds" in timing:
        return float(timing["judge_duration_seconds"])
    total = 0.0
    for slot in slots:
        data = _read_dict(paths.judge_slot(slot) / "timing.json")
        if data:
            total += float(data.get("judge_duration_seconds") or 0.0)
    return total


def _judge_model(paths: RunPaths, slot: int, judge_models: Sequence[str]) -> str:
    text = _read_text(paths.judge_slot(slot) / "MODEL.md")
    match = _MODEL_LINE.search(text or "")
    if match:
        return match.group(1)
    if 1 <= slot <= len(judge_models):
        return judge_models[slot - 1]
    return "unknown"


def workspace_changes(run_dir: Path) -> list[tuple[str, str]]:
    """Files the agent created/modified, as the judge prompt recorded them at agent time."""
    text = _read_text(Path(run_dir) / "judge_prompt.md") or ""
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
) -> RunRegeneration:
    """Rebuild every derived file of one run from its logs, in one pass (see the module docstring).

    ``judge_models`` is the config's list: one slot each. ``stamp`` names the backup generation
    (default: now); a flow passes one stamp to all its runs.
    """
    stamp = stamp or backup_stamp()
    try:
        return _regenerate_run(Path(experiment_dir), key, list(judge_models), stamp)
    except (ExperimentError, OSError, ValueError) as exc:
        message = str(exc) if isinstance(exc, ExperimentError) else f"{exc.__class__.__name__}: {exc}"
        return RunRegeneration(run=key.label, outcome="error", message=message.splitlines()[0])


def _regenerate_run(exp: Path, key: RunKey, judge_models: list[str], stamp: str) -> RunRegeneration:
    layout = ExperimentLayout(exp)
    exp = layout.root
    paths = layout.run_paths(key)
    if not paths.agent_dir.is_dir():
        return RunRegeneration(run=key.label, outcome="not_finished", message="the agent never started")
    written: list[str] = []

    # 1. The agent result: kept when valid, else rebuilt from the logs.
    existing = _read_dict(paths.agent_result)
    if valid_agent_result(existing):
        agent = AgentResult.model_validate(existing)
    else:
        rebuilt = agent_result_from_logs(paths)
        if isinstance(rebuilt, str):
            return RunRegeneration(run=key.label, outcome="not_finished", message=rebuilt)
        agent = rebuilt
        _write_model(exp, paths.agent_result, agent, stamp, written)

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
    _write_model(exp, paths.judge_result, agreed, stamp, written)

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
    judge_duration = _judge_duration(paths, [s.slot for s in slots])
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
    previous = _read_dict(paths.run_result)
    data = {**(previous or {}), **run.to_json_dict()} if previous else run.to_json_dict()
    write_if_changed(exp, paths.run_result, dumps(data), stamp, written)

    # 4. The run's reports.
    now = utc_now_iso()
    previous_report = None
    if (old_report := _read_dict(paths.report_json)) is not None:
        try:
            previous_report = RunReport.model_validate(old_report)
        except ValidationError:
            previous_report = None
    _write_model(exp, paths.report_json, aggregate.run_report(run, now, previous_report), stamp, written)
    markdown = reports.render_run_report(key.label, run, now, workspace_changes(paths.run_dir))
    write_if_changed(exp, paths.report_md, markdown, stamp, written)

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
    """:func:`regenerate_run` over a chunk of run labels (the unit of work of the flow's tasks)."""
    stamp = stamp or backup_stamp()
    return [
        regenerate_run(experiment_dir, RunKey.parse(label), judge_models=judge_models, stamp=stamp)
        for label in labels
    ]


# --------------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run_interval(paths: RunPaths) -> tuple[datetime, datetime] | None:
    """(agent start, judge end) of a run from its timing files, or None when unknown."""
    agent = _read_dict(paths.agent_timing)
    if not agent:
        return None
    agent_end = _parse_time(agent.get("measured_at"))
    if agent_end is None:
        return None
    start = agent_end.timestamp() - float(agent.get("agent_duration_seconds") or 0.0)
    judge = _read_dict(paths.judge_timing) or {}
    end = _parse_time(judge.get("measured_at"))
    if end is None:
        slot_ends = [
            t
            for slot in paths.judge_slots_on_disk()
            if (
                t := _parse_time(
                    (_read_dict(paths.judge_slot(slot) / "timing.json") or {}).get("measured_at")
                )
            )
        ]
        end = max(slot_ends) if slot_ends else agent_end
    return datetime.fromtimestamp(start, UTC), end


def _load_runs(layout: ExperimentLayout, tier: str, subtest: str, skipped: list[str]) -> list[RunResult]:
    runs = []
    for number in layout.recorded_run_numbers(tier, subtest):
        key = RunKey(tier, subtest, number)
        path = layout.run_paths(key).run_result
        if not path.is_file():
            continue
        try:
            runs.append(load_model(path, RunResult))
        except FormatError:
            skipped.append(key.label)
    return runs


def _previous(path: Path, model: type[BaseModel]) -> Any:
    data = _read_dict(path)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def _ordered(ids: Iterable[str], previous_order: Sequence[str]) -> list[str]:
    """The previous file's order for the ids it listed, then the rest sorted (T0..T6)."""
    ids = set(ids)
    head = [i for i in previous_order if i in ids]
    return head + sorted(ids - set(head))


def rebuild_aggregates(
    experiment_dir: Path, *, tiers: Sequence[str] | None = None, stamp: str | None = None
) -> AggregateRebuild:
    """Rebuild subtest, tier (only ``tiers``, default all of ``tiers_to_run``) and experiment files."""
    stamp = stamp or backup_stamp()
    layout = ExperimentLayout(experiment_dir)
    exp = layout.root
    config = load_model(layout.config_path, ExperimentConfig)
    raw_config = read_json(layout.config_path)
    rebuild = list(tiers) if tiers else list(config.tiers_to_run)
    summary = AggregateRebuild(experiment=str(exp))
    written = summary.written
    now = utc_now_iso()
    tier_results: dict[str, TierResult] = {}
    intervals_all: list[tuple[datetime, datetime]] = []
    approximated_experiment = False

    previous_exp: ExperimentResult | None = _previous(layout.experiment_file("result.json"), ExperimentResult)
    for tier in config.tiers_to_run:
        tier_path = layout.tier_file(tier, "result.json")
        previous_tier: TierResult | None = _previous(tier_path, TierResult)
        if tier not in rebuild and previous_tier is not None:
            tier_results[tier] = previous_tier
            continue
        subtests: dict[str, SubtestResult] = {}
        intervals: list[tuple[datetime, datetime]] = []
        for subtest in layout.recorded_subtests(tier):
            runs = _load_runs(layout, tier, subtest, summary.skipped_runs)
            if not runs:
                continue
            summary.runs += len(runs)
            subtests[subtest] = aggregate.summarize_subtest(tier, subtest, runs)
            for run in runs:
                span = run_interval(layout.run_paths(RunKey(tier, subtest, run.run_number)))
                if span:
                    intervals.append(span)
        intervals_all.extend(intervals)
        if not subtests:
            continue
        if previous_tier is not None:
            duration = previous_tier.total_duration
            inherited = previous_tier.inherited_from
        else:
            previous_report = _read_dict(layout.tier_file(tier, "report.json")) or {}
            old = (previous_report.get("summary") or {}).get("total_duration")
            if isinstance(old, int | float):
                duration = float(old)
            else:
                duration = aggregate.wall_span(intervals)
                summary.approximated.append(f"{tier}/result.json total_duration")
            inherited = None
        tier_result, selection = aggregate.build_tier(
            tier, subtests, total_duration=duration, inherited_from=inherited
        )
        tier_results[tier] = tier_result
        if tier not in rebuild:
            continue  # computed in memory for the experiment totals only
        summary.tiers.append(tier)
        for sid, sub in tier_result.subtest_results.items():
            summary.subtests += 1
            _write_model(
                exp,
                layout.subtest_file(tier, sid, "report.json"),
                aggregate.subtest_report(sub, now),
                stamp,
                written,
            )
            write_if_changed(
                exp,
                layout.subtest_file(tier, sid, "report.md"),
                reports.render_subtest_report(sub, now),
                stamp,
                written,
            )
        _write_model(exp, tier_path, tier_result, stamp, written)
        _write_model(exp, layout.tier_file(tier, "best_subtest.json"), selection, stamp, written)
        _write_model(
            exp,
            layout.tier_file(tier, "report.json"),
            aggregate.tier_report(tier_result, now),
            stamp,
            written,
        )
        write_if_changed(
            exp,
            layout.tier_file(tier, "report.md"),
            reports.render_tier_report(tier_result, now),
            stamp,
            written,
        )
        write_if_changed(
            exp,
            layout.tier_file(tier, "summary.md"),
            reports.render_tier_summary(tier_result),
            stamp,
            written,
        )

    # The experiment: wall-clock values from the previous file, else from the timing files.
    order = _ordered(tier_results, list(previous_exp.tier_results) if previous_exp else [])
    tier_results = {t: tier_results[t] for t in order}
    if previous_exp is not None and previous_exp.started_at:
        started, completed = previous_exp.started_at, previous_exp.completed_at
        total_duration = previous_exp.total_duration_seconds
    else:
        previous_report = _read_dict(layout.experiment_file("report.json")) or {}
        old = previous_report.get("summary") or {}
        if old.get("started_at") and isinstance(old.get("total_duration"), int | float):
            started, completed, total_duration = (
                old["started_at"],
                old.get("completed_at"),
                float(old["total_duration"]),
            )
        else:
            approximated_experiment = True
            started, completed, total_duration = _experiment_clock(layout, intervals_all, tier_results)
    if approximated_experiment:
        summary.approximated += [
            "result.json started_at",
            "result.json completed_at",
            "result.json total_duration_seconds",
        ]
    result = aggregate.build_experiment(
        raw_config if isinstance(raw_config, dict) else config.to_json_dict(),
        tier_results,
        started_at=started,
        completed_at=completed,
        total_duration_seconds=total_duration,
    )
    _write_model(exp, layout.experiment_file("result.json"), result, stamp, written)
    _write_model(
        exp,
        layout.experiment_file("report.json"),
        aggregate.experiment_report(result, config.experiment_id, now),
        stamp,
        written,
    )
    write_if_changed(
        exp,
        layout.experiment_file("report.md"),
        reports.render_experiment_report(result, config.experiment_id, result.config, now),
        stamp,
        written,
    )
    write_if_changed(
        exp, layout.experiment_file("summary.md"), reports.render_experiment_summary(result), stamp, written
    )
    _write_model(
        exp,
        layout.experiment_file("tier_comparison.json"),
        aggregate.tier_comparison(tier_results),
        stamp,
        written,
    )
    summary.best_tier = result.best_overall_tier
    summary.frontier_cop = result.frontier_cop
    summary.total_cost = result.total_cost
    return summary


def _experiment_clock(
    layout: ExperimentLayout,
    intervals: list[tuple[datetime, datetime]],
    tiers: dict[str, TierResult],
) -> tuple[str | None, str | None, float]:
    """(started_at, completed_at, total seconds) approximated from the checkpoint and timing files."""
    checkpoint = _read_dict(layout.checkpoint_path) or {}
    start = _parse_time(checkpoint.get("started_at"))
    if start is None and intervals:
        start = min(i[0] for i in intervals)
    end = max((i[1] for i in intervals), default=None)
    if start is None or end is None:
        return (
            start.isoformat() if start else None,
            end.isoformat() if end else None,
            sum(t.total_duration for t in tiers.values()),
        )
    return start.isoformat(), end.isoformat(), max(0.0, (end - start).total_seconds())


# --------------------------------------------------------------------------------------------------
# Checkpoint
# --------------------------------------------------------------------------------------------------


def apply_to_checkpoint(checkpoint: Checkpoint, key: RunKey, outcome: str | None) -> None:
    """Record one run's on-disk outcome; a final run state is never moved backwards."""
    if outcome is None:
        return
    current = checkpoint.run_states.get(key.tier, {}).get(key.subtest, {}).get(str(key.run_number))
    state = None
    if outcome in ("passed", "failed") and current in _FINAL_RUN_STATES:
        state = current
    checkpoint.mark_run(key.tier, key.subtest, key.run_number, outcome, run_state=state)  # type: ignore[arg-type]


def rebuild_checkpoint(experiment_dir: Path, *, stamp: str | None = None) -> Checkpoint:
    """Rebuild ``checkpoint.json`` from the run dirs on disk, after backing up the old one.

    For every run dir of the experiment's tiers: a readable ``run_result.json`` gives passed or
    failed (``judge_passed``); an agent that finished without a result gives ``agent_complete``;
    a failed agent is removed from ``completed_runs`` (run state ``failed``); a partial one is
    forgotten (it will start over). Runs without a dir, unknown fields and the other states are
    kept. ``experiment_dir`` is set to the current location. Saved atomically.
    """
    stamp = stamp or backup_stamp()
    layout = ExperimentLayout(experiment_dir)
    config = load_model(layout.config_path, ExperimentConfig)

    def rebuild(checkpoint: Checkpoint) -> None:
        for tier in config.tiers_to_run:
            for subtest in layout.recorded_subtests(tier):
                for number in layout.recorded_run_numbers(tier, subtest):
                    _rebuild_entry(checkpoint, layout, RunKey(tier, subtest, number))
        checkpoint.experiment_dir = str(layout.root)
        checkpoint.__pydantic_fields_set__.update({"completed_runs", "run_states", "experiment_dir"})
        backup_file(layout.root, layout.checkpoint_path, stamp)

    # Through the single checkpoint writer: a running repair's entries are never overwritten
    # with a stale copy (an unreadable checkpoint is set aside, not lost).
    return update_checkpoint(layout, config, rebuild)


def _rebuild_entry(checkpoint: Checkpoint, layout: ExperimentLayout, key: RunKey) -> None:
    paths = layout.run_paths(key)
    data = _read_dict(paths.run_result)
    if data is not None and isinstance(data.get("judge_passed"), bool):
        apply_to_checkpoint(checkpoint, key, "passed" if data["judge_passed"] else "failed")
        return
    status = classify_run(paths.run_dir).status
    if status in (RunStatus.RESULTS, RunStatus.COMPLETED):
        apply_to_checkpoint(checkpoint, key, "agent_complete")
    elif status is RunStatus.FAILED:
        checkpoint.unmark_run(key.tier, key.subtest, key.run_number)
        checkpoint.run_states.setdefault(key.tier, {}).setdefault(key.subtest, {})[str(key.run_number)] = (
            "failed"
        )
    elif status is RunStatus.PARTIAL:
        checkpoint.unmark_run(key.tier, key.subtest, key.run_number)


# --------------------------------------------------------------------------------------------------
# The whole pass
# --------------------------------------------------------------------------------------------------


class RegenerateSummary(BaseModel):
    """The outcome of a regeneration pass: one entry per ``results`` run, plus the aggregates."""

    experiment: str = Field(description="Absolute experiment directory.")
    runs: list[RunRegeneration] = Field(default_factory=list, description="One entry per run in scope.")
    aggregates: AggregateRebuild | None = Field(
        default=None, description="The aggregate rebuild (None when skipped)."
    )
    backup_stamp: str = Field(default="", description="Name of this pass's backup dir under .backups/.")

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.runs if r.outcome == outcome)

    @property
    def regenerated(self) -> int:
        """Runs whose derived files were rebuilt (the RERUN RESULTS "Regenerated" line)."""
        return self.count("regenerated")

    @property
    def counts(self) -> dict[str, int]:
        return {
            o: self.count(o) for o in ("regenerated", "unchanged", "needs_judges", "not_finished", "error")
        }

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "regenerated": self.regenerated,
            "counts": self.counts,
            "backup_stamp": self.backup_stamp,
            "runs": [r.model_dump(mode="json") for r in self.runs],
            "aggregates": self.aggregates.model_dump(mode="json") if self.aggregates else None,
        }

    def to_markdown(self) -> str:
        """The flow's artifact: counts, the runs that still need work, the aggregate rebuild."""
        lines = [f"# Regenerated results: `{self.experiment}`", "", "| Outcome | Runs |", "|---|---|"]
        lines += [f"| {o} | {n} |" for o, n in self.counts.items()]
        pending = [r for r in self.runs if r.outcome in ("needs_judges", "not_finished", "error")]
        if pending:
            lines += [
                "",
                "## Runs that still need work",
                "",
                "| Run | Outcome | Judge slots | Why |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {r.run} | {r.outcome} | {', '.join(map(str, r.missing_judge_slots)) or '-'} | {r.message} |"
                for r in pending
            ]
        if self.aggregates is not None:
            a = self.aggregates
            cop = f"${a.frontier_cop:.4f}" if a.frontier_cop is not None else "N/A (nothing passed)"
            lines += [
                "",
                "## Aggregates",
                "",
                f"- Tiers rebuilt: {', '.join(a.tiers) or 'none'} ({a.subtests} subtests, {a.runs} runs)",
                f"- Files written: {len(a.written)}",
                f"- Frontier: {a.best_tier or 'none'} at {cop}; total cost ${a.total_cost:.4f}",
            ]
            if a.approximated:
                lines.append(f"- Approximated from timing files: {', '.join(a.approximated)}")
        if self.backup_stamp:
            lines += ["", f"Previous versions of overwritten files: `.backups/{self.backup_stamp}/`"]
        return "\n".join(lines) + "\n"


def regenerate_in_process(
    experiment_dir: Path,
    *,
    tiers: Sequence[str] = (),
    subtests: Sequence[str] = (),
    runs: Sequence[int] = (),
    skip_aggregates: bool = False,
    tiers_dir: Path | None = None,
) -> RegenerateSummary:
    """The ``regenerate-results`` pipeline without Prefect: scan, regenerate the ``results`` runs
    in the same chunks the flow's tasks use, then rebuild the aggregates."""
    from experiment.scan import ScanFilters, chunked, load_context, scan_in_process

    context = load_context(Path(experiment_dir), tiers_dir)
    filters = ScanFilters(tuple(tiers), tuple(subtests), tuple(runs), (RunStatus.RESULTS,))
    report = scan_in_process(context, filters)
    stamp = backup_stamp()
    judge_models = context.config.judge_models
    chunks = chunked([e.key for e in report.to_regenerate()])
    # Threads, like the flow's task runner: the work is dominated by fsync and file creation,
    # which release the GIL (measured: 1,050 runs 6.1 s sequential, see bench/README.md).
    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        done = pool.map(
            lambda c: regenerate_chunk(context.root, c, judge_models=judge_models, stamp=stamp), chunks
        )
        results = [r for chunk_results in done for r in chunk_results]
    aggregates = None
    if not skip_aggregates:
        aggregates = rebuild_aggregates(context.root, tiers=list(tiers) or None, stamp=stamp)
    return RegenerateSummary(
        experiment=str(context.root), runs=results, aggregates=aggregates, backup_stamp=stamp
    )
