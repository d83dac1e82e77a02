#!/usr/bin/env bash
# Starts the services the tests talk to — an SMTP server and moto's AWS server,
# both on free loopback ports — runs every test (the HTTP suite twice: on the
# embedded backend and on the AWS backend against moto), runs Schemathesis
# against a `hookflow serve` (tests/schemathesis.sh), walks the web console in
# headless Chromium on both backends (tests/console.sh), checks the SAM template
# with cfn-lint and tests/template_test.py, and stops what it started, also when
# something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 150); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$name did not start within 15 s" >&2
  return 1
}

mkdir -p "$work/mail"
"$VENV/bin/python" tests/smtp_sink.py --dir "$work/mail" --port-file "$work/smtp.port" &
pids+=($!)
wait_for "the SMTP test server" test -s "$work/smtp.port"

moto_port=$(free_port)
# moto's server with DynamoDB's isolation of transactions (see the script).
"$VENV/bin/python" tests/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_for "moto" curl -sf "http://127.0.0.1:$moto_port/moto-api/"

# Tests that need these services skip outside this script; here a missing one
# fails the test instead (testkit::services).
export HOOKFLOW_TEST_REQUIRE_SERVICES=1
export HOOKFLOW_TEST_SMTP_URL="smtp://127.0.0.1:$(cat "$work/smtp.port")"
export HOOKFLOW_TEST_MAIL_DIR="$work/mail"
# The venv's Python, for the scripts the tests run (tests/verify_signature.py).
HOOKFLOW_TEST_PYTHON="$(cd "$VENV" && pwd)/bin/python"
export HOOKFLOW_TEST_PYTHON
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-central-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE

echo "== cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml
echo "== what template.yaml promises a sam deploy user"
"$VENV/bin/python" tests/template_test.py
echo "== the Lambda functions under cargo lambda watch, fed from events/"
MOTO_LOG="$work/moto.log" VENV="$VENV" tests/lambda_smoke.sh

if cargo nextest --version >/dev/null 2>&1; then
  run_tests() { cargo nextest run --no-fail-fast "$@"; }
  only_http_suite=(-E 'binary(it) and not test(/^conformance::/)')
else
  run_tests() { cargo test --no-fail-fast "$@"; }
  only_http_suite=(--test it -- --skip conformance::)
fi

echo "== every test, servers on the embedded backend"
run_tests --workspace --all-features
echo "== Schemathesis against hookflow serve, from its /api/v3/openapi.json"
VENV="$VENV" tests/schemathesis.sh
echo "== the web console in headless Chromium, serve on the embedded backend"
VENV="$VENV" tests/console.sh
echo "== the HTTP suite again, servers on the AWS backend (moto)"
HOOKFLOW_TEST_BACKEND=aws run_tests -p hookflow "${only_http_suite[@]}"
echo "== the web console again, serve on the AWS backend (moto)"
HOOKFLOW_TEST_BACKEND=aws VENV="$VENV" tests/console.sh
