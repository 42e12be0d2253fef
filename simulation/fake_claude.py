#!/usr/bin/env python3
"""A protocol-speaking stand-in for the ``claude`` CLI (Claude Code) in headless mode.

Standard library only: it runs under any ``python3``.  Invoked as::

    claude --model <id> --print --output-format json --dangerously-skip-permissions \
        [--system-prompt S] [--tools T] [--agent NAME] [--max-turns N] <prompt file or prompt text>

(``--system-prompt``, ``--tools`` and ``--agent`` are accepted and otherwise ignored; the argv is
in the invocation log.)
    claude --version

Behaviour is chosen per invocation ("mode"):

1. ``FAKE_CLAUDE_SCRIPT`` -- path of a JSON file
   ``{"rules": [{"match": "T0/00/run_01", "modes": ["rate_limit", "success"]}], "default": "success"}``.
   The first rule whose ``match`` is a substring of the (absolute) cwd applies; its n-th invocation
   (counted in ``<script>.state.json`` under an exclusive file lock, so concurrent processes are safe)
   uses ``modes[n]``, the last mode repeating.  No matching rule -> ``default`` (else step 2).
2. ``FAKE_CLAUDE_MODE`` (default ``success``).

Modes: success, slow_success, fail, rate_limit, overloaded, hang.

Other environment variables:

- ``FAKE_CLAUDE_DELAY``: float seconds to sleep before answering (default 0).
- ``FAKE_CLAUDE_SLOW_DELAY``: delay of ``slow_success`` (default 2.0 s), added to FAKE_CLAUDE_DELAY.
- ``FAKE_CLAUDE_LOG``: JSON-lines invocation log; one ``start`` and one ``end`` event per process,
  appended under an exclusive lock.  Environment values are never logged.

The result objects it prints are built in ``fake_claude_results``. ``simulation/bin/claude`` puts
the project root on ``sys.path`` and calls :func:`main`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

from simulation.fake_claude_results import (
    HELLO_FILE,
    OVERLOADED_TEXT,
    RATE_LIMIT_TEXT,
    empty_model_usage,
    result_object,
    success_result,
    zero_usage,
)

VERSION = "2.1.12 (Claude Code)"
DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
MODES = ("success", "slow_success", "fail", "rate_limit", "overloaded", "hang")
HELLO_CONTENT = 'print("Hello, World!")\n'


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------- locking / log


@contextlib.contextmanager
def _locked(lock_path: str):
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _log(event: dict) -> None:
    path = os.environ.get("FAKE_CLAUDE_LOG")
    if not path:
        return
    line = (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, line)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- argv


def parse_args(argv: list[str]) -> dict:
    opts: dict = {
        "model": DEFAULT_MODEL,
        "print": False,
        "output_format": "text",
        "skip_permissions": False,
        "max_turns": None,
        "prompt": None,
        "version": False,
    }
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--version", "-v"):
            opts["version"] = True
        elif arg in ("--print", "-p"):
            opts["print"] = True
        elif arg == "--dangerously-skip-permissions":
            opts["skip_permissions"] = True
        elif arg in ("--system-prompt", "--tools", "--agent"):  # accepted (recorded in the log's argv)
            if i + 1 >= len(argv):
                raise UsageError(f"error: option '{arg}' argument missing")
            i += 1
        elif arg in ("--model", "--output-format", "--max-turns"):
            if i + 1 >= len(argv):
                raise UsageError(f"error: option '{arg}' argument missing")
            value = argv[i + 1]
            i += 1
            if arg == "--model":
                opts["model"] = value
            elif arg == "--output-format":
                if value not in ("text", "json", "stream-json"):
                    raise UsageError(f"error: option '--output-format' invalid value '{value}'")
                opts["output_format"] = value
            else:
                try:
                    opts["max_turns"] = int(value)
                except ValueError:
                    raise UsageError(f"error: option '--max-turns' invalid value '{value}'") from None
        elif arg.startswith("--model="):
            opts["model"] = arg.split("=", 1)[1]
        elif arg.startswith("--max-turns="):
            opts["max_turns"] = int(arg.split("=", 1)[1])
        elif arg.startswith("--output-format="):
            opts["output_format"] = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise UsageError(f"error: unknown option '{arg}'")
        else:
            if opts["prompt"] is not None:
                raise UsageError(f"error: too many arguments. Expected 1 argument but got '{arg}'")
            opts["prompt"] = arg
        i += 1
    return opts


def read_prompt(prompt_arg: str) -> str:
    """The product passes the absolute path of a prompt file; plain prompt text also works."""
    path = Path(prompt_arg)
    if path.is_absolute() and path.is_file():
        return path.read_text(encoding="utf-8", errors="replace")
    return prompt_arg


# --------------------------------------------------------------------------- mode selection


def select_mode(cwd: str) -> tuple[str, dict]:
    """Return (mode, info) where info describes how it was chosen (logged)."""
    script = os.environ.get("FAKE_CLAUDE_SCRIPT")
    if script:
        with open(script, encoding="utf-8") as fh:
            spec = json.load(fh)
        for index, rule in enumerate(spec.get("rules", [])):
            match = str(rule.get("match", ""))
            if match and match in cwd:
                modes = list(rule.get("modes") or [spec.get("default", "success")])
                key = f"{index}:{match}"
                state_path = script + ".state.json"
                with _locked(script + ".lock"):
                    try:
                        with open(state_path, encoding="utf-8") as fh:
                            state = json.load(fh)
                    except (FileNotFoundError, json.JSONDecodeError):
                        state = {}
                    n = int(state.get(key, 0))
                    state[key] = n + 1
                    tmp = f"{state_path}.{os.getpid()}.tmp"
                    with open(tmp, "w", encoding="utf-8") as fh:
                        json.dump(state, fh)
                    os.replace(tmp, state_path)
                mode = modes[min(n, len(modes) - 1)]
                return mode, {"rule": match, "n": n}
        if "default" in spec:
            return str(spec["default"]), {"rule": None}
    return os.environ.get("FAKE_CLAUDE_MODE", "success") or "success", {"rule": None}


# --------------------------------------------------------------------------- main


def _on_sigterm(signum, frame):  # pragma: no cover - exercised via subprocess
    raise SystemExit(128 + signum)


def _interruptible_sleep(seconds: float | None) -> None:
    """Sleep (forever if None) while SIGTERM/SIGINT exit the process (logging the end event)."""
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    old_int = signal.signal(signal.SIGINT, _on_sigterm)
    try:
        if seconds is None:
            while True:
                time.sleep(3600)
        elif seconds > 0:
            time.sleep(seconds)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run(argv: list[str]) -> int:
    started = time.monotonic()
    try:
        opts = parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if opts["version"]:
        sys.stdout.write(VERSION + "\n")
        return 0

    cwd = os.getcwd()
    try:
        mode, how = select_mode(cwd)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"fake-claude: cannot read FAKE_CLAUDE_SCRIPT: {exc}\n")
        return 2
    _log(
        {
            "event": "start",
            "pid": os.getpid(),
            "argv": argv,
            "cwd": cwd,
            "mode": mode,
            "rule": how.get("rule"),
            "n": how.get("n"),
            "time": time.time(),
        }
    )
    exit_code = 1
    try:
        exit_code = _run_mode(mode, opts, cwd, started)
    except SystemExit as exc:
        exit_code = exc.code if isinstance(exc.code, int) else 1
    finally:
        _log({"event": "end", "pid": os.getpid(), "exit_code": exit_code, "time": time.time()})
    return exit_code


def _run_mode(mode: str, opts: dict, cwd: str, started: float) -> int:
    if mode not in MODES:
        sys.stderr.write(f"fake-claude: unknown mode {mode!r} (expected one of {', '.join(MODES)})\n")
        return 2
    if not opts["print"]:
        sys.stderr.write("fake-claude: only headless --print mode is supported\n")
        return 2
    if opts["prompt"] is None:
        sys.stderr.write(
            "Error: Input must be provided either through stdin or as a prompt argument when using --print\n"
        )
        return 1
    prompt = read_prompt(opts["prompt"])
    model = opts["model"]

    delay = float(os.environ.get("FAKE_CLAUDE_DELAY", "0") or 0)
    if mode == "slow_success":
        delay += float(os.environ.get("FAKE_CLAUDE_SLOW_DELAY", "2.0") or 0)
    if mode == "hang":
        _interruptible_sleep(None)
    _interruptible_sleep(delay)

    if mode in ("success", "slow_success"):
        Path(cwd, HELLO_FILE).write_text(HELLO_CONTENT, encoding="utf-8")
        result = success_result(model, prompt, cwd, started)
        if opts["output_format"] == "json":
            _emit(result)
        else:
            sys.stdout.write(result["result"] + "\n")
        return 0

    if mode == "fail":
        sys.stderr.write("Error: simulated agent crash\n")
        obj = result_object(
            subtype="error_during_execution",
            is_error=True,
            started=started,
            num_turns=2,
            text="simulated failure",
            cost=0.0123,
            usage=zero_usage(),
            model_usage=empty_model_usage(model),
        )
    elif mode == "rate_limit":
        obj = result_object(
            subtype="success",
            is_error=True,
            started=started,
            num_turns=1,
            text=RATE_LIMIT_TEXT,
            cost=0,
            usage=zero_usage(),
            model_usage={},
        )
    else:  # overloaded
        obj = result_object(
            subtype="success",
            is_error=True,
            started=started,
            num_turns=1,
            text=OVERLOADED_TEXT,
            cost=0,
            usage=zero_usage(),
            model_usage={},
            extra={"api_error_status": 529},
        )
    if opts["output_format"] == "json":
        _emit(obj)
    else:
        sys.stdout.write(obj["result"] + "\n")
    return 1


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
