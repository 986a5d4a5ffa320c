"""Bad input fails before anything runs: caps and memory estimates, corrupt run folders.

Every error is one line, exit 2, naming the value, the parameter or the file.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harness.contract.errors import UserError
from harness.contract.interface import Param
from harness.contract.limits import MAX_BATCH_SIZE, MAX_CONCURRENCY, MAX_QUERIES, MAX_SEED, MAX_STEPS, MAX_THREADS
from harness.engine.runner import Measurement, Outcome
from harness.engine.spec import BenchmarkSpec
from harness.orchestration import sweep
from harness.orchestration.sweep import SweepRequest, plan
from harness.presentation.cli import cli
from harness.results.store import MANIFEST_NAME, RunStore

HUGE = "99999999999999999999"  # beyond int64: torch raises OverflowError on it


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="bakeoff")


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bakeoff: error: ")
    return lines[0]


# -- caps and memory estimates ---------------------------------------------------

def test_huge_batch_size_in_a_config_is_refused_naming_the_file_key_and_cap(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'[sweep]\nbackends = ["torch"]\nworkloads = ["gemm"]\nbatch_sizes = [1, {HUGE}]\n')
    out = tmp_path / "results"
    line = one_line_error(invoke("run", "--config", str(config), "--out", str(out)))
    assert f"{config}: [sweep] batch_sizes = {HUGE}: must be <= {MAX_BATCH_SIZE}" in line
    assert not out.exists()  # refused before a run folder was made


def test_huge_batch_size_on_the_command_line_is_refused_the_same_way(tmp_path):
    out = tmp_path / "results"
    line = one_line_error(invoke("run", "-b", "torch", "-w", "gemm", "--batch-size", HUGE, "--out", str(out)))
    assert f"batch size {HUGE} must be <= {MAX_BATCH_SIZE}" in line
    assert not out.exists()


INTEGER_CAPS = [("sweep", "threads", "--threads", MAX_THREADS), ("stopping", "warmup", "--warmup", MAX_STEPS),
                ("stopping", "iterations", "--iterations", MAX_STEPS),
                ("stopping", "min_iterations", "--min-iterations", MAX_STEPS),
                ("server", "min_queries", "--min-queries", MAX_QUERIES),
                ("server", "concurrency", "--concurrency", MAX_CONCURRENCY), ("server", "seed", None, MAX_SEED)]


@pytest.mark.parametrize("section, key, option, cap", INTEGER_CAPS, ids=[c[1] for c in INTEGER_CAPS])
def test_every_integer_setting_has_a_cap_in_configs_and_on_the_command_line(tmp_path, section, key, option, cap):
    out = tmp_path / "results"
    config = tmp_path / "sweep.toml"

    def write(value):
        sweep_table = {"backends": '["torch"]', "workloads": '["gemm"]'}
        tables = {"sweep": dict(sweep_table), section: {}} if section != "sweep" else {"sweep": dict(sweep_table)}
        tables[section][key] = str(value)
        config.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())
                                  for name, table in tables.items()))

    write(cap + 1)
    line = one_line_error(invoke("run", "--config", str(config), "--out", str(out)))
    assert f"{config}: [{section}] {key} = {cap + 1}: must be <= {cap}" in line
    if option:
        line = one_line_error(invoke("run", "-b", "torch", "-w", "gemm", option, str(cap + 1), "--out", str(out)))
        assert f"Invalid value for '{option}': {cap + 1} is not in the range" in line and f"<={cap}" in line
    assert not out.exists()
    write(cap)
    from harness.orchestration.config import load_config

    load_config(config)  # the cap itself is allowed


def test_the_batch_size_cap_itself_is_allowed():
    with pytest.raises(UserError, match=f"batch size {MAX_BATCH_SIZE + 1} must be <= {MAX_BATCH_SIZE}"):
        sweep._check_request(SweepRequest(batch_sizes=(MAX_BATCH_SIZE + 1,)))
    sweep._check_request(SweepRequest(batch_sizes=(MAX_BATCH_SIZE,)))


@pytest.mark.parametrize("where", ["cli", "config"])
def test_huge_gemm_size_is_refused_naming_the_parameter_and_cap(tmp_path, where):
    out = tmp_path / "results"
    if where == "cli":
        result = invoke("run", "-b", "torch", "-w", "gemm", "-p", f"size={HUGE}", "--out", str(out))
    else:
        config = tmp_path / "sweep.toml"
        config.write_text(f'[sweep]\nbackends = ["torch"]\n[workload.gemm]\nsize = {HUGE}\n')
        result = invoke("run", "--config", str(config), "--out", str(out))
    line = one_line_error(result)
    assert f"workload 'gemm': size={HUGE} must be <= 65536" in line
    if where == "config":
        assert str(tmp_path / "sweep.toml") in line
    assert not out.exists()


def test_a_batch_beyond_any_hosts_memory_is_refused_before_anything_runs(tmp_path):
    out = tmp_path / "results"
    line = one_line_error(invoke("run", "-b", "torch", "-w", "gemm", "-p", "size=65536",
                                 "--batch-size", str(MAX_BATCH_SIZE), "--out", str(out)))
    # 3 x 2^20 x 65536^2 x 4 bytes = 48 PiB: more than any host, whatever this one has.
    assert f"workload 'gemm' (size=65536) at batch size {MAX_BATCH_SIZE} in float32" in line
    assert "physical memory" in line
    assert not out.exists()


def test_memory_check_uses_the_workloads_estimate_against_physical_memory(monkeypatch):
    monkeypatch.setattr(sweep, "physical_memory_bytes", lambda: 1 << 30)  # a 1 GiB host
    request = SweepRequest(backends=("torch",), workloads=("gemm",), params=(("size", "8192"),))
    assert len(plan(request).specs) == 1  # 3 x 8192^2 x 4 B = 768 MiB fits
    with pytest.raises(UserError, match=r"size=16384\) at batch size 1 in float32 needs at least 3 GiB .*"
                                        r"more than this host's physical memory \(1 GiB\)"):
        plan(SweepRequest(backends=("torch",), workloads=("gemm",), params=(("size", "16384"),)))
    with pytest.raises(UserError, match=r"at batch size 2 in float32 needs at least 1.5 GiB"):
        plan(SweepRequest(backends=("torch",), workloads=("gemm",), params=(("size", "8192"),),
                          batch_sizes=(1, 2)))
    # float16 halves the bytes, so what float32 cannot hold fits.
    assert plan(SweepRequest(backends=("torch",), workloads=("gemm",), params=(("size", "8192"),),
                             dtypes=("float16",), batch_sizes=(2,))).specs


def test_a_default_batch_size_that_does_not_fit_is_skipped_with_a_note(monkeypatch):
    monkeypatch.setattr(sweep, "physical_memory_bytes", lambda: 4 << 30)
    the_plan = plan(SweepRequest(backends=("torch",), workloads=("gemm",), params=(("size", "8192"),),
                                 scenarios=("offline",)))
    assert [s.batch_size for s in the_plan.specs] == [1]  # 8 and 32 need 6 and 24 GiB
    assert sum("skipped: workload 'gemm' (size=8192) at batch size" in n for n in the_plan.notes) == 2


def test_a_fleet_plan_is_bounded_by_addressable_memory_not_the_drivers(monkeypatch):
    monkeypatch.setattr(sweep, "physical_memory_bytes", lambda: 1 << 30)
    from harness.engine.plugins import Registry

    rows = {"torch": Registry().backend_status("torch")}
    request = SweepRequest(backends=("torch",), workloads=("gemm",), params=(("size", "16384"),))
    assert plan(request, backend_rows=rows).specs  # a node may well hold 3 GiB
    with pytest.raises(UserError, match=r"more than addressable memory \(256 TiB\)"):
        plan(SweepRequest(backends=("torch",), workloads=("gemm",), params=(("size", "65536"),),
                          batch_sizes=(8192,)), backend_rows=rows)


def test_param_maximum():
    param = Param("n", int, 1, "a count", minimum=1, maximum=10)
    assert param.parse("10", where="w") == 10
    with pytest.raises(UserError, match=r"^w: n=11 must be <= 10$"):
        param.parse("11", where="w")
    with pytest.raises(UserError, match=f"w: n={HUGE} must be <= 10"):
        param.parse(int(HUGE), where="w")


@pytest.mark.parametrize("workload, values, batch, expected", [
    ("gemm", {"size": 64}, 8, 3 * 8 * 64 * 64 * 4),
    ("membw", {"size_mib": 16, "mode": "copy"}, 2, 2 * 2 * 16 << 20),
    ("mlp", {"hidden": 8, "expansion": 2, "layers": 3}, 4, 3 * (2 * 8 * 16 + 16 + 8) * 4 + 4 * (2 * 8 + 16) * 4),
])
def test_materialised_bytes_estimates(workload, values, batch, expected):
    from harness.engine.plugins import Registry

    assert Registry().workload(workload, values).materialised_bytes(batch, "float32") == expected


def test_analytic_weight_counts_match_the_built_modules():
    """cnn and encoder count their weights without building the module; the counts must agree."""
    from workloads.cnn import PRESETS, build_resnet
    from workloads.encoder import PARAMETERS, build_minilm

    def count(module):
        return sum(t.numel() for t in [*module.parameters(), *module.buffers()] if t.is_floating_point())

    assert PRESETS["tiny"].parameter_count() == count(build_resnet(PRESETS["tiny"]))
    assert PRESETS["resnet50"].parameter_count() == 25_610_152  # 25.56M weights + batch-norm statistics
    assert PARAMETERS == count(build_minilm())


def test_llm_estimate_counts_weights_and_the_full_kv_cache():
    from workloads.llm import Llm

    llm = Llm(preset="tiny", prompt_tokens=10, new_tokens=6)
    per_sequence = 16 * llm.kv_bytes_per_token("float32") + 10 * 8 + llm.shape.vocab * 4
    assert llm.materialised_bytes(3, "float32") == llm.weight_bytes("float32") + 3 * per_sequence


# -- corrupt run folders -----------------------------------------------------------

def _run(root):
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 64})
    outcome = Outcome(status="ok", measurement=Measurement(tuple(1_000_000 + i for i in range(20)), warmup=0,
                                                           timer="fake", timer_resolution_ns=1.0),
                      unit="FLOP", work_per_step=1e6, backend_version="1.0",
                      device_info={"backend": "torch", "device": "cpu", "model": "Test CPU"})
    store = RunStore.create(root, settings={}, command=["bakeoff", "run"])
    store.write(spec, outcome)
    store.finish()
    return store.path


@pytest.fixture
def good_and_broken(tmp_path):
    root = tmp_path / "results"
    good, broken = _run(root), _run(root)
    manifest = broken / MANIFEST_NAME
    manifest.write_text(manifest.read_text()[:40])  # truncated mid-write
    return root, good, broken


@pytest.mark.parametrize("command", [
    ["compare"], ["export"], ["export", "--format", "pytest-benchmark"], ["rank"], ["report"],
    ["plan", "--target-tokens-per-s", "10"],
])
@pytest.mark.parametrize("order", ["broken-last", "broken-first"])
def test_every_command_that_reads_runs_refuses_a_corrupt_manifest(good_and_broken, tmp_path, command, order):
    root, good, broken = good_and_broken
    runs = [good.name, broken.name] if order == "broken-last" else [broken.name, good.name]
    extra = ["-o", str(tmp_path / "out.html")] if command == ["report"] else []
    line = one_line_error(invoke(command[0], *runs, *command[1:], *extra, "--results-dir", str(root)))
    assert f"{broken / MANIFEST_NAME}: corrupt results file, not valid JSON" in line
    assert not (tmp_path / "out.html").exists()


def test_show_and_compare_agree_and_a_good_pair_still_compares(good_and_broken):
    root, good, broken = good_and_broken
    shown = one_line_error(invoke("show", broken.name, "--results-dir", str(root)))
    compared = one_line_error(invoke("compare", good.name, broken.name, "--results-dir", str(root)))
    assert shown == compared
    fine = invoke("compare", good.name, good.name, "--results-dir", str(root))
    assert fine.exit_code == 0, fine.output
    assert "unchanged" in fine.stdout
