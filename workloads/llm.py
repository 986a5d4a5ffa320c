"""``llm``: a Llama-style decoder with an explicit KV cache, measured as prefill + decode.

Architecture: token embedding, ``layers`` x (RMSNorm, grouped-query attention
with rotary position embeddings, RMSNorm, SwiGLU MLP), final RMSNorm, LM head
(tied to the embedding where the public model ties it). Weights are seeded
random with the *shapes* of public models (no download, ever).

The module is functional over its cache, so every runtime can execute it and
ONNX can export it with past-KV inputs and outputs::

    forward(input_ids[B, T], past_key[L, B, Hkv, S, D], past_value[...])
        -> next_token[B, 1] (greedy), logits[B, V] (last position),
           present_key[L, B, Hkv, S+T, D], present_value[...]

One step of the benchmark is one request: a prefill of ``prompt_tokens``
(which yields the first token) and ``new_tokens - 1`` decode steps, each
timestamped by the runner. Metrics follow vLLM's definitions
(docs/measurement.md): TTFT, TPOT, ITL, E2E and output tokens/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.contract.capabilities import KvLayout
from harness.contract.interface import Param, Workload, torch_dtype
from workloads._seeding import seeded


@dataclass(frozen=True)
class DecoderShape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    attention_bias: bool = False
    source: str = "bakeoff test shape"

    def parameter_count(self) -> int:
        attention = self.hidden * self.head_dim * (self.heads * 2 + self.kv_heads * 2)
        if self.attention_bias:
            attention += self.head_dim * (self.heads + 2 * self.kv_heads)
        mlp = 3 * self.hidden * self.intermediate
        norms = 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tie_embeddings else 2)
        return self.layers * (attention + mlp + norms) + embeddings + self.hidden


#: The largest prompt and generation lengths: 128Ki tokens each, the longest context of the presets' models.
MAX_TOKENS = 1 << 17

#: Presets named after public model shapes (config.json of each model on its hub page).
PRESETS: dict[str, DecoderShape] = {
    # Untied head: with random weights a tied head keeps echoing the input token,
    # and a parity check on a constant token stream would prove little.
    "tiny": DecoderShape(vocab=2048, hidden=128, intermediate=384, layers=2, heads=4, kv_heads=2, head_dim=32,
                         tie_embeddings=False),
    "100m": DecoderShape(vocab=32000, hidden=768, intermediate=2048, layers=12, heads=12, kv_heads=4,
                         head_dim=64, source="~100M Llama-style shape (SmolLM/TinyLlama family proportions)"),
    "qwen2.5-0.5b": DecoderShape(vocab=151936, hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2,
                                 head_dim=64, rope_theta=1_000_000.0, tie_embeddings=True, attention_bias=True,
                                 source="Qwen/Qwen2.5-0.5B config.json"),
    "llama-3.2-1b": DecoderShape(vocab=128256, hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8,
                                 head_dim=64, rope_theta=500_000.0, tie_embeddings=True,
                                 source="meta-llama/Llama-3.2-1B config.json"),
}


def build_decoder(shape: DecoderShape, mlp_factory=None):
    """The decoder as a torch module (imports torch lazily). ``mlp_factory(shape)``
    replaces the dense SwiGLU MLP (the MoE workload passes its expert layer)."""
    import torch
    from torch import nn

    class RMSNorm(nn.Module):
        def __init__(self, size: int, eps: float = 1e-6) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(size))
            self.eps = eps

        def forward(self, x):
            variance = x.float().pow(2).mean(-1, keepdim=True)
            return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight

    class SwiGLU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = nn.Linear(shape.hidden, shape.intermediate, bias=False)
            self.up = nn.Linear(shape.hidden, shape.intermediate, bias=False)
            self.down = nn.Linear(shape.intermediate, shape.hidden, bias=False)

        def forward(self, x):
            return self.down(nn.functional.silu(self.gate(x)) * self.up(x))

    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            bias = shape.attention_bias
            self.q = nn.Linear(shape.hidden, shape.heads * shape.head_dim, bias=bias)
            self.k = nn.Linear(shape.hidden, shape.kv_heads * shape.head_dim, bias=bias)
            self.v = nn.Linear(shape.hidden, shape.kv_heads * shape.head_dim, bias=bias)
            self.o = nn.Linear(shape.heads * shape.head_dim, shape.hidden, bias=False)

        def forward(self, x, cos, sin, past_k, past_v, mask):
            batch, tokens, _ = x.shape
            q = self.q(x).view(batch, tokens, shape.heads, shape.head_dim).transpose(1, 2)
            k = self.k(x).view(batch, tokens, shape.kv_heads, shape.head_dim).transpose(1, 2)
            v = self.v(x).view(batch, tokens, shape.kv_heads, shape.head_dim).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
            group = shape.heads // shape.kv_heads
            keys = k.repeat_interleave(group, dim=1)
            values = v.repeat_interleave(group, dim=1)
            scores = torch.matmul(q, keys.transpose(-1, -2)) / math.sqrt(shape.head_dim)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
            out = torch.matmul(weights, values).transpose(1, 2).reshape(batch, tokens, -1)
            return self.o(out), k, v

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention_norm = RMSNorm(shape.hidden)
            self.attention = Attention()
            self.mlp_norm = RMSNorm(shape.hidden)
            self.mlp = mlp_factory(shape) if mlp_factory else SwiGLU()

        def forward(self, x, cos, sin, past_k, past_v, mask):
            attended, k, v = self.attention(self.attention_norm(x), cos, sin, past_k, past_v, mask)
            x = x + attended
            return x + self.mlp(self.mlp_norm(x)), k, v

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(shape.vocab, shape.hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(shape.layers))
            self.norm = RMSNorm(shape.hidden)
            self.lm_head = nn.Linear(shape.hidden, shape.vocab, bias=False)
            if shape.tie_embeddings:
                self.lm_head.weight = self.embed.weight
            inverse = 1.0 / (shape.rope_theta ** (torch.arange(0, shape.head_dim, 2).float() / shape.head_dim))
            self.register_buffer("inv_freq", inverse, persistent=False)

        def forward(self, input_ids, past_key, past_value):
            batch, tokens = input_ids.shape
            past = past_key.shape[3]
            x = self.embed(input_ids)
            positions = torch.arange(tokens, device=input_ids.device) + past
            angles = positions.float()[:, None] * self.inv_freq[None, :]
            angles = torch.cat([angles, angles], dim=-1)
            cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
            query_pos = torch.arange(tokens, device=input_ids.device)[:, None] + past
            key_pos = torch.arange(past + tokens, device=input_ids.device)[None, :]
            mask = key_pos <= query_pos
            keys, values = [], []
            for index, block in enumerate(self.blocks):
                x, k, v = block(x, cos, sin, past_key[index], past_value[index], mask)
                keys.append(k)
                values.append(v)
            logits = self.lm_head(self.norm(x[:, -1, :])).float()
            next_token = torch.argmax(logits, dim=-1, keepdim=True)
            return next_token, logits, torch.stack(keys), torch.stack(values)

    return Decoder()


class Llm(Workload):
    reference_cacheable = True  # a function of this code and the parameters (harness/engine/cache.py)
    name = "llm"
    description = "Llama-style decoder with KV cache: prefill + greedy decode; TTFT, TPOT, tokens/s."
    unit = "token"
    params = (
        Param("preset", str, "tiny", "model shape", choices=tuple(PRESETS)),
        Param("prompt_tokens", int, 32, f"prefill length P (at most {MAX_TOKENS})", minimum=1, maximum=MAX_TOKENS),
        Param("new_tokens", int, 16, f"generated tokens G (the first comes from prefill; at most {MAX_TOKENS})",
              minimum=2, maximum=MAX_TOKENS),
    )
    input_names = ("input_ids", "past_key", "past_value")
    output_names = ("next_token", "logits", "present_key", "present_value")

    @property
    def shape(self) -> DecoderShape:
        return PRESETS[self.values["preset"]]

    # -- the Generative capability (harness/contract/capabilities.py): what backends may rely on -----
    @property
    def prompt_tokens(self) -> int:
        return self.values["prompt_tokens"]

    @property
    def new_tokens(self) -> int:
        return self.values["new_tokens"]

    @property
    def vocab_size(self) -> int:
        return self.shape.vocab

    def kv_layout(self) -> KvLayout:
        return KvLayout(layers=self.shape.layers, kv_heads=self.shape.kv_heads, head_dim=self.shape.head_dim)

    def build_module(self, dtype: str):
        with seeded(self.seed):
            module = build_decoder(self.shape)
            _init_weights(module)
        return module.to(torch_dtype(dtype)).eval()

    def prompt(self, batch_size: int):
        import torch

        generator = torch.Generator().manual_seed(self.seed + 1)
        return torch.randint(0, self.shape.vocab, (batch_size, self.values["prompt_tokens"]), generator=generator)

    def empty_cache(self, batch_size: int, dtype: str):
        import torch

        s = self.shape
        empty = torch.zeros((s.layers, batch_size, s.kv_heads, 0, s.head_dim), dtype=torch_dtype(dtype))
        return empty, empty.clone()

    def example_inputs(self, batch_size: int, dtype: str):
        """Inputs of the prefill call: the prompt and an empty cache."""
        return (self.prompt(batch_size), *self.empty_cache(batch_size, dtype))

    def decode_example_inputs(self, batch_size: int, dtype: str, past: int = 4):
        """Inputs of one decode call, for exporting the decode-step graph."""
        import torch

        s = self.shape
        cache = torch.zeros((s.layers, batch_size, s.kv_heads, past, s.head_dim), dtype=torch_dtype(dtype))
        return (self.prompt(batch_size)[:, :1], cache, cache.clone())

    def work_per_step(self, batch_size: int) -> float:
        return float(batch_size * self.values["new_tokens"])

    # -- model facts for rooflines and reports ---------------------------------
    def parameter_count(self) -> int:
        return self.shape.parameter_count()

    def weight_bytes(self, dtype: str) -> int:
        bytes_per = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}[dtype]
        return self.parameter_count() * bytes_per

    def weight_bytes_with_source(self, dtype: str) -> tuple[int, str]:
        count = self.parameter_count()
        return self.weight_bytes(dtype), f"{count} parameters of the {self.values['preset']} shape x {dtype} width"

    def kv_bytes_per_token(self, dtype: str) -> int:
        s = self.shape
        bytes_per = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 4}[dtype]  # int8 keeps a float cache
        return 2 * s.layers * s.kv_heads * s.head_dim * bytes_per

    def materialised_bytes(self, batch_size: int, dtype: str) -> int:
        """The weights, the KV cache at full length, the prompt ids and the last logits."""
        p, g = self.values["prompt_tokens"], self.values["new_tokens"]
        per_sequence = (p + g) * self.kv_bytes_per_token(dtype) + p * 8 + self.shape.vocab * 4
        return self.weight_bytes(dtype) + batch_size * per_sequence

    def bytes_per_decode_step(self, batch_size: int, dtype: str) -> float:
        """Bytes one decode step must read: every weight once, plus each sequence's KV
        cache at its average length over the generation."""
        p, g = self.values["prompt_tokens"], self.values["new_tokens"]
        average_context = p + g / 2
        return self.weight_bytes(dtype) + batch_size * average_context * self.kv_bytes_per_token(dtype)

    def reference_outputs(self, batch_size: int):
        """Greedy tokens [B, G] and the prefill's last-position logits [B, V], torch CPU float32."""
        import torch

        from harness.engine.generation import greedy_generate

        module = self.build_module("float32")

        def call(ids, key, value):
            with torch.inference_mode():
                return module(ids, key, value)

        prompt, key, value = self.example_inputs(batch_size, "float32")
        tokens, first_logits = greedy_generate(call, prompt, key, value, self.values["new_tokens"],
                                               concat=lambda parts: torch.cat(parts, dim=1))
        return [tokens.numpy(), first_logits.float().numpy()]


def _init_weights(module) -> None:
    """Seeded init with a small std, so activations and logits stay well scaled at any depth."""
    import torch

    for name, parameter in module.named_parameters():
        if name.endswith("weight") and parameter.dim() == 2:
            torch.nn.init.normal_(parameter, mean=0.0, std=0.02)
        elif name.endswith("bias"):
            torch.nn.init.normal_(parameter, mean=0.0, std=0.02)
