#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer), on the stable toolchain: RUSTC_BOOTSTRAP lets
# cargo-fuzz pass its flags, and no sanitizer is used (the library forbids unsafe code;
# what is fuzzed for is panics, hangs and unbounded memory).
#   scripts/fuzz.sh SECONDS [TARGET...]   (default: every target)
# Each target runs SECONDS on its committed corpus (fuzz/corpus/TARGET); crashes are
# written to fuzz/artifacts/TARGET and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(config endpoints token publish)
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build -s none
passed=0
failed=0
for t in "${targets[@]}"; do
  # Runs are read-only on the committed corpus: new inputs go to a scratch dir.
  scratch=$(mktemp -d)
  if cargo fuzz run -s none "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"target/fuzz-$t.log" 2>&1; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "target/fuzz-$t.log" | grep -oE '[0-9]+$' || echo '?')
    echo "fuzz $t: ${seconds}s, $runs runs, no crash"
    passed=$((passed + 1))
  else
    echo "fuzz $t: FAILED (see fuzz/target/fuzz-$t.log and fuzz/artifacts/$t)"
    tail -20 "target/fuzz-$t.log"
    failed=$((failed + 1))
  fi
  rm -rf "$scratch"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
