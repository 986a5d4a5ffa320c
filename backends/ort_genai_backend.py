"""ONNX Runtime GenAI backend: the ``llm`` workload built by ORT GenAI's own model builder and
run by its generator loop, at float32 or int4 (``MatMulNBits``), as it is deployed.

The model comes from the workload's seeded weights through a local Hugging Face folder
(harness/tools/hf_model.py) and ``python -m onnxruntime_genai.models.builder``, offline.
For int4 the builder also quantizes the embedding (``op_types_to_quantize=MatMul/Gather``),
so every weight is stored at 4 bits with one scale per block of 32; the record's weight
bytes are the initializers of the built graph, read back (capability ``StoredWeights``).

One step is one request: ``append_tokens`` runs the prompt's prefill, the first
``generate_next_token`` takes the greedy token from its logits (the runner's first mark),
and each later ``generate_next_token`` runs one decode step and takes its token (measured:
a call right after the prefill takes ~20 µs, every later one a full forward). The
generator is made once in ``prepare`` and rewound to position 0 before each step, so the
timed region holds the generation, not the allocation of its KV buffers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.contract.interface import Availability, DeviceInfo, Prepared
from backends._decoder_runtime import TokenLoopPrepared, cpu_and_absent_devices, probe_imports, require_cpu_llm

#: bakeoff precision -> the builder's ``-p`` and its extra options.
BUILDS = {
    "float32": ("fp32", ()),
    "int4": ("int4", ("op_types_to_quantize=MatMul/Gather",)),
}
#: Providers ORT GenAI ships in other wheels, and the wheel for each.
OTHER_PROVIDERS = {"cuda": ("is_cuda_available", "onnxruntime-genai-cuda"),
                   "dml": ("is_dml_available", "onnxruntime-genai-directml (Windows)")}
#: Bump to rebuild every cached model.
BUILD_FORMAT_VERSION = 1


def _version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("onnxruntime-genai")
    except importlib.metadata.PackageNotFoundError:
        return None


def built_model(workload: Any, dtype: str) -> tuple[Path, bool, float]:
    """``(folder, cached, seconds)``: the workload built by ORT GenAI's model builder at ``dtype``."""
    from harness.tools.export import cache_dir
    from harness.tools.hf_model import hf_model_dir

    hf = hf_model_dir(workload)
    precision, extra = BUILDS[dtype]
    root = cache_dir() / "ort-genai"
    folder = root / f"{hf.path.name}-{precision}-v{BUILD_FORMAT_VERSION}-{_version()}"
    if (folder / "genai_config.json").exists():
        return folder, True, 0.0
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    start = time.perf_counter()
    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf.path),
               "-o", str(staging / "model"), "-p", precision, "-e", "cpu", "-c", str(staging / "cache")]
    if extra:
        command += ["--extra_options", *extra]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0 or not (staging / "model" / "genai_config.json").exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"onnxruntime_genai.models.builder -p {precision} failed "
                               f"(exit {done.returncode}): {' | '.join(tail)}")
        (staging / "model" / "builder.log").write_text(done.stdout + done.stderr)
        try:
            os.replace(staging / "model", folder)
        except OSError:  # another worker built it first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, False, time.perf_counter() - start


def initializer_bytes(model_file: Path) -> tuple[int, str]:
    """Bytes of the graph's weight initializers (the rotary cos/sin tables left out), from its
    header alone, and the element types they are stored in."""
    import collections

    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    total, kinds = 0, collections.Counter()
    for tensor in graph.initializer:
        if tensor.name in ("cos_cache", "sin_cache"):
            continue
        count = 1
        for dim in tensor.dims:
            count *= dim
        element = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        total += count * element.itemsize
        kinds[element.name] += 1
    mix = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return total, f"initializer bytes of the built ONNX graph ({mix}; rotary tables excluded)"


class OrtGenAiBackend:
    name = "onnxruntime-genai"
    precisions = tuple(BUILDS)

    def unsupported_reason(self, workload: str, dtype: str, device: str) -> str | None:
        if workload != "llm":
            return f"onnxruntime-genai runs the llm workload (a decoder its model builder knows), not {workload}"
        return None

    def probe(self) -> Availability:
        return probe_imports("onnxruntime_genai", "pip install 'bakeoff[genai]'",
                             ("transformers", "onnx", "safetensors", "tokenizers"), _version())

    def devices(self) -> list[DeviceInfo]:
        import onnxruntime_genai as og

        return cpu_and_absent_devices(self.name, _version(), {
            device: ("bakeoff's onnxruntime-genai backend builds for the cpu only so far" if getattr(og, query)() else
                     f"not in this onnxruntime-genai build ({query}() is false): it comes with {wheel}")
            for device, (query, wheel) in OTHER_PROVIDERS.items()})

    def prepare(self, workload, spec) -> Prepared:
        import numpy as np
        import onnxruntime_genai as og

        generative = require_cpu_llm(self.name, workload, spec)
        folder, cached, build_s = built_model(workload, spec.dtype)
        config = og.Config(str(folder))
        if spec.threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": spec.threads, "inter_op_num_threads": 1}}}}))
        model = og.Model(config)
        length = generative.prompt_tokens + generative.new_tokens
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=length, min_length=length, do_sample=False,
                                  batch_size=spec.batch_size)
        generator = og.Generator(model, params)
        prompt = workload.prompt(spec.batch_size).numpy().astype(np.int32)
        prepared = OrtGenAiPrepared(model, generator, prompt, generative.new_tokens,
                                    initializer_bytes(folder / "model.onnx"))
        builder_config = json.loads((folder / "genai_config.json").read_text())
        prepared.details = {
            "model_folder": str(folder),
            "builder": f"onnxruntime_genai.models.builder -p {BUILDS[spec.dtype][0]} -e cpu "
                       + " ".join(BUILDS[spec.dtype][1]),
            "export_cache_hit": cached,
            "export_s": build_s,
            "intra_op_num_threads": spec.threads,
            "past_present_share_buffer": builder_config.get("search", {}).get("past_present_share_buffer"),
        }
        return prepared


class OrtGenAiPrepared(TokenLoopPrepared):
    """ORT GenAI's generator loop, one ``generate_next_token`` per token, marked by the runner."""

    def __init__(self, model: Any, generator: Any, prompt: Any, new_tokens: int, stored: tuple[int, str]) -> None:
        super().__init__(stored)
        self.model, self.generator, self.prompt, self.new_tokens = model, generator, prompt, new_tokens
        # The parity check's prefill logits, from one untimed prefill: the timed steps then copy nothing.
        generator.append_tokens(prompt)
        self._first_logits = self._np.array(generator.get_logits())

    def step_streaming(self, mark) -> int:
        generator = self.generator
        generator.rewind_to(0)
        generator.append_tokens(self.prompt)  # the prefill runs here
        columns = []
        for _ in range(self.new_tokens):
            generator.generate_next_token()  # the first only picks from the prefill's logits
            columns.append(self._np.array(generator.get_next_tokens()))
            mark()
        self._tokens = self._np.stack(columns, axis=1)
        return len(columns)

    def close(self) -> None:
        self.generator = self.model = None
