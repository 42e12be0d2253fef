"""``fast_json.loads`` returns what ``json.loads`` returns, and raises what it raises."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from experiment import fast_json
from tests.conftest import FIXTURES


def outcome(parse: Any, text: str | bytes) -> tuple[str, str]:
    """The value's repr (NaN and -0.0 compare by their spelling), or the exception raised."""
    try:
        return "value", repr(parse(text))
    except Exception as error:  # noqa: BLE001 - the comparison is the point
        return "error", f"{type(error).__name__}: {error}"


def _number(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return repr(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-320, 300))
    if roll < 0.5:
        return str(rng.randint(-(10**30), 10**30))
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30)))
    text = rng.choice(["", "-"]) + digits.lstrip("0") or "0"
    if rng.random() < 0.6:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
    if rng.random() < 0.5:
        text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 400))
    return text


_PIECES = ["a", "é", "中", "\U0001f600", " ", "\\n", "\\t", '\\"', "\\\\", "\\/", "\\u00e9",
           "\\ud83d\\ude00", "\\ud800", "\\udfff", "\\u0000", "\x7f", "\u2028"]  # fmt: skip


def _string(rng: random.Random) -> str:
    return '"' + "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 8))) + '"'


def _document(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return rng.choice(
            [_number, _string, lambda _: rng.choice(["true", "false", "null", "NaN", "-Infinity"])]
        )(rng)
    space = rng.choice(["", " ", "\n  ", "\t"])
    if roll < 0.75:
        items = [
            f"{_string(rng)}{space}:{space}{_document(rng, depth + 1)}" for _ in range(rng.randint(0, 5))
        ]
        return "{" + space + f",{space}".join(items) + space + "}"
    return "[" + f",{space}".join(_document(rng, depth + 1) for _ in range(rng.randint(0, 5))) + "]"


def _damaged(rng: random.Random, text: str) -> str:
    """A crash's truncation, or one character replaced by one a JSON writer never leaves there."""
    if not text:
        return text
    if rng.random() < 0.5:
        return text[: rng.randrange(len(text))]
    at = rng.randrange(len(text))
    return text[:at] + rng.choice([",", "}", "]", "'", "\x01", "\t", "0", ".", "\ud800"]) + text[at + 1 :]


@pytest.mark.parametrize("seed", range(3))
def test_random_documents_parse_as_the_standard_library_parses_them(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        text = _document(rng)
        for candidate in (text, _damaged(rng, text)):
            assert outcome(fast_json.loads, candidate) == outcome(json.loads, candidate), candidate
            data = candidate.encode("utf-8", errors="surrogatepass")
            assert outcome(fast_json.loads, data) == outcome(json.loads, data), data


@pytest.mark.parametrize(
    "data",
    [b"", b"\xef\xbb\xbf{}", '{"a": 1}'.encode("utf-16"), b'{"a": "\xff"}', b'{"a": 1}{"b": 2}',
     b'{"a": 1,}', b"{'a': 1}", b'{"a": "\\ud800"}', b'{"a": 1, "a": 2}', b"[" * 5000 + b"]" * 5000],
)  # fmt: skip
def test_what_the_fast_parser_refuses_the_standard_one_decides(data: bytes) -> None:
    assert outcome(fast_json.loads, data) == outcome(json.loads, data)


def test_every_json_file_of_the_real_experiment() -> None:
    paths = [p for p in Path(FIXTURES).rglob("*") if p.suffix == ".json" or p.name == "output.txt"]
    assert len(paths) > 100
    for path in paths:
        data = path.read_bytes()
        assert outcome(fast_json.loads, data) == outcome(json.loads, data), path
