"""Reading and writing the experiment's JSON files: atomic writes, one-line errors.

Every write goes to a temporary file in the same directory and is renamed over the target, so a
crash at any instant leaves either the old content or the new one, never half a file. Inside a
write batch (:mod:`experiment.durable`) the data of all its files is synced once before any of
them is renamed into place, instead of one fsync per file. The file
gets the mode a plain ``open(path, "w")`` would give it (``0o666`` minus the process umask), and a
file that is replaced keeps its mode: ``tempfile.mkstemp`` alone would make every result
``-rw-------``, unreadable to a teammate or to a worker running as another user.

Readers accept the bare ``Infinity`` that ProjectScylla's ``json.dump`` writes. Writers refuse
non-finite numbers except where ProjectScylla's own models require one (``frontier_cop`` when no
tier passed, see :data:`INFINITY_KEYS`), which is written as ProjectScylla writes it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from experiment.durable import current_batch
from experiment.errors import FormatError
from experiment.fast_json import loads
from experiment.indented_json import dumps_indented

M = TypeVar("M", bound=BaseModel)


_umask: int | None = None
_umask_lock = threading.Lock()
_UMASK_LINE = re.compile(r"^Umask:\s*([0-7]+)\s*$", re.MULTILINE)


def process_umask() -> int:
    """The process umask, read once and cached.

    Read from ``/proc/self/status`` (Linux >= 4.7) without changing anything. Elsewhere it is
    read with the ``os.umask`` set-and-restore, once, under a lock; that briefly sets 0o077,
    the safe direction, should another thread create a file in that instant.
    """
    global _umask
    with _umask_lock:
        if _umask is None:
            try:
                match = _UMASK_LINE.search(Path("/proc/self/status").read_text(encoding="ascii"))
            except OSError:
                match = None
            if match:
                _umask = int(match.group(1), 8)
            else:
                _umask = os.umask(0o077)
                os.umask(_umask)
        return _umask


def file_mode_for(path: Path) -> int:
    """The mode a write to ``path`` must leave: the existing file's permission bits, else
    what ``open(path, "w")`` would create under the process umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~process_umask()


def executable_mode() -> int:
    """The mode of a script we write (``replay.sh``, ``run_all.sh``): what a plain ``open()``
    would give it, plus execute wherever read is allowed (``0o777`` minus the umask)."""
    return 0o777 & ~process_umask()


_temp_numbers = itertools.count()
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def temp_file_beside(path: Path, mode: int) -> tuple[int, str]:
    """An open fd and the name of a new temp file in ``path``'s directory, with ``mode``.

    Named ``.<name>.<pid>.<n>.tmp`` and created exclusively (a name left by a crashed process with
    the same pid is skipped): a regeneration creates thousands, and ``tempfile.mkstemp``'s random
    names cost more than the write."""
    directory, name, pid = os.fspath(path.parent), path.name, os.getpid()
    while True:
        tmp_name = f"{directory}{os.sep}.{name}.{pid}.{next(_temp_numbers)}.tmp"
        try:
            fd = os.open(tmp_name, _TEMP_FLAGS, 0o600)
            break
        except FileExistsError:
            continue
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return fd, tmp_name


_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.\d+\.tmp$")


def temp_file_pid(name: str) -> int | None:
    """The pid that created a :func:`temp_file_beside` file of this name, or None for any other name."""
    match = _TEMP_NAME.match(name)
    return int(match.group(1)) if match else None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file + fsync + rename in the same directory.

    The result has the existing file's mode, or a new file's under the umask (module docstring).
    Inside :func:`experiment.durable.write_batch` the fsync and the rename wait for the batch's
    commit (one sync for the whole batch; the crash-safety argument is in that module).
    """
    install_temp(write_temp_beside(Path(path), (text,)), Path(path))


def write_all(fd: int, data: bytes) -> None:
    """``data`` to ``fd``, however many ``os.write`` calls it takes (a pipe takes 64 KB at a time)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_temp_beside(path: Path, chunks: Iterable[str]) -> str:
    """Write ``chunks`` to a new temp file in ``path``'s directory (created if needed), with the
    mode ``path`` must get, fsynced unless a write batch is open; returns the temp file's name."""
    mode = file_mode_for(path)
    try:
        fd, tmp_name = temp_file_beside(path, mode)
    except FileNotFoundError:  # a new directory: created on demand, not checked before every write
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = temp_file_beside(path, mode)
    try:
        try:
            for chunk in chunks:
                write_all(fd, chunk.encode("utf-8"))
            if current_batch() is None:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return tmp_name


def install_temp(tmp_name: str, path: Path) -> None:
    """Rename a :func:`write_temp_beside` file over ``path``: now, or at the open batch's commit."""
    batch = current_batch()
    try:
        if batch is None:
            os.replace(tmp_name, path)
        else:
            batch.rename_later(tmp_name, os.fspath(path))
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


INFINITY_KEYS = frozenset({"frontier_cop"})
"""Top-level keys whose ``Infinity`` is written as ProjectScylla writes it: its
``ExperimentResult.frontier_cop`` is a required float, ``inf`` when no tier passed, and its
``json.dump`` writes the bare token ``Infinity`` (Python's and pydantic's JSON readers accept it;
strict JSON parsers do not)."""


def dumps(data: Any) -> str:
    """Serialise like ProjectScylla (``json.dumps(indent=2)``, byte for byte, at the C encoder's
    speed: :mod:`experiment.indented_json`) but refuse NaN/Infinity, which is not JSON, except a
    top-level :data:`INFINITY_KEYS` value of +Infinity."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True)
    if isinstance(data, dict) and any(_is_inf(data.get(k)) for k in INFINITY_KEYS):
        rest = {k: v for k, v in data.items() if not (k in INFINITY_KEYS and _is_inf(v))}
        json.dumps(rest, allow_nan=False)  # everything else must still be strict JSON
        return dumps_indented(data, allow_nan=True)
    return dumps_indented(data, allow_nan=False)


def _is_inf(value: Any) -> bool:
    return isinstance(value, float) and math.isinf(value) and value > 0


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write a dict or a pydantic model as JSON."""
    atomic_write_text(path, dumps(data))


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing, unreadable or invalid file raises a one-line FormatError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError("File not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"Cannot read file ({exc.__class__.__name__})", path) from None
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"Invalid JSON (line {exc.lineno}, column {exc.colno})", path) from None


def load_model(path: Path, model: type[M]) -> M:
    """Read ``path`` and validate it as ``model``; errors name the file and the first bad field."""
    return validate_model(read_json(path), model, path)


def validate_model(data: Any, model: type[M], path: Path) -> M:
    """Validate ``data``, read from ``path``, as ``model``; a failure is a one-line ``FormatError``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
        raise FormatError(f"Invalid {model.__name__} ({where}: {first.get('msg')})", path) from None


def write_model(path: Path, instance: BaseModel) -> None:
    """Atomically write a model as ProjectScylla-compatible JSON."""
    atomic_write_json(path, instance)
