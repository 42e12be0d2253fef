"""The run files an aggregate rebuild reads: each run's ``run_result.json`` and timing files.

Reading and parsing them is most of a rebuild's time (three small JSON files per run, ~28,000
for 10,000 runs). A tier's runs are read in one call, by string paths, and, when the caller
asks, in forked reader processes (one per core): the parsed objects come back to be validated
where they are used, so what is read, skipped or approximated is the same either way.

Forked readers only where no other thread is at work (:mod:`experiment.forked`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

from experiment.forked import MapFunction
from experiment.regenerate.clock import Interval, run_interval
from experiment.regenerate.files import read_dict


class RunRead(NamedTuple):
    """What the rebuild needs of one run dir that has a ``run_result.json`` file."""

    result: dict[str, Any] | None
    """The parsed ``run_result.json`` object (validated by the caller); None when it cannot be
    read, is not JSON or is not an object (all three make the run skipped)."""
    interval: Interval | None
    """(agent start, judge end) from the timing files; None when unknown or not readable."""


RunReader = Callable[[list[str]], list[RunRead | None]]
"""Reads run dirs, in order; None for a run dir without a ``run_result.json`` file."""


def read_run(run_dir: str) -> RunRead | None:
    """One run dir's :class:`RunRead`, or None when it has no ``run_result.json`` file."""
    path = f"{run_dir}/run_result.json"
    if not os.path.isfile(path):
        return None
    result = read_dict(path)
    return RunRead(result, run_interval(run_dir) if result is not None else None)


def read_runs(run_dirs: list[str]) -> list[RunRead | None]:
    """:func:`read_run` of each run dir, in this process."""
    return [read_run(d) for d in run_dirs]


_CHUNK = 200
"""Run dirs per task sent to a reader process (a tier has ~1,500 runs at 10,000)."""


def reader(map_: MapFunction) -> RunReader:
    """A :data:`RunReader` that reads through ``map_`` (:func:`experiment.forked.forked_map`)."""

    def read(run_dirs: list[str]) -> list[RunRead | None]:
        chunks = [run_dirs[i : i + _CHUNK] for i in range(0, len(run_dirs), _CHUNK)]
        return [run for chunk in map_(read_runs, chunks) for run in chunk]

    return read
