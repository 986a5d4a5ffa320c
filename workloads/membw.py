"""``membw``: achieved memory bandwidth, the ceiling LLM decode runs against.

Decode reads every weight once per token, so its roofline is *read*
bandwidth. Two modes, on a buffer far larger than any last-level cache
(default 1 GiB; the largest server LLCs are a few hundred MiB):

* ``read``: row sums over 4096-element rows: reads the buffer once and writes
  1/4096 of it (ignored in the byte count). Short rows keep every partial sum
  exact in float32, so parity checks the runtime and not its summation order:
  a single 268M-element float32 sum loses ~4% in a naive accumulator.
  Work per step = buffer bytes.
* ``copy``: ``y = x + 1``: reads the buffer and writes a new one, STREAM-style
  (a plain copy could be optimised into aliasing by a graph runtime).
  Work per step = 2 x buffer bytes.

Unit: bytes (B), so throughput reads as GB/s (decimal, as bandwidth is quoted).
"""

from __future__ import annotations

from harness.contract.interface import TENSOR_BYTES, Param, Workload, torch_dtype

MIB = 1 << 20
ROW = 4096


class MemoryBandwidth(Workload):
    reference_cacheable = True  # a function of this code and the parameters (harness/engine/cache.py)
    name = "membw"
    description = "Read (sum) or copy (x + 1) bandwidth on a buffer far larger than the LLC; bytes/s."
    unit = "B"
    params = (
        Param("size_mib", int, 1024, "buffer size in MiB (per batch item; at most 1048576, 1 TiB)",
              minimum=1, maximum=1 << 20),
        Param("mode", str, "read", "read or copy", choices=("read", "copy")),
    )
    input_names = ("x",)
    output_names = ("y",)

    def build_module(self, dtype: str):
        import torch

        mode = self.values["mode"]

        class Stream(torch.nn.Module):
            def forward(self, x):
                if mode == "read":
                    return x.reshape(x.shape[0], -1, ROW).sum(dim=-1)
                return x + 1

        return Stream().eval()

    def _elements(self, dtype: str) -> int:
        import torch

        itemsize = torch.empty((), dtype=torch_dtype(dtype)).element_size()
        return self.values["size_mib"] * MIB // itemsize // ROW * ROW

    def example_inputs(self, batch_size: int, dtype: str):
        import torch

        # Small integers are exact in every float format, so the sum is exact too.
        generator = torch.Generator().manual_seed(self.seed)
        values = torch.randint(0, 4, (batch_size, self._elements(dtype)), generator=generator)
        return (values.to(torch_dtype(dtype)),)

    def input_bytes(self, batch_size: int, dtype: str) -> int:
        """The input buffer exactly as ``example_inputs`` builds it, without building it."""
        itemsize = TENSOR_BYTES[dtype]
        return batch_size * (self.values["size_mib"] * MIB // itemsize // ROW * ROW) * itemsize

    def materialised_bytes(self, batch_size: int, dtype: str) -> int:
        """The input buffer, and for ``copy`` an output buffer of the same size."""
        buffer = batch_size * self.values["size_mib"] * MIB
        return buffer * (2 if self.values["mode"] == "copy" else 1)

    def work_per_step(self, batch_size: int) -> float:
        factor = 1 if self.values["mode"] == "read" else 2
        return float(factor * batch_size * self.values["size_mib"] * MIB)
