"""OpenVINO GenAI backend: the ``llm`` workload as OpenVINO IR run by ``LLMPipeline``, at float32
or with NNCF int8/int4 weight compression, as it is deployed on Intel CPUs.

**Where the IR comes from.** OpenVINO GenAI builds an IR from a GGUF file itself (its GGUF
reader, with ``enable_save_ov_model``), with the stateful KV cache, inputs and tokenizer
models ``LLMPipeline`` expects, so no Hugging Face exporter is needed. It reads float16 GGUF
matrices, not float32 ones, so the backend writes the workload's seeded decoder as a float16
GGUF (backends/gguf_model.py), lets the reader build the IR, and then puts the float32
weights back: each float16 matrix constant of the IR is matched, bit for bit, to the float16
rounding of one of the workload's float32 tensors and replaced by that tensor. The float32
IR therefore holds exactly the workload's weights (parity then holds at float32's
tolerance); ``int8`` and ``int4`` are ``nncf.compress_weights`` of it (INT8_ASYM; INT4_SYM in
groups of 32, NNCF's defaults otherwise).

**Precision.** The CPU plugin computes in bfloat16 by default on CPUs with AMX or
AVX512_BF16, so the pipeline is created with ``INFERENCE_PRECISION_HINT=f32``, as the
``openvino`` backend does: a float32 (or weight-compressed) number is computed in float32.

**Timing.** One step is one ``generate`` of ``new_tokens`` tokens from the prompt's ids
(``TokenizedInputs``, no tokenizer on the timed path); the streamer's ``write`` is called
with each token as it is produced and marks it, so TTFT, TPOT and ITL keep their
definitions. The pipeline exposes no logits, so the prefill logits for the parity
check come from the same IR, compiled with the same hint, run once in ``prepare``.

**Overlapping queries.** For the ``server`` and ``concurrent`` scenarios the backend runs
``ContinuousBatchingPipeline`` instead (``-O openvino-genai.pipeline=continuous-batching``
forces it elsewhere): each query is an ``add_request``; one engine thread, the runtime's
own serving loop, calls ``step()`` while requests are in flight, and after each step wakes
the clients, which read their handle's new tokens and mark them. A token is therefore
marked when its client thread wakes, as a server's streaming response would be sent.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from harness.contract.options import Option
from backends._decoder_runtime import TokenLoopPrepared, cpu_and_absent_devices, probe_imports, require_cpu_llm

#: bakeoff precision -> NNCF weight compression (``None``: the float32 IR).
COMPRESSION = {"float32": None, "int8": ("INT8_ASYM", None), "int4": ("INT4_SYM", 32)}
#: Scenarios whose queries overlap, served by ContinuousBatchingPipeline.
OVERLAPPING_SCENARIOS = ("server", "concurrent")
PIPELINES = ("auto", "llm", "continuous-batching")
#: Bump to rebuild every cached IR.
IR_FORMAT_VERSION = 1
IR_FILE = "openvino_model.xml"


def _version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("openvino-genai")
    except importlib.metadata.PackageNotFoundError:
        return None


def restore_float32_weights(model: Any, tensors: list[tuple[str, Any]]) -> int:
    """Replace each float16 matrix constant of ``model`` (feeding a Convert to float32, as the GGUF
    reader builds them) with the float32 tensor whose float16 rounding it is, bit for bit.
    Returns how many were replaced; raises if a matrix constant finds no tensor."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    by_digest = {}
    for name, array in tensors:
        if array.ndim == 2:
            by_digest[hashlib.blake2b(array.astype(np.float16).tobytes(), digest_size=16).digest()] = (name, array)
    replaced = 0
    for op in model.get_ops():
        if op.get_type_name() != "Constant" or op.get_output_element_type(0) != ov.Type.f16:
            continue
        if len(op.get_output_shape(0)) != 2:
            continue
        data = op.get_data()
        match = by_digest.get(hashlib.blake2b(np.ascontiguousarray(data).tobytes(), digest_size=16).digest())
        if match is None:
            raise RuntimeError(f"an IR float16 matrix {tuple(data.shape)} matches none of the workload's tensors")
        name, array = match
        exact = ops.constant(array.reshape(data.shape), dtype=np.float32)
        exact.set_friendly_name(f"{name}.float32")
        for target in list(op.output(0).get_target_inputs()):
            converter = target.get_node()
            if converter.get_type_name() == "Convert":
                for consumer in list(converter.output(0).get_target_inputs()):
                    consumer.replace_source_output(exact.output(0))
            else:
                target.replace_source_output(exact.output(0))
        replaced += 1
    model.validate_nodes_and_infer_types()
    return replaced


