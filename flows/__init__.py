"""The Prefect flows. Importing any of them sends the project's log lines to the run's log."""

from tasks.run_logs import send_project_logs_to_runs

send_project_logs_to_runs()
