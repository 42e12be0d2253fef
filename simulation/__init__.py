"""The simulated world: a synthetic experiment generator, a fake ``claude`` CLI, a local Messages server.

The demo, the benchmarks and the tests all use these doubles; nothing in the product's repair
path imports them. They speak the real protocols (Claude Code's ``--print --output-format json``
and the Anthropic Messages API over HTTP on 127.0.0.1), so everything else stays real.
"""

from pathlib import Path

TOOLCHAIN_DIR = Path(__file__).resolve().parent / "toolchain"
"""Simulated ``pytest``/``pre-commit``/``ruff`` for the judge pipeline (``toolchain/README.md``):
set ``SCYLLA_PIPELINE_TOOLS`` to it where a test repairs many runs and ignores their pipeline."""
