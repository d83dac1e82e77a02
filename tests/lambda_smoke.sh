#!/usr/bin/env bash
# The four Lambda functions as Lambda runs them: `cargo lambda watch` emulates the
# runtime API, `cargo lambda invoke` sends each file of events/ to its function,
# against the AWS resources of moto (AWS_ENDPOINT_URL must point at it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
: "${AWS_ENDPOINT_URL:?run from tests/run.sh, which starts moto}"

work=$(mktemp -d)
watch_pid=""
cleanup() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Resources named like the ones the events and Cargo.toml's watch settings expect.
cargo run --quiet -- provision --aws-prefix hookflow >"$work/resources.env"
set -a
# shellcheck disable=SC1091
. "$work/resources.env"
set +a

port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Logs stay outside the tree: watch would otherwise see them change. The
# functions get this environment: with the test's SMTP server, webhook-admin's
# pipeline.test sideEffects=true sends real mail to it.
if [ -n "${HOOKFLOW_TEST_SMTP_URL:-}" ]; then export HOOKFLOW_SMTP_URL="$HOOKFLOW_TEST_SMTP_URL"; fi
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --ignore-changes >"$work/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done

passed=0
failed=0
check() { # what was tried, its answer, text the answer must contain (any case)
  if grep -qiF -- "$3" <<<"$2"; then
    passed=$((passed + 1))
    echo "ok     $1"
  else
    failed=$((failed + 1))
    echo "FAILED $1: wanted $3, got: ${2:0:400}"
  fi
}
invoke() { # function, event file, text the answer must contain
  check "$1 <- events/$2" \
    "$(cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$port" --data-file "events/$2" 2>&1 || true)" "$3"
}

invoke webhook-admin admin-webhook-put.json '"statusCode":200'
invoke webhook-admin admin-webhook-get.json 'a29a4f16-989d-48c8-ab54-7b6150733ba1'
# The OpenAPI document, public like the receive and result routes.
invoke webhook-admin admin-openapi.json 'securitySchemes'
invoke webhook-admin admin-console.json 'frame-ancestors'
invoke webhook-receive receive-get-token-query.json '"statusCode":200'
invoke webhook-receive receive-post-json-header-token.json '"statusCode":200'
invoke webhook-receive receive-post-form.json '"statusCode":200'
invoke webhook-receive receive-post-multipart.json '"statusCode":200'
# A raw " in the query string: a 400 answer, and the function lives on.
invoke webhook-receive receive-get-raw-quote.json '"statusCode":400'
invoke webhook-receive receive-get-token-query.json '"statusCode":200'
invoke result-poll result-poll.json '"statusCode":410'
invoke pipeline-worker sqs-pipeline-jobs.json '"batchItemFailures":[]'
# Outgoing webhooks: register (201 new, 200 replaced on a rerun), queue an
# asynchronous send on SQS (202), and a delivery message for a record that is gone.
if [ -n "${HOOKFLOW_TEST_MAIL_DIR:-}" ]; then
  invoke webhook-admin admin-pipeline-test-mail.json '"statusCode":200'
  check "the mail of pipeline.test sideEffects=true, at the SMTP server" \
    "$(grep -l 'pipeline.test from webhook-admin' "$HOOKFLOW_TEST_MAIL_DIR"/*.json 2>/dev/null || true)" ".json"
fi
invoke webhook-admin admin-outgoing-put.json '"statusCode":20'
invoke webhook-admin admin-webhook-send-async.json '"statusCode":202'
invoke pipeline-worker sqs-delivery-jobs.json '"batchItemFailures":[]'

# The web console through watch's router (the template's routes): webhook-admin
# answers its page and files with their strict headers.
get() { # path, text the answer's head and body must contain
  check "GET $1" "$(curl -s -D - --max-time 60 "http://127.0.0.1:$port$1" 2>&1 || true)" "$2"
}
get /console "frame-ancestors 'none'"
get /console/pages/events.js 'content-type: text/javascript'
# And in the browser: sign in, create a webhook, call it, read its event, all
# through the functions (tests/console.sh installs Chromium where missing).
if HOOKFLOW_CONSOLE_URL="http://127.0.0.1:$port" HOOKFLOW_CONSOLE_ADMIN_TOKEN=local-admin-token-0123456789 \
  VENV="$VENV" tests/console.sh >"$work/console.log" 2>&1; then
  passed=$((passed + 1))
  echo "ok     the console's journeys through the functions"
else
  failed=$((failed + 1))
  echo "FAILED the console's journeys through the functions:"; tail -n 40 "$work/console.log"
fi

# AWS calls of one warm webhook.receive (no listener), counted at moto's access log.
if [ -n "${MOTO_LOG:-}" ]; then
  requests() { grep -c 'HTTP/1.1"' "$MOTO_LOG" || true; }
  before=$(requests)
  invoke webhook-receive receive-post-json-header-token.json '"statusCode":200'
  sleep 0.5
  calls=$(( $(requests) - before ))
  echo "AWS calls of a warm webhook.receive: $calls"
  if [ "$calls" -gt 3 ]; then
    failed=$((failed + 1))
    echo "FAILED a warm webhook.receive made $calls AWS calls (at most 3)"
  fi
fi

if [ "$failed" -ne 0 ]; then
  echo "--- cargo lambda watch log"; tail -n 40 "$work/watch.log"
fi
echo "lambda: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
