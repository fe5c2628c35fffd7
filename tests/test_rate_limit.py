"""The adaptive rate limit the Titan client's threads share (flex_shared.rate_limit), on an
injected clock: no sleeps, every instant chosen by the test."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from flex_shared.rate_limit import AdaptiveRateLimiter

FAR = 1e9  # a deadline that never matters


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter_at(clock: Clock, **options: float) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(clock=clock, **options)


def throttled_at(clock: Clock, sent: int, succeeded: int) -> AdaptiveRateLimiter:
    """A limiter that sent ``sent`` calls (unpaced) within the last second, of which
    ``succeeded`` went through, then got its first throttle."""
    limiter = limiter_at(clock)
    for _ in range(sent):
        assert limiter.reserve(FAR) == 0.0
    for _ in range(succeeded):
        limiter.on_success()
    limiter.on_throttle()
    return limiter


def test_calls_are_not_paced_until_the_first_throttle() -> None:
    clock = Clock()
    limiter = limiter_at(clock)

    waits = [limiter.reserve(FAR) for _ in range(100)]
    for _ in range(100):
        limiter.on_success()

    assert waits == [0.0] * 100
    assert limiter.snapshot().rate is None


def test_a_throttle_cuts_the_rate_to_what_got_through_and_spaces_the_calls() -> None:
    # given 40 calls sent in one second, 30 of which succeeded, then a throttle
    clock = Clock()
    limiter = throttled_at(clock, sent=40, succeeded=30)

    # then the rate is what got through (30/s, between half and 80 % of 40/s)
    assert limiter.snapshot().rate == pytest.approx(30.0)
    # and the threads' next calls take slots 1/30 s apart
    waits = [limiter.reserve(FAR) for _ in range(4)]
    assert waits == pytest.approx([0.0, 1 / 30, 2 / 30, 3 / 30])


@pytest.mark.parametrize(("succeeded", "rate"), [(0, 20.0), (39, 32.0)])
def test_the_cut_keeps_between_half_and_four_fifths_of_the_rate(
    succeeded: int, rate: float
) -> None:
    # nothing got through: half of 40/s; nearly everything: 80 % of it
    clock = Clock()
    limiter = throttled_at(clock, sent=40, succeeded=succeeded)
    assert limiter.snapshot().rate == pytest.approx(rate)


def test_throttles_within_the_cooldown_answer_calls_sent_before_the_cut() -> None:
    clock = Clock()
    limiter = throttled_at(clock, sent=40, succeeded=30)

    clock.advance(0.5)
    for _ in range(10):  # the in-flight calls' throttles arrive
        limiter.on_throttle()
    assert limiter.snapshot().rate == pytest.approx(30.0)
    assert limiter.snapshot().decreases == 1

    clock.advance(0.6)  # past the one-second cooldown, a throttle is news again
    limiter.on_throttle()
    snapshot = limiter.snapshot()
    assert snapshot.decreases == 2
    assert snapshot.rate is not None
    assert snapshot.rate < 30.0
    assert snapshot.throttles == 12


def test_the_rate_grows_while_calls_succeed_but_not_past_twice_what_is_sent() -> None:
    clock = Clock()
    limiter = throttled_at(clock, sent=20, succeeded=10)  # 10/s
    assert limiter.snapshot().rate == pytest.approx(10.0)

    # busy: ten paced calls a second, all succeed, for 5 seconds
    for _ in range(50):
        wait = limiter.reserve(FAR)
        assert wait is not None
        clock.advance(wait)
        limiter.on_success()
        clock.advance(0.001)
    busy_rate = limiter.snapshot().rate
    assert busy_rate is not None
    assert busy_rate > 12.0

    # nearly idle: one call every 2 seconds; the rate stops growing at twice the sent rate
    clock.advance(10)
    for _ in range(20):
        limiter.reserve(FAR)
        clock.advance(0.001)
        limiter.on_success()
        clock.advance(2.0)
    assert limiter.snapshot().rate == busy_rate


def test_the_rate_never_falls_below_the_floor() -> None:
    clock = Clock()
    limiter = limiter_at(clock, min_rate=2.0)
    limiter.reserve(FAR)
    for _ in range(20):
        limiter.on_throttle()
        clock.advance(1.5)
    assert limiter.snapshot().rate == 2.0


def test_a_slot_after_the_deadline_is_refused_and_not_taken() -> None:
    clock = Clock()
    limiter = throttled_at(clock, sent=4, succeeded=1)  # 2/s: slots 0.5 s apart
    assert limiter.reserve(FAR) == 0.0
    assert limiter.reserve(FAR) == pytest.approx(0.5)

    # the next slot is at +1.0 s: a caller with 0.8 s left gets none
    assert limiter.reserve(clock.now + 0.8) is None
    # and the slot is still free for the next caller
    assert limiter.reserve(FAR) == pytest.approx(1.0)


def test_threads_share_one_budget_each_gets_its_own_slot() -> None:
    clock = Clock()
    limiter = throttled_at(clock, sent=20, succeeded=10)  # 10/s
    threads = 8
    barrier = threading.Barrier(threads)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        barrier.wait()
        for _ in range(5):
            wait = limiter.reserve(FAR)
            assert wait is not None
            with lock:
                waits.append(wait)

    workers = [threading.Thread(target=take) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    # 40 calls at 10/s: 40 distinct slots, 0.1 s apart, whatever the interleaving
    assert sorted(waits) == pytest.approx([n / 10 for n in range(40)])


# --- several containers, one quota -------------------------------------------------------------


@dataclass
class Quota:
    """A service that lets ``rate`` calls a second through (a token bucket holding one second
    of calls) and throttles the rest, as Bedrock's on-demand quota does."""

    rate: float
    clock: Clock
    tokens: float = 0.0
    updated: float = 0.0
    passed: int = 0
    throttled: int = 0

    def __post_init__(self) -> None:
        self.tokens, self.updated = self.rate, self.clock.now

    def call(self) -> bool:
        now = self.clock.now
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.passed += 1
            return True
        self.throttled += 1
        return False


