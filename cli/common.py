"""Shared CLI plumbing: one-line errors, exit codes and logging setup for every command.

Every command runs its body through :func:`run_command`, so a domain error (bad path, bad
filter, broken config) is one line on stderr and exit 2, a usage error is one line and exit 2,
and a Ctrl+C is a short "interrupted; run the same command again to resume" and exit 130.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand

try:  # Typer >= 0.20 vendors its own copy of click.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer uses click itself
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from experiment.errors import ExperimentError

EXIT_OK = 0
EXIT_FAILED_RERUNS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class PlainUsage(TyperCommand):
    """Usage lines as users write them: ``EXPERIMENT_DIR``, not Typer's ``{EXPERIMENT_DIR}``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces: list[str] = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


def make_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


PROJECT_FAMILIES = frozenset({"experiment", "operations", "tasks", "flows", "cli", "simulation"})
"""Top-level loggers of this project: their INFO lines are the story ``-v`` tells."""


def terminal_floor(logger_name: str, verbosity: int) -> int:
    """The lowest level the terminal shows for a logger at ``-v`` x ``verbosity``.

    0: our warnings, Prefect's errors. 1 (``-v``): our INFO story, Prefect's flow-run lines and
    everyone's warnings; no third-party DEBUG. 2 (``-vv``): everything, third-party DEBUG too.
    """
    if verbosity >= 2:
        return logging.DEBUG
    family = logger_name.split(".", 1)[0]
    if family in PROJECT_FAMILIES:
        return logging.INFO if verbosity else logging.WARNING
    if family == "prefect":
        if verbosity and logger_name.startswith("prefect.flow_runs"):
            return logging.INFO
        return logging.WARNING if verbosity else logging.ERROR
    return logging.WARNING


def setup_logging(verbosity: int) -> None:
    """Logging before Prefect is imported (the dry run never imports it): stderr, by verbosity."""
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        _add_floor(handler, verbosity)
    for family in PROJECT_FAMILIES:  # our INFO lines are emitted whatever the root's level
        if verbosity and logging.getLogger(family).level in (logging.NOTSET, logging.WARNING):
            logging.getLogger(family).setLevel(logging.INFO)
    if verbosity >= 2:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "DEBUG")


class TerminalFloor(logging.Filter):
    """What the terminal shows (see :func:`terminal_floor`); names the task run a line is from.

    It filters handlers, never loggers, so every INFO record still reaches Prefect's API log
    handler (the UI's Logs tab), whatever the terminal shows.
    """

    def __init__(self, verbosity: int = 0) -> None:
        super().__init__()
        self.verbosity = verbosity

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < terminal_floor(record.name, self.verbosity):
            return False
        if self.verbosity and not hasattr(record, "task_run_name") and (task := _current_task_run()):
            record.name = f"{record.name} [{task}]"  # the API handlers ran before: it is ours alone
        return True


def _current_task_run() -> str | None:
    if "prefect.context" not in sys.modules:
        return None
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    return context.task_run.name if context is not None else None


def _add_floor(handler: logging.Handler, verbosity: int) -> None:
    for old in [f for f in handler.filters if isinstance(f, TerminalFloor)]:
        handler.removeFilter(old)
    handler.addFilter(TerminalFloor(verbosity))


def quiet_terminal(verbosity: int = 0) -> None:
    """Show on the terminal what ``verbosity`` asks for, without raising any logger's level.

    Call after Prefect configured logging (it replaces the root's handlers). The filter goes on
    the handlers that write to the terminal, so the run loggers still emit INFO records and
    Prefect's API log handler still ships them to the server: the UI shows the run's log.
    """
    if verbosity >= 2:
        logging.getLogger().setLevel(logging.DEBUG)  # third-party DEBUG, on request only
    for logger in (logging.getLogger(), *_prefect_loggers_with_own_handlers()):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                _add_floor(handler, verbosity)


def _prefect_loggers_with_own_handlers() -> list[logging.Logger]:
    return [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.startswith("prefect") and logger.handlers
    ]


def error(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)


INTERRUPTED_MESSAGE = "interrupted; run the same command again to resume"
_interrupt_reported = threading.Event()


def report_interrupted() -> None:
    """Print the Ctrl+C message once, whichever path (handler, watchdog) gets there first."""
    if not _interrupt_reported.is_set():
        _interrupt_reported.set()
        error(INTERRUPTED_MESSAGE)
        sys.stderr.flush()


