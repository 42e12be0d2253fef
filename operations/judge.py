"""Judging a run: the judge prompt (built once), one Messages API call per slot, strict parsing.

The original judged through the ``claude`` CLI; we call the Anthropic Messages API directly with
httpx (``POST {base_url}/v1/messages``), so rate limits arrive as HTTP statuses instead of being
guessed from CLI text, and ``retry-after`` is honoured exactly. The mapping (spec §6):

=====================================  ==========================================================
429                                    AttemptFailed(RATE_LIMITED, retry_after = the header)
529 (overloaded)                       AttemptFailed(RATE_LIMITED)
500/502/503/504, connection errors     AttemptFailed(INFRASTRUCTURE) - transient
httpx timeout                          AttemptFailed(TIMEOUT)
401 / 403                              JudgeAuthError (a RepairBlocked: every call would fail)
404                                    JudgeConfigError (a RepairBlocked: unknown model/endpoint)
400 and other 4xx                      non-transient JUDGE_INVALID for this slot (e.g. a prompt
                                       too long): recorded as an invalid judgment, not retried
=====================================  ==========================================================

The judge prompt (spec §3.5) is assembled from the run as it is *right after the agent*, saved
once as ``run_dir/judge_prompt.md`` and reused by every later judge attempt: rebuilding it from a
workspace that was since reset made judges fail good runs (spec §8.1). Building it runs a small
Python pipeline in the workspace (syntax check, then the agent's new script), replayable from
``run_dir/commands/``.

Every slot's outcome is persisted in ``judge/judge_NN/``, valid or not (spec §8.7): an unusable
answer is recorded as ``is_valid: false`` (score 0, grade F) which consensus ignores - it is a
record, never a fallback score (spec §8.2). A transient failure is recorded the same way *and*
raised, so the caller's retry policy retries; a later success overwrites the slot atomically.

The API key lives in a SecretStr: it is sent in ``x-api-key`` and appears in no repr, log or file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed, Failure, FailureClass, parse_retry_after
from experiment.jsonio import atomic_write_json, atomic_write_text
from experiment.models import JudgeTiming, Judgment, grade_for_score, utc_now_iso
from experiment.scan import ExperimentContext
from operations.workspace import CONFIG_COMMIT_MESSAGE, git, resolve_task_prompt

__all__ = [
    "CLOSING_LINE",
    "JSON_REMINDER",
    "JUDGE_SYSTEM_PROMPT",
    "JudgeAuthError",
    "JudgeCall",
    "JudgeConfigError",
    "JudgeParseError",
    "JudgeSettings",
    "JudgeSlotOutcome",
    "build_judge_prompt",
    "call_judge",
    "ensure_judge_prompt",
    "parse_judgment",
    "run_judge_slot",
    "slot_dir",
]

log = logging.getLogger(__name__)

CLOSING_LINE = "Evaluate the agent's work using the rubric and criteria in your system prompt."
JSON_REMINDER = (
    "\n\n---\n\nIMPORTANT: Your previous answer could not be parsed. Respond with ONLY a valid JSON "
    "object with the keys score, passed, grade, reasoning and categories - no prose, no markdown "
    "outside a single ```json fenced block."
)
DIFF_LIMIT = 20_000
STEP_OUTPUT_LIMIT = 2_000
PIPELINE_TIMEOUT = 60.0

JUDGE_SYSTEM_PROMPT = """\
You are an expert software engineering evaluator. You judge the work an AI coding agent did on a
task, using the rubric in the user message, the agent's output, the files it changed, the git diff
and the build/lint/test pipeline results.

## Method

1. Go through every rubric category and every item in it.
   - "checklist" items are objective: award the item's points if the check is met, 0 if it is not,
     and partial points only when the item is partially met.
   - "subjective" items use engineering judgment: award points in proportion to quality, as a
     senior engineer reviewing the change would.
2. N/A handling: when an item's `na_condition` holds (for example "ruff not available in
   workspace"), mark the item's `achieved` and `max` as the string "N/A" and leave it out of the
   category's totals. A category whose items are all N/A is itself "N/A" and drops out of the
   weighted score; the remaining category weights are re-normalised to sum to 1.
3. Category score = achieved / max over its applicable items. Overall score = the weighted mean of
   the applicable category scores, using the rubric's weights, in [0, 1].
