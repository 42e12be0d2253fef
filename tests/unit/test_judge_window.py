"""The judge window: two processes sharing one Prefect limit never exceed it in any window.

The Prefect server is replaced by a fake limit (``increment`` / ``release_lease``), so this
checks the window logic itself, fast; ``tests/integration/test_scale_out.py`` checks it on a
real server with two workers.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from tasks import limits
from tasks.limits import judge_window

WINDOW = 0.4
RPM = 3


class FakeLimit:
    """One global concurrency limit: slots granted while free, freed by releasing the lease."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.active = 0
        self.leases: dict[str, int] = {}
        self.calls = 0
        self.lock = threading.Lock()
        self.latency = 0.0
        """Seconds each call takes (the server's round trip)."""

    def increment(self, names, mode, *, lease, timeout, slots=1):
        assert mode == "concurrency" and lease
        while True:
            time.sleep(self.latency)
            with self.lock:
                self.calls += 1
                if self.active + slots <= self.size:
                    self.active += slots
                    lease_id = str(uuid.uuid4())
                    self.leases[lease_id] = slots
                    return lease_id
            time.sleep(0.01)

    def release(self, name, lease_id, record):
        with self.lock:
            self.active -= self.leases.pop(lease_id)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    limit = FakeLimit(RPM)
    monkeypatch.setattr(judge_window, "increment", limit.increment)
    monkeypatch.setattr(judge_window, "release_lease", limit.release)
    monkeypatch.setattr(limits, "ensure_limits", lambda lim, **_: lim)
    monkeypatch.setattr(
        judge_window.HOLDERS, "add", lambda name, lease_id, slots=1: Path(tmp_path / lease_id)
    )
    monkeypatch.setattr(judge_window, "LINGER", 0.2)
    monkeypatch.setattr(judge_window, "POLL_CAP", 0.02)
    yield limit
    deadline = time.monotonic() + 5  # no reaper of this test may release into the next one's fake
    while limit.active and time.monotonic() < deadline:
        time.sleep(0.02)


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        most = max(most, i - j + 1)
    return most


def test_two_processes_never_exceed_the_shared_window(fake):
    provider = limits.ProviderLimits("fake-provider", 1, RPM, WINDOW)
    processes = [judge_window.JudgeWindow(provider), judge_window.JudgeWindow(provider)]  # two flow runs
    sent: list[float] = []
    lock = threading.Lock()

    def judge(window: judge_window.JudgeWindow) -> None:
        with window.request(timeout=30):
            with lock:
                sent.append(time.monotonic())
            time.sleep(0.02)  # the request in flight

    threads = [threading.Thread(target=judge, args=(processes[i % 2],)) for i in range(16)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.monotonic() - started

    assert len(sent) == 16
    assert most_in_any_window(sent, WINDOW) <= RPM
    # Not slower than the window allows: 16 requests at 3 per 0.4 s need about 5 windows.
    assert elapsed < 16 / RPM * (WINDOW + 0.02) + 2
    # Bursts are fetched in batches, and every slot goes back after its window.
    assert fake.calls >= 1
    deadline = time.monotonic() + 5
    while fake.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.active == 0


def test_unused_slots_of_a_batch_go_back_after_linger(fake):
    provider = limits.ProviderLimits("fake-provider", 1, RPM, WINDOW)
    window = judge_window.JudgeWindow(provider)
    with window.request(timeout=5):
        pass
    assert fake.active >= 1
    deadline = time.monotonic() + 5
    while fake.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.active == 0


def test_no_judge_rpm_means_no_prefect_call(fake):
    with limits.judge_request(limits.ProviderLimits("fake-provider", 1, None, WINDOW)):
        pass
    assert fake.calls == 0


def test_a_burst_takes_the_room_left_beside_a_held_lease_at_once(fake):
    """One request holds a slot; a burst of RPM more arrives: RPM - 1 of them go at once (the
    room left in the window), not after the first slot's window is over."""
    provider = limits.ProviderLimits("fake-provider", 1, RPM, WINDOW)
    window = judge_window.JudgeWindow(provider)
    fake.latency = 0.05  # the burst's waiters pile up while one of them fetches
    sent: list[float] = []
    lock = threading.Lock()

    def judge() -> None:
        with window.request(timeout=30), lock:
            sent.append(time.monotonic())

    judge()  # its slot stays held for one window after it ended
    burst = [threading.Thread(target=judge) for _ in range(RPM)]
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join(30)

    first, *rest = sorted(sent)
    assert len(rest) == RPM
    at_once = [t for t in rest if t - first < WINDOW / 2]
    assert len(at_once) == RPM - 1, [round(t - first, 3) for t in rest]
    assert most_in_any_window(sent, WINDOW) <= RPM


def test_slots_go_back_through_the_server_of_the_flow_that_took_them(fake, monkeypatch):
    """The window's reaper thread talks to the API of the settings it was started under (Prefect's
    test harness, a ``temporary_settings`` block), not the bare environment's: there, a first
    client call started a temporary server of its own, which nothing stopped."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    seen: list[str | None] = []
    release = fake.release

    def release_and_note(name, lease_id, record):
        seen.append(PREFECT_API_URL.value())
        release(name, lease_id, record)

    monkeypatch.setattr(judge_window, "release_lease", release_and_note)
    provider = limits.ProviderLimits("fake-provider", 1, RPM, WINDOW)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        window = judge_window.JudgeWindow(provider)
        with window.request(timeout=5):
            pass
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == ["http://127.0.0.1:9/api"]
