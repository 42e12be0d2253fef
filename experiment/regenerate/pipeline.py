"""The CLI's regeneration as one pipeline over forked workers: each tier's ``results`` runs are
regenerated, committed, and the tier is folded as soon as its own runs are done.

Why one pipeline: run as two passes (every run, then every tier), the workers waited for each
pass's last task and for their batches' syncs, and the seventh tier was folded alone. Here the
workers take whatever is queued (the regeneration of later tiers, the folds of earlier ones) and
the parent, which has nothing else to do, makes each tier's regenerated files durable (one batch
per tier, :mod:`experiment.durable`) before that tier's fold is queued, so a fold always reads
its runs' new files. The folds come back in tier order to :func:`rebuild_aggregates` (its
``folds``), which stays one write batch of its own.

Forked workers only where no other thread is at work (:mod:`experiment.forked`); the flow's
tasks run the same functions one after the other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from experiment.backups import relative_to_experiment
from experiment.durable import WriteBatch, collected_writes
from experiment.forked import Workers
from experiment.jsonio import temp_file_pid
from experiment.layout import ExperimentLayout, RunKey
from experiment.regenerate.run import RunRegeneration, regenerate_chunk
from experiment.regenerate.tier_fold import FoldItem, TierFold, fold_tier_item

_Pending = tuple[list[RunRegeneration], list[tuple[str, str]], list[tuple[str, str]]]


def _regenerate_collected(item: tuple[str, list[str], list[str], str]) -> _Pending:
    """Worker body: one tier's runs regenerated, their writes collected for the parent's commit."""
    root, labels, judge_models, stamp = item
    with collected_writes() as batch:
        results = regenerate_chunk(Path(root), labels, judge_models=judge_models, stamp=stamp)
    return results, batch.renames, batch.backups


class RegenerationPipeline:
    """Regenerates the runs of ``labels`` (one task per tier) as soon as it is created, and folds
    the tiers handed to :meth:`folds`, each after its runs are committed."""

    def __init__(
        self, workers: Workers, root: Path, labels: Sequence[str], *, judge_models: Sequence[str], stamp: str
    ) -> None:
        self._workers = workers
        self._layout, self._stamp = ExperimentLayout(Path(root)), stamp
        self._labels = list(labels)
        self._tasks: dict[int, tuple[str, str]] = {}  # ticket -> (kind, tier)
        by_tier: dict[str, list[str]] = {}
        for label in labels:
            by_tier.setdefault(label.split("/", 1)[0], []).append(label)
        self._tiers = list(by_tier)  # the labels' order, for the results
        self._results: dict[str, list[RunRegeneration]] = {}
        self._folding: dict[str, FoldItem] = {}  # tiers whose fold waits for their runs
        self._folded: list[str] = []  # tiers whose fold was handed to the workers
        for tier, tier_labels in by_tier.items():
            self._run(
                _regenerate_collected, (str(root), tier_labels, list(judge_models), stamp), "runs", tier
            )

    def _run(self, fn: Any, item: Any, kind: str, tier: str) -> None:
        if kind == "fold":
            self._folded.append(tier)
        self._tasks[self._workers.submit(fn, item)] = (kind, tier)

    def _next_event(self) -> tuple[str, str, Any]:
        """The next task's outcome; a tier's regenerated runs are committed here, and its fold
        queued if it was waiting for them."""
        ticket, value = self._workers.next()  # a task's error is raised here
        kind, tier = self._tasks.pop(ticket)
        if kind == "runs":
            results, renames, backups = value
            commit = WriteBatch()
            commit.adopt(renames, backups)
            commit.commit()
            self._results[tier] = results
            if (item := self._folding.pop(tier, None)) is not None:
                self._run(fold_tier_item, item, "fold", tier)
        return kind, tier, value

    def folds(self, items: list[FoldItem]) -> Iterator[TierFold]:
        """A :data:`~experiment.regenerate.tier_fold.FoldRunner`: every item folded, each once its
        tier's runs are committed, yielded in the items' order."""
        for item in items:
            if item.tier in self._tiers and item.tier not in self._results:
                self._folding[item.tier] = item
            else:
                self._run(fold_tier_item, item, "fold", item.tier)
        done: dict[str, TierFold] = {}
        for item in items:
            while item.tier not in done:
                kind, tier, value = self._next_event()
                if kind == "fold":
                    done[tier] = value
            yield done.pop(item.tier)

    def _writes_in(self) -> list[tuple[Path, bool]]:
        """The directories the tasks handed out write in, each to walk deep or not: every run dir
        to regenerate, and the tier and subtest dirs of every tier handed to a fold."""
        layout = self._layout
        places = [(Path(layout.run_dir_str(RunKey.parse(label))), True) for label in self._labels]
        for tier in self._folded:
            places.append((layout.tier_file(tier, "result.json").parent, False))
            places += [
                (layout.subtest_file(tier, s, "report.json").parent, False)
                for s in layout.recorded_subtests(tier)
            ]
        return places

    def sweep_temp_files(self) -> None:
        """After the workers are gone, on the way out of a failed or interrupted pass: remove
        every temp file a task left in the directories the tasks write in, and in their mirrors
        under this pass's backup dir. That is the writes of the tasks that came back but were
        never committed or adopted, and of those killed mid-way when the pass stopped. A
        committed file has its real name by then, and a batch's own clean-up and this one only
        ever remove temp files, so overlapping is harmless."""
        layout = self._layout
        backups = layout.backups_dir / self._stamp
        writes_in = self._writes_in()
        places = writes_in + [
            (backups / relative_to_experiment(layout.root, place), deep) for place, deep in writes_in
        ]
        for place, deep in places:
            for directory, _dirs, names in _walk(place, deep):
                for name in names:
                    if temp_file_pid(name) in self._workers.pids:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(directory, name))

    def results(self) -> list[RunRegeneration]:
        """Every run's outcome, in the labels' order, once all are committed."""
        while len(self._results) < len(self._tiers):
            self._next_event()
        return [run for tier in self._tiers for run in self._results[tier]]


def _walk(place: Path, deep: bool) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(place)``, or only its top level unless ``deep``."""
    for entry in os.walk(place):
        yield entry
        if not deep:
            return
