"""Export a workload's torch module to ONNX, cached on disk by content hash.

The cache key hashes everything that changes the graph: the workload class and
parameters, dtype, input shapes and dtypes, every weight's bytes, the torch
version and the exporter. A second run of the same benchmark reuses the file,
so export time never pollutes a sweep, and a changed weight never reuses a
stale graph. Every exported file passes ``onnx.checker`` before it enters the
cache; files are fsync'd and moved into place atomically (harness/atomic.py).
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

from harness.atomic import fsync_dir, fsync_tree

EXPORT_FORMAT_VERSION = 1  # bump to invalidate every cached export


def cache_dir() -> Path:
    """bakeoff's cache folder (harness/cache.py): ``$BAKEOFF_CACHE_DIR``, ``$XDG_CACHE_HOME/bakeoff``, ..."""
    from harness.cache import cache_dir as shared

    return shared()


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    cache_hit: bool
    exporter: str
    export_s: float
    content_hash: str


def content_hash(identity: dict, module, inputs) -> str:
    """Hash of everything that changes the exported graph."""
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
    """Export ``module`` called on ``inputs`` to a checked, cached ONNX file.

    Each export is a folder ``<stem>-<hash>/`` holding ``model.onnx`` and, for
    large models, its external weight file; the folder is moved into place
    atomically, so a cached export is always complete.
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
    from harness.cache import source_digest

    return source_digest(obj)


def _identity(workload, dtype: str) -> dict:
    return {"workload": f"{type(workload).__module__}.{type(workload).__qualname__}",
            "source": _source_digest(workload), "params": workload.values, "dtype": dtype}


def export_onnx(workload, dtype: str, batch_size: int, directory: Path | None = None) -> ExportedModel:
    """A forward workload at ``dtype`` and ``batch_size`` as a checked ONNX file (static shapes)."""
    module = workload.build_module(dtype)
    inputs = workload.example_inputs(batch_size, dtype)
    return export_module(module, inputs, stem=f"{workload.name}-{dtype}-b{batch_size}",
                         identity=_identity(workload, dtype), input_names=workload.input_names,
                         output_names=workload.output_names, directory=directory)


def export_generative(workload, dtype: str, directory: Path | None = None) -> tuple[ExportedModel, ExportedModel]:
    """Prefill and decode-step graphs of a KV-cache decoder, with dynamic batch and sequence axes.

    prefill: ``input_ids[B, T]`` -> next token, logits, present KV (the empty
    past is made inside the graph); decode: ``input_ids[B, 1]``, past KV
    ``[L, B, Hkv, S, D]`` -> next token, logits, present KV ``[..., S+1, D]``.
    """
    import torch

    from harness.interface import torch_dtype

    module = workload.build_module(dtype)
    kv = workload.kv_layout()  # the Generative capability (harness/capabilities.py)
    cache_dtype = torch_dtype(dtype)

    class Prefill(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = module

        def forward(self, input_ids):
            empty = torch.zeros((kv.layers, input_ids.shape[0], kv.kv_heads, 0, kv.head_dim), dtype=cache_dtype)
            return self.decoder(input_ids, empty, empty)

    outputs = ("next_token", "logits", "present_key", "present_value")
    prompt = workload.example_inputs(2, dtype)[0]
    prefill = export_module(
        Prefill().eval(), (prompt,), stem=f"{workload.name}-prefill-{dtype}", identity=_identity(workload, dtype),
        input_names=("input_ids",), output_names=outputs,
        dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "present_key": {1: "batch", 3: "tokens"},
                      "present_value": {1: "batch", 3: "tokens"}, "next_token": {0: "batch"},
                      "logits": {0: "batch"}},
        directory=directory)
    decode_inputs = workload.decode_example_inputs(2, dtype)
    past_axes = {1: "batch", 3: "past"}
    decode = export_module(
        module, decode_inputs, stem=f"{workload.name}-decode-{dtype}", identity=_identity(workload, dtype),
        input_names=("input_ids", "past_key", "past_value"), output_names=outputs,
        dynamic_axes={"input_ids": {0: "batch"}, "past_key": past_axes, "past_value": past_axes,
                      "present_key": {1: "batch", 3: "total"}, "present_value": {1: "batch", 3: "total"},
                      "next_token": {0: "batch"}, "logits": {0: "batch"}},
        directory=directory)
    return prefill, decode
