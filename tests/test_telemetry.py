"""Telemetry: meters against real file layouts and test doubles, memory, fingerprints."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.telemetry.fingerprint import fingerprint, fingerprint_inputs
from harness.results.frame import load
from harness.results.store import RunStore, read_records
from harness.engine.telemetry.meters import (
    EnergySession,
    NpuSmiMeter,
    NvmlMeter,
    PowerIntegrator,
    RaplMeter,
    counter_delta,
    integrate,
    parse_npu_smi_power,
)


def make_powercap(root, zones):
    """A sysfs powercap tree: {folder: (name, energy_uj, max_energy_range_uj)}."""
    for folder, (name, energy, max_range) in zones.items():
        zone = root / folder
        zone.mkdir(parents=True)
        (zone / "name").write_text(f"{name}\n")
        (zone / "energy_uj").write_text(f"{energy}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_range}\n")


class SteppingClock:
    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_counter_delta_handles_wrap_around():
    assert counter_delta(100, 250, 1000) == 150
    assert counter_delta(900, 50, 1000) == 150  # wrapped past 1000 back to 0


def test_rapl_meter_reads_packages_and_dram_with_wrap_around(tmp_path):
    max_range = 262_143_328_850
    make_powercap(tmp_path, {
        "intel-rapl:0": ("package-0", max_range - 1_000_000, max_range),   # about to wrap
        "intel-rapl:0:0": ("core", 5_000_000, max_range),
        "intel-rapl:0:1": ("dram", 7_000_000, max_range),
    })
    meter = RaplMeter(tmp_path, clock=SteppingClock(2.0))
    assert meter.available() is None
    meter.start()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("4000000\n")       # wrapped: +5 J
    (tmp_path / "intel-rapl:0:0" / "energy_uj").write_text("8000000\n")     # core +3 J (inside the package)
    (tmp_path / "intel-rapl:0:1" / "energy_uj").write_text("9000000\n")     # dram +2 J
    reading = meter.stop()
    assert reading.domains == {"intel-rapl:0/package-0": 5.0, "intel-rapl:0:0/core": 3.0, "intel-rapl:0:1/dram": 2.0}
    assert reading.joules == 7.0  # package + dram; core is already inside the package
    assert reading.seconds == 2.0 and reading.method == "counter"


def test_rapl_meter_explains_why_it_cannot_read(tmp_path):
    assert "no powercap interface" in RaplMeter(tmp_path / "absent").available()
    assert "no RAPL zones" in RaplMeter(tmp_path).available()
    make_powercap(tmp_path, {"intel-rapl:0": ("package-0", 1, 10)})
    (tmp_path / "intel-rapl:0" / "energy_uj").unlink()
    (tmp_path / "intel-rapl:0" / "energy_uj").mkdir()  # unreadable as a file, like a root-only file
    assert "not readable" in RaplMeter(tmp_path).available()


def test_power_integration_is_the_trapezoid_rule():
    assert integrate([(0.0, 100.0), (1.0, 200.0), (3.0, 200.0)]) == (150.0 + 400.0, 3.0)
    watts = iter([100.0, 100.0, 300.0])
    integrator = PowerIntegrator(lambda: next(watts), interval_s=10, clock=SteppingClock(0.5))
    integrator.start()
    joules, seconds, samples = integrator.stop()
    assert samples >= 2 and seconds > 0 and joules > 0


class FakeNvml:
    """An NVML-shaped test double: counter in mJ, power in mW, utilisation in %."""

    def __init__(self, counter_supported: bool, power_mw: int = 250_000) -> None:
        self.counter = itertools.count(1_000_000, 50_000)  # +50 J per read
        self.counter_supported, self.power_mw = counter_supported, power_mw

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        if index > 0:
            raise RuntimeError("NVML_ERROR_INVALID_ARGUMENT")
        return "gpu0"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.counter_supported:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return next(self.counter)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.power_mw

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=80, memory=40)


def test_nvml_meter_prefers_the_energy_counter():
    meter = NvmlMeter(0, nvml=FakeNvml(counter_supported=True), interval_s=10, clock=SteppingClock(1.0))
    assert meter.available() is None
    meter.start()
    reading = meter.stop()
    assert reading.method == "counter" and reading.joules == pytest.approx(50.0)
    assert reading.utilisation == pytest.approx(0.8)


def test_nvml_meter_integrates_power_without_the_counter():
    meter = NvmlMeter(0, nvml=FakeNvml(counter_supported=False), interval_s=10, clock=SteppingClock(1.0))
    meter.start()
    reading = meter.stop()
    assert reading.method == "integrated power samples"
    assert reading.joules == pytest.approx(250.0 * reading.seconds)


def test_nvml_meter_reports_clock_throttling_and_its_own_sampling_cost():
    class ThrottledNvml(FakeNvml):
        def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
            return 0x1 | 0x4 | 0x40  # idle (not a slowdown), software power cap, hardware thermal

    meter = NvmlMeter(0, nvml=ThrottledNvml(counter_supported=True), clock=SteppingClock(1.0))
    meter.available()
    meter.start()
    reading = meter.stop()
    assert reading.throttle_reasons == ["software power cap", "hardware thermal slowdown"]
    # With the counter, the thread only reads utilisation and throttling, once a second; its cost is measured.
    assert reading.sampling["interval_s"] == 1.0 and reading.sampling["samples"] >= 2
    assert reading.sampling["busy_s"] == pytest.approx(reading.sampling["samples"] * 1.0)  # 1 s per fake read
    unthrottled = NvmlMeter(0, nvml=FakeNvml(counter_supported=True), clock=SteppingClock(1.0))
    unthrottled.available()
    unthrottled.start()
    assert unthrottled.stop().throttle_reasons == []


def test_nvml_meter_reports_missing_gpus_and_library():
    assert "cannot open GPU 3" in NvmlMeter(3, nvml=FakeNvml(True)).available()


def test_npu_smi_power_parsing_and_meter():
    output = "        Power Dissipation(W)           : 93.5\n"
    assert parse_npu_smi_power(output) == 93.5
    with pytest.raises(ValueError):
        parse_npu_smi_power("NPU ID : 0\n")
    meter = NpuSmiMeter(0, run=lambda cmd: output, interval_s=10, clock=SteppingClock(1.0))
    assert meter.available() is None
    meter.start()
    reading = meter.stop()
    assert reading.joules == pytest.approx(93.5 * reading.seconds)

    def missing(cmd):
        raise FileNotFoundError(cmd[0])

    assert "npu-smi not found" in NpuSmiMeter(0, run=missing).available()


def test_energy_is_null_with_reasons_never_zero(tmp_path):
    session = EnergySession([RaplMeter(tmp_path / "absent"), NvmlMeter(0, nvml=FakeNvml(True))])
    session.meters[1]._nvml.nvmlDeviceGetHandleByIndex = lambda i: (_ for _ in ()).throw(RuntimeError("no GPU"))
    with session:
        pass
    result = session.result(units=100, unit="token")
    assert result["joules"] is None
    assert "rapl: no powercap interface" in result["reason"] and "nvml: NVML cannot open GPU 0" in result["reason"]


def test_energy_per_unit_with_a_working_meter(tmp_path):
    make_powercap(tmp_path, {"intel-rapl:0": ("package-0", 0, 10**12)})
    meter = RaplMeter(tmp_path, clock=SteppingClock(4.0))
    with EnergySession([meter]) as session:
        (tmp_path / "intel-rapl:0" / "energy_uj").write_text("20000000")
    result = session.result(units=10, unit="token")
    assert result["joules"] == 20.0 and result["average_watts"] == 5.0
    assert result["joules_per_token"] == 2.0 and result["tokens_per_joule"] == 0.5


def test_records_of_builtin_backends_have_memory_weights_and_honest_energy(tmp_path):
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="mlp", params={"hidden": 32}, iterations=3)
    store = RunStore.create(tmp_path)
    store.write(spec, execute(spec, Registry(), meters=lambda prepared: [RaplMeter(tmp_path / "no-powercap")]))
    [record] = read_records(store.path)
    memory = record["memory"]
    assert memory["host_peak_rss_bytes"] > 10 << 20 and memory["host_peak_rss_source"].startswith(("VmHWM", "getrusage"))
    assert memory["weight_bytes"] == (32 * 128 + 128 + 128 * 32 + 32) * 2 * 4  # two blocks, float32
    assert record["energy"]["joules"] is None and "no powercap interface" in record["energy"]["reason"]
    assert record["utilisation"]["cpu_cores_busy"] > 0
    frame = load(store.path)
    assert frame.loc[0, "weight_bytes"] == memory["weight_bytes"] and frame.loc[0, "energy_joules"] is None


def test_fingerprints_are_stable_and_change_with_threads(tmp_path):
    def run(threads, folder):
        spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 8},
                                    iterations=2, threads=threads)
        store = RunStore.create(tmp_path / folder)
        store.write(spec, execute(spec, Registry()))
        return read_records(store.path)[0]

    first, second, more_threads = run(1, "a"), run(1, "b"), run(2, "c")
    assert first["run_id"] != second["run_id"]
    assert first["fingerprint"] == second["fingerprint"]
    assert more_threads["fingerprint"] != first["fingerprint"]
    assert fingerprint(fingerprint_inputs({}, first)) != first["fingerprint"]  # host facts are part of it


def test_fingerprint_packages_are_the_number_changers_and_plugins(test_plugins, tmp_path):
    """click, rich and pandas only present results: installed here, yet never in the fingerprint.
    An installed third-party plugin's distribution (tests/plugins: bakeoff-testing) is."""
    from harness.engine.telemetry.environment import KEY_PACKAGES, collect_host, package_version, plugin_packages

    presentation = ("click", "rich", "pandas")
    assert all(package_version(name) for name in presentation)  # so their absence below means something
    assert not set(presentation) & set(KEY_PACKAGES)
    assert plugin_packages() == {"bakeoff-testing": "0.0.0"}  # bakeoff's own built-ins are not repeated
    packages = collect_host()["packages"]
    assert not set(presentation) & set(packages)
    assert packages["bakeoff-testing"] == "0.0.0"
    assert packages["torch"] == package_version("torch") and packages["numpy"] == package_version("numpy")
    assert "onnxruntime" in packages and "openvino" in packages  # both installed in the dev environment

    spec = BenchmarkSpec.create(backend="null", device="cpu", workload="noop", iterations=2)
    store = RunStore.create(tmp_path / "results")
    store.write(spec, execute(spec, Registry()))
    [record] = read_records(store.path)
    assert record["fingerprint_inputs"]["packages"] == dict(sorted(packages.items()))
    # A new plugin version, and nothing else changed, is another environment.
    newer = {**record["fingerprint_inputs"], "packages": {**packages, "bakeoff-testing": "0.0.1"}}
    assert fingerprint(newer) != record["fingerprint"]


