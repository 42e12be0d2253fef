"""The fast indented encoder writes exactly what ``json.dumps(indent=2, ensure_ascii=False)`` writes."""

from __future__ import annotations

import enum
import json
import math
import random
from typing import Any

import pytest

from experiment.indented_json import dumps_indented
from tests.conftest import FIXTURES


class Colour(enum.StrEnum):
    RED = "red\nline"


class Level(enum.IntEnum):
    HIGH = 3


def standard(data: Any, allow_nan: bool = False) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=allow_nan)


_SCALARS: list[Any] = [
    None, True, False, 0, -7, 10**20, -(10**19), 2.5, -0.0, 1e16, 1e-7, 123456.789e30, 0.1 + 0.2,
    "", "plain", 'é\n\t"\\\u2028\x00 中', "  ,\n  ", "}\n]", "\x00", "\\u0000", Colour.RED, Level.HIGH,
]  # fmt: skip


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 5 or roll < 0.45:
        return rng.choice(_SCALARS)
    if roll < 0.75:
        return {
            f"{rng.choice(['k', 'a b', 'é', chr(10)])}{i}": _random_value(rng, depth + 1)
            for i in range(rng.randint(0, 6))
        }
    if roll < 0.8:  # keys the encoder converts: numbers, booleans, null
        return {
            rng.choice([1, 2.5, True, None, "s"]): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))
        }
    items = [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    return items if roll < 0.95 else tuple(items)


@pytest.mark.parametrize("seed", range(4))
def test_random_documents_match_the_standard_encoder(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        value = _random_value(rng, 0)
        assert dumps_indented(value) == standard(value)


def test_every_json_file_of_the_real_experiment_is_written_back_byte_for_byte() -> None:
    files = sorted(FIXTURES.rglob("*.json"))
    assert len(files) > 100
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert dumps_indented(data) == standard(data), path


def test_infinity_only_when_allowed_and_the_errors_are_the_standard_ones() -> None:
    document = {"frontier_cop": math.inf, "tiers": [{"cost": 1.5}]}
    assert dumps_indented(document, allow_nan=True) == standard(document, allow_nan=True)
    for bad in (math.nan, {"a": [1, {"b": -math.inf}]}, {"a": object()}, {1: {"b": object()}}):
        with pytest.raises((ValueError, TypeError)) as ours:
            dumps_indented(bad)
        with pytest.raises((ValueError, TypeError)) as theirs:
            standard(bad)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))
