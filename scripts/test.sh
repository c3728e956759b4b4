#!/usr/bin/env bash
# Every test Nodulens has, in the order that fails fastest: formatting and lints (native and
# wasm32), native unit/integration tests, the core in headless Chromium (wasm-bindgen-test),
# then the built app end to end (Playwright driving Debian's Chromium).
# Tests that need ../shared/data say "skipped" where it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; df -h --output=avail . | tail -1 | xargs printf '    (disk free: %s)\n'; }
# Incremental caches only help a developer's rebuilds; in CI they are gigabytes written once.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

step "format"
cargo fmt --all -- --check
step "clippy (native)"
cargo clippy --workspace --all-targets -- -D warnings
step "clippy (wasm32)"
# The libraries as the browser builds them, and the app with its browser tests (the core's,
# the pipeline's and the model's own test suites read files and run natively).
cargo clippy --target wasm32-unknown-unknown -p nodulens-core -p nodulens-detect -p nodulens-model -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p nodulens-app --all-targets --features inference -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p nodulens-app --all-targets -- -D warnings
step "native tests"
cargo test --workspace
step "readers and models in headless Chromium (wasm-bindgen-test)"
CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=120 \
  cargo test --target wasm32-unknown-unknown -p nodulens-app --features inference --test web
step "build the app (release)"
trunk build --release
step "first-load transfer (gzip, the sample excluded): at most 8 MB"
node scripts/transfer-size.mjs dist --max-mb 8 | tail -1
step "end to end in headless Chromium (Playwright)"
(cd tests/e2e && node --test)