@contextlib.contextmanager
def interruptible(
    on_interrupt: Callable[[], object],
    grace_seconds: float | None = None,
    before_exit: Callable[[], object] | None = None,
) -> Iterator[None]:
    """Make Ctrl+C (SIGINT) or SIGTERM during a Prefect flow a clean, prompt stop, exit code 130.

    On the first SIGINT, ``on_interrupt`` runs (it stops the agents: they run in their own
    sessions, out of reach of the terminal's signal), Prefect's logging is silenced unless
    ``-v``, and KeyboardInterrupt is raised as usual so the flow run ends as crashed. Prefect's
    unwinding can hang on the API (the temporary server got the same SIGINT and is gone), so a
    watchdog ends the process ``grace_seconds`` later (``SCYLLA_REPAIR_INTERRUPT_GRACE``, 5 s)
    and a second Ctrl+C ends it at once. Nothing is half-written: every file of the experiment
    and the checkpoint are written atomically, and the next run resumes from what is on disk.
    A run whose agent had not started is left exactly as it was (``tasks/repair.py`` archives
    only after checking the stop flag, and ``before_exit`` puts back a run prepared but not
    started: ``operations.unstarted``); one stopped mid-agent is ``partial``.
    """
    if grace_seconds is None:
        grace_seconds = float(os.environ.get("SCYLLA_REPAIR_INTERRUPT_GRACE", "5"))
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def hard_exit() -> None:
        report_interrupted()
        if before_exit is not None:  # e.g. put back runs archived whose agent never started;
            # in a thread of its own with a deadline: a lock held by a stuck worker must not
            # keep the process alive
            cleanup = threading.Thread(target=_quietly, args=(before_exit,))
            cleanup.daemon = True
            cleanup.start()
            cleanup.join(grace_seconds)
        os._exit(EXIT_INTERRUPTED)

    fired = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if _interrupt_reported.is_set() or fired.is_set():
            hard_exit()
        fired.set()
        # The watchdog first: if stopping blocks (it waits on the agents' registry lock), the
        # process still ends within the grace period instead of hanging in this handler.
        watchdog = threading.Timer(grace_seconds, hard_exit)
        watchdog.daemon = True
        watchdog.start()
        if logging.getLogger().level > logging.DEBUG:
            logging.getLogger("prefect").setLevel(logging.CRITICAL + 1)
        on_interrupt()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if fired.is_set():
            # End as the watchdog would, without atexit handlers: they would talk to the
            # temporary API server the same Ctrl+C killed (a Prefect limit's holder record was
            # dropped while its slot stayed taken, and the next repair waited on it).
            hard_exit()


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        call()


def run_command(app: typer.Typer, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run a Typer app, mapping every failure we know to one line and an exit code."""
    try:
        result = app(args=argv, prog_name=prog, standalone_mode=False)
    except click_exceptions.UsageError as exc:
        error(f"{exc.format_message()} (see --help)")
        return EXIT_BAD_INPUT
    except click_exceptions.ClickException as exc:
        error(exc.format_message())
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        report_interrupted()
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except ExperimentError as exc:
        error(str(exc))
        return exc.exit_code
    code = int(result or 0)
    if code == EXIT_INTERRUPTED:  # Typer returns a Ctrl+C as this code, silently (no flow's handler
        report_interrupted()  # ran: dry run, regenerate-results); printed once in any case
    return code


def end_process(code: int) -> NoReturn:
    """End the command's process with ``code``, skipping the interpreter's teardown when nothing
    needs it.

    The teardown frees every object and module one by one: ~40 ms at the end of a 0.6 s dry run
    of 10,500 runs (bench/README.md), spent after the last line was printed. When the command ran
    no flow (Prefect never imported) and no other thread is alive, that teardown finishes nothing:
    the atexit handlers still run (logging's flush among them), the standard streams are flushed,
    and ``os._exit`` ends the process. Otherwise (Prefect's threads and exit hooks) ``sys.exit``.
    """
    if "prefect" in sys.modules or threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter's own exit runs first (no public name for it)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # a closed pipe: the interpreter reports it as it always does
    os._exit(code)


# The options both commands share, declared once.
ExperimentDirArgument = Annotated[
    Path,
    typer.Argument(
        metavar="EXPERIMENT_DIR",
        show_default=False,
        help="The experiment directory (contains config/experiment.json).",
    ),
]

STATUS_HELP = """\b
Run statuses (--status):
  completed  agent + judges + run_result.json all exist; never touched
  results    agent finished, results missing; regenerated (only missing judges re-run)
  failed     agent ran but failed; archived to .failed/, agent + judges re-run
  partial    agent started but did not finish (e.g. Ctrl+C); archived, re-run
  missing    run never started; agent + judges run"""

EXIT_CODES_HELP = """\b
Exit codes:
  0    done (dry run: nothing would block)
  1    some reruns failed (see RERUN FAILURES)
  2    refused before changing anything: bad input, missing base repository or
       tiers dir, ANTHROPIC_API_KEY unset, another repair running
  130  interrupted (Ctrl+C / SIGTERM); run the same command again to resume"""
TierOption = Annotated[
    list[str] | None, typer.Option("--tier", metavar="TIER", help="Only this tier, e.g. T0 (repeatable).")
]
SubtestOption = Annotated[
    list[str] | None, typer.Option("--subtest", metavar="ID", help="Only this subtest, e.g. 00 (repeatable).")
]
RunsOption = Annotated[
    str | None, typer.Option("--runs", metavar="N,N,...", help="Only these run numbers, e.g. 1,5,7.")
]
SkipRegenerateOption = Annotated[
    bool, typer.Option("--skip-regenerate", help="Do not rebuild subtest, tier and experiment results.")
]
TiersDirOption = Annotated[
    Path | None,
    typer.Option(
        "--tiers-dir",
        metavar="DIR",
        help="ProjectScylla tiers dir (its checkout, tests/, or tests/claude-code/shared).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
VerboseOption = Annotated[
    int,
    typer.Option(
        "-v",
        "--verbose",
        count=True,
        help="-v: what the repair does, run by run (archive, worktree, agent command and exit, "
        "judges, checkpoint writes). -vv: also every library's debug log.",
    ),
]
