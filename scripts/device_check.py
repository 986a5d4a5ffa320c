"""The accelerator device check: what CPU-only CI cannot prove, on one real GPU.

Runs ``gemm``, ``membw`` and ``llm`` (100m preset) on torch ``cuda:0`` and on
ONNX Runtime's ``CUDAExecutionProvider``, then checks every record:

* status ok and parity passed (outputs agree with the float32 CPU reference);
* torch timed with device events (``torch.Event(cuda...)``), not the host clock;
* energy read from NVML, with joules > 0;
* device peak memory reported (torch).

It prints TFLOP/s, GB/s and tokens/s, writes ``summary.json`` and a tarball of
the run folder into ``--out``, and exits 1 if any check fails. Set
``DEVICE_CHECK_SKIP=onnxruntime`` to skip ONNX Runtime where onnxruntime-gpu
cannot be installed (it is then listed as skipped, never as passed).

Usage (from the repo root, on the accelerator machine)::

    scripts/device-check            # wrapper: sets up the environment, then runs this
    python scripts/device_check.py --out /tmp/device-check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

#: (backend, device, extra CLI arguments) of each leg.
LEGS = {
    "torch": ("torch", "cuda:0", ["--dtype", "bfloat16"]),
    "onnxruntime": ("onnxruntime", "CUDAExecutionProvider", ["--dtype", "float16"]),
}
WORKLOAD_ARGS = ["-w", "gemm", "-w", "membw", "-w", "llm", "-p", "gemm.size=8192", "-p", "llm.preset=100m",
                 "-p", "membw.size_mib=4096"]


@dataclass
class Check:
    name: str
    passed: bool | None  # None: skipped
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]


def _figure(record: Mapping[str, Any]) -> str:
    """The headline number of a record, with its unit and CI."""
    tokens = record.get("tokens") or {}
    if tokens.get("decode_tokens_per_s"):
        t = tokens["decode_tokens_per_s"]
        return f"{t['value']:.1f} token/s decode [{t['ci_low']:.1f}, {t['ci_high']:.1f}]"
    throughput = record.get("throughput") or {}
    if not throughput.get("value"):
        return "no throughput"
    value, unit = throughput["value"], throughput["unit"]
    scale = {"FLOP/s": (1e12, "TFLOP/s"), "B/s": (1e9, "GB/s")}.get(unit, (1.0, unit))
    low, high = throughput.get("ci_low") or value, throughput.get("ci_high") or value
    return f"{value / scale[0]:.4g} {scale[1]} [{low / scale[0]:.4g}, {high / scale[0]:.4g}]"


def evaluate(records: Iterable[Mapping[str, Any]], backend: str) -> list[Check]:
    """Every check on one leg's records. Pure: tested with synthetic records on the CPU."""
    checks: list[Check] = []
    records = list(records)
    seen = {r["spec"]["workload"] for r in records}
    for workload in ("gemm", "membw", "llm"):
        if workload not in seen:
            checks.append(Check(f"{backend} {workload} ran", False, "no record"))
    for record in records:
        name = f"{backend} {record['spec']['workload']}"
        status = record.get("status")
        if status != "ok":
            checks.append(Check(f"{name} ran", False, f"{status}: {record.get('reason') or record.get('failure')}"))
            continue
        checks.append(Check(f"{name} ran", True, _figure(record)))
        parity = record.get("parity") or {}
        checks.append(Check(f"{name} parity", parity.get("passed") is True,
                            f"max abs {parity.get('max_abs_error')}, cosine {parity.get('cosine')}"
                            if parity.get("passed") is not None else f"not checked: {parity.get('reason')}"))
        timer = (record.get("measurement") or {}).get("timer") or ""
        if backend == "torch":
            checks.append(Check(f"{name} device-event timing", "Event(cuda" in timer, timer or "no timer"))
            peak = (record.get("memory") or {}).get("device_peak_bytes")
            checks.append(Check(f"{name} device peak memory", bool(peak), f"{peak} B"))
        energy = record.get("energy") or {}
        nvml = [m for m in energy.get("meters", []) if "nvml" in m.get("meter", "").lower()]
        checks.append(Check(f"{name} NVML energy", bool(nvml) and nvml[0].get("joules", 0) > 0,
                            f"{nvml[0]['joules']:.1f} J by {nvml[0]['method']}" if nvml
                            else energy.get("reason") or "no NVML reading"))
    return checks


def run_leg(backend: str, out: Path, timeout_s: int) -> tuple[list[dict[str, Any]], str | None]:
    """Run one backend's benchmarks through the real CLI; returns (records, run folder)."""
    name, device, extra = LEGS[backend]
    command = [sys.executable, "-m", "harness.presentation.cli", "run", "-b", name, "-d", device, *WORKLOAD_ARGS, *extra,
               "--max-duration", "4", "--timeout", str(timeout_s), "--out", str(out / "results"), "--json", "-q"]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s * 4)
    sys.stderr.write(result.stderr[-4000:])
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"{backend}: no JSON from bakeoff run (exit {result.returncode})", flush=True)
        return [], None
    return data["records"], data["run_dir"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/bakeoff-device-check")))
    parser.add_argument("--timeout", type=int, default=150, help="seconds per benchmark")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in os.environ.get("DEVICE_CHECK_SKIP", "").split(",") if s.strip()}
    started = time.monotonic()
    checks: list[Check] = []
    run_dirs: list[str] = []
    for backend in LEGS:
        if backend in skip:
            checks.append(Check(f"{backend} leg", None, "skipped by DEVICE_CHECK_SKIP"))
            continue
        records, run_dir = run_leg(backend, args.out, args.timeout)
        if run_dir:
            run_dirs.append(run_dir)
        checks.extend(evaluate(records, backend))
    elapsed = time.monotonic() - started
    for check in checks:
        print(f"{check.verdict}  {check.name}: {check.detail}")
    failed = [c for c in checks if c.passed is False]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed or skipped, {len(failed)} failed, "
          f"in {elapsed:.0f} s")
    (args.out / "summary.json").write_text(json.dumps(
        {"elapsed_s": elapsed, "checks": [asdict(c) | {"verdict": c.verdict} for c in checks],
         "run_dirs": run_dirs}, indent=2))
    with tarfile.open(args.out / "runs.tar.gz", "w:gz") as archive:
        for run_dir in dict.fromkeys(run_dirs):
            archive.add(run_dir, arcname=Path(run_dir).name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
