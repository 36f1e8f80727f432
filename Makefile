# The two commands: `make run` and `make test`. Both install what they need first.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test deps bench check fmt serve

# Runs Sockpit. For now the headless server (the tray app comes with issue #3);
# it prints the WebSocket URLs and the browser UI's login URL.
run: deps
	$(CARGO) build --release --bin sockpit
	./target/release/sockpit serve

# Every suite, the way CI runs it.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	@mkdir -p target
	set -o pipefail; $(CARGO) test --locked --lib --bins --tests 2>&1 | tee target/cargo-test.log
	@scripts/summary.sh target/cargo-test.log

# The load benchmark (release build; see README "Performance").
bench: deps
	$(CARGO) bench --locked --bench load

deps:
	@scripts/deps.sh
