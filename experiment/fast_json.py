"""``json.loads`` at the speed of pydantic-core's JSON parser.

A scan reads three JSON documents per run (``agent/output.txt``, ``agent/result.json``,
``run_result.json``) and a regeneration more: the standard library's parser took a third of the
classification's time (7.5 µs for a 1.5 KB ``run_result.json``). pydantic-core's parser, which
pydantic already brings, reads the same document in 3.5 µs (measured, ``bench/README.md``).

:func:`loads` is a drop-in for ``json.loads``: the same values, and for anything pydantic-core
refuses the standard parser decides, so every error (and its ``lineno``), every document only the
standard library accepts (a lone surrogate escape, UTF-16 bytes) behaves exactly as before.
``tests/unit/test_fast_json.py`` checks the two agree, value for value, on seeded random
documents and on every JSON file of the real experiment.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import from_json


def loads(data: str | bytes) -> Any:
    """``json.loads(data)``: the same value, or the same exception."""
    try:
        return from_json(data)
    except (ValueError, TypeError):  # TypeError: a str that UTF-8 cannot encode (a lone surrogate)
        return json.loads(data)
