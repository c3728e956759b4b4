#!/usr/bin/env bash
# Inference throughput of the shipped models, in one run: burn natively (CPU flex backend, and
# wgpu when NODULENS_BENCH_WGPU=1 and an adapter such as Mesa lavapipe is present) against
# PyTorch on the CPU running the same architecture with the same weights on the same input
# (which the PyTorch side checks, ≤ 1e-4). Needs `pip install torch` (PyPI); PYTHON picks
# the interpreter. NODULENS_BENCH_BATCH (64) and NODULENS_BENCH_SECONDS (5) apply to both.
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${NODULENS_BENCH_BATCH:-64}
seconds=${NODULENS_BENCH_SECONDS:-5}
features=()
[ "${NODULENS_BENCH_WGPU:-0}" = 1 ] && features=(--features bench-wgpu)
export NODULENS_BENCH_BATCH=$batch NODULENS_BENCH_SECONDS=$seconds
rust=$(cargo bench -q -p nodulens-model --bench throughput "${features[@]}")
printf '%s\n' "$rust"
expect=()
while read -r model probs; do expect+=(--expect "$model=$probs"); done < <(
  sed -n 's/^NODULENS_BENCH_PROBS model=\([a-z]*\) p=\(.*\)$/\1 \2/p' <<<"$rust")
# -W: torch warns that NumPy is absent; nothing here needs it.
py=$("${PYTHON:-python3}" -W ignore::UserWarning scripts/bench_models_pytorch.py \
  --batch "$batch" --seconds "$seconds" "${expect[@]}")
printf '%s\n' "$py"
"${PYTHON:-python3}" - "$rust" "$py" <<'PY'
import re, sys
rust, py = sys.argv[1], sys.argv[2]
torch = {m: float(v) for m, v in re.findall(r"PYTORCH_BENCH model=(\w+) .*?patches_per_s=([\d.]+)", py)}
print()
for model, backend, v in re.findall(r"NODULENS_BENCH model=(\w+) backend=(\w+) .*?patches_per_s=([\d.]+)", rust):
    t = torch.get(model)
    ratio = f"{float(v) / t:.2f}x PyTorch" if t else "no PyTorch figure"
    print(f"{model:<10} burn {backend:<5} {float(v):8.0f} patches/s   PyTorch CPU {t or 0:8.0f}   burn/PyTorch {ratio}")
PY
