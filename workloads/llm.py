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
from harness.contract.precisions import precision, weight_bytes
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
    #: Multi-head latent attention (DeepSeek-V2): the cache holds one compressed latent of this
    #: width per token, plus a decoupled rotary key of ``rope_head_dim`` shared by the heads.
    #: ``None``: grouped-query attention. Under MLA ``head_dim`` is the per-head non-rotary
    #: query/key width (DeepSeek's ``qk_nope_head_dim``) and ``kv_heads`` is 1 (the latent).
    kv_lora_rank: int | None = None
    rope_head_dim: int = 0
    v_head_dim: int = 0

    @property
    def latent_attention(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def rotary_dim(self) -> int:
        """The width rotary embeddings turn: the whole head under GQA, the decoupled key under MLA."""
        return self.rope_head_dim if self.latent_attention else self.head_dim

    def cache_widths(self) -> tuple[int, int]:
        """Values per token per layer in the (key, value) cache tensors: ``kv_heads x head_dim``
        each under GQA; the latent and the rotary key under MLA."""
        if self.latent_attention:
            return self.kv_lora_rank, self.rope_head_dim
        return self.kv_heads * self.head_dim, self.kv_heads * self.head_dim

    def attention_parameters(self) -> int:
        if self.latent_attention:
            query = self.hidden * self.heads * (self.head_dim + self.rope_head_dim)
            down = self.hidden * (self.kv_lora_rank + self.rope_head_dim) + self.kv_lora_rank  # + latent norm
            up = self.kv_lora_rank * self.heads * (self.head_dim + self.v_head_dim)
            return query + down + up + self.heads * self.v_head_dim * self.hidden
        attention = self.hidden * self.head_dim * (self.heads * 2 + self.kv_heads * 2)
        if self.attention_bias:
            attention += self.head_dim * (self.heads + 2 * self.kv_heads)
        return attention

    def parameter_count(self) -> int:
        attention = self.attention_parameters()
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
    # tiny's width with latent attention: a 64-wide latent and a 16-wide rotary key cache
    # 80 values per token per layer, where tiny's two 2 x 32 GQA tensors cache 128.
    "tiny-mla": DecoderShape(vocab=2048, hidden=128, intermediate=384, layers=2, heads=4, kv_heads=1, head_dim=32,
                             tie_embeddings=False, kv_lora_rank=64, rope_head_dim=16, v_head_dim=32,
                             source="bakeoff test shape: tiny with DeepSeek-V2-style latent attention"),
    # DeepSeek-V2-Lite's attention: 16 heads, no query compression, a 512-wide KV latent, a
    # 64-wide decoupled rotary key, 128-wide non-rotary q/k and v heads. Every layer's FFN is
    # dense at the model's first (dense) layer's width; its MoE layers are the moe workload's.
    # Plain RoPE at theta 10000: the model's YaRN scaling (factor 40 past 4096 positions) is
    # left out.
    "deepseek-v2-lite-mla": DecoderShape(vocab=102400, hidden=2048, intermediate=10944, layers=27, heads=16,
                                         kv_heads=1, head_dim=128, rope_theta=10000.0, tie_embeddings=False,
                                         kv_lora_rank=512, rope_head_dim=64, v_head_dim=128,
                                         source="deepseek-ai/DeepSeek-V2-Lite config.json (attention shapes); "
                                                "dense FFN at its intermediate_size 10944 in every layer"),
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

    class LatentAttention(nn.Module):
        """DeepSeek-V2's multi-head latent attention (no query compression, as in V2-Lite).

        Keys and values come from a per-token latent ``c`` (``kv_lora_rank`` wide, RMS-normed)
        through one up-projection; the rotary part of the key is a separate ``rope_head_dim``
        vector shared by every head. The cache keeps ``c`` and that rotary key, not per-head
        keys and values: ``past_k`` is ``[B, 1, S, kv_lora_rank]``, ``past_v`` ``[B, 1, S, rope]``.
        """

        def __init__(self) -> None:
            super().__init__()
            self.nope, self.rope, self.v_dim = shape.head_dim, shape.rope_head_dim, shape.v_head_dim
            self.q = nn.Linear(shape.hidden, shape.heads * (self.nope + self.rope), bias=False)
            self.kv_down = nn.Linear(shape.hidden, shape.kv_lora_rank + self.rope, bias=False)
            self.kv_norm = RMSNorm(shape.kv_lora_rank)
            self.kv_up = nn.Linear(shape.kv_lora_rank, shape.heads * (self.nope + self.v_dim), bias=False)
            self.o = nn.Linear(shape.heads * self.v_dim, shape.hidden, bias=False)

        def forward(self, x, cos, sin, past_latent, past_rope, mask):
            batch, tokens, _ = x.shape
            heads = shape.heads
            q = self.q(x).view(batch, tokens, heads, self.nope + self.rope).transpose(1, 2)
            q_nope, q_rope = q.split([self.nope, self.rope], dim=-1)
            latent, k_rope = self.kv_down(x).split([shape.kv_lora_rank, self.rope], dim=-1)
            latent = self.kv_norm(latent).unsqueeze(1)            # [B, 1, T, R]
            k_rope = k_rope.unsqueeze(1)                           # [B, 1, T, rope]
            q_rope = q_rope * cos + rotate_half(q_rope) * sin
            k_rope = k_rope * cos + rotate_half(k_rope) * sin
            latent = torch.cat([past_latent, latent], dim=2)
            k_rope = torch.cat([past_rope, k_rope], dim=2)
            context = latent.shape[2]
            kv = self.kv_up(latent.squeeze(1)).view(batch, context, heads, self.nope + self.v_dim).transpose(1, 2)
            k_nope, values = kv.split([self.nope, self.v_dim], dim=-1)
            keys = torch.cat([k_nope, k_rope.expand(batch, heads, context, self.rope)], dim=-1)
            query = torch.cat([q_nope, q_rope], dim=-1)
            scores = torch.matmul(query, keys.transpose(-1, -2)) / math.sqrt(self.nope + self.rope)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores.float(), dim=-1).to(query.dtype)
            out = torch.matmul(weights, values).transpose(1, 2).reshape(batch, tokens, -1)
            return self.o(out), latent, k_rope

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention_norm = RMSNorm(shape.hidden)
            self.attention = LatentAttention() if shape.latent_attention else Attention()
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
            rotary = shape.rotary_dim
            inverse = 1.0 / (shape.rope_theta ** (torch.arange(0, rotary, 2).float() / rotary))
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
        s = self.shape
        if s.latent_attention:
            return KvLayout(layers=s.layers, kv_heads=1, head_dim=s.kv_lora_rank, value_dim=s.rope_head_dim)
        return KvLayout(layers=s.layers, kv_heads=s.kv_heads, head_dim=s.head_dim)

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

        kv = self.kv_layout()
        dtype_ = torch_dtype(dtype)
        return (torch.zeros((kv.layers, batch_size, kv.kv_heads, 0, kv.head_dim), dtype=dtype_),
                torch.zeros((kv.layers, batch_size, kv.kv_heads, 0, kv.value_width), dtype=dtype_))

    def example_inputs(self, batch_size: int, dtype: str):
        """Inputs of the prefill call: the prompt and an empty cache."""
        return (self.prompt(batch_size), *self.empty_cache(batch_size, dtype))

    def decode_example_inputs(self, batch_size: int, dtype: str, past: int = 4):
        """Inputs of one decode call, for exporting the decode-step graph."""
        import torch

        kv = self.kv_layout()
        dtype_ = torch_dtype(dtype)
        return (self.prompt(batch_size)[:, :1],
                torch.zeros((kv.layers, batch_size, kv.kv_heads, past, kv.head_dim), dtype=dtype_),
                torch.zeros((kv.layers, batch_size, kv.kv_heads, past, kv.value_width), dtype=dtype_))

    def work_per_step(self, batch_size: int) -> float:
        return float(batch_size * self.values["new_tokens"])

    # -- model facts for rooflines and reports ---------------------------------
    def parameter_count(self) -> int:
        return self.shape.parameter_count()

    def weight_bytes(self, dtype: str) -> int:
        return weight_bytes(self.parameter_count(), dtype)

    def weight_bytes_with_source(self, dtype: str) -> tuple[int, str]:
        count = self.parameter_count()
        bits = precision(dtype).bits_per_weight
        return (self.weight_bytes(dtype),
                f"{count} parameters of the {self.values['preset']} shape x {bits:g} bits ({dtype})")

    def kv_bytes_per_token(self, dtype: str) -> int:
        """Bytes the cache holds per token: every layer's cache tensors (keys and values under
        GQA; the latent and the rotary key under MLA) at the tensor width (int8 and the
        weight-only formats keep a float32 cache). tests/test_efficiency_runtimes.py checks it
        against the bytes of the caches the module really returns."""
        s = self.shape
        return s.layers * sum(s.cache_widths()) * precision(dtype).activation_bytes

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
