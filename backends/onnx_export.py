"""Compatibility: the ONNX export helpers moved to :mod:`harness.tools.export`, the public,
documented API (docs/writing-a-backend.md, "The model without torch"). Import from there."""

from __future__ import annotations

from harness.tools.export import (  # noqa: F401 - re-exported for plugins that imported the old path
    EXPORT_FORMAT_VERSION,
    GENERATIVE_OUTPUTS,
    ExportedModel,
    _identity,
    cache_dir,
    content_hash,
    export_generative,
    export_module,
    export_onnx,
    workload_identity,
)
