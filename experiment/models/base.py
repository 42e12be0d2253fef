"""The base of every file model and the helpers all of them share (time stamps, grades, finite floats).

See :mod:`experiment.models` for the three rules every model follows (unknown fields kept, round
trip, canonical output).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def utc_now_iso() -> str:
    """The current time as ProjectScylla writes it: ISO 8601 with ``+00:00``."""
    return datetime.now(UTC).isoformat()


def grade_for_score(score: float) -> str:
    """ProjectScylla's grade scale: S if 1.0, A >= .8, B >= .6, C >= .4, D >= .2, else F."""
    if score >= 1.0:
        return "S"
    for threshold, grade in ((0.8, "A"), (0.6, "B"), (0.4, "C"), (0.2, "D")):
        if score >= threshold:
            return grade
    return "F"


def _finite_or_none(value: Any) -> Any:
    """Turn NaN/±Infinity (Python's ``json`` reads the bare ``Infinity`` token) into None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FiniteFloat = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A float that is never NaN/Infinity: non-finite input becomes None, so dumps stay valid JSON."""


class ScyllaModel(BaseModel):
    """Base of every file model: keeps unknown keys, accepts field names or aliases."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, use_attribute_docstrings=True)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON-ready dict we write: aliases, only the fields that were set (never invented)."""
        return json_dict(self)


def json_dict(model: BaseModel) -> dict[str, Any]:
    """``model`` as the JSON-ready dict we write (shared by ``ScyllaModel`` and the root models)."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return data
