#!/usr/bin/env bash
# Installs what Sockpit needs on Debian/Ubuntu, skipping whatever is already there.
#   scripts/deps.sh run   — the server build; with a display, the desktop app's too
#   scripts/deps.sh test  — everything: desktop build, Xvfb, WebKitWebDriver, Chromium
#   scripts/deps.sh bench — the server build, Redis and Chromium (make bench)
#   scripts/deps.sh package — the desktop build and what the wheel and .deb bundlers need
set -euo pipefail
mode=${1:-run}

has_display() { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }

want=(build-essential pkg-config)
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)
desktop=(libwebkit2gtk-4.1-dev libayatana-appindicator3-1)
# The Tauri bundler finds the tray library through pkg-config; maturin and the wheel
# test need venvs.
bundle=(libayatana-appindicator3-dev python3-venv)
if [ "$mode" = test ]; then
  want+=("${desktop[@]}" "${bundle[@]}" xvfb xauth webkit2gtk-driver dbus-daemon chromium fonts-dejavu-core xdotool redis-server desktop-file-utils)
elif [ "$mode" = package ]; then
  want+=("${desktop[@]}" "${bundle[@]}")
elif [ "$mode" = bench ]; then
  want+=(chromium fonts-dejavu-core redis-server)
elif has_display; then
  want+=("${desktop[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
  echo "deps: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: no Rust toolchain on PATH; install one with rustup and re-run" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "deps: Node.js $(node --version) is too old for the UI build; Node 20 or later is needed" >&2
  exit 1
fi

# The UI's packages, exactly as locked.
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  npm --prefix ui ci --no-audit --no-fund
fi