@dataclass
class Simulation:
    """Containers of ``threads`` callers each, every caller always busy, on one clock."""

    clock: Clock
    quota: Quota
    latency: float = 0.08
    events: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    active: dict[int, bool] = field(default_factory=dict)

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, next(self.counter), action))

    def start_container(self, number: int, limiter: AdaptiveRateLimiter, threads: int) -> None:
        self.active[number] = True

        def send() -> None:
            if not self.active[number]:
                return
            wait = limiter.reserve(FAR)
            assert wait is not None
            self.at(self.clock.now + wait, call)

        def call() -> None:
            if self.quota.call():
                self.at(self.clock.now + self.latency, succeeded)
            else:
                self.at(self.clock.now + 0.005, throttled)

        def succeeded() -> None:
            limiter.on_success()
            send()

        def throttled() -> None:
            limiter.on_throttle()
            send()

        for _ in range(threads):
            self.at(self.clock.now, send)

    def run_until(self, end: float) -> None:
        while self.events and self.events[0][0] <= end:
            when, _, action = heapq.heappop(self.events)
            self.clock.now = when
            action()
        self.clock.now = end


def test_containers_sharing_a_quota_use_it_all_and_are_rarely_throttled() -> None:
    # given five containers of eight threads, each able to send 100 calls/s, and a 50/s quota
    clock = Clock()
    quota = Quota(50.0, clock)
    simulation = Simulation(clock, quota)
    limiters = [AdaptiveRateLimiter(clock=clock) for _ in range(5)]
    for number, limiter in enumerate(limiters):
        simulation.start_container(number, limiter, threads=8)

    # when they run for two minutes (the first 20 s to settle)
    simulation.run_until(clock.now + 20)
    passed, throttled = quota.passed, quota.throttled
    simulation.run_until(clock.now + 100)

    # then the quota is used to the full and few calls are throttled
    used = (quota.passed - passed) / 100
    throttled_share = (quota.throttled - throttled) / (
        quota.passed - passed + quota.throttled - throttled
    )
    assert used >= 0.97 * 50
    assert throttled_share < 0.15
    # and no container is starved
    rates = [limiter.snapshot().rate for limiter in limiters]
    assert all(rate is not None and rate >= 2.0 for rate in rates), rates

    # when four of them finish, the last one grows into the whole quota within a minute
    for number in range(4):
        simulation.active[number] = False
    simulation.run_until(clock.now + 60)
    passed = quota.passed
    simulation.run_until(clock.now + 10)
    assert (quota.passed - passed) / 10 >= 0.9 * 50
