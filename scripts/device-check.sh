#!/usr/bin/env bash
# Device check: run on a lent accelerator machine (the `device` tool), from the repo root.
#   run(command="bash scripts/device-check.sh", timeout_s=420)
# It proves, on real hardware, what CPU-only CI cannot: CUDA device discovery and
# synchronisation, device peak memory, and NVML energy (issue 5). Short by design:
# a few minutes, leaving time for a rerun inside a 15-minute lease.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/bakeoff-device-check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Use the machine's CUDA torch; add only what bakeoff itself needs, never a CPU torch.
python3 -m pip install -q --no-deps -e . >"$OUT/pip.log" 2>&1 \
  || echo "editable install failed; running from the source tree" >>"$OUT/pip.log"
python3 -m pip install -q click rich psutil pandas nvidia-ml-py >>"$OUT/pip.log" 2>&1 || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
python3 -m harness.cli backends --json | tee "$OUT/backends.json"
python3 -m harness.cli run -b torch -d cuda:0 -w gemm -w membw -w llm -p preset=qwen2.5-0.5b -p gemm.size=8192 \
  --dtype bfloat16 --max-duration 5 --timeout 240 --out "$OUT/results" --json > "$OUT/run.json"
status=$?
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
records = json.load(open(f"{out}/run.json"))["records"]
for r in records:
    energy, memory = r.get("energy") or {}, r.get("memory") or {}
    print(r["spec"]["workload"], r["status"], r.get("reason") or "",
          "| throughput", (r.get("throughput") or {}).get("value"), (r.get("throughput") or {}).get("unit"),
          "| energy J", energy.get("joules"), energy.get("reason", ""),
          "| method", [m.get("method") for m in energy.get("meters", [])],
          "| device peak", memory.get("device_peak_bytes"), "| parity", (r.get("parity") or {}).get("passed"))
PY
exit $status
