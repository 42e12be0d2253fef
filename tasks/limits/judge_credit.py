"""Judge requests admitted at once and recorded on the Prefect rate limit in batches, off the hot path."""

from __future__ import annotations

import logging
import threading
import time

from tasks.limits.acquire import increment
from tasks.limits.provider import ACQUIRE_TIMEOUT, POLL_CAP, LimitError, ProviderLimits

logger = logging.getLogger(__name__)


class JudgeCredit:
    """Judge requests spent now, paid to the Prefect rate limit by a background thread.

    Taking a token on the critical path would add 0.1-5 s to every judge request. Instead the
    in-process window admits the request and this records a debt; one thread pays debts in
    batches (``occupy=n``). While Prefect refuses (other flow runs spent the shared budget) the
    debt grows, and at :attr:`max_debt` (one window's requests) new requests wait for it: across
    flow runs the provider's rate is the Prefect limit's, with at most one window of overshoot
    per additional flow run before the coordination bites.
    """

    def __init__(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self.max_debt = max(1, limits.judge_rpm or 1)
        self._cond = threading.Condition()
        self._debt = 0
        self._thread: threading.Thread | None = None

    def take(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._debt >= self.max_debt:
                if time.monotonic() >= deadline:
                    raise LimitError(f"no judge request budget from {self.limits.judge_rate_name}")
                self._cond.wait(min(POLL_CAP, max(0.01, deadline - time.monotonic())))
            self._debt += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._pay, name="scylla-judge-credit", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _pay(self) -> None:
        while True:
            with self._cond:
                if self._debt == 0:
                    self._cond.wait(5.0)
                    if self._debt == 0:
                        self._thread = None
                        return
                batch = min(self._debt, self.limits.judge_rpm or 1)
            try:
                increment(
                    [self.limits.judge_rate_name],
                    "rate_limit",
                    lease=False,
                    timeout=ACQUIRE_TIMEOUT,
                    slots=batch,
                )
            except Exception as exc:  # noqa: BLE001 - coordination is best effort; never block forever
                logger.warning(
                    "could not record %d judge requests on %s: %s", batch, self.limits.judge_rate_name, exc
                )
            with self._cond:
                self._debt -= batch
                self._cond.notify_all()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every request taken so far is recorded on the Prefect limit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._debt and time.monotonic() < deadline:
                self._cond.wait(0.1)
