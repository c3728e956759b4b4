#!/usr/bin/env bash
# Installs whatever is missing for building, serving and testing Nodulens on Debian with
# rustup: the wasm32 target, trunk, wasm-bindgen-cli (matching Cargo.lock), Chromium and its
# driver, and the end-to-end tests' node packages. Idempotent: a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
if ! command -v trunk >/dev/null || ! trunk --version | grep -q ' 0.21.14'; then
  say "installing trunk 0.21.14 (a few minutes)"
  cargo install --locked trunk --version 0.21.14
fi
wbg=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
if ! command -v wasm-bindgen >/dev/null || ! wasm-bindgen --version | grep -q " $wbg"; then
  say "installing wasm-bindgen-cli $wbg (matches Cargo.lock)"
  cargo install wasm-bindgen-cli --version "$wbg"
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  say "installing Debian's chromium and chromium-driver"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  # Trunk's post-build hook (scripts/finish-dist.mjs) and the end-to-end tests run on Node.js.
  say "installing Debian's nodejs and npm"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  say "installing the end-to-end tests' node packages"
  (cd tests/e2e && npm ci --no-audit --no-fund)
fi
if ! command -v dciodvfy >/dev/null; then
  say "installing Debian's dicom3tools (dciodvfy validates the DICOM SR)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dicom3tools
fi
if ! python3 -c 'import highdicom, pydicom, pypdf' 2>/dev/null; then
  say "installing pydicom, highdicom (they read the DICOM SR back) and pypdf (reads the printed report)"
  python3 -m pip install --quiet -r tests/sr/requirements.txt
fi
