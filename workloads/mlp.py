"""``mlp``: a transformer-style feed-forward block (Linear, GELU, Linear, residual).

Small enough to export and compile in a second, real enough to exercise the
whole path: seeded weights, ONNX export, OpenVINO conversion, thread pools.
The unit is the sample (one row of ``batch_size``).
"""

from __future__ import annotations

from harness.contract.interface import TENSOR_BYTES, WEIGHT_BYTES, Param, Workload, torch_dtype
from workloads._seeding import random_tensor, seeded


class Mlp(Workload):
    reference_cacheable = True  # a function of this code and the parameters (harness/engine/cache.py)
    name = "mlp"
    description = "Stack of feed-forward blocks (Linear-GELU-Linear + residual); samples/s."
    unit = "sample"
    params = (
        Param("hidden", int, 512, "model width (at most 65536)", minimum=1, maximum=1 << 16),
        Param("expansion", int, 4, "inner width = hidden * expansion (at most 64)", minimum=1, maximum=64),
        Param("layers", int, 2, "number of blocks (at most 1024)", minimum=1, maximum=1024),
    )
    input_names = ("x",)
    output_names = ("y",)

    def build_module(self, dtype: str):
        import torch

        hidden, inner = self.values["hidden"], self.values["hidden"] * self.values["expansion"]

        class Block(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.up = torch.nn.Linear(hidden, inner)
                self.down = torch.nn.Linear(inner, hidden)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x + self.down(torch.nn.functional.gelu(self.up(x)))

        with seeded(self.seed):
            module = torch.nn.Sequential(*[Block() for _ in range(self.values["layers"])])
        return module.to(torch_dtype(dtype)).eval()

    def example_inputs(self, batch_size: int, dtype: str):
        return (random_tensor((batch_size, self.values["hidden"]), dtype, self.seed + 1),)

    def work_per_step(self, batch_size: int) -> float:
        return float(batch_size)

    def materialised_bytes(self, batch_size: int, dtype: str) -> int:
        """Weights, plus one block's input, inner activation and output per sample."""
        hidden, inner = self.values["hidden"], self.values["hidden"] * self.values["expansion"]
        weights = self.values["layers"] * (2 * hidden * inner + inner + hidden) * WEIGHT_BYTES[dtype]
        return weights + batch_size * (2 * hidden + inner) * TENSOR_BYTES[dtype]

    def flops_per_step(self, batch_size: int) -> float:
        """Matmul FLOPs of one step (for the plausibility check; not the unit of work)."""
        hidden, inner = self.values["hidden"], self.values["hidden"] * self.values["expansion"]
        return 2.0 * batch_size * 2 * hidden * inner * self.values["layers"]
