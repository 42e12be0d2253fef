"""The build/lint/test pipeline the judge prompt reports, run in the workspace as ProjectScylla runs it.

Same steps, commands, timeouts, N/A cases and wording as ProjectScylla, so a re-judged run's
pipeline section reads as its siblings' did:

* Python: ``python -m compileall -q .`` (then every ``*.py`` of the workspace root is run, its
  output cut to 500 characters), ``ruff check .``, ``pytest -v`` (exit 5, no tests collected,
  counts as passed and N/A), ``pre-commit run --all-files`` (a missing ``.pre-commit-config.yaml``
  counts as passed and N/A). A missing tool is N/A ("ruff not available, skipping format check").
* Mojo: ``pixi run mojo build .`` / ``mojo format .`` / ``mojo test`` (or, in the modular
  monorepo, ``./bazelw build //mojo/...``, ``./bazelw run format`` and ``pixi run tests``), then
  pre-commit.

The tools are looked up in ``SCYLLA_PIPELINE_TOOLS`` first when it is set (a bin dir, e.g. the
environment the experiment ran in, so a re-judged run's pipeline output comes from the very tool
versions its siblings' did), then in this interpreter's bin dir (our install ships ruff, pytest and
pre-commit), then on PATH, so no set-up is needed. Byte code goes to a ``PYTHONPYCACHEPREFIX``
outside the workspace, so the pipeline leaves no ``__pycache__`` the rubric would count against
the agent. Each command runs as an argument list in its own process group; a timeout kills the group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from operations.judge.pipeline_result import PipelineResult

__all__ = [
    "PIPELINE_TOOLS_ENV",
    "SCRIPT_OUTPUT_LIMIT",
    "is_modular_repo",
    "pipeline_env",
    "run_pipeline",
    "tool_path",
]

SCRIPT_OUTPUT_LIMIT = 500
"""Characters of a workspace script's stdout (and of its stderr) shown in the build step."""


PIPELINE_TOOLS_ENV = "SCYLLA_PIPELINE_TOOLS"
"""A bin dir whose tools the pipeline prefers (see the module docstring)."""


def tool_path() -> str:
    """PATH for the pipeline: ``SCYLLA_PIPELINE_TOOLS`` if set, then this interpreter's bin dir
    (where our install puts ruff, pytest, pre-commit), then the caller's PATH."""
    chosen = os.environ.get(PIPELINE_TOOLS_ENV, "").strip()
    dirs = [chosen] if chosen else []
    return os.pathsep.join([*dirs, str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])


def pipeline_env() -> dict[str, str]:
    """The pipeline's environment: ours, our tools first, byte code outside the workspace."""
    env = dict(os.environ)
    env["PATH"] = tool_path()
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "scylla_pycache")
    return env


@dataclass
class _Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def combined(self) -> str:
        return self.stdout + "\n" + self.stderr


class _NotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"[Errno 2] No such file or directory: '{name}'")


