"""``json.dumps(data, indent=2, ensure_ascii=False)``, byte for byte, at the C encoder's speed.

Why: ProjectScylla writes every file with ``indent=2``, and CPython (3.11 to 3.13) uses its C
encoder only without ``indent``; with it, every value goes through the pure-Python generator
encoder. A regeneration encodes ~20 MB of such text (the tier and experiment ``result.json``, to
compare them with the old bytes), and the pure-Python encoder was ~60 % of its time.

How: each container is encoded by the C encoder with the item separator ``",\\n"`` plus its
items' indent, and its brackets then opened and closed on their own lines. That is exactly the
indented text, because the C encoder escapes every newline inside a string, so the only newlines
in its output are the separators. A container inside it is first replaced by a hole (the string
``"\\x00"``), encoded the same way one level deeper, and put in its hole's place; Python touches
only containers, never the scalars in them. A real ``"\\x00"`` string beside the holes is caught
(one piece too many), and then that container is encoded by the standard library's encoder, as
is anything this module cannot encode (so the errors are the standard library's own too).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

_INDENT = "  "
_HOLE_VALUE = "\x00"
_HOLE_TEXT = '"\\u0000"'
_CONTAINERS = (dict, list, tuple)

_c_make_encoder: Any = json.encoder.c_make_encoder  # type: ignore[attr-defined]  # None without _json


def dumps_indented(data: Any, *, allow_nan: bool = False) -> str:
    """The text of ``json.dumps(data, indent=2, ensure_ascii=False, allow_nan=allow_nan)``."""
    if _c_make_encoder is None:
        return _standard(data, 0, allow_nan)
    parts: list[str] = []
    try:
        _encode(data, 0, allow_nan, parts.append)
    except (TypeError, ValueError):  # raise the standard encoder's own error and message
        return _standard(data, 0, allow_nan)
    return "".join(parts)


def _encode(value: Any, depth: int, allow_nan: bool, out: Callable[[str], None]) -> None:
    """Write ``value``, sitting at ``depth``, through ``out``."""
    holes: list[Any] = []
    if isinstance(value, dict):
        shallow: Any = {k: _hole(v, holes) if isinstance(v, _CONTAINERS) else v for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        shallow = [_hole(v, holes) if isinstance(v, _CONTAINERS) else v for v in value]
    else:
        out(_c_encoder(depth, allow_nan)(value))
        return
    if not shallow:
        out("[]" if isinstance(shallow, list) else "{}")
        return
    text = _c_encoder(depth, allow_nan)(shallow)
    text = text[0] + "\n" + _INDENT * (depth + 1) + text[1:-1] + "\n" + _INDENT * depth + text[-1]
    if not holes:
        out(text)
        return
    pieces = text.split(_HOLE_TEXT)
    if len(pieces) != len(holes) + 1:  # a real "\x00" string among this container's values
        out(_standard(value, depth, allow_nan))
        return
    out(pieces[0])
    for item, piece in zip(holes, pieces[1:], strict=True):
        _encode(item, depth + 1, allow_nan, out)
        out(piece)


def _hole(value: Any, holes: list[Any]) -> str:
    holes.append(value)
    return _HOLE_VALUE


@cache
def _c_encoder(depth: int, allow_nan: bool) -> Callable[[Any], str]:
    """The C encoder for the items of a container at ``depth`` (one line each, indented)."""
    assert _c_make_encoder is not None
    encoder = _c_make_encoder(
        None,  # markers: no cycle check (a cycle ends in RecursionError instead of ValueError)
        _not_serialisable,
        json.encoder.encode_basestring,  # type: ignore[attr-defined]  # ensure_ascii=False
        None,  # indent: the separators carry it
        ": ",
        ",\n" + _INDENT * (depth + 1),
        False,  # sort_keys
        False,  # skipkeys
        allow_nan,
    )
    return lambda value: "".join(encoder(value, 0))


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _standard(value: Any, depth: int, allow_nan: bool) -> str:
    """``value`` by the standard library's indented encoder, indented for ``depth``."""
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=allow_nan)
    return text.replace("\n", "\n" + _INDENT * depth) if depth else text
