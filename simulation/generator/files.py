"""Where a generated experiment's files go, and how they are written.

Files are written directly (not atomically via ``experiment.jsonio.atomic_write_text``) because
the generator only ever writes into a fresh directory and speed matters; the JSON bytes still come
from ``experiment.jsonio.dumps`` so they match what the product writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from experiment.jsonio import dumps


class _JsonModel(Protocol):
    def to_json_dict(self) -> object: ...


def write_text(path: Path, content: str) -> None:
    """Write ``content`` as UTF-8."""
    path.write_text(content, encoding="utf-8")


def write_json(path: Path, model: _JsonModel) -> None:
    """Write a model of ``experiment.models`` the way the product serialises it."""
    path.write_text(dumps(model.to_json_dict()), encoding="utf-8")


@dataclass(frozen=True)
class ExperimentLayout:
    """The directory of a ``flat`` experiment (``T0/00/run_01``) or a ``phased`` one (HEAD's
    ``completed/`` and ``in_progress/``)."""

    exp: Path
    """The experiment directory."""
    kind: str
    """``flat`` or ``phased``."""

    def run_dir(self, tier: str, subtest: str, run: int, status: str) -> Path:
        """A run's directory; in the phased layout only finished runs sit under ``completed/``."""
        name = f"{tier}/{subtest}/run_{run:02d}"
        if self.kind == "phased":
            phase = "completed" if status in ("completed", "results") else "in_progress"
            return self.exp / phase / name
        return self.exp / name

    def tier_dir(self, tier: str) -> Path:
        """A tier's directory (results, best subtest, report)."""
        return (self.exp / "completed" if self.kind == "phased" else self.exp) / tier

    def subtest_dir(self, tier: str, subtest: str) -> Path:
        """A subtest's directory (manifest, report)."""
        return self.tier_dir(tier) / subtest