def candidate_tensors(workload: Any) -> list[tuple[str, Any]]:
    """The workload's float32 matrices in both row orders a GGUF reader may leave the q/k
    projections in: llama.cpp's interleaved one as written, and Hugging Face's rotate-half
    one (OpenVINO's reader undoes the permutation)."""
    from harness.tools.hf_model import hf_state_dict
    from backends.gguf_model import gguf_tensors

    tensors = gguf_tensors(workload)
    tensors += [(name, tensor.numpy()) for name, tensor in
                hf_state_dict(workload.build_module("float32"), workload.shape.tie_embeddings).items()]
    return tensors


def built_ir(workload: Any, dtype: str) -> tuple[Path, bool, float, dict[str, Any]]:
    """``(folder, cached, seconds, facts)``: the workload's IR at ``dtype`` with its tokenizers."""
    import json

    from harness.tools.export import cache_dir
    from harness.tools.hf_model import folder_key
    from backends.gguf_model import gguf_file

    root = cache_dir() / "openvino-genai"
    key = f"{folder_key(workload, 4096)}-v{IR_FORMAT_VERSION}-{_version()}"
    folder = root / f"{workload.name}-{workload.values['preset']}-{key}-{dtype}"
    if (folder / IR_FILE).exists():
        return folder, True, 0.0, json.loads((folder / "bakeoff.json").read_text())
    import openvino as ov
    import openvino_genai as ov_genai

    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".ir-"))
    try:
        source, _, _ = gguf_file(workload, float16=True)
        shutil.copyfile(source, staging / "model.gguf")
        ov_genai.LLMPipeline(str(staging / "model.gguf"), "CPU", enable_save_ov_model=True)  # writes the IR here
        core = ov.Core()
        model = core.read_model(str(staging / IR_FILE))
        facts: dict[str, Any] = {"ir_from": "OpenVINO GenAI's GGUF reader (float16 GGUF), float32 weights restored",
                                 "float32_matrices_restored": restore_float32_weights(model, candidate_tensors(workload))}
        if COMPRESSION[dtype] is not None:
            import nncf

            mode, group = COMPRESSION[dtype]
            arguments = {"mode": getattr(nncf.CompressWeightsMode, mode)}
            if group:
                arguments["group_size"] = group
            model = nncf.compress_weights(model, **arguments)
            facts["compression"] = f"nncf.compress_weights(mode={mode}" + (f", group_size={group})" if group else ")")
        facts["weight_types"] = _constant_types(model)
        (staging / "model.gguf").unlink()
        for stale in ("openvino_model.xml", "openvino_model.bin"):
            (staging / stale).unlink()
        ov.save_model(model, str(staging / IR_FILE), compress_to_fp16=False)
        (staging / "bakeoff.json").write_text(json.dumps(facts))
        try:
            os.replace(staging, folder)
        except OSError:  # another worker built it first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, False, time.perf_counter() - start, facts


def _constant_types(model: Any) -> dict[str, int]:
    """How many matrix-sized constants (two or more dimensions, 1,024+ elements) the IR stores in each type."""
    import collections
    import math

    kinds = collections.Counter()
    for op in model.get_ops():
        if op.get_type_name() == "Constant":
            shape = list(op.get_output_shape(0))
            if len(shape) >= 2 and math.prod(shape) >= 1024:
                kinds[op.get_output_element_type(0).get_type_name()] += 1
    return dict(sorted(kinds.items()))


