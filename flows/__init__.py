"""The Prefect flows. Importing any of them sends the project's log lines to the run's log and
makes every flow call end with its body (no second-long wait on the heartbeat thread)."""

from tasks.heartbeats import install as prompt_heartbeats_in_prefect
from tasks.run_logs import send_project_logs_to_runs

send_project_logs_to_runs()
prompt_heartbeats_in_prefect()
