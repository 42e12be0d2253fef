"""One judge slot: call the judge, parse its answer, and write ``judge/judge_NN/`` whatever happens.

Every slot's outcome is persisted in ``judge/judge_NN/``, valid or not (spec §8.7): an unusable
answer is recorded as ``is_valid: false`` (score 0, grade F) which consensus ignores - it is a
record, never a fallback score (spec §8.2). A transient failure is recorded the same way *and*
raised, so the caller's retry policy retries; a later success overwrites the slot atomically.

Besides ProjectScylla's files (``judgment.json``, ``response.txt``, ``stdout.log``, ``timing.json``,
``MODEL.md``, ``replay.sh``; its loaders read ``judgment.json`` and the ``**Model**:`` line of
``MODEL.md``), each slot records its request in ``request.json``: the model, ``max_tokens``,
``temperature``, and which system prompt was sent (source, path, sha256, comparable).
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed, Failure, FailureClass
from experiment.jsonio import atomic_write_json, atomic_write_text
from experiment.models import JudgeTiming, Judgment, utc_now_iso
from operations.judge.client import JudgeSettings, call_judge
from operations.judge.parsing import JudgeParseError, parse_judgment
from operations.judge.system_prompt import JudgeSystemPrompt, resolve_system_prompt

__all__ = ["JSON_REMINDER", "REQUEST_FILE", "JudgeSlotOutcome", "run_judge_slot", "slot_dir"]

REQUEST_FILE = "request.json"
"""The slot's request record: model, max_tokens, temperature, system prompt (path, sha256)."""

log = logging.getLogger(__name__)

JSON_REMINDER = (
    "\n\n---\n\nIMPORTANT: Your previous answer could not be parsed. Respond with ONLY a valid JSON "
    "object with the keys score, passed, grade, reasoning and categories - no prose, no markdown "
    "outside a single ```json fenced block."
)


class JudgeSlotOutcome(BaseModel):
    """What one judge slot produced (the files in ``judge/judge_NN/`` hold the detail)."""

    slot: int
    """1-based slot number (``judge_NN``)."""
    model: str
    """Judge model id."""
    valid: bool
    """True when a judgment was parsed; invalid slots never enter consensus."""
    score: float | None = None
    """Score in [0, 1] (None when invalid)."""
    passed: bool | None = None
    """The judge's own verdict (None when invalid)."""
    grade: str | None = None
    """Grade from the score."""
    reasoning: str = ""
    """The judge's reasoning (or the failure text)."""
    criteria_scores: dict[str, Any] | None = None
    """Per-category scores from the answer's ``categories``."""
    failure_kind: FailureClass | None = None
    """Why the slot is invalid, if it is."""
    failure_message: str | None = None
    """The failure's message."""
    duration_seconds: float = 0.0
    """Wall time of the slot (all its calls)."""
    input_tokens: int = 0
    """Input tokens over the slot's calls."""
    output_tokens: int = 0
    """Output tokens over the slot's calls."""
    attempts: int = 0
    """API calls made (2 when the JSON reminder was needed)."""

    @property
    def failure(self) -> Failure | None:
        if self.failure_kind is None:
            return None
        return Failure(self.failure_kind, self.failure_message or "")


def slot_dir(run_dir: Path, slot: int) -> Path:
    """``run_dir/judge/judge_NN`` (1-based)."""
    return Path(run_dir) / "judge" / f"judge_{slot:02d}"


def _system_line(system: JudgeSystemPrompt) -> str:
    if system.comparable:
        return f"{system.path} (sha256 {system.sha256})"
    return (
        f"scylla-repair's own fallback prompt (sha256 {system.sha256}); NOT ProjectScylla's, "
        "so this judgment is not comparable with the experiment's other judgments"
    )


