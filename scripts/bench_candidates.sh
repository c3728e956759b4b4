#!/usr/bin/env bash
# The pipeline's first two stages natively on shared whole scans: lung mask and candidates,
# timed inside the run (decoding excluded), and the peak memory of the whole command
# (`/usr/bin/time`, decoding included) against the volume's own bytes; `nodulens info` on the
# same files gives the decode's own peak for comparison. Needs ../shared/data (the scans are
# unpacked into target/test-scans by the tests or by `nodulens eval-candidates`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p nodulens-cli
bin=./target/release/nodulens
runs=${NODULENS_BENCH_RUNS:-5}
for scan in ${NODULENS_BENCH_SCANS:-LIDC-IDRI-0006 LIDC-IDRI-0002}; do
  dir=target/test-scans/$scan/dicom
  if [ ! -d "$dir" ]; then
    [ -f "../shared/data/scans/$scan/dicom.tar.xz" ] || { echo "skipped: no shared data"; exit 0; }
    mkdir -p "target/test-scans/$scan" && tar -xJf "../shared/data/scans/$scan/dicom.tar.xz" -C "target/test-scans/$scan"
  fi
  json=$(mktemp)
  for _ in $(seq "$runs"); do
    peak_kb=$( { /usr/bin/time -f '%M' "$bin" candidates "$dir" --json "$json" >/dev/null; } 2>&1 | tail -1)
    python3 - "$json" "$peak_kb" >>"$json.runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings_ms"]
print(t["lung_mask"], t["candidates"], sys.argv[2], len(r["candidates"]), r["lung_volume_ml"])
PY
  done
  info_kb=$( { /usr/bin/time -f '%M' "$bin" info "$dir" >/dev/null; } 2>&1 | tail -1)
  dims=$("$bin" info "$dir" --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["dims"]; print(d[0]*d[1]*d[2]*2)')
  python3 - "$scan" "$json.runs" "$info_kb" "$dims" <<'PY'
import statistics, sys
scan, runs, info_kb, volume_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = [list(map(float, line.split())) for line in open(runs)]
mask = statistics.median(r[0] for r in rows)
cand = statistics.median(r[1] for r in rows)
peak = max(r[2] for r in rows) * 1024
mib = 2**20
print(f"{scan}: lung mask {mask:.0f} ms + candidates {cand:.0f} ms = {mask + cand:.0f} ms (median of {len(rows)}); "
      f"{int(rows[0][3])} candidates, lungs {rows[0][4]:.0f} ml")
print(f"    peak RSS {peak / mib:.0f} MiB for a {volume_bytes / mib:.0f} MiB volume ({peak / volume_bytes:.2f}x); "
      f"`nodulens info` alone {info_kb * 1024 / mib:.0f} MiB ({info_kb * 1024 / volume_bytes:.2f}x)")
PY
  rm -f "$json" "$json.runs"
done