def test_meters_start_after_the_warm_up_and_per_unit_energy_counts_measured_queries(test_plugins):
    """The counter meter reads the fake backend's step count: warm-up steps are done before it starts."""
    from harness.engine.telemetry.meters import EnergyReading

    class StepCountingMeter:
        name = "steps"

        def available(self):
            return None

        def start(self):
            self.at_start = dict(STEPS)

        def stop(self):
            return EnergyReading("steps", joules=10.0, seconds=1.0, method="counter")

    STEPS = {}
    meter = StepCountingMeter()
    registry = Registry()
    backend = registry.backend("null")
    original = backend.prepare

    def counting_prepare(workload, spec):
        prepared = original(workload, spec)
        step = prepared.step

        def counted():
            STEPS["n"] = STEPS.get("n", 0) + 1
            step()

        prepared.step = counted
        return prepared

    backend.prepare = counting_prepare
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="noop", warmup=3, iterations=5)
    outcome = execute(spec, registry, meters=lambda prepared: [meter])
    assert meter.at_start == {"n": 3}  # the warm-up ran before the meter started
    assert STEPS["n"] == 8
    assert outcome.energy["joules"] == 10.0
    assert outcome.energy[f"joules_per_{outcome.unit}"] == pytest.approx(10.0 / (5 * outcome.work_per_step))
