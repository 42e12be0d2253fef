"""Test-wide setup: a private PREFECT_HOME, and copies of the real fixture experiment.

Prefect is configured through the environment before anything imports it, so no test touches
``~/.prefect`` and nothing ever talks to a non-loopback address.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="scylla-repair-prefect-home-"))
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)
# Prefect's temporary per-process server, not the background one `rerun-agents` starts for users
# (cli/local_server.py): no test leaves a server behind. The integration tests share one real
# server instead (tests/integration/conftest.py).
os.environ["SCYLLA_REPAIR_EPHEMERAL"] = "1"

FIXTURES = Path(__file__).parent / "fixtures"
DRYRUN_FIXTURE = FIXTURES / "scylla-test001-dryrun"
TIERS_FIXTURE = FIXTURES / "scylla-tiers"


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def copy_fixture_experiment(dest: Path) -> Path:
    """A writable copy of the real dry-run experiment at ``dest``."""
    shutil.copytree(DRYRUN_FIXTURE, dest, symlinks=True)
    make_writable(dest)
    return dest


FAKE_JUDGE_SYSTEM_PROMPT = "You are the test checkout's judge. Score with care.\n"
"""Test text standing in for ProjectScylla's config/judge/system_prompt.md (not ours to copy)."""


def make_fake_checkout(root: Path, system_prompt: str = FAKE_JUDGE_SYSTEM_PROMPT) -> Path:
    """A small fake ProjectScylla checkout: the BSD-3 tiers fixture plus a judge system prompt."""
    shutil.copytree(TIERS_FIXTURE, root)
    prompt = root / "config" / "judge" / "system_prompt.md"
    prompt.parent.mkdir(parents=True)
    prompt.write_text(system_prompt)
    return root


def strip_judgments(experiment: Path, runs: list[str]) -> dict[str, str]:
    """Remove what judging produced in completed ``runs`` (T0/00/run_01, ...): the judges, the
    judge prompt, the pipeline scripts and the run's results. Returns the stored judge prompts."""
    stored = {}
    for run in runs:
        run_dir = experiment / run
        stored[run] = (run_dir / "judge_prompt.md").read_text()
        for name in ("judge", "commands"):
            shutil.rmtree(run_dir / name)
        for name in ("judge_prompt.md", "run_result.json", "report.json", "report.md"):
            (run_dir / name).unlink(missing_ok=True)
    return stored


@pytest.fixture
def fixture_experiment(tmp_path: Path) -> Path:
    """A writable copy of the real experiment, placed where no tiers dir can be auto-detected."""
    return copy_fixture_experiment(tmp_path / "exp" / "2026-01-20T06-13-07-test-001")
