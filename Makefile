# The two commands: `make run` and `make test`. Both install what they need first.
SHELL := /bin/bash
CARGO ?= cargo
export NO_COLOR := 1

.PHONY: run test ui bench fuzz package

# Runs Sockpit: the tray app when there is a display; without one, the headless server,
# which prints the browser UI's login URL.
run:
	@scripts/deps.sh run
	npm --prefix ui run build
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  $(CARGO) build --release -p sockpit-desktop && ./target/release/sockpit-desktop; \
	else \
	  echo "No display: running the headless server (sockpit serve)."; \
	  $(CARGO) build --release --bin sockpit && ./target/release/sockpit serve; \
	fi

# Every suite, the way CI runs it: lint, Rust unit + integration tests (server and
# desktop shell on Tauri's mock runtime), WebSocket protocol conformance (Autobahn
# cases 1-10), a short fuzzing run of every fuzz target, UI type check and unit tests,
# the browser
# end-to-end suite against `sockpit serve` (with a real Django project behind its proxy,
# from PyPI into target/django-venv), the Python wheel installed into a fresh venv and
# run the same way, and the desktop app's .deb installed with apt-get, run in a real
# window under Xvfb driven by WebDriver, then removed.
test:
	@scripts/deps.sh test
	@mkdir -p target
	npm --prefix ui run build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	scripts/django-venv.sh
	set -o pipefail; $(CARGO) test --workspace --locked --lib --bins --tests 2>&1 | tee target/cargo-test.log
	set -o pipefail; scripts/conformance.sh target/debug/sockpit 2>&1 | tee target/conformance.log
	set -o pipefail; scripts/fuzz.sh 20 2>&1 | tee target/fuzz.log
	npm --prefix ui run check
	set -o pipefail; npm --prefix ui test 2>&1 | tee target/ui-test.log
	set -o pipefail; SOCKPIT_BIN=$(CURDIR)/target/debug/sockpit npm --prefix ui run e2e 2>&1 | tee target/e2e.log
	set -o pipefail; scripts/package.sh --test-wheel 2>&1 | tee target/wheel.log
	set -o pipefail; SOCKPIT_BIN=$(CURDIR)/target/wheel/venv/bin/sockpit npm --prefix ui run e2e:wheel 2>&1 | tee target/e2e-wheel.log
	set -o pipefail; scripts/package.sh --test-deb 2>&1 \
	  | grep -vE '^dbus-daemon|SpiRegistry' | tee target/e2e-desktop.log
	@scripts/summary.sh target/cargo-test.log target/conformance.log target/fuzz.log target/ui-test.log target/e2e.log target/e2e-wheel.log target/e2e-desktop.log

# The release packages into dist/: the Python wheel (maturin; `pip install dist/sockpit-*.whl`
# puts `sockpit` on a venv's PATH), the .deb (tray app + CLI) and, where the Tauri bundler
# can fetch its tools from github.com, the AppImage.
package:
	@scripts/deps.sh package
	npm --prefix ui run build
	scripts/package.sh

# The UI bundle alone (it is embedded into both binaries at compile time).
ui:
	@scripts/deps.sh run
	npm --prefix ui run build

# Every fuzz target for 10 minutes (see README "Security").
fuzz:
	scripts/fuzz.sh 600

# The load benchmark (release build; see README "Performance").
bench:
	@scripts/deps.sh bench
	npm --prefix ui run build
	$(CARGO) bench --locked --bench load
