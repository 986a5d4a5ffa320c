"""``gemm``: batched square matrix multiply, the simplest roofline-style probe.

One step multiplies ``batch_size`` pairs of ``size x size`` matrices. The unit
of work is the floating-point operation: ``2 * size**3`` per matrix pair (one
multiply and one add per inner-product term), the convention of BLAS
benchmarks, so throughput reads directly as FLOP/s.
"""

from __future__ import annotations

from harness.contract.interface import TENSOR_BYTES, Param, Workload
from workloads._seeding import random_tensor

#: The largest matrix side: one 65536 x 65536 float32 matrix is 16 GiB.
MAX_SIZE = 1 << 16


def _matmul_module():
    import torch

    class MatMul(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.matmul(a, b)

    return MatMul()


class Gemm(Workload):
    reference_cacheable = True  # a function of this code and the parameters (harness/engine/cache.py)
    name = "gemm"
    description = "Batched square matmul (size x size); reports FLOP/s."
    unit = "FLOP"
    params = (Param("size", int, 1024, f"matrix side length (at most {MAX_SIZE})", minimum=1, maximum=MAX_SIZE),)
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

    def input_bytes(self, batch_size: int, dtype: str) -> int:
        """a and b: two ``batch x size x size`` tensors (counted without building them)."""
        return 2 * batch_size * self.values["size"] ** 2 * TENSOR_BYTES[dtype]

    def materialised_bytes(self, batch_size: int, dtype: str) -> int:
        """a, b and c: three ``batch x size x size`` tensors."""
        return 3 * batch_size * self.values["size"] ** 2 * TENSOR_BYTES[dtype]
