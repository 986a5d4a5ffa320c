"""Sweep configs: the shipped example plans, and every malformed config is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.contract.errors import UserError
from harness.orchestration.config import load_config, plan_config
from harness.presentation.cli import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "sweep.example.toml"


def test_shipped_example_config_loads_and_plans():
    request = load_config(EXAMPLE)
    assert request.backends == ("torch", "onnxruntime", "openvino")
    assert request.stopping.target_ci == 0.02 and request.stopping.min_iterations == 10
    assert request.server.latency_slo_s == pytest.approx(0.05)
    assert request.memory_limit_bytes == 8 << 30
    assert ("gemm.size", 512) in request.params
    the_plan = plan_config(EXAMPLE, request)
    # 3 backends x 2 workloads x (single-stream: 2 dtypes x 2 sizes + offline: 2 dtypes x 2 sizes)
    assert len(the_plan.specs) == 3 * 2 * 8
    gemm = next(s for s in the_plan.specs if s.workload == "gemm")
    assert gemm.params_dict == {"size": 512} and gemm.threads == 2 and gemm.timeout_s == 300


def test_fixed_iterations_in_config(tmp_path):
    path = tmp_path / "fixed.toml"
    path.write_text("[stopping]\niterations = 20\nwarmup = 1\n")
    stopping = load_config(path).stopping
    assert stopping.iterations == 20 and not stopping.adaptive and stopping.warmup == 1


BAD_CONFIGS = [
    ("[sweep]\nbackends = [\"torch\"\n", "invalid TOML"),
    ("[sweep]\nbatch_sizes = \"8\"\n", "[sweep] batch_sizes = '8': must be a list of integers"),
    ("[sweep]\nbatch_sizes = [1, -8]\n", "[sweep] batch_sizes = -8: must be >= 1"),
    ("[sweep]\nthreads = 2.5\n", "[sweep] threads = 2.5: must be an integer"),
    ("[sweep]\nthreads = true\n", "[sweep] threads = True: must be an integer"),
    ("[sweep]\nbackend = [\"torch\"]\n", "unknown key 'backend' in [sweep] (allowed: backends,"),
    ("[sweep]\nbackends = [\"tpu\"]\n", "[sweep] backends: unknown backend 'tpu' (allowed:"),
    ("[sweep]\nworkloads = [\"bert\"]\n", "[sweep] workloads: unknown workload 'bert'"),
    ("[sweep]\ndtypes = [\"int3\"]\n", "[sweep] dtypes: unknown dtype 'int3'"),
    ("[sweep]\nscenarios = [\"no-such-scenario\"]\n", "[sweep] scenarios: unknown scenario 'no-such-scenario'"),
    ("[sweep]\nmemory_limit = \"lots\"\n", "[sweep] memory_limit: 'lots' is not a size"),
    ("[sweep]\ntimeout_s = 0\n", "[sweep] timeout_s = 0: must be > 0"),
    ("[stopping]\nwarmup = -1\n", "[stopping] warmup = -1: must be >= 0"),
    ("[stopping]\nmin_iterations = 0\n", "[stopping] min_iterations = 0: must be >= 1"),
    ("[stopping]\ntarget_ci = 2\n", "[stopping] target_ci = 2: must be between 0 and 1"),
    ("[stopping]\nmax_time = 3\n", "unknown key 'max_time' in [stopping]"),
    ("[server]\nlatency_slo_ms = -5\n", "[server] latency_slo_ms = -5: must be > 0"),
    ("[server]\nfind_max_qps = \"yes\"\n", "[server] find_max_qps = 'yes': must be true or false"),
    ("[sweep]\nscenarios = [\"server\"]\n", "the server scenario needs a target QPS"),
    ("[workload.gemm]\nsize = \"big\"\n", "workload 'gemm': size='big' is not a valid int"),
    ("[workload.gemm]\nsise = 3\n", "workload 'gemm': unknown parameter 'sise'"),
    ("[workload.resnet]\ndepth = 50\n", "workload 'resnet' is not in this run"),
    ("[workload]\ngemm = 3\n", "workload.gemm must be a table"),
    ("stopping = 3\n", "[stopping] must be a table"),
    ("schema_version = 7\n", "schema_version = 7"),
    ("colour = \"red\"\n", "unknown key 'colour' at top level"),
]


@pytest.mark.parametrize("text, message", BAD_CONFIGS, ids=[m[:40] for _, m in BAD_CONFIGS])
def test_bad_config_is_one_line_exit_2_naming_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["run", "--config", str(path), "--out", str(tmp_path / "results")],
                                prog_name="bakeoff")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"bakeoff: error: {path}: ")
    assert message in lines[0]
    assert not (tmp_path / "results").exists()  # validated before anything ran


def test_config_errors_are_user_errors_in_the_api(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[stopping]\nwarmup = 'many'\n")
    with pytest.raises(UserError, match="warmup"):
        load_config(path)
