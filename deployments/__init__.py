"""How the flows are served and scheduled.

Two ways, the same three deployments (``rerun-agents``, ``regenerate-results``,
``nightly-repair``), both defined by ``prefect.yaml`` at the project root:

* **Work pool** (several machines, several workers): ``prefect deploy --all`` from the project
  root registers them on the ``scylla-repair`` process pool; ``prefect worker start --pool
  scylla-repair`` on each machine runs them (see ``prefect.yaml`` and the README).
* **One machine, no pool**: ``python -m deployments.serve`` (``deployments/serve.py``) reads the
  same ``prefect.yaml`` and serves all three from one long-lived process with ``prefect.serve``.

Both need a running API (``prefect server start`` and ``PREFECT_API_URL``) to be watched in the
UI or triggered with ``prefect deployment run``.
"""
