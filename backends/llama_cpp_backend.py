"""llama.cpp backend (llama-cpp-python): the ``llm`` workload as GGUF, in the formats buyers
deploy on CPUs (and, with a CUDA or CANN build of llama.cpp, on GPUs and Ascend NPUs).

The workload's seeded decoder is written once as a float32 GGUF (backends/gguf_model.py);
every other precision is made from it by **llama.cpp's own quantizer**
(``llama_model_quantize``), so a ``q4_k_m`` here is the ``q4_k_m`` of ``llama-quantize``,
including its per-tensor choices and fallbacks. The record's weight bytes are the tensor
bytes of the file llama.cpp loaded, read back with ``gguf`` (capability ``StoredWeights``).

Timing keeps TTFT, TPOT and ITL's definitions: one step is the prompt's prefill through
``llama_decode`` (whose last-position logits give the first token, the runner's first
mark), then one ``llama_decode`` per generated token, each greedy token taken from that
call's logits. Nothing else of llama.cpp's runs: no sampler chain, no detokenisation.

The KV cache is float32 for a float32 model (so parity compares like with like) and
llama.cpp's default float16 for every other format, as deployed; the record says which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from harness.contract.options import Option
from harness.engine.telemetry.environment import default_threads
from backends._decoder_runtime import TokenLoopPrepared, cpu_and_absent_devices, probe_imports, require_cpu_llm

#: bakeoff precision -> (llama.cpp file type constant, its GGUF name)
FILE_TYPES = {
    "float32": ("LLAMA_FTYPE_ALL_F32", "f32"),
    "float16": ("LLAMA_FTYPE_MOSTLY_F16", "f16"),
    "bfloat16": ("LLAMA_FTYPE_MOSTLY_BF16", "bf16"),
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", "q8_0"),
    "q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", "q4_0"),
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", "q4_k_m"),
}
#: ggml type ids of the KV cache (ggml.h: GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1).
KV_TYPES = {"f32": 0, "f16": 1}
#: The accelerator builds of llama.cpp and the CMake switch each needs.
GPU_BUILDS = {"cuda:0": "CMAKE_ARGS=-DGGML_CUDA=on (NVIDIA)", "cann:0": "CMAKE_ARGS=-DGGML_CANN=on (Huawei Ascend)"}


def _version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def quantized_file(source: Path, dtype: str, threads: int) -> tuple[Path, bool, float]:
    """``source`` (float32 GGUF) at ``dtype`` by llama.cpp's quantizer, cached beside it."""
    import time

    import llama_cpp

    if dtype == "float32":
        return source, True, 0.0
    constant, label = FILE_TYPES[dtype]
    target = source.with_name(source.name.replace("-f32.gguf", f"-{label}.gguf"))
    if target.exists():
        return target, True, 0.0
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, constant)
    params.nthread = threads
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    start = time.perf_counter()
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(staging).encode(), params)
    if status != 0:
        staging.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize to {label} failed with status {status}")
    os.replace(staging, target)
    return target, False, time.perf_counter() - start


def tensor_bytes(path: Path) -> tuple[int, str]:
    """The GGUF's tensor bytes and a summary of the types llama.cpp chose per tensor."""
    import collections

    import gguf

    reader = gguf.GGUFReader(str(path))
    kinds = collections.Counter(tensor.tensor_type.name for tensor in reader.tensors)
    total = sum(int(tensor.n_bytes) for tensor in reader.tensors)
    mix = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    return total, f"tensor bytes of the GGUF llama.cpp loaded ({len(reader.tensors)} tensors: {mix})"


