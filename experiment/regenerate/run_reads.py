"""The run files an aggregate rebuild reads: each run's ``run_result.json`` and timing files.

Reading and parsing them is most of a rebuild's time (three small JSON files per run, ~28,000
for 10,000 runs), so a tier's runs are read in one call, by string paths (no ``Path`` objects in
the loop); the parsed objects are validated where they are used
(:mod:`~experiment.regenerate.tier_fold`).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from experiment.regenerate.clock import Interval, run_interval
from experiment.regenerate.files import read_dict


class RunRead(NamedTuple):
    """What the rebuild needs of one run dir that has a ``run_result.json`` file."""

    result: dict[str, Any] | None
    """The parsed ``run_result.json`` object (validated by the caller); None when it cannot be
    read, is not JSON or is not an object (all three make the run skipped)."""
    interval: Interval | None
    """(agent start, judge end) from the timing files; None when unknown or not readable."""


def read_run(run_dir: str, *, timings: bool = True) -> RunRead | None:
    """One run dir's :class:`RunRead` (its interval only when ``timings``: two more files), or
    None when it has no ``run_result.json`` file."""
    path = f"{run_dir}/run_result.json"
    if not os.path.isfile(path):
        return None
    result = read_dict(path)
    return RunRead(result, run_interval(run_dir) if timings and result is not None else None)


def read_runs(run_dirs: list[str], *, timings: bool = True) -> list[RunRead | None]:
    """:func:`read_run` of each run dir, in order (None for a run dir without a ``run_result.json``)."""
    return [read_run(d, timings=timings) for d in run_dirs]
