"""The on-disk cache (harness/engine/cache.py) of references and weight counts, and OpenVINO's IR cache."""

from __future__ import annotations

import numpy as np
import pytest

from harness.engine import cache
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BAKEOFF_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_reference_is_computed_once_per_identity(fresh_cache, monkeypatch):
    registry = Registry()
    gemm = registry.workload("gemm", {"size": 16})
    calls = []
    real = type(gemm).reference_outputs
    monkeypatch.setattr(type(gemm), "reference_outputs", lambda self, b: calls.append(b) or real(self, b))
    first, hit1 = cache.cached_reference(gemm, 2)
    second, hit2 = cache.cached_reference(registry.workload("gemm", {"size": 16}), 2)
    assert (hit1, hit2) == (False, True) and calls == [2]
    np.testing.assert_array_equal(first[0], second[0])
    # Another batch size or parameter is another entry.
    assert cache.cached_reference(gemm, 3)[1] is False
    assert cache.cached_reference(registry.workload("gemm", {"size": 17}), 2)[1] is False
    assert list(fresh_cache.glob("references/*.npz"))


def test_custom_workloads_are_never_cached(fresh_cache):
    class Unstable:
        values = {"x": 1}
        reference_cacheable = False

        def reference_outputs(self, batch_size):
            return [np.ones(2)]

    assert cache.workload_key(Unstable()) is None
    reference, hit = cache.cached_reference(Unstable(), 1)
    assert hit is False and reference[0].tolist() == [1.0, 1.0]
    assert not list(fresh_cache.glob("references/*"))


def test_a_damaged_entry_is_recomputed(fresh_cache):
    gemm = Registry().workload("gemm", {"size": 8})
    cache.cached_reference(gemm, 1)
    (entry,) = fresh_cache.glob("references/*.npz")
    entry.write_bytes(b"not an npz file")
    reference, hit = cache.cached_reference(gemm, 1)
    assert hit is False and reference[0].shape == (1, 8, 8)


def test_weight_bytes_are_cached(fresh_cache):
    mlp = Registry().workload("mlp", {"hidden": 32, "layers": 1})
    first = cache.cached_weight_bytes(mlp, "float32")
    assert list(fresh_cache.glob("references/*.json"))
    assert cache.cached_weight_bytes(mlp, "float32") == first == mlp.weight_bytes_with_source("float32")


def test_cache_entries_are_fsynced_file_and_folder(fresh_cache, monkeypatch):
    """Cache entries go through harness/files/atomic.py: the entry is synced before its rename and the
    folder after (the old private writer synced neither)."""
    import os
    import stat

    gemm = Registry().workload("gemm", {"size": 8})
    real, synced = os.fsync, []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)) or real(fd))
    cache.cached_weight_bytes(gemm, "float32")
    assert synced == [False, True]  # the file, then its folder
    synced.clear()
    cache.cached_reference(gemm, 1)
    assert synced == [False, True]
    entries = list((fresh_cache / "references").iterdir())
    assert len(entries) == 2 and not [p for p in entries if p.name.startswith(".")]


def test_source_digest_covers_base_classes_and_helpers():
    registry = Registry()
    moe = registry.workload("moe", {})
    digest = cache.source_digest(moe)
    assert digest != "unknown-source" and len(digest) == 16
    assert "workloads.llm" in {c.__module__ for c in type(moe).__mro__}  # Moe's base lives in llm.py


@pytest.mark.slow
def test_openvino_reuses_the_converted_ir_with_parity(fresh_cache):
    spec = BenchmarkSpec.create(backend="openvino", device="CPU", workload="mlp",
                                params={"hidden": 32, "layers": 1}, iterations=3)
    first, second = execute(spec, Registry()), execute(spec, Registry())
    assert first.status == second.status == "ok"
    assert "cached IR" not in first.details["converter"] and "cached IR" in second.details["converter"]
    assert second.parity["passed"] and second.parity["reference_cached"]
    assert list(fresh_cache.glob("openvino-ir/*/model.xml"))
