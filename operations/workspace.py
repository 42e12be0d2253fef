"""Preparing a run's workspace: a git worktree at ``task_commit`` with the subtest's resources.

This is step 4-7 of the original ``rerun_single_run`` (spec §3.3), done once per attempt:

1. create ``run_NN/`` (it must not exist: the caller archives any previous attempt first with
   :func:`operations.archive.archive_run`; we never mutate a run dir we did not create, spec §8.1);
2. ``git worktree prune``, ``git branch -D <branch>``, ``git worktree add -b <branch> <ws>
   <task_commit>`` exactly as the original, logged to ``run_NN/cmd_0000_*.log`` and replayable
   from ``run_NN/worktree_create.sh``. An "already exists" failure is cleaned up and retried once;
   any other failure is an :class:`~experiment.failures.AttemptFailed` of class INFRASTRUCTURE;
3. compose ``CLAUDE.md`` and ``.claude/`` (:func:`experiment.compose.compose_workspace`) and commit
   them as ``[scylla] Initialize test configuration`` so the agent sees them as existing state;
4. write ``task_prompt.md`` and ``agent/prompt.md`` (the task prompt with the thinking keyword).

Unlike the original, every input is resolved *before* anything is created (subtest, prompt, tiers
dir), and a failure after the worktree exists removes the worktree, the branch and the run dir
again, so a failed preparation leaves the run exactly as the archive step left it (never started)
and a retry starts clean. The prompt is read from the experiment (``<exp>/prompt.md``), never
relative to the current directory (spec §8.14).

Plain functions, no Prefect: the flow wraps them in tasks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel

from experiment.compose import compose_workspace, manifest_dict
from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed, Failure, FailureClass
from experiment.jsonio import atomic_write_json, atomic_write_text, executable_mode
from experiment.layout import RunKey
from experiment.locks import repository_lock
from experiment.scan import ExperimentContext
from experiment.tiers import TiersDir, find_subtest

__all__ = [
    "CONFIG_COMMIT_MESSAGE",
    "GIT_IDENTITY",
    "THINKING_KEYWORDS",
    "WorkspaceInfo",
    "agent_prompt_text",
    "git",
    "prepare_workspace",
    "remove_worktree",
    "resolve_task_prompt",
    "run_branch",
]

log = logging.getLogger(__name__)

GIT_IDENTITY = [
    "-c",
    "user.name=scylla-repair",
    "-c",
    "user.email=scylla-repair@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.hooksPath=/dev/null",  # the task repo's hooks must not run (or fail) on our commits
]
"""``git -c`` options for every commit we make: a fixed identity, no signing, no hooks."""

CONFIG_COMMIT_MESSAGE = "[scylla] Initialize test configuration"
"""Subject of the commit holding ``CLAUDE.md``/``.claude/`` (the judge diffs from it)."""

THINKING_KEYWORDS = {"Low": "think", "High": "think hard", "UltraThink": "ultrathink"}
"""Prompt prefix per ``config.thinking_mode``; ``None`` (and anything unknown) adds nothing."""

WORKTREE_TIMEOUT = 60.0
"""Seconds allowed for ``git worktree add`` (as the original)."""

BRANCH_PREFIX_CHARS = 8
"""How much of the experiment id prefixes a run's branch (ProjectScylla's ``experiment_id[:8]``)."""

_UNSAFE_REF_CHARS = re.compile(r"[^A-Za-z0-9._-]")

_PREP_FILES = {"cmd_0000_stdout.log", "cmd_0000_stderr.log", "worktree_create.sh", "workspace"}


class WorkspaceInfo(BaseModel):
    """What :func:`prepare_workspace` created; everything the agent step needs."""

    run_dir: Path
    """The new ``run_NN/`` directory."""
    workspace: Path
    """``run_NN/workspace``: the git worktree the agent works in."""
    branch: str
    """The worktree's branch (``<experiment_id[:8]>_T0_00_run_01``, see :func:`run_branch`)."""
    base_repo: Path
    """The repository the worktree belongs to."""
    task_commit: str
    """The commit the worktree was created at."""
    prompt_file: Path
    """``run_NN/agent/prompt.md``, the file passed to the agent."""
    config_committed: bool
    """True when ``CLAUDE.md``/``.claude`` were committed (something was staged)."""
    claude_md_hash: str | None = None
    """sha256 of the composed ``CLAUDE.md`` (None when the subtest has none)."""
    compose_warning: str | None = None
    """What lenient composition skipped (a resource missing from the tiers checkout), if anything."""


