"""The files of a run's ``agent/`` directory (spec §1.5) that describe the command, as ProjectScylla
writes them: ``command_log.json``, ``replay.sh`` and ``MODEL.md``.

``replay.sh`` and ``command_log.json`` only ever contain scrubbed text (see
:class:`operations.agent.command.Scrubber`); secret variables appear as commented-out exports.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import threading
from pathlib import Path

from experiment.jsonio import atomic_write_json, atomic_write_text
from experiment.models import CommandLog, CommandLogEntry, utc_now_iso
from operations.agent.command import REDACTED, AgentSettings, Scrubber, is_sensitive

__all__ = [
    "STDERR_FILE",
    "STDOUT_FILE",
    "claude_version",
    "write_command_log",
    "write_model_md",
    "write_replay",
]

VERSION_TIMEOUT = 10.0
STDOUT_FILE, STDERR_FILE = "cmd_0000_stdout.log", "cmd_0000_stderr.log"


def write_command_log(agent_dir: Path, entry: CommandLogEntry) -> None:
    """``command_log.json`` with the one command of the attempt."""
    record = CommandLog(generated_at=utc_now_iso(), total_commands=1, commands=[entry])
    atomic_write_json(agent_dir / "command_log.json", record.to_json_dict())


def write_replay(
    agent_dir: Path,
    argv: list[str],
    workspace: Path,
    settings: AgentSettings,
    started_at: str,
    duration: float,
    exit_code: int,
    scrub: Scrubber,
) -> None:
    """``replay.sh``: the command with its directory and (non-secret) ``extra_env``, runnable."""
    env_lines = [
        "# export ANTHROPIC_API_KEY='your-anthropic-api-key-here'",
        "# export OPENAI_API_KEY='your-openai-api-key-here'",
    ]
    for name, value in sorted(settings.extra_env.items()):
        if is_sensitive(name):
            env_lines.append(f"# export {name}='{REDACTED}'")
        else:
            env_lines.append(f"export {name}={shlex.quote(value)}")
    text = (
        "#!/bin/bash\n"
        f"# Generated: {utc_now_iso()}\n"
        "# Total commands: 1\n"
        "#\n"
        "# This script executes commands for the test run.\n"
        "# All output is captured to stdout/stderr logs.\n"
        "#\n"
        "set -e  # Exit on first error\n"
        "set -x  # Print commands as they execute\n"
        "\n"
        "# Environment variables (secrets redacted)\n"
        "# Uncomment and fill in as needed:\n" + "\n".join(env_lines) + "\n\n# Commands\n\n"
        f"# Command 1/1 at {started_at}\n"
        f"# Duration: {duration:.2f}s, Exit: {exit_code}\n"
        f"cd {shlex.quote(str(workspace))}\n"
        f"{shlex.join(argv)}\n"
    )
    path = agent_dir / "replay.sh"
    atomic_write_text(path, scrub(text))
    path.chmod(0o755)


_VERSIONS: dict[tuple[str, int, int], str] = {}
_VERSIONS_LOCK = threading.Lock()


def claude_version(binary: str, env: dict[str, str], cwd: Path) -> str:
    """``BINARY --version``'s first line, or ``unknown`` (never raises).

    Asked once per binary file (its path, mtime and size) per process: the real ``claude`` is a
    Node program whose ``--version`` costs a few hundred ms of CPU, and it does not change between
    the runs of a repair (a binary replaced mid-repair is asked again)."""
    program = shutil.which(binary, path=env.get("PATH"))
    key = None
    if program is not None:
        with contextlib.suppress(OSError):
            stat = os.stat(program)
            key = (os.path.realpath(program), stat.st_mtime_ns, stat.st_size)
    with _VERSIONS_LOCK:
        known = _VERSIONS.get(key) if key else None
    if known is not None:
        return known
    version = _ask_version(binary, env, cwd)
    if key is not None and not version.startswith("unknown"):
        with _VERSIONS_LOCK:
            _VERSIONS[key] = version
    return version


def _ask_version(binary: str, env: dict[str, str], cwd: Path) -> str:
    try:
        result = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            env=env,
            cwd=cwd if cwd.is_dir() else None,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc.__class__.__name__})"
    version = result.stdout.strip().splitlines()
    return version[0] if result.returncode == 0 and version else "unknown"


def write_model_md(agent_dir: Path, model: str, version: str) -> None:
    """``MODEL.md``: the agent model and the agent binary's version."""
    atomic_write_text(
        agent_dir / "MODEL.md",
        "# Agent Model Information\n\n"
        f"**Model**: {model}\n"
        f"**Claude Code Version**: {version}\n"
        f"**Timestamp**: {utc_now_iso()}\n\n"
        "## Configuration\n\n"
        f"- Model ID: {model}\n"
        "- Output Format: json\n"
        "- Permissions: dangerously-skip-permissions (for testing)\n\n"
        "## Environment\n\n"
        "- Generated by scylla-repair\n",
    )
