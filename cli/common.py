"""Shared CLI plumbing: one-line errors, exit codes and logging setup for every command.

Every command runs its body through :func:`run_command`, so a domain error (bad path, bad
filter, broken config) is one line on stderr and exit 2, a usage error is one line and exit 2,
and a Ctrl+C is a short "interrupted; run the same command again to resume" and exit 130.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import typer

try:  # Typer >= 0.20 vendors its own copy of click.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer uses click itself
    from click import exceptions as click_exceptions

from experiment.errors import ExperimentError

EXIT_OK = 0
EXIT_FAILED_RERUNS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def make_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def error(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)


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
        error("interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except ExperimentError as exc:
        error(str(exc))
        return exc.exit_code
    return int(result or 0)


def entry_point(app: typer.Typer, prog: str) -> Callable[[], None]:
    def main() -> None:
        sys.exit(run_command(app, sys.argv[1:], prog))

    return main
