"""Classification as Prefect tasks: one task per chunk of ~50 runs, per-run results inside.

One Prefect task costs 4-5 ms in the client and ~20 ms to record on a SQLite server, so one task
per run does not hold at 10,000 runs; chunks of 50 cost almost nothing (measured, see
``../shared/notes/prefect-3.9-facts.md``). The body is :func:`experiment.scan.classify_chunk`,
the very function the in-process dry run uses.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from experiment.scan import RunEntry, classify_chunk


@task(name="classify-runs", task_run_name="classify {labels[0]} (+{extra_count})", cache_policy=None)  # type: ignore[call-overload, untyped-decorator]  # None: no policy; stubs lack it
def classify_runs(experiment_dir: str, labels: list[str], extra_count: int = 0) -> list[RunEntry]:
    """Classify a chunk of runs of one experiment (a pure read; never cached)."""
    return classify_chunk(Path(experiment_dir), labels)
