#!/usr/bin/env bash
# The fused CPU pass against burn's wgpu pass, per candidate: `nodulens detect --threshold 0`
# on a scan (default: the bundled sample) with --backend cpu and --backend wgpu, and the largest
# difference of p(nodule) and p(malignant) over every scored candidate (goal: within 1e-4).
# Needs a Vulkan, Metal or DX12 adapter; on a machine without a GPU, Mesa's lavapipe
# (Debian: mesa-vulkan-drivers) is one.
set -euo pipefail
cd "$(dirname "$0")/.."
scan=${1:-static/sample/LIDC-IDRI-0006.nii.gz}
cargo build -q --release -p nodulens-cli --features wgpu
out=$(mktemp -d)
for backend in cpu wgpu; do
  ./target/release/nodulens detect "$scan" --threshold 0 --backend "$backend" --json "$out/$backend.json" >/dev/null
done
python3 - "$out/cpu.json" "$out/wgpu.json" <<'PY'
import json, sys
cpu, gpu = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda f: tuple(round(c, 3) for c in f["center_mm"])
gpu_at = {key(f): f for f in gpu["findings"]}
assert len(cpu["findings"]) == len(gpu["findings"]), "different candidate counts"
worst = {"p_nodule": 0.0, "p_malignant": 0.0}
for f in cpu["findings"]:
    g = gpu_at[key(f)]
    for name in worst:
        worst[name] = max(worst[name], abs(f[name] - g[name]))
print(f"{len(cpu['findings'])} candidates, backends {cpu['model']['backend']} / {gpu['model']['backend']}: "
      f"max |Δp(nodule)| {worst['p_nodule']:.2e}, max |Δp(malignant)| {worst['p_malignant']:.2e}; "
      f"models {cpu['timings_ms']['nodule_model'] + cpu['timings_ms']['malignancy_model']:.0f} ms on the CPU, "
      f"{gpu['timings_ms']['nodule_model'] + gpu['timings_ms']['malignancy_model']:.0f} ms on wgpu")
sys.exit(0 if max(worst.values()) <= 1e-4 else 1)
PY
rm -rf "$out"