# --------------------------------------------------------------------------------------------------
# git
# --------------------------------------------------------------------------------------------------


def run_branch(experiment_id: str, key: RunKey) -> str:
    """The branch of a run's worktree: ``<experiment_id[:8]>_<tier>_<subtest>_run_NN``.

    Current ProjectScylla names a run's branch this way (the experiment id's first 8 characters,
    an underscore, then the run's own name) so that experiments sharing one base repository do not
    take each other's branches; older versions (and the sample) used the bare ``T0_00_run_01``,
    which ``git branch -D`` before each worktree would steal from another experiment. Without an
    experiment id the bare name is used, as ProjectScylla does. Characters git refuses in a branch
    name (spaces, ``~^:?*[\\``) become ``_``; an id ProjectScylla could use is kept as it is.
    """
    prefix = _UNSAFE_REF_CHARS.sub("_", experiment_id[:BRANCH_PREFIX_CHARS])
    return f"{prefix}_{key.branch}" if prefix else key.branch


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"  # we match git's English messages ("already exists")
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def git(
    repo: Path, *args: str, timeout: float = 60.0, identity: bool = False
) -> subprocess.CompletedProcess[str]:
    """``git [identity] -C <repo> <args>``, captured, never raising on a non-zero exit.

    A timeout or a missing git binary comes back as returncode -1 with the reason in stderr, so
    callers have one shape to handle.
    """
    argv = ["git", *(GIT_IDENTITY if identity else []), "-C", str(repo), *args]
    administrative = args[:1] in (("worktree",), ("branch",))
    try:
        with repository_lock(repo) if administrative else contextlib.nullcontext():
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_git_env(),
                stdin=subprocess.DEVNULL,
            )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, -1, _text(exc.stdout), f"timed out after {timeout:.0f}s")
    except OSError as exc:
        return subprocess.CompletedProcess(argv, -1, "", f"cannot run git: {exc}")


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _quiet(repo: Path, *args: str) -> None:
    """Run a cleanup git command; log (never raise) when it fails."""
    result = git(repo, *args)
    if result.returncode != 0:
        log.debug("git %s in %s failed (ignored): %s", " ".join(args), repo, result.stderr.strip())


def remove_worktree(base_repo: Path, workspace: Path, branch: str) -> None:
    """Remove a worktree and its branch after a failure; errors are logged, never raised.

    ``worktree remove --force`` deletes the checkout; ``prune`` drops a registration whose
    directory is already gone; then the branch is deleted so the name can be reused (spec §8.10).
    A leftover directory is removed only when it is empty: this never deletes unknown content.
    """
    base_repo, workspace = Path(base_repo), Path(workspace)
    if base_repo.exists():
        _quiet(base_repo, "worktree", "remove", "--force", str(workspace))
        _quiet(base_repo, "worktree", "prune")
        _quiet(base_repo, "branch", "-D", branch)
    if workspace.is_dir():
        try:
            workspace.rmdir()
        except OSError:
            log.warning("Workspace %s still exists after removing its worktree", workspace)


