"""Reading and writing the experiment's JSON files: atomic writes, one-line errors.

Every write goes to a temporary file in the same directory and is renamed over the target, so a
crash at any instant leaves either the old content or the new one, never half a file. Readers
accept the bare ``Infinity`` that ProjectScylla's ``json.dump`` writes into ``cost_of_pass``;
writers refuse it (our models turn non-finite numbers into ``null``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from experiment.errors import FormatError

M = TypeVar("M", bound=BaseModel)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file + fsync + rename in the same directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def dumps(data: Any) -> str:
    """Serialise like ProjectScylla (indent 2) but refuse NaN/Infinity, which is not JSON."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True)
    return json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False)


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
        return json.loads(text)
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
