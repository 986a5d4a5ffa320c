"""Fake time for deterministic timing tests: no test depends on the wall clock."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from harness.contract.interface import Prepared


class FakeTimebase:
    """A clock that only moves when a fake device works or the harness sleeps."""

    name = "fake-clock"
    resolution_ns = 1.0

    def __init__(self, start: int = 1_000_000_000) -> None:
        self.t = start
        self.reads = 0

    def now(self) -> int:
        self.reads += 1
        return self.t

    def sleep_until(self, deadline_ns: int, *, spin: bool = True) -> None:
        self.t = max(self.t, deadline_ns + self.oversleep_ns)

    #: Planted wake-up lateness: every sleep overshoots its deadline by this much.
    oversleep_ns = 0

    def calibrate(self) -> dict:
        return {"spin_threshold_ns": 0, "method": "fake clock: wakes exactly on time"}


class FakeDevice(Prepared):
    """A device whose every step costs a scripted number of (fake) nanoseconds."""

    def __init__(self, timebase: FakeTimebase, costs: Iterable[int] | Callable[[], int],
                 sync_cost: int = 0, device_timer=None) -> None:
        super().__init__()
        self.timebase = timebase
        self._next_cost: Callable[[], int] = costs if callable(costs) else _iterate(iter(costs))
        self.sync_cost = sync_cost
        self.calls: list[str] = []
        self._device_timer = device_timer

    def step(self) -> None:
        self.calls.append("step")
        self.timebase.t += self._next_cost()

    def synchronize(self) -> None:
        self.calls.append("sync")
        self.timebase.t += self.sync_cost

    def device_timer(self):
        return self._device_timer


def _iterate(it: Iterator[int]) -> Callable[[], int]:
    return lambda: next(it)


def constant(ns: int) -> Callable[[], int]:
    return lambda: ns


class FixedDeviceTimer:
    """A device timer that reports a fixed device-side duration per step."""

    name = "fake-device-events"
    resolution_ns = 500.0

    def __init__(self, device_ns: int) -> None:
        self.device_ns = device_ns
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def elapsed_ns(self) -> int:
        self.calls.append("elapsed")
        return self.device_ns


class FakeStreamingDevice(FakeDevice):
    """A fake LLM: the prefill costs ``first_ns``, then each further token ``per_token_ns``."""

    def __init__(self, timebase: FakeTimebase, first_ns: int, per_token_ns: int, tokens: int) -> None:
        super().__init__(timebase, constant(0))
        self.first_ns, self.per_token_ns, self.tokens = first_ns, per_token_ns, tokens

    def step_streaming(self, mark) -> None:
        self.timebase.t += self.first_ns
        mark()
        for _ in range(self.tokens - 1):
            self.timebase.t += self.per_token_ns
            mark()

    def step(self) -> None:
        self.step_streaming(lambda: None)