def _create_worktree(base: Path, workspace: Path, branch: str, commit: str, run_dir: Path) -> None:
    """The original's worktree dance (spec §3.3 step 4), logged like the original."""
    command = ["git", "-C", str(base), "worktree", "add", "-b", branch, str(workspace), commit]
    atomic_write_text(
        run_dir / "worktree_create.sh",
        f"#!/bin/bash\n# Worktree: {branch} @ {workspace}\n{shlex.join(command)}\n",
    )
    (run_dir / "worktree_create.sh").chmod(executable_mode())

    def attempt() -> subprocess.CompletedProcess[str]:
        result = git(base, "worktree", "add", "-b", branch, str(workspace), commit, timeout=WORKTREE_TIMEOUT)
        atomic_write_text(run_dir / "cmd_0000_stdout.log", result.stdout)
        atomic_write_text(run_dir / "cmd_0000_stderr.log", result.stderr)
        return result

    # A `git worktree add` killed midway (SIGKILL of the repair) leaves its registration locked
    # ("initializing"): prune skips it, `add` refuses the path ("missing but locked worktree"),
    # and the branch stays checked out there. Only this run's own workspace path is unlocked.
    _quiet(base, "worktree", "unlock", str(workspace))
    _quiet(base, "worktree", "prune")
    _quiet(base, "branch", "-D", branch)
    result = attempt()
    if result.returncode == 0:
        return
    if "already exists" not in result.stderr:
        raise AttemptFailed(
            Failure(FailureClass.INFRASTRUCTURE, f"Failed to create worktree: {result.stderr.strip()}")
        )
    log.warning("Worktree for %s already exists; cleaning up and retrying once", branch)
    _quiet(base, "worktree", "prune")
    _quiet(base, "worktree", "remove", "--force", "--force", str(workspace))  # even if locked
    _quiet(base, "branch", "-D", branch)
    shutil.rmtree(workspace, ignore_errors=True)
    result = attempt()
    if result.returncode != 0:
        raise AttemptFailed(
            Failure(
                FailureClass.INFRASTRUCTURE,
                f"Failed to create worktree even after cleanup: {result.stderr.strip()}",
            )
        )


def _commit_configuration(workspace: Path) -> bool:
    """Stage ``CLAUDE.md``/``.claude`` (also their deletion) and commit if anything is staged."""
    paths = []
    for name in ("CLAUDE.md", ".claude"):
        present = (workspace / name).exists()
        tracked = present or bool(git(workspace, "ls-files", "--", name).stdout.strip())
        if present or tracked:
            paths.append(name)
    if not paths:
        return False
    added = git(workspace, "add", "-A", "--", *paths)
    if added.returncode != 0:
        raise AttemptFailed(
            Failure(
                FailureClass.INFRASTRUCTURE, f"git add of the configuration failed: {added.stderr.strip()}"
            )
        )
    if git(workspace, "diff", "--cached", "--quiet").returncode == 0:
        return False
    committed = git(workspace, "commit", "-q", "--no-verify", "-m", CONFIG_COMMIT_MESSAGE, identity=True)
    if committed.returncode != 0:
        raise AttemptFailed(
            Failure(
                FailureClass.INFRASTRUCTURE,
                f"Committing the test configuration failed: {committed.stderr.strip()}",
            )
        )
    return True


# --------------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------------


def _checkout_root(tiers: TiersDir | None) -> Path | None:
    """The ProjectScylla checkout holding ``tests/claude-code/shared``, when that is its shape."""
    if tiers is None:
        return None
    shared = Path(tiers.shared_dir).absolute()
    if shared.parts[-3:] == ("tests", "claude-code", "shared"):
        return shared.parents[2]
    return None


def resolve_task_prompt(context: ExperimentContext) -> Path:
    """The experiment's task prompt: ``<exp>/prompt.md``, else ``config.task_prompt_file`` resolved
    against the experiment dir, then the tiers checkout root. Never the current directory (the
    original's bug, spec §3.3 step 7). Nothing found is a one-line RepairBlocked naming the paths."""
    tried = [context.layout.prompt_path]
    configured = Path(context.config.task_prompt_file) if context.config.task_prompt_file else None
    if configured is not None:
        if configured.is_absolute():
            tried.append(configured)
        else:
            tried.append(context.root / configured)
            root = _checkout_root(context.tiers_dir)  # type: ignore[arg-type]
            if root is not None:
                tried.append(root / configured)
    for path in tried:
        if path.is_file():
            return path
    raise RepairBlocked(
        "Task prompt not found",
        ", ".join(str(p) for p in tried),
        "put the task prompt at <experiment>/prompt.md",
    )


def agent_prompt_text(task_prompt: str, thinking_mode: str | None) -> str:
    """``agent/prompt.md``: the task prompt, prefixed by the thinking keyword and a blank line."""
    keyword = THINKING_KEYWORDS.get(thinking_mode or "None")
    return f"{keyword}\n\n{task_prompt}" if keyword else task_prompt


