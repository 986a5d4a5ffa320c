"""``moe``: a DeepSeek-style mixture-of-experts decoder.

The ``llm`` decoder with its dense MLP replaced by a mixture: a softmax router
picks the ``top_k`` of ``experts`` routed experts per token (weights not
renormalised, as in DeepSeek-V2), and ``shared`` always-on shared experts run
for every token. Dispatch is sparse: each expert computes only the tokens
routed to it, so decode reads only the active experts' weights, which is the
point of MoE on bandwidth-bound hardware.

Presets: ``tiny`` for tests, and ``deepseek-v2-lite-narrow``: DeepSeek-V2-Lite's
expert counts and ratios (64 routed experts, top-6, 2 shared, expert width
1408/2048 of the model width) at a reduced width of 512 and 4 layers.
The record reports active and total parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.contract.interface import Param
from harness.contract.precisions import weight_bytes
from workloads.llm import DecoderShape, Llm, _init_weights, build_decoder
from workloads._seeding import seeded


@dataclass(frozen=True)
class MoeShape:
    decoder: DecoderShape
    experts: int
    top_k: int
    shared: int
    expert_intermediate: int
    source: str

    def expert_parameters(self) -> int:
        return 3 * self.decoder.hidden * self.expert_intermediate

    def total_parameters(self) -> int:
        d = self.decoder
        dense_mlp = 3 * d.hidden * d.intermediate
        moe = (self.experts + self.shared) * self.expert_parameters() + d.hidden * self.experts
        return d.parameter_count() - d.layers * dense_mlp + d.layers * moe

    def active_parameters(self) -> int:
        idle = (self.experts - self.top_k) * self.expert_parameters()
        return self.total_parameters() - self.decoder.layers * idle


PRESETS = {
    "tiny": MoeShape(DecoderShape(vocab=2048, hidden=128, intermediate=0, layers=2, heads=4, kv_heads=2,
                                  head_dim=32, tie_embeddings=False),
                     experts=8, top_k=2, shared=1, expert_intermediate=64, source="bakeoff test shape"),
    "deepseek-v2-lite-narrow": MoeShape(
        DecoderShape(vocab=102400, hidden=512, intermediate=0, layers=4, heads=8, kv_heads=8, head_dim=64),
        experts=64, top_k=6, shared=2, expert_intermediate=352,
        source="deepseek-ai/DeepSeek-V2-Lite config.json (64 routed, top-6, 2 shared, "
               "moe_intermediate 1408 at hidden 2048), width reduced to 512"),
}


def moe_layer_factory(moe: MoeShape):
    def factory(shape: DecoderShape):
        import torch
        from torch import nn

        def swiglu(width: int) -> nn.Module:
            class SwiGLU(nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.gate = nn.Linear(shape.hidden, width, bias=False)
                    self.up = nn.Linear(shape.hidden, width, bias=False)
                    self.down = nn.Linear(width, shape.hidden, bias=False)

                def forward(self, x):
                    return self.down(nn.functional.silu(self.gate(x)) * self.up(x))

            return SwiGLU()

        class MixtureOfExperts(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.router = nn.Linear(shape.hidden, moe.experts, bias=False)
                self.experts = nn.ModuleList(swiglu(moe.expert_intermediate) for _ in range(moe.experts))
                self.shared = swiglu(moe.expert_intermediate * moe.shared)

            def forward(self, x):
                batch, tokens, hidden = x.shape
                flat = x.reshape(-1, hidden)
                scores = torch.softmax(self.router(flat).float(), dim=-1)
                top_weights, top_index = torch.topk(scores, moe.top_k, dim=-1)
                out = self.shared(flat)
                for index, expert in enumerate(self.experts):
                    weight = (top_weights * (top_index == index)).sum(dim=-1)
                    rows = torch.nonzero(weight > 0).squeeze(-1)
                    contribution = expert(flat[rows]) * weight[rows, None].to(flat.dtype)
                    out = out.index_add(0, rows, contribution)
                return out.reshape(batch, tokens, hidden)

        return MixtureOfExperts()

    return factory


class Moe(Llm):
    name = "moe"
    description = "DeepSeek-style MoE decoder (routed top-k + shared experts) with KV cache; tokens/s."
    # The same prefill/decode parameters as llm, with MoE presets.
    params = (Param("preset", str, "tiny", "model shape", choices=tuple(PRESETS)), *Llm.params[1:])

    @property
    def moe_shape(self) -> MoeShape:
        return PRESETS[self.values["preset"]]

    @property
    def shape(self) -> DecoderShape:
        return self.moe_shape.decoder

    def build_module(self, dtype: str):
        from harness.contract.interface import torch_dtype

        with seeded(self.seed):
            module = build_decoder(self.shape, mlp_factory=moe_layer_factory(self.moe_shape))
            _init_weights(module)
        return module.to(torch_dtype(dtype)).eval()

    def parameter_count(self) -> int:
        return self.moe_shape.total_parameters()

    def active_parameter_count(self) -> int:
        return self.moe_shape.active_parameters()

    def bytes_per_decode_step(self, batch_size: int, dtype: str) -> float:
        """Decode reads the active experts' weights (an upper bound at batch > 1 is
        all experts, so this is the batch-1 figure) plus the KV cache."""
        p, g = self.values["prompt_tokens"], self.values["new_tokens"]
        return (weight_bytes(self.active_parameter_count(), dtype)
                + batch_size * (p + g / 2) * self.kv_bytes_per_token(dtype))
