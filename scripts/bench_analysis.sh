#!/usr/bin/env bash
# Drop-to-findings in headless Chromium (CPU and WebGPU paths) against native `nodulens detect`
# in the same run, and the page's peak memory (tests/e2e/bench_analysis.mjs). Builds what it
# needs; needs target/test-scans (created by `cargo test` where ../shared/data exists).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p nodulens-cli
[ -f dist/index.html ] || trunk build --release
(cd tests/e2e && node bench_analysis.mjs "${1:-3}")