def _replay_command(model: str, settings: JudgeSettings, system: JudgeSystemPrompt) -> str:
    argv = ["python", "-m", "operations.judge", "--model", model]
    argv += ["--max-tokens", str(settings.max_tokens), "--temperature", f"{settings.temperature:g}"]
    if system.path:
        argv += ["--system-prompt", system.path]
    return (
        shlex.join(argv) + ' --prompt "$JUDGE_DIR/../../judge_prompt.md" > "$JUDGE_DIR/replay_response.txt"'
    )


def _write_slot_common(
    directory: Path, slot: int, model: str, settings: JudgeSettings, system: JudgeSystemPrompt
) -> None:
    judge_root = directory.parent
    judge_root.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        judge_root.chmod(0o777)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        directory / "MODEL.md",
        "# Judge Model Information\n\n"
        f"**Model**: {model}\n"
        f"**API**: Anthropic Messages API ({settings.base_url})\n"
        f"**Request**: max_tokens={settings.max_tokens}, temperature={settings.temperature:g}\n"
        f"**System prompt**: {_system_line(system)}\n"
        f"**Timestamp**: {utc_now_iso()}\n",
    )
    atomic_write_json(
        directory / REQUEST_FILE,
        {
            "api": "Anthropic Messages API",
            "base_url": settings.base_url,
            "anthropic_version": settings.anthropic_version,
            **settings.request_parameters(model),
            "system_prompt": system.record(),
            "written_at": utc_now_iso(),
        },
    )
    replay = directory / "replay.sh"
    atomic_write_text(
        replay,
        "#!/usr/bin/env bash\n"
        f"# Replay judge evaluation (slot {slot:02d}, model {model})\n"
        "# Generated by scylla-repair\n#\n"
        "# The judge is one Anthropic Messages API request: POST $ANTHROPIC_BASE_URL/v1/messages with\n"
        "# the system prompt recorded in request.json and the run's judge_prompt.md as the user message.\n"
        "# The API key is read from ANTHROPIC_API_KEY; it is never stored here.\n"
        "# Run from the scylla-repair checkout (uv run bash <this file>).\n\n"
        "set -euo pipefail\n\n"
        'JUDGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"\n'
        ': "${ANTHROPIC_API_KEY:?export ANTHROPIC_API_KEY first}"\n\n'
        f"{_replay_command(model, settings, system)}\n\n"
        'echo "Judge response saved to $JUDGE_DIR/replay_response.txt"\n',
    )
    replay.chmod(0o755)


def _persist_failure(
    directory: Path, kind: FailureClass, message: str, responses: list[str], detail: str | None = None
) -> None:
    log.info(
        "Judge %s of %s failed (%s): %s",
        directory.name,
        "/".join(directory.parts[-5:-2]),
        kind.value,
        message,
    )
    record = Judgment(
        score=0.0, passed=False, grade="F", reasoning=f"Judge failed: {message}", is_valid=False
    )
    atomic_write_json(directory / "judgment.json", record.to_json_dict())
    atomic_write_text(directory / "response.txt", responses[-1] if responses else "")
    atomic_write_text(directory / "stdout.log", _joined(responses))
    # failure_class is an extra key of timing.json (ScyllaModel keeps extras), hence model_validate.
    timing = JudgeTiming.model_validate(
        {
            "judge_duration_seconds": 0.0,
            "measured_at": utc_now_iso(),
            "failed": True,
            "error": message,
            "failure_class": kind.value,
        }
    )
    atomic_write_json(directory / "timing.json", timing.to_json_dict())
    atomic_write_text(
        directory / "error.log", f"{kind.value}: {message}\n" + (f"\n{detail}\n" if detail else "")
    )


def _joined(responses: list[str]) -> str:
    return "\n\n--- retried with a JSON-only reminder ---\n\n".join(responses)


