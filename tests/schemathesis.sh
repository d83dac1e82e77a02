#!/usr/bin/env bash
# Schemathesis against a running `hookflow serve`: it reads the served
# /api/v3/openapi.json, calls every operation with the document's examples,
# boundary values and generated data (a fixed number per operation, a fixed
# seed), and fails on any 5xx or any answer the document does not describe
# (status code, content type, headers, JSON schema).
#
# The server runs with a fresh data dir and a known admin token, in a network
# namespace of its own that has only a loopback interface: generated
# `outgoing.put` registrations name arbitrary hosts, and `webhook.send` must
# not reach any of them. So nothing but this script's own server is called.
#
# Alone: `make schemathesis` (or `VENV=.venv tests/schemathesis.sh`); `make test`
# runs it after the test suites. HOOKFLOW_BIN names a built `hookflow` binary
# (default: the debug build, built here if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

# What the run may spend: examples per operation and the seed they come from.
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
SEED=${SCHEMATHESIS_SEED:-20261126}
ADMIN_TOKEN=schemathesis-admin-token-0123456789
# The webhook the document's examples name, created before the run so they reach it.
EXAMPLE_TOKEN=a29a4f16-989d-48c8-ab54-7b6150733ba1

if [ -z "${HOOKFLOW_SCHEMATHESIS_NETNS:-}" ]; then
  if [ -z "${HOOKFLOW_BIN:-}" ]; then
    cargo build --quiet -p hookflow --bin hookflow
    target_dir=$(cargo metadata --format-version 1 --no-deps |
      "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    HOOKFLOW_BIN="$target_dir/debug/hookflow"
  fi
  export HOOKFLOW_BIN VENV
  for tool in unshare ip; do
    command -v "$tool" >/dev/null || { echo "tests/schemathesis.sh needs '$tool' (util-linux, iproute2)" >&2; exit 1; }
  done
  # A user namespace makes the network namespace possible without root.
  exec unshare --map-root-user --net env HOOKFLOW_SCHEMATHESIS_NETNS=1 "$0" "$@"
fi

ip link set lo up
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
HOOKFLOW_ADMIN_TOKEN=$ADMIN_TOKEN "$HOOKFLOW_BIN" serve --addr "127.0.0.1:$port" --data-dir "$work/data" \
  >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  curl -sf "$base/api/v3/openapi.json" -o /dev/null && break
  sleep 0.1
done
curl -sf "$base/api/v3/openapi.json" -o /dev/null || {
  echo "hookflow serve did not start within 15 s:" >&2
  cat "$work/serve.log" >&2
  exit 1
}
curl -sf -X POST "$base/api/v3/command/webhook.put" -H "Authorization: Bearer $ADMIN_TOKEN" \
  -d uuid=$EXAMPLE_TOKEN -d eventKey=webhook.lead.created -o /dev/null

status=0
st=$(cd "$VENV" && pwd)/bin/st
# From the scratch dir: Schemathesis keeps a cache (of earlier crashes, which it
# replays first) in its working directory, and each run starts from none.
(cd "$work" && "$st" --no-color run "$base/api/v3/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
  --header "Authorization: Bearer $ADMIN_TOKEN" \
  --request-timeout 30 \
  --workers 1) || status=$?
if [ "$status" -ne 0 ]; then
  echo "== the server's log" >&2
  tail -n 50 "$work/serve.log" >&2
fi
exit "$status"