4. `passed` is your verdict: does the work meet the task's requirements well enough to accept it
   (the rubric's pass_threshold is guidance)?
5. Grade scale: S = 1.0 exactly, A >= 0.80, B >= 0.60, C >= 0.40, D >= 0.20, F below.
6. Judge the evidence you are given (pipeline output, diff, workspace state), not the agent's own
   claims about what it did.

## Output

Respond with ONLY a JSON object (optionally inside one ```json fenced block), nothing else:

{
  "score": 0.0,
  "passed": false,
  "grade": "F",
  "reasoning": "2-5 sentences: what was done well, what is missing or wrong",
  "categories": {
    "<category>": {
      "achieved": 0.0,
      "max": 0.0,
      "score": 0.0,
      "items": {"<ID>": {"achieved": 0.0, "max": 0.0, "reason": "one sentence"}}
    }
  }
}
"""


# --------------------------------------------------------------------------------------------------
# Settings and errors
# --------------------------------------------------------------------------------------------------


def _default_base_url() -> str:
    return os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"


class JudgeSettings(BaseModel):
    """How to reach the judge API. Build it with :meth:`from_env` inside the process that calls:
    the key is a SecretStr and serialises as ``**********``, so it does not survive being passed
    through a JSON boundary (a deployment parameter, a persisted task input) - by design."""

    base_url: str = Field(default_factory=_default_base_url)
    """API root (``ANTHROPIC_BASE_URL``, default https://api.anthropic.com); ``/v1/messages`` is added."""
    api_key: SecretStr
    """``ANTHROPIC_API_KEY``; sent as ``x-api-key`` only."""
    timeout_seconds: float = Field(default=300.0, gt=0)
    """Timeout of one HTTP request."""
    max_tokens: int = Field(default=4096, ge=1)
    """``max_tokens`` of the judge answer."""
    anthropic_version: str = "2023-06-01"
    """``anthropic-version`` header."""

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret or any(c.isspace() for c in secret):
            raise ValueError("the API key must be non-empty and contain no whitespace")
        return value

    @classmethod
    def from_env(cls, **overrides: Any) -> JudgeSettings:
        """Settings from ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``; no key is a one-line error."""
        key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
        if not key and "api_key" not in overrides:
            raise RepairBlocked(
                "ANTHROPIC_API_KEY is not set",
                None,
                "export ANTHROPIC_API_KEY=... (judges call the Anthropic Messages API; "
                "ANTHROPIC_BASE_URL selects a compatible server)",
            )
        values: dict[str, Any] = {"api_key": key}
        values.update(overrides)
        return cls(**values)

    @property
    def messages_url(self) -> str:
        return self.base_url.rstrip("/") + "/v1/messages"


class JudgeAuthError(RepairBlocked):
    """The API rejected the key (401/403): every judge call would fail the same way."""


class JudgeConfigError(RepairBlocked):
    """The API does not know the model or the endpoint (404): a configuration problem."""


class JudgeParseError(ValueError):
    """The judge's answer holds no usable judgment."""


class JudgeCall(BaseModel):
    """One successful Messages API exchange."""

    text: str
    """The concatenated text blocks of the answer."""
    model: str
    """The model that answered."""
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    duration_seconds: float = 0.0


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


# --------------------------------------------------------------------------------------------------
# The API call
# --------------------------------------------------------------------------------------------------


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    text = message or response.text[:300] or response.reason_phrase
    return f"HTTP {response.status_code}: {' '.join(str(text).split())}"


def call_judge(
    settings: JudgeSettings, model: str, system: str, prompt: str, client: httpx.Client | None = None
) -> JudgeCall:
    """One ``POST /v1/messages``; errors are raised classified (see the module table)."""
    body = {
        "model": model,
        "max_tokens": settings.max_tokens,
        "system": system,
        "messages": [{"role": "user", "content": prompt}],
    }
    headers = {
        "x-api-key": settings.api_key.get_secret_value(),
        "anthropic-version": settings.anthropic_version,
        "content-type": "application/json",
    }
    url = settings.messages_url
    start = time.monotonic()
    try:
        if client is None:
            with httpx.Client(timeout=settings.timeout_seconds) as own:
                response = own.post(url, json=body, headers=headers)
        else:
            response = client.post(url, json=body, headers=headers, timeout=settings.timeout_seconds)
    except httpx.TimeoutException as exc:
        raise AttemptFailed(
            Failure(
                FailureClass.TIMEOUT,
                f"Judge request timed out after {settings.timeout_seconds:g}s ({exc.__class__.__name__})",
            )
        ) from None
    except httpx.LocalProtocolError:
        # Never show the exception text: h11 quotes the offending header value (the key).
        raise JudgeConfigError(
            "The judge request could not be sent (an invalid header value)",
            url,
            "check that ANTHROPIC_API_KEY holds only the key, without spaces or newlines",
        ) from None
    except httpx.TransportError as exc:
        raise AttemptFailed(
            Failure(
                FailureClass.INFRASTRUCTURE,
                f"Cannot reach the judge API at {url}: {exc.__class__.__name__}: {exc}",
            )
        ) from None
    duration = time.monotonic() - start
    status = response.status_code
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise AttemptFailed(Failure(FailureClass.RATE_LIMITED, _error_message(response), retry_after))
    if status == 529:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise AttemptFailed(
            Failure(FailureClass.RATE_LIMITED, f"overloaded: {_error_message(response)}", retry_after)
        )
    if status >= 500:
        raise AttemptFailed(Failure(FailureClass.INFRASTRUCTURE, _error_message(response)))
    if status in (401, 403):
        raise JudgeAuthError(
            f"The judge API rejected ANTHROPIC_API_KEY ({_error_message(response)})",
            url,
            "check that ANTHROPIC_API_KEY is a valid key for this endpoint",
        )
    if status == 404:
        raise JudgeConfigError(
            f"Judge model or endpoint not found ({_error_message(response)})",
            url,
            f"check judge_models ({model}) in config/experiment.json and ANTHROPIC_BASE_URL",
        )
    if status >= 400:
        raise AttemptFailed(
            Failure(FailureClass.JUDGE_INVALID, f"Judge request rejected: {_error_message(response)}")
        )
    try:
        data = response.json()
        blocks = data.get("content") or []
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        usage = data.get("usage") or {}
    except (ValueError, AttributeError):
        raise AttemptFailed(
            Failure(FailureClass.INFRASTRUCTURE, f"Judge API returned an unreadable body (HTTP {status})")
        ) from None
    return JudgeCall(
        text=text,
        model=str(data.get("model") or model),
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        stop_reason=data.get("stop_reason"),
        duration_seconds=round(duration, 6),
    )


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)


def _balanced_objects(text: str):
    """Every ``{...}`` substring with balanced braces (strings and escapes respected), in order."""
    for start, char in enumerate(text):
        if char != "{":
            continue
        depth, in_string, escaped = 0, False, False
        for index in range(start, len(text)):
            c = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    yield text[start : index + 1]
                    break


def _loads_object(candidate: str) -> dict | None:
    try:
        value = json.loads(candidate)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _find_object(text: str) -> dict:
    stripped = text.strip()
    if not stripped:
        raise JudgeParseError("Judge returned empty response")
    found = _loads_object(stripped)
    if found is not None:
        return found
    for match in _FENCE.finditer(text):
        content = match.group(1).strip()
        if content.startswith("{"):
            found = _loads_object(content)
            if found is not None:
                return found
    first: dict | None = None
    for candidate in _balanced_objects(text):
        found = _loads_object(candidate)
        if found is None:
            continue
        if "score" in found:
            return found
        first = first or found
    if first is not None:
        return first
    raise JudgeParseError("Judge response does not contain valid JSON")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "pass", "passed")
    if isinstance(value, int | float):
        return bool(value)
    return False


def parse_judgment(text: str) -> Judgment:
    """The judgment in a judge's answer (spec §3.5): a bare object, else the first fenced block
    that holds one, else brace matching. ``score`` is required and clamped to [0, 1]; ``grade``
    is recomputed from it; ``passed`` is the judge's own boolean; ``criteria_scores`` comes from
    ``categories`` (or a legacy ``criteria_scores``). Raises JudgeParseError (a ValueError)."""
    data = _find_object(text)
    if "score" not in data:
        raise JudgeParseError("Judge response missing required 'score' field")
    try:
        score = float(data["score"])
    except (TypeError, ValueError):
        raise JudgeParseError(f"Judge score is not a number: {data['score']!r}") from None
    if score != score:  # NaN
        raise JudgeParseError("Judge score is NaN")
    score = min(1.0, max(0.0, score))
    criteria = data.get("categories")
    if not isinstance(criteria, dict):
        criteria = data.get("criteria_scores") if isinstance(data.get("criteria_scores"), dict) else None
    return Judgment(
        score=score,
        passed=_as_bool(data.get("passed")),
        grade=grade_for_score(score),
        reasoning=str(data.get("reasoning") or ""),
        is_valid=True,
        criteria_scores=criteria,
    )


# --------------------------------------------------------------------------------------------------
# The judge prompt
# --------------------------------------------------------------------------------------------------


def _baseline(workspace: Path, task_commit: str) -> str:
    """The commit the agent started from: our configuration commit when there is one."""
    log_out = git(workspace, "log", "--format=%H %s", f"{task_commit}..HEAD")
    if log_out.returncode == 0:
        for line in log_out.stdout.splitlines():
            sha, _, subject = line.partition(" ")
            if subject == CONFIG_COMMIT_MESSAGE:
                return sha
    return task_commit


_STATUS_WORDS = {
    "A": "created",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "modified",
}


def _changed_files(workspace: Path, baseline: str) -> list[tuple[str, str]]:
    """(path, created/modified/deleted/...) of everything that differs from ``baseline``,
    including uncommitted and untracked files (untracked dirs expanded)."""
    changes: dict[str, str] = {}
    diff = git(workspace, "diff", "--name-status", "--no-renames", baseline)
    for line in diff.stdout.splitlines():
        code, _, path = line.partition("\t")
        if path:
            changes[path] = _STATUS_WORDS.get(code[:1], "modified")
    untracked = git(workspace, "ls-files", "--others", "--exclude-standard")
    for path in untracked.stdout.splitlines():
        if path:
            changes[path] = "created"
    return sorted(changes.items())


def _patch(workspace: Path, baseline: str, changes: list[tuple[str, str]]) -> str:
    parts = [git(workspace, "diff", "--no-renames", baseline).stdout]
    tracked = set(git(workspace, "ls-files").stdout.splitlines())
    for path, what in changes:
        if what == "created" and path not in tracked:
            extra = git(workspace, "diff", "--no-index", "--", "/dev/null", path)
            parts.append(extra.stdout)
    text = "".join(parts)
    if len(text) > DIFF_LIMIT:
        text = text[:DIFF_LIMIT] + f"\n... (diff truncated: {len(text) - DIFF_LIMIT} more characters)\n"
    return text


def _truncate(text: str, limit: int = STEP_OUTPUT_LIMIT) -> str:
    return (
        text
        if len(text) <= limit
        else text[:limit] + f"\n... (truncated, {len(text) - limit} more characters)"
    )


def _run_step(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run one pipeline command in its own process group; (exit code, combined output)."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return -1, f"cannot run {argv[0]}: {exc}"
    try:
        out, _ = proc.communicate(timeout=PIPELINE_TIMEOUT)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = -1
        out = (out or b"") + f"\n(timed out after {PIPELINE_TIMEOUT:g}s)\n".encode()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return code, (out or b"").decode("utf-8", "replace")


def _write_script(path: Path, title: str, workspace: Path, command: list[str]) -> None:
    atomic_write_text(
        path,
        "#!/usr/bin/env bash\n"
        f"# {title}\n"
        "# Generated by scylla-repair\n\n"
        "set -euo pipefail\n\n"
        f"WORKSPACE={shlex.quote(str(workspace))}\n\n"
        'cd "$WORKSPACE"\n'
        f"{shlex.join(command)}\n",
    )
    path.chmod(0o755)


def _python_pipeline(run_dir: Path, workspace: Path, changes: list[tuple[str, str]]) -> tuple[bool, str]:
    """Syntax check plus, when the agent added or changed exactly one top-level script, running it.

    Byte code goes to a temporary ``PYTHONPYCACHEPREFIX`` so the pipeline leaves no
    ``__pycache__`` in the workspace (which the rubric would count against the agent).
    """
    commands = run_dir / "commands"
    commands.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="scylla-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
        env.update(PYTHONPYCACHEPREFIX=cache, PYTHONDONTWRITEBYTECODE="1")
        check = [python, "-m", "compileall", "-q", "."]
        _write_script(commands / "python_check.sh", "Python syntax check script", workspace, check)
        code, output = _run_step(check, workspace, env)
        check_ok = code == 0
        lines = ["Python syntax check passed" if check_ok else f"Python syntax check FAILED (exit {code})"]
        if output.strip():
            lines.append(output.rstrip())
        scripts = [
            path
            for path, what in changes
            if what in ("created", "modified") and "/" not in path and path.endswith(".py")
        ]
        run_ok = True
        steps = [("python_check.sh", "Python Syntax Check")]
        if len(scripts) == 1:
            script = scripts[0]
            command = [python, script]
            _write_script(commands / "python_run.sh", f"Run {script}", workspace, command)
            steps.append(("python_run.sh", f"Running {script}"))
            code, output = _run_step(command, workspace, env)
            run_ok = code == 0
            lines += [
                "",
                "## Script Execution Results",
                "",
                f"### Running: python {script}",
                f"Exit code: {code}",
            ]
            lines += ["Output:", output.rstrip()]
        text = "\n".join(lines) + "\n"
    atomic_write_text(commands / "python_build_output.log", text)
    run_all = (
        "#!/usr/bin/env bash\n# Run all build/lint/test tools\n# Generated by scylla-repair\n\n"
        'set -euo pipefail\n\nCOMMANDS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"\n'
    )
    for script_name, title in steps:
        run_all += f'\necho "=== {title} ==="\n"$COMMANDS_DIR/{script_name}"\n'
    atomic_write_text(commands / "run_all.sh", run_all)
    (commands / "run_all.sh").chmod(0o755)
    passed = check_ok and run_ok
    section = (
        f"**Overall Status**: {'ALL PASSED ✓' if passed else 'SOME FAILED ✗'}\n\n"
        f"### Python Build ({'PASSED' if passed else 'FAILED'})\n\n```\n{_truncate(text)}\n```\n"
    )
    return passed, section


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def build_judge_prompt(context: ExperimentContext, run_dir: Path, workspace: Path) -> str:
    """Assemble the judge prompt of spec §3.5 from the run as it is now (see ensure_judge_prompt).

    Commands run in the workspace only when it exists (spec §8.6); a missing workspace is said so
    in the prompt instead.
    """
    run_dir, workspace = Path(run_dir), Path(workspace)
    config = context.config
    parts: list[str] = []

    rubric = _read(context.root / "rubric.yaml")
    parts.append("## Rubric (Evaluation Criteria)\n")
    parts.append(f"```yaml\n{rubric.rstrip()}\n```\n" if rubric else "_No rubric.yaml in the experiment._\n")

    task = _read(run_dir / "task_prompt.md")
    if task is None:
        try:
            task = _read(resolve_task_prompt(context))
        except RepairBlocked:
            task = None
    parts.append("## Task Given to Agent\n")
    parts.append((task or "_Task prompt not found._").rstrip() + "\n")

    output = _read(run_dir / "agent" / "stdout.log")
    if output is None:
        output = _read(run_dir / "agent" / "output.txt")
    parts.append("## Agent's Output\n")
    parts.append((output.strip() if output and output.strip() else "_The agent produced no output._") + "\n")

    parts.append("## Workspace State After Agent Execution\n")
    is_repo = workspace.is_dir() and (workspace / ".git").exists()
    changes: list[tuple[str, str]] = []
    pipeline: str
    if not workspace.is_dir():
        parts.append("_The workspace no longer exists; no file state is available._\n")
    elif not is_repo:
        parts.append("_The workspace is not a git checkout; changes cannot be determined._\n")
    else:
        baseline = _baseline(workspace, config.task_commit)
        changes = _changed_files(workspace, baseline)
        if changes:
            listing = "\n".join(f"- `{path}` ({what})" for path, what in changes)
            parts.append(f"Files modified/created by agent:\n\n{listing}\n")
        else:
            parts.append("No files were modified or created by the agent.\n")
        patch = _patch(workspace, baseline, changes)
        if patch.strip():
            parts.append("## Git Diff (Patchfile)\n")
            parts.append(f"```diff\n{patch.rstrip()}\n```\n")

    parts.append("## Build/Lint/Test Pipeline Results\n")
    language = (config.language or "").lower()
    if not workspace.is_dir():
        pipeline = "_Pipeline not run: the workspace no longer exists._\n"
    elif language == "python":
        _, pipeline = _python_pipeline(run_dir, workspace, changes)
    else:
        pipeline = f"No pipeline for {config.language or 'unknown language'}.\n"
    parts.append(pipeline)
    parts.append("---\n")
    parts.append(CLOSING_LINE + "\n")
    return "\n".join(parts)


def ensure_judge_prompt(context: ExperimentContext, run_dir: Path, workspace: Path) -> str:
    """The run's saved ``judge_prompt.md``, building and saving it the first time only.

    Once saved it is never rebuilt, so later judge attempts see the workspace as the agent left
    it even if the workspace has since been reset or deleted (spec §8.1).
    """
    path = Path(run_dir) / "judge_prompt.md"
    saved = _read(path)
    if saved and saved.strip():
        return saved
    # Judge slots of one run may start together: one builds (and runs the pipeline), the others
    # wait and read. The lock is on the run dir itself, so no lock file is left in the run.
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        saved = _read(path)
        if saved and saved.strip():
            return saved
        prompt = build_judge_prompt(context, run_dir, workspace)
        atomic_write_text(path, prompt)
        return prompt
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------------------------------
# One slot
# --------------------------------------------------------------------------------------------------


def slot_dir(run_dir: Path, slot: int) -> Path:
    """``run_dir/judge/judge_NN`` (1-based)."""
    return Path(run_dir) / "judge" / f"judge_{slot:02d}"


def _write_slot_common(directory: Path, slot: int, model: str, settings: JudgeSettings) -> None:
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
        f"**Timestamp**: {utc_now_iso()}\n",
    )
    replay = directory / "replay.sh"
    atomic_write_text(
        replay,
        "#!/usr/bin/env bash\n"
        f"# Replay judge evaluation (slot {slot:02d}, model {model})\n"
        "# Generated by scylla-repair\n#\n"
        "# The judge is one Anthropic Messages API request: POST $ANTHROPIC_BASE_URL/v1/messages with\n"
        "# the scylla-repair judge system prompt and the run's judge_prompt.md as the user message.\n"
        "# The API key is read from ANTHROPIC_API_KEY; it is never stored here.\n"
        "# Run from the scylla-repair checkout (uv run bash <this file>).\n\n"
        "set -euo pipefail\n\n"
        'JUDGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"\n'
        ': "${ANTHROPIC_API_KEY:?export ANTHROPIC_API_KEY first}"\n\n'
        f"python -m operations.judge --model {shlex.quote(model)} "
        '--prompt "$JUDGE_DIR/../../judge_prompt.md" > "$JUDGE_DIR/replay_response.txt"\n\n'
        'echo "Judge response saved to $JUDGE_DIR/replay_response.txt"\n',
    )
    replay.chmod(0o755)


def _persist_failure(
    directory: Path, kind: FailureClass, message: str, responses: list[str], detail: str | None = None
) -> None:
    record = Judgment(
        score=0.0, passed=False, grade="F", reasoning=f"Judge failed: {message}", is_valid=False
    )
    atomic_write_json(directory / "judgment.json", record.to_json_dict())
    atomic_write_text(directory / "response.txt", responses[-1] if responses else "")
    atomic_write_text(directory / "stdout.log", _joined(responses))
    timing = JudgeTiming(
        judge_duration_seconds=0.0,
        measured_at=utc_now_iso(),
        failed=True,
        error=message,
        failure_class=kind.value,
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
    system: str = JUDGE_SYSTEM_PROMPT,
) -> JudgeSlotOutcome:
    """Judge once in slot ``slot`` (1-based) and persist the outcome in ``judge/judge_NN/``.

    An unparsable answer is retried once with a JSON-only reminder; if that fails too, an invalid
    judgment is recorded and returned (no exception). A transient failure (429/529/5xx/timeout/
    connection) is recorded and then raised as AttemptFailed for the caller's retry policy;
    JudgeAuthError/JudgeConfigError are recorded and raised as well.
    """
    directory = slot_dir(run_dir, slot)
    _write_slot_common(directory, slot, model, settings)
    start = time.monotonic()
    responses: list[str] = []
    tokens_in = tokens_out = 0
    judgment: Judgment | None = None
    parse_error: JudgeParseError | None = None
    current = prompt
    try:
        for attempt in (1, 2):
            call = call_judge(settings, model, system, current, client)
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


def main(argv: list[str] | None = None) -> int:
    """``python -m operations.judge --model M --prompt FILE``: one judge call, the answer on stdout
    (what a slot's ``replay.sh`` runs)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m operations.judge", description=main.__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        call = call_judge(JudgeSettings.from_env(), args.model, JUDGE_SYSTEM_PROMPT, args.prompt.read_text())
    except (AttemptFailed, RepairBlocked, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(call.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
