"""The experiment's ``result.json`` streamed tier by tier, so a rebuild never holds every run.

ProjectScylla's experiment ``result.json`` embeds every run of every tier (20 MB of JSON for
10,000 runs). The rebuild folds one tier at a time: it builds the tier from its runs, writes the
tier's files, puts the tier's JSON text in a :class:`TierSpill` (an unnamed temp file), and keeps
only a copy of the tier without the runs of its subtests (:func:`without_runs`) for the
experiment's statistics and reports. The experiment file is then written from
:meth:`TierSpill.experiment_chunks`: the experiment's JSON with a placeholder per tier, each
placeholder replaced by the spilled tier text, re-indented. The bytes are exactly those of
``dumps(result.to_json_dict())`` on the full tree (a nested object in ``json.dumps(indent=2)``
is the standalone text with every line after the first indented by its depth).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from experiment.jsonio import dumps
from experiment.models import ExperimentResult, TierResult

_PLACEHOLDER = "\x00tier:{}\x00"
_PLACEHOLDER_IN_TEXT = re.compile(r'"\\u0000tier:([^"\\]+)\\u0000"')
_TIER_DEPTH_INDENT = " " * 4
"""A tier object sits at depth 2 of the experiment file (root > tier_results > tier)."""


def without_runs(tier: TierResult) -> TierResult:
    """``tier`` with the runs of every subtest but the best dropped (the experiment's report
    shows the best subtest's summed run durations; nothing above a subtest reads the others)."""
    subtests = {
        sid: sub if sid == tier.best_subtest else sub.model_copy(update={"runs": []})
        for sid, sub in tier.subtest_results.items()
    }
    return tier.model_copy(update={"subtest_results": subtests})


class TierSpill:
    """Each tier's JSON text in an unnamed temp file, until the experiment file is written."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        self._spans: dict[str, tuple[int, int]] = {}

    def __enter__(self) -> TierSpill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()

    def add(self, tier_id: str, text: str) -> None:
        """Spill a tier's text (``dumps(tier.to_json_dict())``, also the tier's ``result.json``)."""
        data = text.encode("utf-8")
        start = self._file.seek(0, 2)
        self._file.write(data)
        self._spans[tier_id] = (start, len(data))

    def _tier_text(self, tier_id: str) -> str:
        """The spilled text of one tier, indented for its place in the experiment file."""
        start, length = self._spans[tier_id]
        self._file.seek(start)
        return self._file.read(length).decode("utf-8").replace("\n", "\n" + _TIER_DEPTH_INDENT)

    def experiment_chunks(self, result: ExperimentResult) -> Iterator[str]:
        """The text of ``dumps(result.to_json_dict())`` with every spilled tier in place of
        ``result``'s (runless) copy, in pieces."""
        data: dict[str, Any] = result.to_json_dict()
        if "tier_results" in data:
            data["tier_results"] = {t: _PLACEHOLDER.format(t) for t in data["tier_results"]}
        text = dumps(data)
        position = 0
        for match in _PLACEHOLDER_IN_TEXT.finditer(text):
            yield text[position : match.start()]
            yield self._tier_text(match.group(1))
            position = match.end()
        yield text[position:]
