"""A Rich progress bar for a repair running in this process.

The flow's :class:`tasks.artifacts.ProgressArtifact` notifies in-process listeners; this module
is one of them. It shows runs done / to do, failures so far, cost so far and the time left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tasks.artifacts import progress_listeners


@contextmanager
def terminal_progress(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    progress = Progress(
        TextColumn("[bold]repairing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("${task.fields[cost]:.2f}"),
        TimeRemainingColumn(),
        transient=True,
    )
    task_id = progress.add_task("repair", total=None, failed=0, cost=0.0)

    def listener(done: int, total: int, failed: int, cost: float) -> None:
        progress.update(task_id, completed=done, total=total, failed=failed, cost=cost)

    progress_listeners.append(listener)
    try:
        with progress:
            yield
    finally:
        progress_listeners.remove(listener)
