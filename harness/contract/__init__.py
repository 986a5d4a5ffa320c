"""The plugin contract, and the vocabulary every layer shares.

A plugin author reads this package and nothing else: ``interface`` (Backend,
Prepared, Workload, Scenario), ``capabilities`` (every optional hook, declared),
``errors`` (Unsupported, Unavailable, one-line user errors, record statuses),
``options`` (backend options), ``limits`` and ``units``. It imports nothing else
of harness (tests/test_layers.py).
"""

from harness.contract.errors import Unsupported, UserError
from harness.contract.interface import Availability, Backend, DeviceInfo, Prepared, Scenario, Workload

__all__ = ["Availability", "Backend", "DeviceInfo", "Prepared", "Scenario", "Workload", "Unsupported", "UserError"]
