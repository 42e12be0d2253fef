"""``python -m simulation.generator``: see :mod:`simulation.generator.cli`."""

from simulation.generator.cli import main

raise SystemExit(main())
