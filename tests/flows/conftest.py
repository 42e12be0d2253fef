"""Flow tests run under one Prefect test harness per session, i.e. per xdist worker (it costs
~9 s to start idle, minutes on 2 busy cores: hence the long startup timeout)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def prefect_backend():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield
