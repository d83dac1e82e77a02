#!/usr/bin/env bash
# Release-builds the four functions and the hello-world baseline, starts moto,
# provisions the resources, and measures each function's init time, peak memory
# per invocation and binary size (bench/lambda_init.py). Needs `make .venv/installed`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
# The functions (and their yardsticks: hello world, and the AWS SDK alone) as deployed: the lambda-release
# profile; `hookflow provision` from the quick release build.
# One build per function: built together, cargo would unify the core's features
# across them and each binary would link what any of them uses (as `sam build`,
# which builds each function alone, does not).
for function in webhook-admin webhook-receive result-poll pipeline-worker hello-lambda sdk-floor; do
  cargo build --profile lambda-release --quiet -p "$function"
done
cargo build --release --quiet -p hookflow

work=$(mktemp -d)
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null && break; sleep 0.1; done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-central-1
set -a
. <(target/release/hookflow provision)
set +a
"$VENV/bin/python" bench/lambda_init.py --bin-dir target/lambda-release "$@"
