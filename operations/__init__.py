"""The operations on one run, Prefect-free: archive, workspace, agent, judges, provider budget.

Each module is a plain function of a run and its settings, testable without Prefect. The Prefect
tasks in ``tasks/`` wrap these with retries, cache keys, limits and UI state; the flows in
``flows/`` never call them directly.
"""
