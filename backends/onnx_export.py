"""Export a workload's torch module to ONNX, cached on disk by content hash.

The cache key hashes everything that changes the graph: the workload class and
parameters, dtype, input shapes and dtypes, every weight's bytes, the torch
version and the exporter. A second run of the same benchmark reuses the file,
so export time never pollutes a sweep, and a changed weight never reuses a
stale graph. Every exported file passes ``onnx.checker`` before it enters the
cache; files are moved into place atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

EXPORT_FORMAT_VERSION = 1  # bump to invalidate every cached export


def cache_dir() -> Path:
    """``$BAKEOFF_CACHE_DIR``, else ``$XDG_CACHE_HOME/bakeoff``, else ``~/.cache/bakeoff``."""
    if os.environ.get("BAKEOFF_CACHE_DIR"):
        return Path(os.environ["BAKEOFF_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bakeoff"


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    cache_hit: bool
    exporter: str
    export_s: float
    content_hash: str


def content_hash(workload, module, inputs, dtype: str) -> str:
    import torch

    h = hashlib.blake2b(digest_size=16)
    identity = {
        "format": EXPORT_FORMAT_VERSION,
        "workload": f"{type(workload).__module__}.{type(workload).__qualname__}",
        "params": workload.values,
        "dtype": dtype,
        "inputs": [[list(t.shape), str(t.dtype)] for t in inputs],
        "torch": torch.__version__,
    }
    h.update(json.dumps(identity, sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _export(module, inputs, path: Path, input_names, output_names) -> str:
    """Export with the dynamo exporter, falling back to TorchScript. Returns the exporter used."""
    import torch

    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet):
            torch.onnx.export(
                module, tuple(inputs), str(path), dynamo=True,
                input_names=list(input_names), output_names=list(output_names),
                external_data=False,
            )
        return "torch.onnx.export(dynamo=True)"
    except Exception as dynamo_error:  # noqa: BLE001 - fall back, report both if both fail
        try:
            with contextlib.redirect_stdout(quiet):
                torch.onnx.export(
                    module, tuple(inputs), str(path), dynamo=False,
                    input_names=list(input_names), output_names=list(output_names),
                )
            return "torch.onnx.export(dynamo=False)"
        except Exception as legacy_error:  # noqa: BLE001
            raise RuntimeError(
                f"ONNX export failed with both exporters: dynamo: {dynamo_error}; "
                f"torchscript: {legacy_error}"
            ) from legacy_error


def export_onnx(workload, dtype: str, batch_size: int, directory: Path | None = None) -> ExportedModel:
    """The workload at ``dtype`` and ``batch_size`` as a checked ONNX file (static shapes)."""
    import onnx

    module = workload.build_module(dtype)
    inputs = workload.example_inputs(batch_size, dtype)
    digest = content_hash(workload, module, inputs, dtype)
    directory = Path(directory or cache_dir()) / "onnx"
    target = directory / f"{workload.name}-{dtype}-b{batch_size}-{digest}.onnx"
    meta_path = target.with_suffix(".json")
    if target.exists() and meta_path.exists():
        exporter = json.loads(meta_path.read_text()).get("exporter", "unknown")
        return ExportedModel(target, True, exporter, 0.0, digest)

    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as tmp:
        staging = Path(tmp) / target.name
        exporter = _export(module, inputs, staging, workload.input_names, workload.output_names)
        onnx.checker.check_model(str(staging))
        os.replace(staging, target)
    meta_path.write_text(json.dumps({"exporter": exporter, "hash": digest}))
    return ExportedModel(target, False, exporter, time.perf_counter() - start, digest)
