#!/usr/bin/env bash
# Starts the services the tests talk to (an SMTP server on loopback), runs every
# test, and stops what it started, also when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

work=$(mktemp -d)
mkdir -p "$work/mail"
"$VENV/bin/python" tests/smtp_sink.py --dir "$work/mail" --port-file "$work/smtp.port" &
sink=$!
cleanup() {
  kill "$sink" 2>/dev/null || true
  wait "$sink" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  [ -s "$work/smtp.port" ] && break
  kill -0 "$sink" 2>/dev/null || { echo "the SMTP test server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/smtp.port" ] || { echo "the SMTP test server did not start within 10 s" >&2; exit 1; }

export HOOKFLOW_TEST_SMTP_URL="smtp://127.0.0.1:$(cat "$work/smtp.port")"
export HOOKFLOW_TEST_MAIL_DIR="$work/mail"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi
