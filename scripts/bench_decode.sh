#!/usr/bin/env bash
# Native decode of ../shared/data/scans/LIDC-IDRI-0002 against pydicom + numpy, in one run,
# plus the peak memory of `nodulens info` on the same files. Needs ../shared/data and
# `pip install pydicom numpy`.
set -euo pipefail
cd "$(dirname "$0")/.."
scan=${NODULENS_BENCH_SCAN:-LIDC-IDRI-0002}
rust=$(cargo bench -q -p nodulens-core --bench decode 2>/dev/null | tee /dev/stderr | sed -n 's/NODULENS_DECODE_MS=//p')
[ -n "$rust" ] || { echo "skipped: no shared data"; exit 0; }
py=$(python3 scripts/bench_pydicom.py "target/test-scans/$scan/dicom" | tee /dev/stderr | sed -n 's/PYDICOM_DECODE_MS=//p')
cargo build -q --release -p nodulens-cli
peak_kb=$( { /usr/bin/time -f '%M' ./target/release/nodulens info "target/test-scans/$scan/dicom" >/dev/null; } 2>&1 | tail -1)
python3 - "$rust" "$py" "$peak_kb" <<'PY'
import sys
rust, py, peak = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
volume_mb = 512 * 512 * 261 * 2 / 2**20
print(f"nodulens {rust:.1f} ms, pydicom {py:.1f} ms: nodulens is {py / rust:.1f}x faster")
print(f"peak RSS of `nodulens info`: {peak / 1024:.0f} MiB for a {volume_mb:.0f} MiB volume ({peak / 1024 / volume_mb:.2f}x)")
PY
