"""``gemm``: batched square matrix multiply, the simplest roofline-style probe.

One step multiplies ``batch_size`` pairs of ``size x size`` matrices. The unit
of work is the floating-point operation: ``2 * size**3`` per matrix pair (one
multiply and one add per inner-product term), the convention of BLAS
benchmarks, so throughput reads directly as FLOP/s.
"""

from __future__ import annotations

from harness.interface import Param, Workload
from workloads._seeding import random_tensor


def _matmul_module():
    import torch

    class MatMul(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.matmul(a, b)

    return MatMul()


class Gemm(Workload):
    reference_cacheable = True  # a function of this code and the parameters (harness/cache.py)
    name = "gemm"
    description = "Batched square matmul (size x size); reports FLOP/s."
    unit = "FLOP"
    params = (Param("size", int, 1024, "matrix side length", minimum=1),)
    input_names = ("a", "b")
    output_names = ("c",)

    def build_module(self, dtype: str):
        return _matmul_module().eval()

    def example_inputs(self, batch_size: int, dtype: str):
        n = self.values["size"]
        shape = (batch_size, n, n)
        return (random_tensor(shape, dtype, self.seed), random_tensor(shape, dtype, self.seed + 1))

    def work_per_step(self, batch_size: int) -> float:
        return 2.0 * batch_size * self.values["size"] ** 3
