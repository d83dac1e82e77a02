#!/usr/bin/env python3
"""Measures each Lambda function's bootstrap like Lambda starts it.

A minimal Lambda runtime API on loopback hands the process one event (a file
of events/) and records:
  - init: process start -> its first `GET /runtime/invocation/next`;
  - the answer to the event (must not be an error);
  - peak resident memory of the process after the invocation (VmHWM);
  - the instructions executed from start to the first `/next`, counted by
    valgrind's cachegrind (repeatable where the time is not).
Each binary runs --runs times; medians are printed, with the init ratio to a
hello-world lambda_runtime binary built the same way. `sdk-floor` is the
second yardstick: lambda_runtime with aws-config and the DynamoDB and S3
clients, nothing of hookflow.

Usage: bench/lambda_init.py --bin-dir target/lambda-release [--runs 15]
AWS_ENDPOINT_URL must point at an AWS endpoint with the resources provisioned
(bench/lambda.sh sets this up with moto).
"""
import argparse
import json
import os
import statistics
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FUNCTIONS = [
    ("hello-lambda", "sqs-pipeline-jobs.json"),
    # The AWS SDK alone (bench/sdk-floor): what no function of this shape goes below.
    ("sdk-floor", "result-poll.json"),
    ("webhook-admin", "admin-webhook-put.json"),
    ("webhook-receive", "receive-post-json-header-token.json"),
    ("result-poll", "result-poll.json"),
    ("pipeline-worker", "sqs-pipeline-jobs.json"),
]


class RuntimeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle(self):
        # The killed function closes its connection mid-request: not an error here.
        try:
            super().handle()
        except ConnectionError:
            pass

    def do_GET(self):
        state = self.server.state
        if self.path.endswith("/runtime/invocation/next"):
            with state["lock"]:
                state.setdefault("first_next", time.monotonic())
                deliver = not state.get("delivered")
                state["delivered"] = True
            if "stop" in state:
                # Counting init alone: the function is stopped where it waits
                # for its first event (valgrind writes its count on SIGTERM).
                state["stop"].wait(60)
                state["process"].send_signal(signal.SIGTERM)
                return
            if not deliver:
                # The function waits for its next event; the run is over.
                state["done"].wait(30)
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state["event"]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-request-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-central-1:123456789012:function:bench")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self):
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(length)
        state["response_path"] = self.path
        state["response"] = payload
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        state["answered"].set()


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_once(binary, event, env):
    state = {"lock": threading.Lock(), "event": event, "answered": threading.Event(), "done": threading.Event()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.state = state
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run_env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    started = time.monotonic()
    process = subprocess.Popen([binary], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not state["answered"].wait(30):
            raise RuntimeError(f"{binary} did not answer within 30 s")
        time.sleep(0.05)
        rss = peak_rss_kib(process.pid)
    finally:
        state["done"].set()
        process.kill()
        process.wait()
        server.shutdown()
        server.server_close()
    if state["response_path"].endswith("/error"):
        raise RuntimeError(f"{binary} answered an error: {state['response'][:300]!r}")
    return (state["first_next"] - started) * 1000, rss, state["response"]


def init_instructions(binary, env):
    """Instructions the process executes from its start to its first `/next`
    (where it is stopped), counted by valgrind's cachegrind: the same count on
    a busy machine as on a quiet one, unlike the time."""
    state = {"lock": threading.Lock(), "stop": threading.Event()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.state = state
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run_env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "cg.out")
        state["process"] = subprocess.Popen(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", binary],
            env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        state["stop"].set()
        state["process"].wait(120)
        server.shutdown()
        server.server_close()
        if "first_next" not in state:
            raise RuntimeError(f"{binary} never asked for an event under valgrind")
        with open(out) as f:
            for line in f:
                if line.startswith("summary:"):
                    return int(line.split()[1])
    raise RuntimeError(f"no instruction count for {binary}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-instructions", action="store_true",
                        help="skip counting init instructions under valgrind")
    args = parser.parse_args()
    env = dict(
        os.environ,
        AWS_LAMBDA_FUNCTION_NAME="bench",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        HOOKFLOW_ADMIN_TOKEN="local-admin-token-0123456789",
    )
    rows = []
    for name, event_file in FUNCTIONS:
        binary = os.path.join(args.bin_dir, name)
        with open(os.path.join("events", event_file), "rb") as f:
            event = f.read()
        inits, rss = [], []
        answer = b""
        for _ in range(args.runs):
            init_ms, peak, answer = run_once(binary, event, env)
            inits.append(init_ms)
            rss.append(peak)
        size = os.path.getsize(binary)
        instructions = None if args.no_instructions else init_instructions(binary, env)
        rows.append((name, statistics.median(inits), max(rss) / 1024, size / 1024 / 1024, answer, instructions))
    hello = rows[0][1]
    hello_instructions = rows[0][5]
    print(f"{'function':<18} {'init ms (median)':>17} {'x hello':>8} {'init Minstr':>12} {'x hello':>8} "
          f"{'peak RSS MiB':>13} {'binary MiB':>11}")
    for name, init, rss, size, answer, instructions in rows:
        counted = (f"{instructions / 1e6:>12.1f} {instructions / hello_instructions:>8.2f}"
                   if instructions else f"{'-':>12} {'-':>8}")
        print(f"{name:<18} {init:>17.2f} {init / hello:>8.2f} {counted} {rss:>13.1f} {size:>11.1f}")
    for name, _, _, _, answer, _ in rows[1:]:
        text = answer.decode("utf-8", "replace")
        print(f"  {name} answered: {text[:140]}")


if __name__ == "__main__":
    main()
