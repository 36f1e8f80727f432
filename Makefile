# The two commands: `make run` and `make test`. Both install what they need first.
SHELL := /bin/bash
CARGO ?= cargo
export NO_COLOR := 1

.PHONY: run test ui bench

# Runs Sockpit. For now the headless server (the tray app comes with issue #3);
# it prints the WebSocket URLs and the browser UI's login URL.
run:
	@scripts/deps.sh run
	npm --prefix ui run build
	$(CARGO) build --release --bin sockpit
	./target/release/sockpit serve

# Every suite, the way CI runs it: lint, Rust unit + integration tests, UI type check
# and unit tests, then the browser end-to-end tests against the real server.
test:
	@scripts/deps.sh test
	@mkdir -p target
	npm --prefix ui run build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	set -o pipefail; $(CARGO) test --locked --lib --bins --tests 2>&1 | tee target/cargo-test.log
	npm --prefix ui run check
	set -o pipefail; npm --prefix ui test 2>&1 | tee target/ui-test.log
	set -o pipefail; SOCKPIT_BIN=$(CURDIR)/target/debug/sockpit npm --prefix ui run e2e 2>&1 | tee target/e2e.log
	@scripts/summary.sh target/cargo-test.log target/ui-test.log target/e2e.log

# The UI bundle alone (it is embedded into the Rust binaries at compile time).
ui:
	@scripts/deps.sh run
	npm --prefix ui run build

# The load benchmark (release build; see README "Performance").
bench:
	@scripts/deps.sh run
	npm --prefix ui run build
	$(CARGO) bench --locked --bench load