class _TimedOut(Exception):
    def __init__(self, argv: list[str], timeout: int) -> None:
        self.timeout = timeout
        super().__init__(f"Command '{argv!r}' timed out after {timeout} seconds")


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int) -> _Ran:
    """Run ``argv`` (its program looked up on the env's PATH); raise _NotFound/_TimedOut."""
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
    if program is None or not cwd.is_dir():
        raise _NotFound(argv[0] if program is None else str(cwd))
    try:
        proc = subprocess.Popen(
            [program, *argv[1:]],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise _NotFound(argv[0]) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise _TimedOut(argv, timeout) from None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the step left running in its group
    return _Ran(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


Step = tuple[bool, bool, str]
"""(passed, na, output) of one step."""


def _run_scripts(workspace: Path, env: dict[str, str]) -> list[str]:
    """Run every ``*.py`` of the workspace root, in name order, for functional verification."""
    lines: list[str] = []
    scripts = sorted(workspace.glob("*.py"))
    if scripts:
        lines.append("\n## Script Execution Results\n")
    for script in scripts:
        lines.append(f"\n### Running: python {script.name}")
        try:
            ran = _run(["python", script.name], workspace, env, 30)
        except _TimedOut:
            lines.append("Execution timed out (30s)")
            continue
        except _NotFound as exc:
            lines.append(f"Execution error: {exc}")
            continue
        lines.append(f"Exit code: {ran.code}")
        if ran.stdout:
            lines.append(f"Output:\n{ran.stdout[:SCRIPT_OUTPUT_LIMIT]}")
        if ran.stderr:
            lines.append(f"Stderr:\n{ran.stderr[:SCRIPT_OUTPUT_LIMIT]}")
    return lines


def _python_build(workspace: Path, env: dict[str, str]) -> Step:
    try:
        ran = _run(["python", "-m", "compileall", "-q", "."], workspace, env, 300)
    except (_TimedOut, _NotFound) as exc:
        return False, False, f"Error: {exc}"
    if ran.code != 0:
        return False, False, ran.combined
    lines = ["Python syntax check passed", *_run_scripts(workspace, env)]
    return True, False, "\n".join(lines)


def _checked(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: int, missing: str | None, na_when=None
) -> Step:
    """A step that passes on exit 0; ``missing`` is the N/A text when the tool is absent (None: a
    failure ``Error: ...``); ``na_when(ran)`` marks a run as passed-and-N/A."""
    try:
        ran = _run(argv, cwd, env, timeout)
    except _NotFound as exc:
        return (True, True, missing) if missing is not None else (False, False, f"Error: {exc}")
    except _TimedOut as exc:
        return False, False, f"Error: {exc}"
    if na_when is not None and na_when(ran):
        return True, True, ran.combined
    return ran.code == 0, False, ran.combined


def _precommit(workspace: Path, env: dict[str, str]) -> Step:
    return _checked(
        ["pre-commit", "run", "--all-files"],
        workspace,
        env,
        300,
        "pre-commit not available, skipping",
        lambda ran: ".pre-commit-config.yaml is not a file" in ran.combined,
    )


def _python_pipeline(workspace: Path, env: dict[str, str]) -> list[Step]:
    return [
        _python_build(workspace, env),
        _checked(["ruff", "check", "."], workspace, env, 120, "ruff not available, skipping format check"),
        _checked(
            ["pytest", "-v"], workspace, env, 600, "pytest not available, skipping", lambda r: r.code == 5
        ),
        _precommit(workspace, env),
    ]


def is_modular_repo(workspace: Path) -> bool:
    """The modular/mojo monorepo: ``bazelw`` at the root and a ``mojo/`` dir."""
    return (workspace / "bazelw").exists() and (workspace / "mojo").is_dir()


def _mojo_build(workspace: Path, env: dict[str, str], modular: bool) -> Step:
    argv, timeout = (
        (["./bazelw", "build", "//mojo/..."], 1800)
        if modular
        else (["pixi", "run", "mojo", "build", "."], 300)
    )
    try:
        ran = _run(argv, workspace, env, timeout)
    except _TimedOut as exc:
        return False, False, f"Build timed out after {exc.timeout} seconds"
    except _NotFound as exc:
        return False, False, f"Build tool not found: {exc}"
    return ran.code == 0, False, ran.combined


def _mojo_pipeline(workspace: Path, env: dict[str, str]) -> list[Step]:
    modular = is_modular_repo(workspace)
    mojo_dir = workspace / "mojo"
    if modular:
        fmt = _checked(["./bazelw", "run", "format"], workspace, env, 120, None)
        test_argv, test_cwd = ["pixi", "run", "tests"], mojo_dir
    else:
        fmt = _checked(
            ["pixi", "run", "mojo", "format", "."],
            mojo_dir if mojo_dir.is_dir() else workspace,
            env,
            120,
            None,
        )
        test_argv, test_cwd = ["pixi", "run", "mojo", "test"], workspace
    test = _checked(
        test_argv,
        test_cwd,
        env,
        600,
        "mojo test not available, skipping",
        lambda ran: "No tests found" in ran.combined or ran.code == 5,
    )
    return [_mojo_build(workspace, env, modular), fmt, test, _precommit(workspace, env)]


def run_pipeline(workspace: Path, language: str) -> PipelineResult:
    """Run the pipeline of ``language`` (python, else mojo, as ProjectScylla routes) in ``workspace``."""
    env = pipeline_env()
    workspace = Path(workspace)
    language = "python" if (language or "python").lower() == "python" else "mojo"
    steps = _python_pipeline(workspace, env) if language == "python" else _mojo_pipeline(workspace, env)
    (build, fmt, test, precommit) = steps
    return PipelineResult(
        language=language,
        build_passed=build[0],
        build_na=build[1],
        build_output=build[2],
        format_passed=fmt[0],
        format_na=fmt[1],
        format_output=fmt[2],
        test_passed=test[0],
        test_na=test[1],
        test_output=test[2],
        precommit_passed=precommit[0],
        precommit_na=precommit[1],
        precommit_output=precommit[2],
        all_passed=all(step[0] for step in steps),
    )
