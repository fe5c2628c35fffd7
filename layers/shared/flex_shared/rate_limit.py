"""A client-side rate limit that adapts to a quota nobody tells us: the calls one container
sends to a throttling service (Bedrock) share one budget, which shrinks when the service
throttles and grows while it does not.

It paces calls (each caller reserves the next free slot, ``1 / rate`` after the previous one)
instead of letting every thread back off on its own: throttles then cost a slot, not a random
sleep that grows until the deadline. Unlimited until the first throttle. On a throttle the rate
drops to what the service actually let through in the last second (at least half the rate, at
most 80 % of it), once per cooldown: the throttles that follow in the same second answer calls
sent before the cut. While calls succeed it grows by ``growth_per_second`` of itself per
second, but never past twice the rate the container really sends (a quiet container does not
build up a rate it never tested). Several containers, each with its own limiter, so share the
quota like TCP flows share a link: each cuts when the sum is over, grows while it is under.

botocore's ``retries={"mode": "adaptive"}`` does the same kind of thing (CUBIC on a token
bucket) but its wait has no deadline and cannot be cancelled, and its clock is wall time: this
class takes the caller's deadline, never hands out a slot after it, and runs on an injected
clock in tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """The limiter's state, for logs, metrics and tests."""

    rate: float | None
    """Calls per second allowed now; None until the first throttle (unlimited)."""
    throttles: int
    decreases: int


class AdaptiveRateLimiter:
    """One per client, shared by its threads. Thread-safe."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_rate: float = 0.5,
        growth_per_second: float = 0.05,
        cooldown_seconds: float = 1.0,
        window_seconds: float = 1.0,
        min_decrease: float = 0.5,
        max_decrease: float = 0.8,
    ) -> None:
        if not 0 < min_decrease <= max_decrease < 1:
            raise ValueError("need 0 < min_decrease <= max_decrease < 1")
        self._clock = clock
        self._min_rate = min_rate
        self._growth = growth_per_second
        self._cooldown = cooldown_seconds
        self._window = window_seconds
        self._min_decrease = min_decrease
        self._max_decrease = max_decrease
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._next_slot: float | None = None
        self._last_decrease: float | None = None
        self._last_growth: float | None = None
        self._sent: deque[float] = deque()
        self._succeeded: deque[float] = deque()
        self._throttles = 0
        self._decreases = 0

    # -- the callers' side ------------------------------------------------------------------------

    def reserve(self, deadline: float) -> float | None:
        """Take the next free slot: the seconds to wait before sending (0: send now), or None
        when that slot comes after ``deadline`` (nothing is taken then)."""
        with self._lock:
            now = self._clock()
            if self._rate is None:
                slot = now
            else:
                slot = now if self._next_slot is None else max(self._next_slot, now)
                if slot > deadline:
                    return None
                self._next_slot = slot + 1.0 / self._rate
            self._sent.append(slot)
            return slot - now

    def on_success(self) -> None:
        with self._lock:
            now = self._clock()
            self._succeeded.append(now)
            if self._rate is None:
                return
            since = now - (self._last_growth if self._last_growth is not None else now)
            self._last_growth = now
            ceiling = 2.0 * self._per_second(self._sent, now)
            if ceiling > self._rate:
                self._rate = min(ceiling, self._rate * (1.0 + self._growth * since))

    def on_throttle(self) -> None:
        with self._lock:
            now = self._clock()
            self._throttles += 1
            if self._last_decrease is not None and now - self._last_decrease < self._cooldown:
                return  # an answer to a call sent before the last cut
            sent = self._per_second(self._sent, now)
            current = self._rate if self._rate is not None else sent
            delivered = self._per_second(self._succeeded, now)
            cut = min(self._max_decrease * current, max(self._min_decrease * current, delivered))
            self._rate = max(self._min_rate, cut)
            self._last_decrease = now
            self._last_growth = now
            self._decreases += 1
            # Slots already handed out stand; later ones follow the new spacing.
            if self._next_slot is not None:
                self._next_slot = min(self._next_slot, now + 1.0 / self._rate)

    def snapshot(self) -> RateLimitSnapshot:
        with self._lock:
            return RateLimitSnapshot(self._rate, self._throttles, self._decreases)

    # -- internals --------------------------------------------------------------------------------

    def _per_second(self, times: deque[float], now: float) -> float:
        """Events per second over the last window (older ones are dropped)."""
        horizon = now - self._window
        while times and times[0] <= horizon:
            times.popleft()
        return len(times) / self._window
