"""A decoder workload as a local Hugging Face-format model folder: what engines and runtimes
that load "a model directory" take (ONNX Runtime GenAI's model builder, OpenVINO's
converters, vLLM, llama.cpp's own converter), with nothing downloaded.

The folder holds the workload's *own* seeded weights, so every runtime fed from it is held
to the same torch float32 reference as the built-in backends:

* ``config.json``: ``LlamaForCausalLM`` (or ``Qwen2ForCausalLM`` for the shapes with
  q/k/v biases, such as ``qwen2.5-0.5b``) at the preset's shape. The decoder in
  workloads/llm.py is exactly that architecture: RMSNorm (eps 1e-6), rotary embeddings
  with ``rotate_half`` and the preset's ``rope_theta``, grouped-query attention, SwiGLU,
  the head tied where the public model ties it.
* ``model.safetensors``: the state dict in float32 under Hugging Face's names.
* ``tokenizer.json`` (+ ``tokenizer_config.json``): a byte-level BPE trained with
  ``tokenizers`` on generated English, grown with unreachable filler entries to exactly the
  preset's vocabulary, so ``vocab_size`` and the embedding agree. The benchmarks feed token
  ids; the tokenizer is there because the loaders require one.

:func:`hf_model_dir` caches the folder under ``<cache>/hf/`` keyed by the workload's
identity (its class, source hash, parameters, seed) and :data:`HF_FORMAT_VERSION`, and
moves it into place atomically, as exports are (harness/tools/export.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.files.atomic import fsync_dir, fsync_tree

#: Bump to invalidate every cached model folder.
HF_FORMAT_VERSION = 1
#: Special tokens at the front of the vocabulary (ids 0, 1, 2).
BOS, EOS, PAD = "<s>", "</s>", "<pad>"


@dataclass(frozen=True)
class HfModel:
    path: Path
    cached: bool
    seconds: float
    architecture: str


def architecture(shape: Any) -> str:
    """``LlamaForCausalLM``, or ``Qwen2ForCausalLM`` where the shape has q/k/v biases (Llama's
    ``attention_bias`` would add one to the output projection too, which the decoder lacks).
    A latent-attention shape has no such folder yet (:class:`Unsupported`)."""
    if shape.latent_attention:
        from harness.contract.errors import Unsupported

        raise Unsupported("a latent-attention (MLA) preset has no Hugging Face folder here: the runtimes fed "
                          "from one (llama-cpp, onnxruntime-genai) get Llama and Qwen2 shapes; MLA runs on "
                          "torch, onnxruntime and openvino")
    return "Qwen2ForCausalLM" if shape.attention_bias else "LlamaForCausalLM"


def hf_config(shape: Any, max_positions: int) -> dict[str, Any]:
    qwen = shape.attention_bias
    config = {
        "architectures": [architecture(shape)],
        "model_type": "qwen2" if qwen else "llama",
        "vocab_size": shape.vocab, "hidden_size": shape.hidden, "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads, "head_dim": shape.head_dim, "hidden_act": "silu",
        "rms_norm_eps": 1e-6, "rope_theta": shape.rope_theta, "tie_word_embeddings": shape.tie_embeddings,
        "max_position_embeddings": max_positions, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "torch_dtype": "float32",
    }
    if qwen:
        config.update(use_sliding_window=False, sliding_window=None, max_window_layers=shape.layers)
    else:
        config.update(attention_bias=False, mlp_bias=False, pretraining_tp=1, rope_scaling=None)
    return config


#: workloads/llm.py's state-dict names -> Hugging Face's, per block and for the whole model.
_BLOCK_NAMES = {
    "attention_norm.weight": "input_layernorm.weight", "mlp_norm.weight": "post_attention_layernorm.weight",
    "attention.q.weight": "self_attn.q_proj.weight", "attention.q.bias": "self_attn.q_proj.bias",
    "attention.k.weight": "self_attn.k_proj.weight", "attention.k.bias": "self_attn.k_proj.bias",
    "attention.v.weight": "self_attn.v_proj.weight", "attention.v.bias": "self_attn.v_proj.bias",
    "attention.o.weight": "self_attn.o_proj.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight", "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
}
_MODEL_NAMES = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
                "lm_head.weight": "lm_head.weight"}


def hf_state_dict(module: Any, tie_embeddings: bool) -> dict[str, Any]:
    """The decoder's weights under Hugging Face's names (float32, contiguous); the head is left
    out where it is tied to the embedding, as ``save_pretrained`` does."""
    renamed = {}
    for name, tensor in module.state_dict().items():
        if name.startswith("blocks."):
            _, index, rest = name.split(".", 2)
            target = f"model.layers.{index}.{_BLOCK_NAMES[rest]}"
        else:
            target = _MODEL_NAMES[name]
        if target == "lm_head.weight" and tie_embeddings:
            continue
        renamed[target] = tensor.detach().float().contiguous().clone()
    return renamed


def train_tokenizer(vocab: int, seed: int = 0) -> Any:
    """A byte-level BPE (``tokenizers``) trained on generated English to at most ``vocab`` entries,
    then filled to exactly ``vocab`` with unreachable ``<|filler_N|>`` entries."""
    import random

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from backends._prompts import WORDS

    rng = random.Random(seed)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(4000)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab, 4096), special_tokens=[BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    data = json.loads(tokenizer.to_str())
    table = data["model"]["vocab"]
    if len(table) > vocab:
        raise ValueError(f"vocabulary of {vocab} is smaller than the byte alphabet and specials ({len(table)})")
    for index in range(len(table), vocab):
        table[f"<|filler_{index}|>"] = index
    return Tokenizer.from_str(json.dumps(data))


def _write(folder: Path, workload: Any, max_positions: int) -> None:
    from safetensors.torch import save_file

    shape = workload.shape
    module = workload.build_module("float32")
    save_file(hf_state_dict(module, shape.tie_embeddings), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(shape, max_positions), indent=2))
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "do_sample": False}, indent=2))
    train_tokenizer(shape.vocab, workload.seed).save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "model_max_length": max_positions, "add_bos_token": False, "clean_up_tokenization_spaces": False,
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": BOS, "eos_token": EOS,
                                                                "pad_token": PAD}))


def folder_key(workload: Any, max_positions: int) -> str:
    from harness.tools.export import workload_identity

    identity = {**workload_identity(workload, "float32"), "seed": workload.seed, "format": HF_FORMAT_VERSION,
                "max_positions": max_positions}
    identity["params"] = {"preset": workload.values["preset"]}  # lengths do not change the weights
    return hashlib.blake2b(json.dumps(identity, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def hf_model_dir(workload: Any, directory: Path | None = None, max_positions: int = 4096) -> HfModel:
    """The decoder workload's seeded weights as a cached, complete Hugging Face-format folder.

    ``max_positions`` becomes ``max_position_embeddings`` (at least the workload's prompt plus
    generation). ``directory`` replaces the cache folder (:func:`harness.tools.export.cache_dir`).
    """
    from harness.tools.export import cache_dir

    max_positions = max(max_positions, workload.prompt_tokens + workload.new_tokens)
    kind = architecture(workload.shape)
    root = Path(directory or cache_dir()) / "hf"
    folder = root / f"{workload.name}-{workload.values['preset']}-{folder_key(workload, max_positions)}"
    if (folder / "config.json").exists():
        return HfModel(folder, True, 0.0, kind)
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".hf-"))
    try:
        _write(staging, workload, max_positions)
        fsync_tree(staging)
        try:
            os.replace(staging, folder)
        except OSError:  # another worker finished the same folder first
            shutil.rmtree(staging, ignore_errors=True)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return HfModel(folder, False, time.perf_counter() - start, kind)
