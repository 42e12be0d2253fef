"""Seeded synthetic ProjectScylla experiments for tests, benchmarks and the demo.

``generate_experiment(dest, ...)`` writes an experiment that looks like the real dry-run sample
(``tests/fixtures/scylla-test001-dryrun``): the same per-run file set as ``T0/00/run_01``, subtest
manifests and reports, a v3.1 checkpoint, optional tier/experiment aggregates and a real git base
repo. Each run gets a status drawn from ``mix`` with ``seed``; the exact status of every run is
returned as ``truth`` so a classifier can be checked against it. The on-disk shapes per status:

* ``completed``: every file, valid.
* ``results``: the agent finished (valid ``output.txt``, timing, command log, stderr, judge files)
  but ``run_result.json``, ``agent/result.json`` or both are missing (variants rotate).
* ``failed``: rotating: crash (``stderr.log`` + empty ``output.txt``, exit 1); rate limit
  (``output.txt`` is the "You've hit your limit" JSON, ``agent/result.json`` exit 1); timeout
  (timing + command log, empty ``output.txt``, no ``stderr.log``).
* ``partial``: ``agent/prompt.md`` (and every other time ``command_log.json``) only.
* ``missing``: rotating: no run dir, or an empty run dir (phased layout: never a dir).

Every JSON file is built with the models of ``experiment.models`` and serialised by
``experiment.jsonio.dumps``; files are written directly (not atomically) because a generator writes
into a fresh directory and speed matters. Measured: 10,000 runs (5 tiers x 20 subtests x 100 runs, 335,668 files) in 19.4 s on the
development container (overlay fs); 100 runs (3,416 files) in 0.2 s.

CLI: ``python -m simulation.generator DEST --tiers T0 T1 --subtests 5 --runs 10
--mix completed=0.8,failed=0.1,results=0.1 --seed 1``.

Modules: ``plan`` (which run gets which status), ``run_files`` (one run's files per status),
``aggregates`` (manifests, subtest/tier/experiment reports), ``generate`` (the public entry
point wiring them in a fixed order), ``content`` (the task texts), ``files`` (layout and writing),
``cli`` (the command line).
"""

from simulation.generator.cli import main
from simulation.generator.content import AGENT_MODEL, DEFAULT_JUDGES
from simulation.generator.generate import GeneratedExperiment, generate_experiment
from simulation.generator.plan import DEFAULT_MIX, STATUSES

__all__ = [
    "AGENT_MODEL",
    "DEFAULT_JUDGES",
    "DEFAULT_MIX",
    "STATUSES",
    "GeneratedExperiment",
    "generate_experiment",
    "main",
]
