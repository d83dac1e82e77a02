#!/usr/bin/env python3
"""What metrics cost a receive, in CPU instructions rather than seconds.

`hookflow bench --metrics` against `hookflow bench` compares throughput, but on a
shared 2-core machine two runs of the same build differ by more than the 5 % the
metrics may cost. Instructions do not: this runs `hookflow serve` under
valgrind's cachegrind (which counts every instruction the process executes, in
all its threads), with metrics off and on, sends it N webhook.receive calls on
one keep-alive connection, and reports the server's instructions per call.

Start-up, setup and warm-up are taken out by running each configuration twice,
with FEW and MANY calls: per call = (I(MANY) - I(FEW)) / (MANY - FEW).

Usage: bench/metrics_cost.py [--bin target/release/hookflow] [--few 300] [--many 1300]
(`make bench-metrics-cost`; needs valgrind, from Debian's packages.)
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ADMIN = "bench-admin-token-0123456789"
BODY = b'{"lead":{"name":"Ada Lovelace","email":"ada@example.com","source":"crm"}}'
PIPELINE = """pipeline:
  - event.listen:
      eventKey: webhook.bench.pipeline
  - body.set:
      value: ${@text.upperCase(@convert.fromBase64(body.origin))}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port, name, body=b"", content_type="application/x-www-form-urlencoded", query=""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", f"/api/v3/command/{name}{query}", body=body,
                 headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": content_type})
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    if answer.status >= 300:
        raise RuntimeError(f"{name} answered {answer.status}: {data[:300]!r}")
    return json.loads(data)


def run(binary, metrics, with_pipeline, calls):
    """Instructions `hookflow serve` executed from start to stop, having answered `calls` receives."""
    work = tempfile.mkdtemp(prefix="hookflow-metrics-cost-")
    port = free_port()
    args = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={work}/cg.out",
            binary, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", f"{work}/data"]
    if metrics:
        args += ["--metrics-addr", f"127.0.0.1:{free_port()}"]
    # Under valgrind a pipeline takes far longer than the default 1 s wait:
    # every call waits for its result, as in `hookflow bench`.
    env = dict(os.environ, HOOKFLOW_ADMIN_TOKEN=ADMIN, HOOKFLOW_LOG="warn", HOOKFLOW_RECEIVE_WAIT_MS="25000")
    log = open(f"{work}/serve.log", "wb")
    server = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 180
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/v3/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("hookflow serve did not start under valgrind")
            time.sleep(0.2)
        key = "webhook.bench.pipeline" if with_pipeline else "webhook.bench.plain"
        token = command(port, "webhook.put", f"eventKey={key}".encode())["uuid"]
        if with_pipeline:
            command(port, "pipeline.put", PIPELINE.encode(), "application/yaml", "?name=bench-upper")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(calls):
            conn.request("POST", "/api/v3/webhook.receive", body=BODY,
                         headers={"token": token, "Content-Type": "application/json"})
            answer = conn.getresponse()
            data = answer.read()
            if answer.status != 200 or (with_pipeline and b"LEAD" not in data):
                raise RuntimeError(f"receive answered {answer.status}: {data[:200]!r}")
        conn.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(300)
        log.close()
    with open(f"{work}/serve.log", encoding="utf-8", errors="replace") as f:
        text = f.read()
    shutil.rmtree(work, ignore_errors=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", text)
    if not found:
        raise RuntimeError(f"no instruction count in valgrind's output: {text[-800:]}")
    return int(found.group(1).replace(",", ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default="target/release/hookflow")
    parser.add_argument("--few", type=int, default=300)
    parser.add_argument("--many", type=int, default=1300)
    args = parser.parse_args()
    print(f"instructions per webhook.receive in hookflow serve (cachegrind; {args.many - args.few} calls "
          f"measured, one keep-alive client), metrics off vs on (--metrics-addr)")
    for with_pipeline, label in [(False, "receive, no listener"), (True, "receive with a one-step pipeline")]:
        per_call = {}
        for metrics in (False, True):
            few = run(args.bin, metrics, with_pipeline, args.few)
            many = run(args.bin, metrics, with_pipeline, args.many)
            per_call[metrics] = (many - few) / (args.many - args.few)
        off, on = per_call[False], per_call[True]
        print(f"  {label:34} off {off:>10,.0f}   on {on:>10,.0f}   on/off {on / off:.3f} "
              f"({(on / off - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