def run_judge_slot(
    run_dir: Path,
    slot: int,
    model: str,
    prompt: str,
    settings: JudgeSettings,
    client: httpx.Client | None = None,
    *,
    system: JudgeSystemPrompt | None = None,
) -> JudgeSlotOutcome:
    """Judge once in slot ``slot`` (1-based) and persist the outcome in ``judge/judge_NN/``.

    An unparsable answer is retried once with a JSON-only reminder; if that fails too, an invalid
    judgment is recorded and returned (no exception). A transient failure (429/529/5xx/timeout/
    connection) is recorded and then raised as AttemptFailed for the caller's retry policy;
    JudgeAuthError/JudgeConfigError are recorded and raised as well. ``system`` is the repair's
    system prompt (None: our fallback, recorded as not comparable).
    """
    system = system or resolve_system_prompt(None)
    directory = slot_dir(run_dir, slot)
    log.info(
        "Judge %02d (%s) of %s: calling %s",
        slot,
        model,
        "/".join(Path(run_dir).parts[-3:]),
        settings.base_url,
    )
    _write_slot_common(directory, slot, model, settings, system)
    start = time.monotonic()
    responses: list[str] = []
    tokens_in = tokens_out = 0
    judgment: Judgment | None = None
    parse_error: JudgeParseError | None = None
    current = prompt
    try:
        for attempt in (1, 2):
            call = call_judge(settings, model, system.text, current, client)
            responses.append(call.text)
            tokens_in += call.input_tokens
            tokens_out += call.output_tokens
            try:
                judgment = parse_judgment(call.text)
                break
            except JudgeParseError as exc:
                parse_error = exc
                log.info("Judge %02d (%s) answer unparsable (attempt %d): %s", slot, model, attempt, exc)
                current = prompt + JSON_REMINDER
    except AttemptFailed as exc:
        failure = exc.failure
        _persist_failure(directory, failure.kind, failure.message, responses)
        if failure.transient:
            raise
        return _invalid(
            slot, model, failure.kind, failure.message, start, tokens_in, tokens_out, len(responses) + 1
        )
    except RepairBlocked as exc:
        _persist_failure(directory, FailureClass.JUDGE_INVALID, str(exc), responses)
        raise
    duration = time.monotonic() - start
    if judgment is None:
        message = str(parse_error) if parse_error else "Judge produced no judgment"
        _persist_failure(directory, FailureClass.JUDGE_INVALID, message, responses)
        return _invalid(
            slot, model, FailureClass.JUDGE_INVALID, message, start, tokens_in, tokens_out, len(responses)
        )

    atomic_write_json(directory / "judgment.json", judgment.to_json_dict())
    atomic_write_text(directory / "response.txt", responses[-1])
    atomic_write_text(directory / "stdout.log", _joined(responses))
    timing = JudgeTiming(judge_duration_seconds=round(duration, 6), measured_at=utc_now_iso())
    atomic_write_json(directory / "timing.json", timing.to_json_dict())
    (directory / "error.log").unlink(missing_ok=True)  # a stale failure of an earlier attempt
    log.info(
        "Judge %02d of %s: valid, score %s, passed %s",
        slot,
        "/".join(directory.parts[-5:-2]),
        judgment.score,
        judgment.passed,
    )
    return JudgeSlotOutcome(
        slot=slot,
        model=model,
        valid=True,
        score=judgment.score,
        passed=judgment.passed,
        grade=judgment.grade,
        reasoning=judgment.reasoning,
        criteria_scores=judgment.criteria_scores,
        duration_seconds=round(duration, 6),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        attempts=len(responses),
    )


def _invalid(
    slot: int,
    model: str,
    kind: FailureClass,
    message: str,
    start: float,
    tokens_in: int,
    tokens_out: int,
    attempts: int,
) -> JudgeSlotOutcome:
    return JudgeSlotOutcome(
        slot=slot,
        model=model,
        valid=False,
        score=None,
        passed=None,
        grade=None,
        reasoning=f"Judge failed: {message}",
        failure_kind=kind,
        failure_message=message,
        duration_seconds=round(time.monotonic() - start, 6),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        attempts=attempts,
    )
