#!/usr/bin/env bash
# Inference throughput of the shipped models, in one run: Nodulens natively (the fused CPU pass
# the product runs on the CPU, burn's own flex backend, and wgpu when NODULENS_BENCH_WGPU=1 and
# an adapter such as Mesa lavapipe is present) against PyTorch on the CPU running the same
# architecture with the same weights on the same input (which the PyTorch side checks,
# ≤ 1e-4), eager and torch.compile'd. Needs `pip install torch` (PyPI) and a C compiler for
# torch.compile (NODULENS_BENCH_EAGER_ONLY=1 skips it); PYTHON picks the interpreter.
# NODULENS_BENCH_BATCH (64) and NODULENS_BENCH_SECONDS (5) apply to both.
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${NODULENS_BENCH_BATCH:-64}
seconds=${NODULENS_BENCH_SECONDS:-5}
features=()
[ "${NODULENS_BENCH_WGPU:-0}" = 1 ] && features=(--features bench-wgpu)
export NODULENS_BENCH_BATCH=$batch NODULENS_BENCH_SECONDS=$seconds
rust=$(cargo bench -q -p nodulens-model --bench throughput "${features[@]}")
printf '%s\n' "$rust"
torch_args=()
[ "${NODULENS_BENCH_EAGER_ONLY:-0}" = 1 ] && torch_args+=(--eager-only)
while read -r model probs; do torch_args+=(--expect "$model=$probs"); done < <(
  sed -n 's/^NODULENS_BENCH_PROBS model=\([a-z]*\) p=\(.*\)$/\1 \2/p' <<<"$rust")
# -W: torch warns that NumPy is absent; nothing here needs it.
py=$("${PYTHON:-python3}" -W ignore::UserWarning scripts/bench_models_pytorch.py \
  --batch "$batch" --seconds "$seconds" "${torch_args[@]}")
printf '%s\n' "$py"
"${PYTHON:-python3}" - "$rust" "$py" <<'PY'
import re, sys
rust, py = sys.argv[1], sys.argv[2]
torch = {}
for m, variant, v in re.findall(r"PYTORCH_BENCH model=(\w+) variant=(\w+) .*?patches_per_s=([\d.]+)", py):
    torch.setdefault(m, {})[variant] = float(v)
names = {"fused": "fused CPU pass", "flex": "burn flex", "wgpu": "burn wgpu"}
print()
for model, backend, v in re.findall(r"NODULENS_BENCH model=(\w+) backend=(\w+) .*?patches_per_s=([\d.]+)", rust):
    v = float(v)
    vs = "   ".join(f"{v / t:.2f}x PyTorch {variant} ({t:.0f})" for variant, t in torch.get(model, {}).items())
    print(f"{model:<10} {names.get(backend, backend):<15} {v:8.0f} patches/s   {vs or 'no PyTorch figure'}")
PY
