#!/usr/bin/env bash
# The web console in a real browser: installs Debian's Chromium and
# ChromeDriver where missing (apt-get; a browser downloaded at run time cannot
# be had offline), then runs tests/console/test_console.py, which starts its own
# `hookflow serve` and walks the operator's journeys in headless Chromium.
#
# Alone: `make console-test` (embedded backend); `make test` runs it on both
# backends (HOOKFLOW_TEST_BACKEND=aws with moto's AWS_ENDPOINT_URL).
# HOOKFLOW_SCREENSHOTS=<dir> saves the main pages as PNGs (`make screenshots`).
# HOOKFLOW_CONSOLE_URL=<url> (with HOOKFLOW_CONSOLE_ADMIN_TOKEN) runs the first
# journeys against a hookflow already running instead: tests/lambda_smoke.sh,
# the Lambda functions under `cargo lambda watch`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing Debian's chromium and chromium-driver for the browser tests"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -q chromium chromium-driver >/dev/null ||
    { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q chromium chromium-driver >/dev/null; }
fi

if [ -z "${HOOKFLOW_BIN:-}" ] && [ -z "${HOOKFLOW_CONSOLE_URL:-}" ]; then
  cargo build --quiet -p hookflow --bin hookflow
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  HOOKFLOW_BIN="$target_dir/debug/hookflow"
fi
export HOOKFLOW_BIN
exec "$VENV/bin/python" tests/console/test_console.py
