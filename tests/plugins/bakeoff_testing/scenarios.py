"""A scenario written outside harness, as a plugin would ship one: bursts of back-to-back queries.

It registers under ``bakeoff.scenarios`` in this package's ``entry_points.txt`` and declares its
own settings; the tests run it with ``bakeoff run -s burst --scenario-option burst.size=3`` and
from a config's ``[scenario.burst]`` table, with no edit to harness/.
"""

import time

from harness.contract.errors import UserError
from harness.contract.interface import Scenario
from harness.contract.options import Option
from harness.engine.scenarios import ScenarioResult
from harness.analysis.stats import percentile
from harness.engine.timing import Sampling


class Burst(Scenario):
    """``size`` queries back to back, then an idle gap of ``gap_ms``; metric: p99 latency.

    The shape of a batch job's traffic, or of a chat user's turns. Valid when at least
    ``bursts`` bursts ran.
    """

    name = "burst"
    description = "Bursts of back-to-back queries with idle gaps between them; metric: p99 latency."
    SETTINGS = {
        "size": Option("int", 4, help="queries per burst"),
        "gap_ms": Option("int", 2, help="idle time between bursts, in ms"),
        "bursts": Option("int", 3, help="bursts to run (the minimum for a valid result)"),
    }

    def _values(self, settings):
        return {key: settings.get(key, option.default) for key, option in self.SETTINGS.items()}

    def check(self, settings, server):
        values = self._values(settings)
        for key in ("size", "bursts"):
            if values[key] < 1:
                raise UserError(f"scenario setting burst.{key} = {values[key]}: must be >= 1")
        if values["gap_ms"] < 0:
            raise UserError(f"scenario setting burst.gap_ms = {values['gap_ms']}: must be >= 0")

    def run(self, prepared, stopping, timebase, *, settings, server, work_per_step, unit):
        values = self._values(settings)
        now, latencies = timebase.now, []
        started_unix_ns, start = time.time_ns(), now()
        for _ in range(values["bursts"]):
            for _ in range(values["size"]):
                t0 = now()
                prepared.step()
                prepared.synchronize()
                latencies.append(now() - t0)
            timebase.sleep_until(now() + values["gap_ms"] * 1_000_000)
        sampling = Sampling(latencies_ns=latencies, host_latencies_ns=None, timer=timebase.name,
                            timer_resolution_ns=timebase.resolution_ns, elapsed_ns=now() - start,
                            stop_reason=f"{values['bursts']} bursts of {values['size']}", target_reached=None,
                            achieved_ci=None, started_unix_ns=started_unix_ns)
        p99 = percentile(sorted(latencies), 99) / 1e9
        return ScenarioResult(sampling, {"name": "p99_latency", "value": p99, "unit": "s"}, True,
                              f"{values['bursts']} bursts of {values['size']} queries ran",
                              extra={"bursts": values["bursts"], "burst_size": values["size"]})
