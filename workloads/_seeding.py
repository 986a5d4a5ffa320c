"""Seeded construction, so every backend and every run sees identical weights and inputs."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with torch's global RNG seeded, restoring the caller's RNG state after."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def random_tensor(shape: tuple[int, ...], dtype: str, seed: int):
    """A standard-normal tensor from its own generator, cast to ``dtype``."""
    import torch

    from harness.contract.interface import torch_dtype

    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(torch_dtype(dtype))
