"""Issue 12: what the terminal shows during a repair: log lines above the bar, -v/-vv floors,
readable provider reasons."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from cli.common import TerminalFloor, terminal_floor
from cli.output import readable_reason
from cli.progress import terminal_progress
from tasks.artifacts import RepairProgress, progress_listeners


def test_log_lines_print_through_the_bar_console_and_the_bar_follows_listeners():
    original = io.StringIO()
    handler = logging.StreamHandler(original)
    root = logging.getLogger()
    root.addHandler(handler)
    screen = io.StringIO()
    try:
        with terminal_progress(True, console=Console(file=screen, force_terminal=True, width=100)) as bar:
            assert bar is not None
            for listener in list(progress_listeners):
                listener(RepairProgress(done=3, total=10, ok=2, failed=1, deferred=0, cost_usd=0.5))
            logging.getLogger("operations.test").warning("a warning during the repair")
            task = bar.tasks[0]
            assert (task.completed, task.total, task.fields["failed"], task.fields["ok"]) == (3, 10, 1, 2)
        assert handler.stream is original  # restored
    finally:
        root.removeHandler(handler)
    assert "a warning during the repair" in screen.getvalue()
    assert original.getvalue() == ""  # never written past the live display


def test_verbosity_floors():
    assert terminal_floor("operations.agent.run", 0) == logging.WARNING
    assert terminal_floor("operations.agent.run", 1) == logging.INFO
    assert terminal_floor("httpcore.connection", 1) == logging.WARNING
    assert terminal_floor("prefect.task_runs", 0) == logging.ERROR
    assert terminal_floor("prefect.flow_runs", 1) == logging.INFO
    assert terminal_floor("httpcore.connection", 2) == logging.DEBUG
    record = logging.LogRecord("httpcore.connection", logging.DEBUG, __file__, 1, "connect", None, None)
    assert not TerminalFloor(1).filter(record) and TerminalFloor(2).filter(record)


def test_provider_reset_epochs_read_as_times():
    text = readable_reason("Agent failed (quota_window: Claude AI usage limit reached|1768903200)")
    assert "|1768903200" not in text and "resets 2026-01-20 10:00 UTC" in text


def test_ctrl_c_in_a_command_without_prefect_says_how_to_resume(capsys) -> None:
    """Typer turns a Ctrl+C into a silent Exit(130); the commands that run no flow (dry run,
    regenerate-results, results-only repairs) still print the one line every command prints."""
    import typer

    from cli.common import EXIT_INTERRUPTED, INTERRUPTED_MESSAGE, _interrupt_reported, run_command

    app = typer.Typer()

    @app.command()
    def work() -> None:
        raise KeyboardInterrupt

    _interrupt_reported.clear()
    try:
        assert run_command(app, [], "work") == EXIT_INTERRUPTED
    finally:
        _interrupt_reported.clear()
    assert capsys.readouterr().err.strip().endswith(INTERRUPTED_MESSAGE)