class OpenVinoGenAiBackend:
    name = "openvino-genai"
    precisions = tuple(COMPRESSION)
    OPTIONS = {
        "pipeline": Option("str", "auto", PIPELINES,
                           "auto: LLMPipeline, and ContinuousBatchingPipeline for the server and concurrent "
                           "scenarios (overlapping queries)"),
        "kv_cache_gb": Option("int", 1, (), "ContinuousBatchingPipeline's KV cache size (SchedulerConfig.cache_size)"),
    }

    def unsupported_reason(self, workload: str, dtype: str, device: str) -> str | None:
        if workload != "llm":
            return f"openvino-genai runs the llm workload (a decoder LLMPipeline knows), not {workload}"
        return None

    def probe(self) -> Availability:
        return probe_imports("openvino_genai", "pip install 'bakeoff[openvino-genai]'",
                             ("nncf", "gguf", "openvino_tokenizers"), _version())

    def devices(self) -> list[DeviceInfo]:
        import openvino as ov

        present = set(ov.Core().available_devices)
        absent = {device.lower(): (f"OpenVINO sees a {device} here, but bakeoff's openvino-genai backend runs on the "
                                   "CPU only so far" if device in present else
                                   f"OpenVINO sees no {device} here (devices: {', '.join(sorted(present))})")
                  for device in ("GPU", "NPU")}
        return cpu_and_absent_devices(self.name, _version(), absent)

    def prepare(self, workload, spec) -> Prepared:
        import numpy as np
        import openvino as ov
        import openvino_genai as ov_genai

        generative = require_cpu_llm(self.name, workload, spec)
        if spec.batch_size != 1:
            raise Unsupported("openvino-genai serves one sequence per query here (batch 1); run the concurrent "
                              "or server scenario for requests batched by ContinuousBatchingPipeline")
        options = spec.options_dict
        choice = options.get("pipeline", "auto")
        batching = choice == "continuous-batching" or (choice == "auto" and spec.scenario in OVERLAPPING_SCENARIOS)
        folder, cached, build_s, facts = built_ir(workload, spec.dtype)
        properties = {"INFERENCE_PRECISION_HINT": "f32"}
        if spec.threads:
            properties["INFERENCE_NUM_THREADS"] = spec.threads
        config = ov_genai.GenerationConfig()
        config.max_new_tokens = config.min_new_tokens = generative.new_tokens
        config.do_sample = False
        config.ignore_eos = True
        ids = workload.prompt(1).numpy().astype(np.int64)
        first_logits = _prefill_logits(ov, folder, ids, properties)
        stored = ((folder / "openvino_model.bin").stat().st_size,
                  f"bytes of the IR's weights file (constants: {facts['weight_types']})")
        if batching:
            scheduler = ov_genai.SchedulerConfig()
            scheduler.cache_size = int(options.get("kv_cache_gb", 1))
            pipeline = ov_genai.ContinuousBatchingPipeline(str(folder), scheduler, "CPU", properties)
            prepared = OpenVinoGenAiServing(ov_genai, pipeline, config, ov.Tensor(ids), first_logits, stored)
            name = "ContinuousBatchingPipeline"
        else:
            pipeline = ov_genai.LLMPipeline(str(folder), "CPU", **properties)
            inputs = ov_genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))
            prepared = OpenVinoGenAiPrepared(ov_genai, pipeline, config, inputs, first_logits, stored)
            name = "LLMPipeline"
        prepared.details = {"ir_folder": str(folder), "export_cache_hit": cached, "export_s": build_s,
                            "pipeline": name, "properties": properties, **facts}
        return prepared


def _prefill_logits(ov, folder: Path, ids, properties) -> Any:
    """The IR's last-position logits for the prompt, from one stateful inference."""
    import numpy as np

    compiled = ov.Core().compile_model(str(folder / IR_FILE), "CPU", properties)
    request = compiled.create_infer_request()
    request.reset_state()
    length = ids.shape[1]
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
             "position_ids": np.arange(length, dtype=np.int64)[None, :], "beam_idx": np.zeros(1, dtype=np.int32)}
    logits = request.infer(feeds)[compiled.output("logits")]
    return np.asarray(logits)[:, -1, :].astype(np.float32)


