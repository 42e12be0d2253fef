"""Flow tests run under one Prefect test harness per session (it costs ~9 s to start)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def prefect_backend():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
