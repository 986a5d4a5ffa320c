"""A workload that needs no torch: the fake backends ignore its module."""

from harness.contract.interface import Param, Workload


class Noop(Workload):
    name = "noop"
    description = "Does nothing; for exercising the harness."
    unit = "op"
    params = (Param("service_us", int, 0, "busy-wait per step, microseconds", minimum=0),)

    def build_module(self, dtype):
        raise NotImplementedError("noop has no module; use a fake backend")

    def example_inputs(self, batch_size, dtype):
        return ()

    def work_per_step(self, batch_size):
        return float(batch_size)

    def reference_outputs(self, batch_size):
        return None


class Echo(Noop):
    """Like noop, with a reference output: arange(batch * 4) as float32."""

    name = "echo"
    description = "Has a reference output; for parity tests."

    def reference_outputs(self, batch_size):
        import numpy as np

        return [np.arange(batch_size * 4, dtype=np.float32).reshape(batch_size, 4)]
