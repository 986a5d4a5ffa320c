"""A workload's model as an ONNX file: the public way to the model for non-torch runtimes.

Every built-in workload is a seeded torch module (``workload.build_module``)
fed seeded inputs (``workload.example_inputs``). A backend whose runtime does
not speak torch (ONNX Runtime, OpenVINO, a vendor compiler, plain NumPy) gets
the same model, with the same weights, as a checked ONNX file from this
module; the built-in ``onnxruntime`` and ``openvino`` backends use exactly
these functions. docs/writing-a-backend.md ("The model without torch") has a
worked example: from ``workload`` to the file, its weights as NumPy arrays
and its node list.

**What a graph looks like.** :func:`export_onnx` exports one forward call at
one batch size with static shapes. The graph's inputs are named
``workload.input_names`` and fed, in that order, ``example_inputs(batch_size,
dtype)`` (their shapes and dtypes); its outputs are named
``workload.output_names`` and are what ``reference_outputs(batch_size)``
compares against. ``gemm``: ``a[B, n, n]``, ``b[B, n, n]`` -> ``c[B, n, n]``
(one ``MatMul``). ``mlp``: ``x[B, hidden]`` -> ``y[B, hidden]``, per block a
``Gemm`` (up), ``Gelu``, ``Gemm`` (down) and the residual ``Add``.
:func:`export_generative` exports a KV-cache decoder's prefill and decode
graphs with dynamic axes (see its docstring).

**Where the weights are.** A graph's weights are its ``graph.initializer``
tensors; read them with ``onnx.numpy_helper.to_array``. With the dynamo
exporter (``ExportedModel.exporter``) a module parameter keeps its
``state_dict`` name: ``mlp``'s are ``"{block}.up.weight"`` ``[inner, hidden]``,
``"{block}.up.bias"`` ``[inner]``, ``"{block}.down.weight"`` ``[hidden, inner]``
and ``"{block}.down.bias"`` ``[hidden]``, torch's ``[out_features,
in_features]`` layout, which the ``Gemm`` nodes use with ``transB=1``. The
exporter may add constants of its own (``val_*``) and fold or transpose a
weight under a generated name, as it does in the decoders, so a backend that
follows the node list (each node's ``op_type``, ``input``, ``output`` and
attributes) needs no knowledge of the names at all. Large models keep their
weights in ``model.onnx.data`` beside the graph; ``onnx.load`` reads it.

**Caching.** An export is kept on disk and reused, keyed by a content hash of
everything that changes the graph (:func:`content_hash`): the workload's class,
the hash of the source code that defines it, its parameters, the dtype, the
input shapes and dtypes, the dynamic axes, every weight's bytes, torch's
version and :data:`EXPORT_FORMAT_VERSION`. A code change, a reseeded weight or
a new torch never reuses a stale graph, and a second benchmark of the same
model never pays for the export. Each export is a folder
``<cache>/onnx/<workload>-<dtype>-b<batch>-<hash>/`` (``<workload>-prefill-`` and
``-decode-<dtype>-<hash>`` for the decoders) holding ``model.onnx``, its
external weights and ``export.json``; ``<cache>`` is ``directory`` when given,
else :func:`cache_dir` (``$BAKEOFF_CACHE_DIR``, else
``$XDG_CACHE_HOME/bakeoff``, else ``~/.cache/bakeoff``). Every file passes
``onnx.checker`` before it enters the cache, and the folder is fsync'd and
renamed into place atomically (harness/files/atomic.py), so concurrent workers may
export the same model and a cached export is always complete.

Importing this module imports nothing heavy: torch and onnx are imported
inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.files.atomic import fsync_dir, fsync_tree

__all__ = ["EXPORT_FORMAT_VERSION", "GENERATIVE_OUTPUTS", "ExportedModel", "cache_dir", "content_hash",
           "export_generative", "export_module", "export_onnx", "workload_identity"]

#: Bump to invalidate every cached export.
EXPORT_FORMAT_VERSION = 1

#: The outputs of both decoder graphs, in order (the ``Generative`` capability's module outputs).
GENERATIVE_OUTPUTS = ("next_token", "logits", "present_key", "present_value")


def cache_dir() -> Path:
    """bakeoff's cache folder (harness/engine/cache.py): ``$BAKEOFF_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/bakeoff``, else ``~/.cache/bakeoff``; exports go to its ``onnx/``."""
    from harness.engine.cache import cache_dir as shared

    return shared()


