"""Load scenarios, named and defined as in MLPerf Inference LoadGen.

* ``single-stream``: one query at a time, the next issued when the previous
  completes. Metric: p90 latency.
* ``offline``: all samples available at once; each step processes a whole
  batch back to back. Metric: throughput (work / busy time). Sweep
  ``--batch-size`` to find the best batch.
* ``server``: queries arrive as a Poisson process at a target QPS from a
  seeded generator (or gamma with a burstiness factor, or at a constant rate,
  optionally after a linear ramp-up), and wait in a FIFO queue while the device is busy.
  Latency is completion minus *arrival*, so queueing delay counts. The run is
  valid when p99 latency is within the SLO and the minimum duration (to the
  last *scheduled* query, as LoadGen measures it) and query count are met.
  ``find_max_qps`` binary-searches the highest valid QPS.
* ``concurrent``: a closed loop of N clients, each sending its next query as
  soon as its previous one completes (what serving benchmarks call fixed
  concurrency). Only for backends whose queries may overlap
  (``Prepared.concurrent_safe``: an HTTP endpoint, not one local session).
  Metrics: throughput over the wall time, requests/s, and goodput: the rate
  of queries meeting every SLO (E2E latency, and TTFT/TPOT bounds where
  tokens stream). Valid when p99 latency and the token bounds meet the SLO
  and the minimums are met. ``find_max_concurrency`` doubles N until a run
  fails.

Every scenario returns its metric and a validity verdict with the reason.
Each is a :class:`harness.contract.interface.Scenario` registered under the
entry-point group ``bakeoff.scenarios``, as a plugin's scenario is.
"""

from harness.engine.scenarios.base import (ARRIVALS, CONCURRENT, OFFLINE, SERVER, SINGLE_STREAM, WAKE_UPS, ScenarioResult,
                                    ServerSettings, run_offline, run_single_stream)
from harness.engine.scenarios.builtin import Concurrent, Offline, Server, SingleStream
from harness.engine.scenarios.concurrent import ConcurrentTrial, run_concurrent, run_concurrent_trial
from harness.engine.scenarios.server import (MAX_LATENESS_SHARE, MAX_RATE_SHORTFALL, ServerTrial, check_token_bounds,
                                      arrivals_ns, estimate_service_s, find_max_qps, poisson_arrivals_ns, run_server,
                                      run_server_trial)

__all__ = ["ARRIVALS", "CONCURRENT", "arrivals_ns", "OFFLINE", "SERVER", "SINGLE_STREAM", "Concurrent", "ConcurrentTrial", "MAX_LATENESS_SHARE",
           "MAX_RATE_SHORTFALL", "Offline", "ScenarioResult", "Server", "ServerSettings", "ServerTrial",
           "SingleStream", "check_token_bounds", "estimate_service_s", "find_max_qps", "poisson_arrivals_ns",
           "run_concurrent", "run_concurrent_trial", "run_offline", "run_server", "run_server_trial",
           "run_single_stream", "WAKE_UPS"]
