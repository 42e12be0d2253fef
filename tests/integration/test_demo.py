"""The README's first command: the demo repairs a generated experiment, from a relative --dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import seed_prefect_database


def test_demo_repairs_everything(tmp_path: Path):
    demo = Path(sys.executable).parent / "scylla-demo"
    # As a user runs it: the real pipeline tools, not the tests' simulated ones.
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SCYLLA_PIPELINE_TOOLS")}
    # Its temporary Prefect server starts on a migrated database (a first run migrates one: ~14 s
    # of CPU that tests nothing of ours), in a home of this test's.
    env["PREFECT_HOME"] = str(seed_prefect_database(tmp_path / "prefect-home" / "prefect.db").parent)
    result = subprocess.run(
        [str(demo), "--dir", "demo-out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "SIMULATED agent" in out
    succeeded = [int(n) for n in re.findall(r"Successfully rerun:\s+(\d+)", out)]
    assert succeeded[1] > 0, "the repair re-ran the broken runs"
    assert re.findall(r"Failed rerun:\s+(\d+)", out)[1] == "0"
    final = out.split("3. Again")[1]
    total = re.search(r"Total expected runs:\s+(\d+)", final).group(1)
    assert re.search(r"✓ Complete:\s+(\d+)", final).group(1) == total
    assert list((tmp_path / "demo-out").glob("*/T*/*/.failed/run_*")), "old attempts are archived"
