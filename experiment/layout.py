"""Where things live in an experiment directory: one function per path rule.

Two layouts exist (spec §1.1). The flat layout keeps runs at ``<exp>/T0/00/run_01``; the phased
layout keeps finished runs under ``<exp>/completed/`` and running ones under ``<exp>/in_progress/``.
Like ProjectScylla's analysis loader we use the phased layout when either phase directory exists.
Tier and subtest aggregates live where ProjectScylla writes and reads them: its tier directory with
``completed=True`` (``<exp>/completed/T0/`` and ``<exp>/completed/T0/00/``) in the phased layout,
``<exp>/T0/`` and ``<exp>/T0/00/`` in the flat one (:meth:`ExperimentLayout.tier_dir`, the one rule).
Earlier scylla-repair versions wrote the phased layout's aggregates to ``<exp>/T0/``; those stale
copies are found by :meth:`ExperimentLayout.stale_tier_dir` and moved aside by the regeneration.

Anything below a ``.failed`` directory is an archived attempt and is never taken for a run.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from experiment.errors import ConfigError, RepairBlocked

FAILED_DIR = ".failed"
RUN_DIR = re.compile(r"^run_(\d{2,})$")
SUBTEST_DIR = re.compile(r"^\d{2}$")
TIER_DIR = re.compile(r"^T[0-6]$")
JUDGE_SLOT_DIR = re.compile(r"^judge_(\d{2,})$")


@dataclass(frozen=True, order=True)
class RunKey:
    """Identity of one expected run: tier, subtest and 1-based run number."""

    tier: str
    subtest: str
    run_number: int

    @property
    def run_name(self) -> str:
        return f"run_{self.run_number:02d}"

    @property
    def label(self) -> str:
        """``T0/00/run_01``, the name users see in every list."""
        return f"{self.tier}/{self.subtest}/{self.run_name}"

    @property
    def branch(self) -> str:
        """The git branch of the run's worktree (the original's naming, spec §3.3)."""
        return f"{self.tier}_{self.subtest}_{self.run_name}"

    @classmethod
    def parse(cls, label: str) -> RunKey:
        tier, subtest, run = label.strip("/").split("/")
        # RUN_DIR without the regex (this runs for every run of a scan): ``\d`` is isdecimal().
        if len(run) < 6 or not run.startswith("run_") or not run[4:].isdecimal():
            raise ValueError(f"not a run label: {label}")
        return cls(tier, subtest, int(run[4:]))


@dataclass(frozen=True)
class RunPaths:
    """Every bookkeeping file of one run dir that the repair reads or writes (spec §1.5)."""

    run_dir: Path

    @cached_property  # with judge_dir, the parent of most paths here: built once per run
    def agent_dir(self) -> Path:
        return self.run_dir / "agent"

    @property
    def agent_result(self) -> Path:
        return self.agent_dir / "result.json"

    @property
    def agent_stdout(self) -> Path:
        return self.agent_dir / "stdout.log"

    @property
    def agent_output(self) -> Path:
        return self.agent_dir / "output.txt"

    @property
    def agent_stderr(self) -> Path:
        return self.agent_dir / "stderr.log"

    @property
    def agent_timing(self) -> Path:
        return self.agent_dir / "timing.json"

    @property
    def command_log(self) -> Path:
        return self.agent_dir / "command_log.json"

    @property
    def workspace(self) -> Path:
        return self.run_dir / "workspace"

    @cached_property
    def judge_dir(self) -> Path:
        return self.run_dir / "judge"

    @property
    def judge_result(self) -> Path:
        return self.judge_dir / "result.json"

    @property
    def judge_timing(self) -> Path:
        return self.judge_dir / "timing.json"

    def judge_slot(self, slot: int) -> Path:
        """``judge/judge_NN`` for a 1-based slot."""
        return self.judge_dir / f"judge_{slot:02d}"

    def judge_slots_on_disk(self) -> list[int]:
        """1-based slot numbers of the ``judge/judge_NN`` dirs that exist."""
        if not self.judge_dir.is_dir():
            return []
        slots = []
        with os.scandir(self.judge_dir) as entries:
            for entry in entries:
                match = JUDGE_SLOT_DIR.match(entry.name)
                if match and entry.is_dir():
                    slots.append(int(match.group(1)))
        return sorted(slots)

    @property
    def run_result(self) -> Path:
        return self.run_dir / "run_result.json"

    @property
    def report_json(self) -> Path:
        return self.run_dir / "report.json"

    @property
    def report_md(self) -> Path:
        return self.run_dir / "report.md"


def is_archived(path: Path) -> bool:
    """True for anything inside a ``.failed`` archive."""
    return FAILED_DIR in Path(path).parts


class ExperimentLayout:
    """Path rules of one experiment directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    @cached_property
    def phased(self) -> bool:
        return (self.root / "completed").is_dir() or (self.root / "in_progress").is_dir()

    @property
    def config_path(self) -> Path:
        return self.root / "config" / "experiment.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.root / "checkpoint.json"

    @property
    def prompt_path(self) -> Path:
        return self.root / "prompt.md"

    @property
    def prefect_dir(self) -> Path:
        """Prefect result storage and our locks live here, inside the experiment."""
        return self.root / ".prefect"

    @property
    def backups_dir(self) -> Path:
        """Previous content of every derived file we overwrite: ``.backups/<UTC stamp>/<rel path>``."""
        return self.root / ".backups"

    def experiment_file(self, name: str) -> Path:
        """A root aggregate: ``result.json``, ``report.json``, ``report.md``, ``summary.md``,
        ``tier_comparison.json``."""
        return self.root / name

    def tier_dir(self, tier: str) -> Path:
        """Where the tier's aggregates live: ProjectScylla's ``get_tier_dir(exp, tier, completed=True)``
        (``<exp>/completed/T0``) in the phased layout, ``<exp>/T0`` in the flat one."""
        if self.phased:
            return self.root / "completed" / tier
        return self.root / tier

    def stale_tier_dir(self, tier: str) -> Path | None:
        """``<exp>/T0`` of a phased experiment when it holds only aggregates (no run dir, no
        ``.failed``): the copies earlier scylla-repair versions wrote there. None otherwise."""
        if not self.phased:
            return None
        candidate = self.root / tier
        if not candidate.is_dir() or candidate.is_symlink():
            return None
        for _dirpath, dirnames, _files in os.walk(candidate):
            if FAILED_DIR in dirnames or any(RUN_DIR.match(d) for d in dirnames):
                return None
        return candidate

    def tier_file(self, tier: str, name: str) -> Path:
        """A tier aggregate: ``result.json``, ``best_subtest.json``, ``report.json/md``, ``summary.md``."""
        return self.tier_dir(tier) / name

    def subtest_file(self, tier: str, subtest: str, name: str) -> Path:
        """A subtest aggregate: ``report.json``, ``report.md``, ``config_manifest.json``."""
        return self.subtest_dir(tier, subtest) / name

    def run_paths(self, key: RunKey) -> RunPaths:
        """The files of the run's directory (see :meth:`run_dir`)."""
        return RunPaths(self.run_dir(key))

    def subtest_dir(self, tier: str, subtest: str) -> Path:
        """Where the subtest's aggregates (report.json, config_manifest.json) live: in the
        tier's aggregate dir (:meth:`tier_dir`)."""
        return self.tier_dir(tier) / subtest

    def run_parent(self, tier: str, subtest: str) -> Path:
        """The directory holding the subtest's run dirs (and its ``.failed/``) in this layout."""
        if self.phased:
            return self.root / "completed" / tier / subtest
        return self.root / tier / subtest

    def run_dir(self, key: RunKey) -> Path:
        """The run's directory: in the phased layout the first of completed/ and in_progress/ that
        exists, else completed/ (where a repaired run is written)."""
        if self.phased:
            for phase in ("completed", "in_progress"):
                candidate = self.root / phase / key.tier / key.subtest / key.run_name
                if candidate.exists():
                    return candidate
            return self.run_parent(key.tier, key.subtest) / key.run_name
        return Path(self.run_dir_str(key))

    def run_dir_str(self, key: RunKey) -> str:
        """:meth:`run_dir` as a string; in the flat layout one f-string, with no ``Path`` object and
        no ``os.path.join`` (this runs for every expected run of a scan: the join alone was a tenth
        of the classification's time)."""
        if self.phased:
            return os.fspath(self.run_dir(key))
        sep = os.sep
        return f"{self._root_str}{sep}{key.tier}{sep}{key.subtest}{sep}{key.run_name}"

    @cached_property
    def _root_str(self) -> str:
        return os.fspath(self.root)

    def failed_dir(self, key: RunKey) -> Path:
        return self.run_parent(key.tier, key.subtest) / FAILED_DIR

    def next_archive_path(self, key: RunKey) -> Path:
        """``.failed/run_NN``, else ``run_NN_failed_1``, ``_2``, ...: the first free name."""
        base = self.failed_dir(key)
        candidate = base / key.run_name
        counter = 0
        while candidate.exists() or candidate.is_symlink():
            counter += 1
            candidate = base / f"{key.run_name}_failed_{counter}"
        return candidate

    def archived_attempts(self, key: RunKey) -> list[Path]:
        """Every archived attempt of a run, oldest name first."""
        base = self.failed_dir(key)
        if not base.is_dir():
            return []
        pattern = re.compile(rf"^{key.run_name}(_failed_\d+|_attempt_\d+)?$")
        return sorted(p for p in base.iterdir() if pattern.match(p.name))

    def recorded_subtests(self, tier: str) -> list[str]:
        """Subtest ids that the experiment itself records on disk for ``tier``."""
        found: set[str] = set()
        parents = [self.tier_dir(tier)]
        if self.phased:
            parents.append(self.root / "in_progress" / tier)
        for parent in parents:
            if parent.is_dir():
                with os.scandir(parent) as entries:
                    found.update(e.name for e in entries if e.is_dir() and SUBTEST_DIR.match(e.name))
        return sorted(found)

    def recorded_run_numbers(self, tier: str, subtest: str) -> list[int]:
        """Run numbers with a run dir on disk (archived attempts excluded)."""
        numbers: set[int] = set()
        parents = [self.run_parent(tier, subtest)]
        if self.phased:
            parents.append(self.root / "in_progress" / tier / subtest)
        for parent in parents:
            if parent.is_dir():
                for entry in os.scandir(parent):
                    match = RUN_DIR.match(entry.name)
                    if match and entry.is_dir():
                        numbers.add(int(match.group(1)))
        return sorted(numbers)

    # -- base repository (spec §3.1) ------------------------------------------------------------

    def base_repo_candidates(self, task_repo: str) -> list[Path]:
        """The centralized ``<exp>/../repos/<sha256(url)[:16]>`` then the legacy ``<exp>/repo``."""
        digest = hashlib.sha256(task_repo.encode()).hexdigest()[:16]
        return [self.root.parent / "repos" / digest, self.root / "repo"]

    def find_base_repo(self, task_repo: str) -> Path:
        """The first candidate that is really a git repository (unlike the original, which took a
        README-only ``repo/`` and failed later at ``git worktree add``)."""
        candidates = self.base_repo_candidates(task_repo)
        for candidate in candidates:
            if (candidate / ".git").exists():
                return candidate
        tried = ", ".join(str(c) for c in candidates)
        raise RepairBlocked(
            "Base repository not found",
            tried,
            "reruns need a git clone of the task repo containing task_commit; "
            "results can still be regenerated with --status results",
        )


def require_experiment_dir(path: Path) -> ExperimentLayout:
    """Validate that ``path`` is an experiment directory, with one-line errors otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError("Experiment directory not found", path, "check the path")
    if not path.is_dir():
        raise ConfigError("Not a directory", path, "pass the experiment directory")
    layout = ExperimentLayout(path)
    if not layout.config_path.is_file():
        raise ConfigError(
            "Experiment config not found",
            layout.config_path,
            "is this a ProjectScylla experiment directory (it must contain config/experiment.json)?",
        )
    return layout
