"""A Rich progress bar for a repair running in this process, with the log printed above it.

The flow's :class:`tasks.artifacts.ProgressArtifact` notifies in-process listeners as each run
finishes; this module is one of them. The bar shows runs done / to do, ok / failed / deferred,
the cost so far and the time left. While it is shown, every terminal log handler writes through
the bar's console, so log lines appear above the bar instead of inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tasks.artifacts import RepairProgress, progress_listeners


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]repairing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ok {task.fields[ok]}  failed {task.fields[failed]}  deferred {task.fields[deferred]}"),
        TextColumn("${task.fields[cost]:.2f}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def terminal_progress(enabled: bool, console: Console | None = None) -> Iterator[Progress | None]:
    """Show the bar on stderr while the body runs (nothing when not ``enabled``)."""
    if not enabled:
        yield None
        return
    progress = make_progress(console or Console(stderr=True))
    task_id = progress.add_task("repair", total=None, ok=0, failed=0, deferred=0, cost=0.0)

    def listener(state: RepairProgress) -> None:
        progress.update(
            task_id,
            completed=state.done,
            total=state.total,
            ok=state.ok,
            failed=state.failed,
            deferred=state.deferred,
            cost=state.cost_usd,
        )

    progress_listeners.append(listener)
    try:
        with progress, ExitStack() as stack:
            stack.enter_context(logs_above(progress.console))
            yield progress
    finally:
        progress_listeners.remove(listener)


def _terminal_handlers() -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger()] + [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.handlers and name.split(".")[0] == "prefect"
    ]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]


@contextmanager
def logs_above(console: Console) -> Iterator[None]:
    """Route every terminal log handler through ``console`` (a live display prints above itself).

    Prefect's console handler prints with a Rich console of its own: that one is swapped; plain
    stream handlers get a Rich file proxy in place of their stream. Both are restored after.
    """
    restore: list[tuple[logging.StreamHandler[Any], IO[str], Console | None]] = []
    for handler in _terminal_handlers():
        own_console = getattr(handler, "console", None)
        if isinstance(own_console, Console):
            handler.console = console  # type: ignore[attr-defined]
        stream = handler.stream
        handler.setStream(FileProxy(console, stream))  # type: ignore[arg-type]
        restore.append((handler, stream, own_console if isinstance(own_console, Console) else None))
    try:
        yield
    finally:
        for handler, stream, own_console in restore:
            handler.setStream(stream)
            if own_console is not None:
                handler.console = own_console  # type: ignore[attr-defined]