class OpenVinoGenAiPrepared(TokenLoopPrepared):
    """``LLMPipeline.generate`` with a streamer that marks each token for the runner."""

    def __init__(self, ov_genai, pipeline, config, inputs, first_logits, stored: tuple[int, str]) -> None:
        super().__init__(stored)
        self.pipeline, self.config, self.inputs = pipeline, config, inputs
        self._first_logits = first_logits
        self._streamer_class = _streamer_class(ov_genai)

    def step_streaming(self, mark) -> int:
        streamer = self._streamer_class(mark)
        result = self.pipeline.generate(self.inputs, self.config, streamer=streamer)
        self._tokens = [list(result.tokens[0])]
        return streamer.count

    def close(self) -> None:
        self.pipeline = None


class OpenVinoGenAiServing(TokenLoopPrepared):
    """Queries that overlap, served by ``ContinuousBatchingPipeline``: each ``step_streaming``
    (one client thread) adds a request; one engine thread steps the pipeline while any is in
    flight and wakes the clients after each step."""

    concurrent_safe = True  # capability ConcurrentSteps: clients may call step_streaming at once

    def __init__(self, ov_genai, pipeline, config, input_ids, first_logits, stored: tuple[int, str]) -> None:
        super().__init__(stored)
        self.pipeline, self.config, self.input_ids = pipeline, config, input_ids
        self._first_logits = first_logits
        self._running_status = ov_genai.GenerationStatus.RUNNING
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._work = False  # requests added and not yet finished, as far as the engine knows
        self._added = 0
        self._steps = 0
        self._engine_error: BaseException | None = None
        self._open = True
        self._engine = threading.Thread(target=self._serve, name="openvino-genai-engine", daemon=True)
        self._engine.start()

    def _serve(self) -> None:
        """The runtime's serving loop: step while any request is unfinished, else sleep until one is added."""
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._work or not self._open)
                if not self._open:
                    return
                added = self._added
            try:
                self.pipeline.step()
                busy = self.pipeline.has_non_finished_requests()
            except BaseException as exc:  # noqa: BLE001 - handed to the clients, which raise it
                self._engine_error, busy = exc, False
            with self._wake:
                self._steps += 1
                if not busy and self._added == added:  # nothing added meanwhile: sleep
                    self._work = False
                self._wake.notify_all()

    def step_streaming(self, mark) -> int:
        with self._wake:  # added and flagged together, so the engine cannot go to sleep in between
            handle = self.pipeline.add_request(next(self._ids), self.input_ids, self.config)
            self._added += 1
            self._work = True
            seen = self._steps
            self._wake.notify_all()
        tokens: list[int] = []
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._steps != seen or self._engine_error is not None)
                seen = self._steps  # any later step wakes this client again
            if self._engine_error is not None:
                raise RuntimeError(f"ContinuousBatchingPipeline.step failed: {self._engine_error}")
            while handle.can_read():
                for output in handle.read().values():
                    for token in output.generated_ids:
                        tokens.append(int(token))
                        mark()
            if handle.get_status() != self._running_status and not handle.can_read():
                break
        self._tokens = [tokens]
        return len(tokens)

    def close(self) -> None:
        with self._wake:
            self._open = False
            self._wake.notify_all()
        self._engine.join(timeout=30)
        self.pipeline = None


def _streamer_class(ov_genai):
    class MarkingStreamer(ov_genai.StreamerBase):
        """Marks each token the moment the pipeline hands it over; nothing else on the timed path."""

        def __init__(self, mark) -> None:
            super().__init__()
            self.mark, self.count = mark, 0

        def write(self, token):
            self.mark()
            self.count += 1
            return ov_genai.StreamingStatus.RUNNING

        def end(self) -> None:
            pass

    return MarkingStreamer
