"""Prefect-free knowledge of the ProjectScylla experiment format.

Nothing in this package imports Prefect: the CLI's dry run, the benchmarks and every task in
`tasks/` use exactly this code, so a classification in the terminal and one in a flow run can
never disagree.
"""
