"""The file rules of every regeneration: lenient reads, backups, and writes only on real change.

A derived file is written only when its content changes (:func:`write_if_changed`; timestamps such
as ``generated_at`` and the machine-specific absolute paths do not count as a change), and before
an existing file is overwritten its previous content is copied to
``<exp>/.backups/<UTC stamp>/<path relative to exp>`` (:func:`backup_file`), atomically and never
over an older backup. Every write is atomic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from experiment.backups import backup_file, relative_to_experiment
from experiment.fast_json import loads
from experiment.jsonio import atomic_write_text, dumps, install_temp, write_temp_beside
from experiment.models import ScyllaModel, TierComparison
from experiment.quiet_read import read_bytes

_Model = TypeVar("_Model", bound=BaseModel)

VOLATILE_KEYS = frozenset({"generated_at", "workspace_path", "logs_path", "command_log_path"})
"""Top-level JSON keys whose change alone does not make a file "changed" (timestamps and the
absolute paths of whichever machine last wrote the file)."""
_GENERATED_LINE = re.compile(r"^\*\*Generated\*\*: .*$", re.MULTILINE)


# --------------------------------------------------------------------------------------------------
# Lenient reads (a damaged file is what a regeneration repairs, so reading one is not an error)
# --------------------------------------------------------------------------------------------------


def read_dict(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        value = loads(read_bytes(path))  # bytes: the parser decodes UTF-8 itself, no text wrapper
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def _without_runs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in pairs if not (k == "runs" and isinstance(v, list))}


def _text_without_runs(path: Path) -> str:
    """The text of ``path`` with every multi-line ``"runs": [...]`` list emptied, read a line at a
    time: the other lines of a 20 MB experiment file are a few hundred kilobytes.

    In indented JSON (``json.dumps(indent=...)``, ProjectScylla's and ours) a list's items are on
    lines indented deeper than its key and its ``]`` is on a line at the key's indent, so the list
    is skipped to that line. Text in another layout passes through whole, or comes out invalid
    (then the caller parses the whole file)."""
    kept: list[str] = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            item = line.lstrip(" ")
            if not (item.startswith('"runs": [') and item.rstrip() == '"runs": ['):
                kept.append(line)
                continue
            indent = line[: len(line) - len(item)]
            close = f"{indent}]"
            for inner in lines:
                if inner.startswith(close):
                    kept.append(f'{indent}"runs": []{inner[len(close) :]}')
                    break
    return "".join(kept)


def read_dict_without_runs(path: Path) -> dict[str, Any] | None:
    """:func:`read_dict` of a tier or experiment ``result.json`` without the ``runs`` lists of its
    subtests: the clock and order fields of a 20 MB experiment file cost a skim of its lines
    (:func:`_text_without_runs`), not the whole text and its ~150 MB of Python objects."""
    try:
        try:
            value = json.loads(_text_without_runs(path), object_pairs_hook=_without_runs)
        except ValueError:  # not laid out as indented JSON: parse it whole, dropping the runs
            value = json.loads(Path(path).read_text(encoding="utf-8"), object_pairs_hook=_without_runs)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def previous_model(path: Path, model: type[_Model], *, runs: bool = True) -> _Model | None:
    """The previous version of a derived file, or None when it is missing or invalid; without the
    subtests' runs unless ``runs`` (a result.json read for its clock and order fields)."""
    data = read_dict(path) if runs else read_dict_without_runs(path)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def read_text(path: Path) -> str | None:
    """The text of ``path`` (undecodable bytes replaced), or None when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _comparable_json(text: str) -> Any:
    try:
        data = loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in VOLATILE_KEYS}
    return data


def _comparable_text(text: str) -> str:
    return _GENERATED_LINE.sub("**Generated**:", text)


def write_if_changed(experiment_dir: Path, path: Path, content: str, stamp: str, written: list[str]) -> bool:
    """Write ``content`` to ``path`` unless the file already says the same thing.

    JSON files are compared as data without :data:`VOLATILE_KEYS`; markdown without its
    ``**Generated**`` line. A changed existing file is backed up first (:func:`backup_file`).
    Appends the path (relative to the experiment) to ``written`` when it writes.
    """
    path = Path(path)
    try:
        old = read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        old = None
    except (OSError, UnicodeDecodeError):
        old = ""  # unreadable: rewrite it (after the backup)
    if old is not None:
        if path.suffix == ".json":
            same = old == content or (
                (previous := _comparable_json(old)) is not None and previous == _comparable_json(content)
            )
        else:
            same = old == content or _comparable_text(old) == _comparable_text(content)
        if same:
            return False
        backup_file(experiment_dir, path, stamp)
    atomic_write_text(path, content)
    written.append(str(relative_to_experiment(experiment_dir, path)))
    return True


_BLOCK = 1 << 20


def _same_bytes(old: Path, new: str) -> bool:
    """Whether two files hold the same bytes, read a megabyte at a time."""
    try:
        with open(old, "rb") as a, open(new, "rb") as b:
            while True:
                block = a.read(_BLOCK)
                if block != b.read(_BLOCK):
                    return False
                if not block:
                    return True
    except OSError:
        return False


def write_chunks_if_changed(
    experiment_dir: Path, path: Path, chunks: Iterable[str], stamp: str, written: list[str]
) -> bool:
    """:func:`write_if_changed` for a JSON file too big to hold twice (the experiment's
    ``result.json`` embeds every run): ``chunks`` go straight to the temp file, which is compared
    with the old file byte by byte, and as data only when the bytes differ."""
    path = Path(path)
    tmp = write_temp_beside(path, chunks)
    try:
        if path.exists():
            same = _same_bytes(path, tmp)
            if not same and (old := read_text(path)) is not None:
                previous = _comparable_json(old)
                del old
                same = previous is not None and previous == _comparable_json(Path(tmp).read_text("utf-8"))
            if same:
                Path(tmp).unlink()
                return False
            backup_file(experiment_dir, path, stamp)
        install_temp(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    written.append(str(relative_to_experiment(experiment_dir, path)))
    return True


@dataclass
class Writer:
    """One pass's writes into one experiment: its backup stamp and the list of files written.

    Every derived file goes through :meth:`model` or :meth:`text`, so the change test, the backup
    and the ``written`` bookkeeping are spelled once.
    """

    experiment_dir: Path
    """The experiment root (paths in ``written`` are relative to it)."""
    stamp: str
    """The backup generation of this pass."""
    written: list[str] = field(default_factory=list)
    """Files written so far, relative to the experiment."""

    def text(self, path: Path, content: str) -> bool:
        """:func:`write_if_changed` of ``content``; True when the file was written."""
        return write_if_changed(self.experiment_dir, path, content, self.stamp, self.written)

    def chunks(self, path: Path, chunks: Iterable[str]) -> bool:
        """:func:`write_chunks_if_changed`; True when the file was written."""
        return write_chunks_if_changed(self.experiment_dir, path, chunks, self.stamp, self.written)

    def model(self, path: Path, model: ScyllaModel | TierComparison) -> bool:
        """Write ``model`` as its canonical JSON (``to_json_dict``) when it changed."""
        return self.text(path, dumps(model.to_json_dict()))

    def reports(
        self, file: Callable[[str], Path], report: ScyllaModel, markdown: str, summary_md: str
    ) -> None:
        """The ``report.json``, ``report.md`` and ``summary.md`` that a tier and the experiment both
        have (``file(name)`` is the path of each)."""
        self.model(file("report.json"), report)
        self.text(file("report.md"), markdown)
        self.text(file("summary.md"), summary_md)
