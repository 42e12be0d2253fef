"""Flow tests run under one Prefect test harness per session, i.e. per xdist worker, on a copy of
a migrated database (``tests.conftest.seed_prefect_database``): a harness on a fresh database
spends ~14 s of CPU on migrations before it answers, minutes on 2 busy cores."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import QUIET_SERVER_SERVICES, seed_prefect_database


@pytest.fixture(autouse=True, scope="session")
def prefect_backend():
    import prefect.testing.utilities as harness

    # The harness puts its database in a new mkdtemp() dir: hand it one holding the copy.
    seeded = Path(tempfile.mkdtemp(prefix="scylla-repair-harness-"))
    seed_prefect_database(seeded / "prefect-test.db")
    try:
        with (
            mock.patch.object(harness, "mkdtemp", lambda: str(seeded)),
            mock.patch.dict(os.environ, QUIET_SERVER_SERVICES),  # read by the server it starts
            harness.prefect_test_harness(server_startup_timeout=300),
        ):
            yield
    finally:  # the harness skips its server's stop when draining its workers fails
        from prefect.server.api.server import SubprocessASGIServer

        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()
