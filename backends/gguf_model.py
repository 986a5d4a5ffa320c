"""The ``llm`` workload's seeded decoder as a GGUF file, written with the ``gguf`` package.

The same weights as the Hugging Face folder (harness/tools/hf_model.py), under llama.cpp's
tensor names (``gguf.get_tensor_name_map``) and metadata keys, in float32; llama.cpp's own
quantizer makes every other format from it (backends/llama_cpp_backend.py).

Two facts of llama.cpp's loaders shape the file:

* The ``llama`` architecture applies rotary embeddings to interleaved pairs, where Hugging
  Face (and workloads/llm.py) rotate halves, so llama.cpp's converter permutes the rows of
  the query and key projections; this writer does the same. The ``qwen2`` architecture
  (shapes with q/k/v biases) rotates halves itself and takes the rows as they are.
* The vocabulary must have exactly as many entries as the embedding has rows, so the
  trained BPE's filler entries are written as unused tokens.

Cached under ``<cache>/gguf/`` by the same key as the model folder, atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

#: Bump to invalidate every cached GGUF file.
GGUF_FORMAT_VERSION = 1


def permute_rotary_rows(weight: Any, heads: int) -> Any:
    """Rows of a q/k projection (or bias) reordered from rotate-half to interleaved pairs, per head:
    what llama.cpp's convert_hf_to_gguf.py does for the ``llama`` architecture."""
    rows = weight.shape[0]
    return (weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _vocabulary(tokenizer_json: Path) -> tuple[list[str], list[str], int]:
    data = json.loads(tokenizer_json.read_text())
    table = data["model"]["vocab"]
    tokens = [None] * len(table)
    for text, index in table.items():
        tokens[index] = text
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    specials = len(data.get("added_tokens", []))
    return tokens, merges, specials


def gguf_tensors(workload: Any) -> list[tuple[str, Any]]:
    """``(GGUF name, float32 array)`` for every weight, in llama.cpp's layout (q/k rows permuted
    for the ``llama`` architecture)."""
    import gguf
    import numpy as np

    from harness.tools.hf_model import hf_state_dict

    shape = workload.shape
    arch = gguf.MODEL_ARCH.QWEN2 if shape.attention_bias else gguf.MODEL_ARCH.LLAMA
    names = gguf.get_tensor_name_map(arch, shape.layers)
    tensors = []
    for hf_name, tensor in hf_state_dict(workload.build_module("float32"), shape.tie_embeddings).items():
        array = tensor.numpy().astype(np.float32)
        if arch == gguf.MODEL_ARCH.LLAMA and (".q_proj." in hf_name or ".k_proj." in hf_name):
            array = permute_rotary_rows(array, shape.heads if ".q_proj." in hf_name else shape.kv_heads)
        target = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        tensors.append((target, np.ascontiguousarray(array)))
    return tensors


def write_gguf(workload: Any, path: Path, hf_folder: Path, float16: bool = False) -> None:
    """Write the workload's decoder to ``path`` in float32 (``float16``: its matrices in float16,
    the norms and biases in float32, as llama.cpp's F16 files keep them), its vocabulary from
    ``hf_folder``'s tokenizer."""
    import gguf
    import numpy as np

    from harness.tools.hf_model import hf_config

    shape = workload.shape
    arch = gguf.MODEL_ARCH.QWEN2 if shape.attention_bias else gguf.MODEL_ARCH.LLAMA
    config = hf_config(shape, int(json.loads((hf_folder / "config.json").read_text())["max_position_embeddings"]))
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(f"bakeoff llm {workload.values['preset']} (seeded weights)")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.intermediate)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if float16 else gguf.LlamaFileType.ALL_F32)

    tokens, merges, specials = _vocabulary(hf_folder / "tokenizer.json")
    if len(tokens) != shape.vocab:
        raise ValueError(f"{hf_folder}/tokenizer.json has {len(tokens)} entries, the model {shape.vocab}")
    types = [gguf.TokenType.CONTROL if i < specials else
             gguf.TokenType.UNUSED if text.startswith("<|filler_") else gguf.TokenType.NORMAL
             for i, text in enumerate(tokens)]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_pad_token_id(config["pad_token_id"])
    writer.add_add_bos_token(False)

    for name, array in gguf_tensors(workload):
        writer.add_tensor(name, array.astype(np.float16) if float16 and array.ndim == 2 else array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_file(workload: Any, directory: Path | None = None, float16: bool = False) -> tuple[Path, bool, float]:
    """``(path, cached, seconds)``: the workload's float32 (or float16) GGUF, written once and kept."""
    from harness.tools.export import cache_dir
    from harness.tools.hf_model import folder_key, hf_model_dir

    hf = hf_model_dir(workload, directory)
    max_positions = int(json.loads((hf.path / "config.json").read_text())["max_position_embeddings"])
    root = Path(directory or cache_dir()) / "gguf"
    key = f"{folder_key(workload, max_positions)}-v{GGUF_FORMAT_VERSION}"
    path = root / f"{workload.name}-{workload.values['preset']}-{key}-{'f16-written' if float16 else 'f32'}.gguf"
    if path.exists():
        return path, True, 0.0
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    handle, staging = tempfile.mkstemp(dir=root, prefix=".gguf-", suffix=".gguf")
    os.close(handle)
    try:
        write_gguf(workload, Path(staging), hf.path, float16)
        os.chmod(staging, 0o644)  # mkstemp makes it private; the cache is shared like the exports
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path, False, time.perf_counter() - start