# --------------------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------------------


def _make_shared_dir(path: Path) -> None:
    """``agent/`` and ``judge/`` are mode 0777 in the original (a container user writes there)."""
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o777)


def prepare_workspace(
    context: ExperimentContext, key: RunKey, *, base_repo: Path, strict: bool = False
) -> WorkspaceInfo:
    """Create ``run_NN/`` with its worktree, composed resources and prompts (spec §3.3 steps 3-7).

    Raises RepairBlocked when the subtest, the tiers dir or the prompt cannot be found, or when the
    run dir already holds something (archive it first); AttemptFailed(INFRASTRUCTURE) when git
    fails. On any failure after the run dir was created, it is removed again with its worktree.
    ``strict=True`` makes a resource missing from the tiers checkout an error instead of a warning.
    """
    layout, config = context.layout, context.config
    base_repo = Path(base_repo).absolute()
    # -- resolve every input before creating anything
    tiers = context.require_tiers_dir()
    subtest = find_subtest(tiers, key.tier, key.subtest)
    if subtest is None:
        raise RepairBlocked(
            f"Subtest {key.subtest} not found in tier {key.tier}",
            tiers.subtests_dir,
            "pass --tiers-dir pointing at the ProjectScylla checkout the experiment was run with",
        )
    prompt_path = resolve_task_prompt(context)
    task_prompt = prompt_path.read_text(encoding="utf-8")

    run_dir = layout.run_dir(key)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RepairBlocked(
            f"Run directory of {key.label} already exists", run_dir, "archive it to .failed/ first"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    workspace = run_dir / "workspace"
    branch = run_branch(config.experiment_id, key)
    try:
        _create_worktree(base_repo, workspace, branch, config.task_commit, run_dir)
        log.info(
            "Worktree of %s: %s (branch %s at %s)", key.label, workspace, branch, config.task_commit[:12]
        )

        warning = None
        thinking = (config.thinking_mode or "None") != "None"
        try:
            composed = compose_workspace(
                workspace,
                tiers,
                key.tier,
                subtest,
                thinking_enabled=thinking,
                experiment_dir=context.root,
                strict=True,
            )
        except RepairBlocked as exc:
            if strict:
                raise
            # Strict composition checks everything before writing anything, so a failure here
            # left the workspace untouched; compose leniently and say what was skipped.
            warning = f"{exc} - composed without it"
            log.warning("%s: %s", key.label, warning)
            composed = compose_workspace(
                workspace,
                tiers,
                key.tier,
                subtest,
                thinking_enabled=thinking,
                experiment_dir=context.root,
                strict=False,
            )
        committed = _commit_configuration(workspace)

        manifest = layout.subtest_dir(key.tier, key.subtest) / "config_manifest.json"
        if not manifest.exists():
            atomic_write_json(manifest, manifest_dict(composed))

        atomic_write_text(run_dir / "task_prompt.md", task_prompt)
        agent_dir = run_dir / "agent"
        _make_shared_dir(agent_dir)
        prompt_file = agent_dir / "prompt.md"
        atomic_write_text(prompt_file, agent_prompt_text(task_prompt, config.thinking_mode))
    except BaseException:
        remove_worktree(base_repo, workspace, branch)
        _remove_own_run_dir(run_dir)
        raise
    return WorkspaceInfo(
        run_dir=run_dir,
        workspace=workspace,
        branch=branch,
        base_repo=base_repo,
        task_commit=config.task_commit,
        prompt_file=prompt_file,
        config_committed=committed,
        claude_md_hash=composed.claude_md_hash,
        compose_warning=warning,
    )


def _remove_own_run_dir(run_dir: Path) -> None:
    """Remove a run dir this call created (only our preparation files can be in it)."""
    unexpected = [
        p.name for p in run_dir.iterdir() if p.name not in _PREP_FILES | {"agent", "task_prompt.md"}
    ]
    if unexpected:
        log.warning("Leaving %s in place: it holds %s", run_dir, ", ".join(sorted(unexpected)))
        return
    shutil.rmtree(run_dir, ignore_errors=True)
