#!/usr/bin/env bash
# One closing line for CI from every suite's log: cargo's "test result:" lines,
# Vitest's "Tests  N passed | M failed" line and the conformance run's line. Exits 1 if anything failed or nothing ran.
set -euo pipefail
awk '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i
      if ($(i+1) ~ /^failed/) f += $i
      if ($(i+1) ~ /^ignored/) s += $i
    }
  }
  /^ *Tests +[0-9]/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i
      if ($(i+1) ~ /^failed/) f += $i
      if ($(i+1) ~ /^skipped/) s += $i
    }
  }
  /^(conformance|fuzz): [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
  END { printf "all: %d passed, %d failed, %d skipped\n", p, f, s; if (p == 0 || f > 0) exit 1 }
' "$@"
