#!/usr/bin/env bash
# Installs what is missing, builds the app and serves it on http://127.0.0.1:8080
# (the sample scan is one click away on the page). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec trunk serve --release --address 127.0.0.1 --port "${PORT:-8080}"
