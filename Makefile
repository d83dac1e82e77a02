# The one test command: `make test`. It installs what the tests need (a Python
# venv with the SMTP test server, moto, cfn-lint, cargo-lambda, Schemathesis and
# Selenium; Debian's chromium and chromium-driver where missing), runs format
# and lint checks, starts the test services, runs every test, and stops what it
# started.
.PHONY: test check schemathesis console-test screenshots bench bench-metrics-cost bench-lambda sam-build

CARGO ?= cargo
PYTHON ?= python3
VENV ?= .venv

test: check $(VENV)/installed
	VENV=$(VENV) tests/run.sh

check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

# Schemathesis alone (`make test` runs it too): a fresh `hookflow serve`, every
# operation of its /api/v3/openapi.json, no 5xx and every answer as documented.
schemathesis: $(VENV)/installed
	VENV=$(VENV) tests/schemathesis.sh

# The web console in headless Chromium alone (`make test` runs it on both
# backends); installs Debian's chromium and chromium-driver where missing.
console-test: $(VENV)/installed
	VENV=$(VENV) tests/console.sh

# The console's screenshots in docs/ (the README shows them), taken by its tests.
screenshots: $(VENV)/installed
	HOOKFLOW_SCREENSHOTS=docs VENV=$(VENV) tests/console.sh

$(VENV)/installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

bench:
	$(CARGO) run --release -- bench

# What metrics cost a receive, in instructions (valgrind's cachegrind), off vs on.
bench-metrics-cost:
	$(CARGO) build --release -p hookflow
	$(PYTHON) bench/metrics_cost.py --bin target/release/hookflow

# Init time and instructions (valgrind), peak memory and size of each Lambda
# function and of its two yardsticks (lambda-release builds, moto).
bench-lambda: $(VENV)/installed
	VENV=$(VENV) bench/lambda.sh

# The functions as `sam build` builds them for a deploy (arm64, cargo-lambda),
# with the size settings of the `lambda-release` profile: SAM always asks for
# `--release`, so they go in as CARGO_PROFILE_RELEASE_* overrides.
sam-build:
	env $$($(PYTHON) bench/profile_env.py lambda-release) sam build