class LlamaCppBackend:
    name = "llama-cpp"
    precisions = tuple(FILE_TYPES)
    OPTIONS = {
        "kv_cache": Option("str", "auto", ("auto", "f32", "f16"),
                           "KV cache type: auto is f32 for a float32 model, else llama.cpp's default f16"),
        "flash_attn": Option("bool", False, (), "llama.cpp's flash attention"),
    }

    def unsupported_reason(self, workload: str, dtype: str, device: str) -> str | None:
        if workload != "llm":
            return f"llama-cpp runs the llm workload (a GGUF decoder), not {workload}"
        return None

    def probe(self) -> Availability:
        return probe_imports("llama_cpp", "pip install 'bakeoff[llama-cpp]' (it builds llama.cpp from source)",
                             ("gguf",), _version())

    def devices(self) -> list[DeviceInfo]:
        import llama_cpp

        offload = bool(llama_cpp.llama_supports_gpu_offload())
        return cpu_and_absent_devices(self.name, _version(), {
            device: ("bakeoff's llama-cpp backend runs llama.cpp on the CPU only so far; this build offloads, "
                     "but device selection is not wired" if offload else
                     f"this llama-cpp-python build has no GPU offload (llama_supports_gpu_offload() is false); "
                     f"reinstall it with {build}")
            for device, build in GPU_BUILDS.items()})

    def prepare(self, workload, spec) -> Prepared:
        import llama_cpp

        from backends.gguf_model import gguf_file

        generative = require_cpu_llm(self.name, workload, spec)
        if spec.batch_size != 1:
            raise Unsupported("llama-cpp runs one sequence (batch 1); decode batching across sequences "
                              "is the serving engine's job (llama-server), not wired here")
        # Plans always name the threads; a hand-made spec gets the harness's default, every usable
        # core (llama.cpp's own default is half the logical CPUs).
        threads = spec.threads or default_threads()
        options = spec.options_dict
        source, source_cached, source_s = gguf_file(workload)
        path, quantize_cached, quantize_s = quantized_file(source, spec.dtype, threads)
        kv = options.get("kv_cache", "auto")
        if kv == "auto":
            kv = "f32" if spec.dtype == "float32" else "f16"
        context = generative.prompt_tokens + generative.new_tokens
        model = llama_cpp.Llama(
            model_path=str(path), n_ctx=context, n_batch=max(generative.prompt_tokens, 1),
            n_ubatch=max(generative.prompt_tokens, 1), n_threads=threads, n_threads_batch=threads,
            n_gpu_layers=0, logits_all=False, verbose=False, seed=workload.seed,
            type_k=KV_TYPES[kv], type_v=KV_TYPES[kv], flash_attn=bool(options.get("flash_attn", False)),
        )
        if model.n_vocab() != generative.vocab_size:
            raise RuntimeError(f"llama.cpp loaded {model.n_vocab()} tokens, the workload has {generative.vocab_size}")
        prompt = [int(t) for t in workload.prompt(1)[0].tolist()]
        stored = tensor_bytes(path)
        shape = workload.shape
        width = {"f32": 4, "f16": 2}[kv]
        kv_bytes = (shape.layers * sum(shape.cache_widths()) * width,
                    f"llama.cpp's {kv} KV cache: {shape.layers} layers x {sum(shape.cache_widths())} values x {width} B")
        prepared = LlamaCppPrepared(model, prompt, generative.new_tokens, stored, kv_bytes)
        prepared.details = {
            "gguf": str(path),
            "file_type": FILE_TYPES[spec.dtype][1],
            "quantizer": "llama_model_quantize (llama.cpp's own)" if spec.dtype != "float32" else None,
            "export_cache_hit": source_cached and quantize_cached,
            "export_s": source_s + quantize_s,
            "kv_cache_type": kv,
            "threads": threads,
            "flash_attn": bool(options.get("flash_attn", False)),
            "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        }
        return prepared


class LlamaCppPrepared(TokenLoopPrepared):
    """Greedy generation through ``llama_decode``, one call per token, marked by the runner."""

    def __init__(self, model: Any, prompt: list[int], new_tokens: int, stored: tuple[int, str],
                 kv_bytes: tuple[int, str]) -> None:
        super().__init__(stored)
        self.model, self.prompt, self.new_tokens = model, prompt, new_tokens
        self._kv_bytes = kv_bytes
        self._vocab = model.n_vocab()
        # The parity check's prefill logits, from one untimed prefill: the timed steps then copy nothing.
        model.reset()
        model.eval(prompt)
        self._first_logits = self._last_logits().copy()[None, :]

    def _last_logits(self):
        pointer = self.model._ctx.get_logits_ith(-1)
        return self._np.ctypeslib.as_array(pointer, shape=(self._vocab,))

    def step_streaming(self, mark) -> int:
        model, argmax = self.model, self._np.argmax
        model.reset()  # the next eval drops every cached position
        model.eval(self.prompt)
        token = int(argmax(self._last_logits()))
        tokens = [token]
        mark()
        while len(tokens) < self.new_tokens:
            model.eval([token])
            token = int(argmax(self._last_logits()))
            tokens.append(token)
            mark()
        self._tokens = [tokens]
        return len(tokens)

    def stored_kv_bytes_per_token(self) -> tuple[int, str]:
        return self._kv_bytes

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
        self.model = None
