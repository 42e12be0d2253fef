"""One domain exception family, so every user-facing failure is a single line.

Each error names what is wrong, the path or value concerned, and what to do about it. The CLI
prints ``str(error)`` and exits with ``error.exit_code``; it never shows a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class ExperimentError(Exception):
    """A problem with the user's input or the experiment on disk (exit code 2)."""

    exit_code = 2

    def __init__(self, what: str, where: str | Path | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = str(where) if where is not None else None
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.what
        if self.where:
            text = f"{text}: {self.where}"
        if self.fix:
            text = f"{text} ({self.fix})"
        return text


class FormatError(ExperimentError):
    """A file exists but cannot be read as the format says (bad JSON, wrong types)."""


class ConfigError(ExperimentError):
    """The experiment's `config/experiment.json` is missing or unusable."""


class FilterError(ExperimentError):
    """A command-line filter names something that cannot exist (bad `--runs`, unknown tier)."""


class RepairBlocked(ExperimentError):
    """A repair cannot start (no base repository, no tiers dir); nothing has been moved."""
