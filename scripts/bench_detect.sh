#!/usr/bin/env bash
# `nodulens detect` end to end natively (--backend cpu) on shared whole scans: the wall time of
# the whole command (decoding included), the pipeline's own per-stage timings, and the peak
# memory (`/usr/bin/time`) against the volume's own bytes. Needs ../shared/data (the scans are
# unpacked into target/test-scans by the tests or by `nodulens eval-detection`).
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
    measured=$( { /usr/bin/time -f '%e %M' "$bin" detect "$dir" --json "$json" >/dev/null; } 2>&1 | tail -1)
    python3 - "$json" $measured >>"$json.runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings_ms"]
print(sys.argv[2], sys.argv[3], t["lung_mask"], t["candidates"], t["measurement"],
      t["nodule_model"] + t["malignancy_model"], len(r["findings"]), r["source"]["dims"][0]
      * r["source"]["dims"][1] * r["source"]["dims"][2] * 2)
PY
  done
  python3 - "$scan" "$json.runs" <<'PY'
import statistics, sys
scan, runs = sys.argv[1], sys.argv[2]
rows = [list(map(float, line.split())) for line in open(runs)]
med = lambda i: statistics.median(r[i] for r in rows)
peak = max(r[1] for r in rows) * 1024
volume_bytes = rows[0][7]
print(f"{scan}: {med(0):.2f} s end to end (median of {len(rows)}; lung mask {med(2):.0f} ms, candidates "
      f"{med(3):.0f} ms, measuring {med(4):.0f} ms, models {med(5):.0f} ms); {int(rows[0][6])} findings")
print(f"    peak RSS {peak / 2**20:.0f} MiB for a {volume_bytes / 2**20:.0f} MiB volume ({peak / volume_bytes:.2f}x)")
PY
  rm -f "$json" "$json.runs"
done