@dataclass(frozen=True)
class ExportedModel:
    """One exported (or user-supplied) ONNX graph."""

    #: The ``model.onnx`` file; its external weights, if any, sit beside it (``onnx.load`` reads them).
    path: Path
    #: Whether the file came from the cache (or is the user's own file) rather than a fresh export.
    cache_hit: bool
    #: How it was made: ``"torch.onnx.export(dynamo=True)"``, ``"torch.onnx.export(dynamo=False)"``
    #: (the TorchScript fallback) or ``"user-supplied ONNX file"``.
    exporter: str
    #: Seconds the export took (0.0 on a cache hit): record it, never time it with the benchmark.
    export_s: float
    #: The cache key (:func:`content_hash`), also the suffix of the export's folder; ``""`` for a user's file.
    content_hash: str


def content_hash(identity: dict, module, inputs) -> str:
    """Hash of everything that changes the exported graph: ``identity`` (JSON), the input
    shapes and dtypes, torch's version, :data:`EXPORT_FORMAT_VERSION` and every weight's
    name, shape and bytes (``module.state_dict()``)."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    identity = {
        "format": EXPORT_FORMAT_VERSION,
        **identity,
        "inputs": [[list(t.shape), str(t.dtype)] for t in inputs],
        "torch": torch.__version__,
    }
    h.update(json.dumps(identity, sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _export(module, inputs, path: Path, input_names, output_names, dynamic_axes) -> str:
    """Export with the dynamo exporter, falling back to TorchScript. Returns the exporter used."""
    import torch

    quiet = io.StringIO()
    names = {"input_names": list(input_names), "output_names": list(output_names)}
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            torch.onnx.export(module, tuple(inputs), str(path), dynamo=True, external_data=True,
                              dynamic_axes=dynamic_axes, **names)
        return "torch.onnx.export(dynamo=True)"
    except Exception as dynamo_error:  # noqa: BLE001 - fall back, report both if both fail
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                torch.onnx.export(module, tuple(inputs), str(path), dynamo=False,
                                  dynamic_axes=dynamic_axes, **names)
            return "torch.onnx.export(dynamo=False)"
        except Exception as legacy_error:  # noqa: BLE001
            raise RuntimeError(
                f"ONNX export failed with both exporters: dynamo: {dynamo_error}; "
                f"torchscript: {legacy_error}"
            ) from legacy_error


def export_module(module, inputs, *, stem: str, identity: dict, input_names, output_names,
                  dynamic_axes: dict | None = None, directory: Path | None = None) -> ExportedModel:
    """Export any torch ``module`` called on ``inputs`` to a checked, cached ONNX file.

    The lower-level call behind :func:`export_onnx` and :func:`export_generative`,
    for a backend that wraps the module first. ``identity`` is what, besides the
    weights and input shapes, distinguishes the graph (:func:`workload_identity`
    for a workload's module); ``dynamic_axes`` is ``torch.onnx.export``'s
    (``{name: {axis: "symbol"}}``; ``None``: static shapes). Each export is a
    folder ``<stem>-<hash>/`` under ``<directory or cache_dir()>/onnx/`` holding
    ``model.onnx``, its external weight file and ``export.json``; the folder is
    moved into place atomically, so a cached export is always complete.
    """
    import onnx

    digest = content_hash({**identity, "dynamic_axes": dynamic_axes}, module, inputs)
    root = Path(directory or cache_dir()) / "onnx"
    folder = root / f"{stem}-{digest}"
    target = folder / "model.onnx"
    meta_path = folder / "export.json"
    if target.exists() and meta_path.exists():
        exporter = json.loads(meta_path.read_text()).get("exporter", "unknown")
        return ExportedModel(target, True, exporter, 0.0, digest)

    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".export-"))
    try:
        exporter = _export(module, inputs, staging / "model.onnx", input_names, output_names, dynamic_axes)
        onnx.checker.check_model(str(staging / "model.onnx"))
        (staging / "export.json").write_text(json.dumps({"exporter": exporter, "hash": digest}))
        fsync_tree(staging)  # the exporter does not fsync: the folder renamed into place must be complete
        try:
            os.replace(staging, folder)
        except OSError:  # another worker finished the same export first
            shutil.rmtree(staging, ignore_errors=True)
        fsync_dir(root)  # and the rename itself durable
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportedModel(target, False, exporter, time.perf_counter() - start, digest)


def _source_digest(obj) -> str:
    """Hash of the code defining ``obj``: a code change must never reuse a stale graph."""
    from harness.engine.cache import source_digest

    return source_digest(obj)


def workload_identity(workload, dtype: str) -> dict[str, Any]:
    """What identifies a workload's module in a cache key: its class, the hash of its
    source code, its parameters and the dtype. Use it to key a cache of your own
    (a compiled binary, a converted model) the way exports are keyed."""
    return {"workload": f"{type(workload).__module__}.{type(workload).__qualname__}",
            "source": _source_digest(workload), "params": workload.values, "dtype": dtype}


_identity = workload_identity  # the old private name


def export_onnx(workload, dtype: str, batch_size: int, directory: Path | None = None) -> ExportedModel:
    """A forward workload at ``dtype`` and ``batch_size`` as a checked, cached ONNX file.

    The graph has static shapes: inputs named ``workload.input_names``, shaped and
    typed as ``workload.example_inputs(batch_size, dtype)``; outputs named
    ``workload.output_names``; weights as ``graph.initializer`` (see the module
    docstring). ``directory`` replaces the cache folder (:func:`cache_dir`). A
    workload that already is an ONNX file (the ``OnnxModelFile`` capability, the
    user's ``--model model.onnx``) is returned as is, with the user's shapes.
    For a KV-cache decoder (``Generative``) use :func:`export_generative`.
    """
    from harness.contract.capabilities import OnnxModelFile, capability

    onnx_file = capability(workload, OnnxModelFile)
    if onnx_file is not None:
        return ExportedModel(Path(onnx_file.onnx_path), True, "user-supplied ONNX file", 0.0, "")
    module = workload.build_module(dtype)
    inputs = workload.example_inputs(batch_size, dtype)
    return export_module(module, inputs, stem=f"{workload.name}-{dtype}-b{batch_size}",
                         identity=workload_identity(workload, dtype), input_names=workload.input_names,
                         output_names=workload.output_names, directory=directory)


def export_generative(workload, dtype: str, directory: Path | None = None) -> tuple[ExportedModel, ExportedModel]:
    """``(prefill, decode)``: a KV-cache decoder's two graphs (the ``Generative`` capability), cached.

    Both have dynamic batch and sequence axes, so one pair serves every batch
    size and every position. With ``L, Hkv, D = kv_layout()``'s ``layers``,
    ``kv_heads``, ``head_dim`` and ``V = vocab_size``, every cache is
    ``[layers, batch, kv_heads, tokens, head_dim]`` at ``dtype``, keys and
    values apart:

    * prefill: ``input_ids[batch, tokens]`` (int64) -> ``next_token[batch, 1]``
      (int64, the greedy argmax), ``logits[batch, V]`` (float32, last position),
      ``present_key`` / ``present_value`` ``[L, batch, Hkv, tokens, D]``. The
      empty past is made inside the graph. Its weights are named
      ``decoder.<state_dict name>``.
    * decode: ``input_ids[batch, 1]`` (the previous ``next_token``),
      ``past_key`` / ``past_value`` ``[L, batch, Hkv, past, D]`` -> the same four
      outputs, the caches one position longer (``[L, batch, Hkv, past + 1, D]``).
      Feed the presents back as the next call's pasts.

    ``harness.engine.generation.greedy_generate`` is the loop over them that the
    reference uses. ``directory`` replaces the cache folder (:func:`cache_dir`).
    """
    import torch

    from harness.contract.interface import torch_dtype

    module = workload.build_module(dtype)
    kv = workload.kv_layout()  # the Generative capability (harness/contract/capabilities.py)
    cache_dtype = torch_dtype(dtype)

    class Prefill(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = module

        def forward(self, input_ids):
            batch = input_ids.shape[0]
            keys = torch.zeros((kv.layers, batch, kv.kv_heads, 0, kv.head_dim), dtype=cache_dtype)
            values = torch.zeros((kv.layers, batch, kv.kv_heads, 0, kv.value_width), dtype=cache_dtype)
            return self.decoder(input_ids, keys, values)

    outputs = GENERATIVE_OUTPUTS
    prompt = workload.example_inputs(2, dtype)[0]
    identity = workload_identity(workload, dtype)
    prefill = export_module(
        Prefill().eval(), (prompt,), stem=f"{workload.name}-prefill-{dtype}", identity=identity,
        input_names=("input_ids",), output_names=outputs,
        dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "present_key": {1: "batch", 3: "tokens"},
                      "present_value": {1: "batch", 3: "tokens"}, "next_token": {0: "batch"},
                      "logits": {0: "batch"}},
        directory=directory)
    decode_inputs = workload.decode_example_inputs(2, dtype)
    past_axes = {1: "batch", 3: "past"}
    decode = export_module(
        module, decode_inputs, stem=f"{workload.name}-decode-{dtype}", identity=identity,
        input_names=("input_ids", "past_key", "past_value"), output_names=outputs,
        dynamic_axes={"input_ids": {0: "batch"}, "past_key": past_axes, "past_value": past_axes,
                      "present_key": {1: "batch", 3: "total"}, "present_value": {1: "batch", 3: "total"},
                      "next_token": {0: "batch"}, "logits": {0: "batch"}},
        directory=directory)
    return prefill, decode
