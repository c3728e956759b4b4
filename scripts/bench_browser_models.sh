#!/usr/bin/env bash
# Inference throughput of the shipped models in headless Chromium (batches of 64): on the CPU
# (wasm32, one thread: the fused CPU pass the app runs, and burn's flex backend) and on WebGPU
# (Chromium's --enable-unsafe-webgpu adapter, SwiftShader on a machine without a GPU). Runs the ignored benchmark in tests/web.rs, built
# in release mode; prints the BENCH lines. Needs what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
# The WebGPU half runs on SwiftShader here: far past the runner's default 20 s.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900}
cargo test --release --target wasm32-unknown-unknown -p nodulens-app --features inference --test web \
  -- --include-ignored --nocapture model_throughput 2>&1 | grep -E "BENCH|WebGPU|test result|panicked|error"
