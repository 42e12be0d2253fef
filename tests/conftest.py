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


@pytest.fixture
def fixture_experiment(tmp_path: Path) -> Path:
    """A writable copy of the real experiment, placed where no tiers dir can be auto-detected."""
    return copy_fixture_experiment(tmp_path / "exp" / "2026-01-20T06-13-07-test-001")
