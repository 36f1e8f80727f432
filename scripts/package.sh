#!/usr/bin/env bash
# Packages Sockpit.
#   scripts/package.sh              — `make package`, into dist/: the release wheel, the .deb,
#                                     and the AppImage where its tools can be fetched
#   scripts/package.sh --test-wheel — a wheel of the test build (dev profile) into
#                                     target/wheel/, installed into a fresh venv there; prints
#                                     its size and how long `sockpit --version` takes
#   scripts/package.sh --test-deb   — a .deb of the test build, installed with apt-get; checks
#                                     what it installed, runs the desktop end-to-end suite
#                                     against the installed app under Xvfb, removes it and
#                                     checks nothing is left (root, or sudo)
# maturin comes from PyPI, pinned, into target/maturin-venv; the Tauri bundler is
# @tauri-apps/cli from ui/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MATURIN_VERSION=1.16.0
tauri=(../ui/node_modules/.bin/tauri build --ci)

maturin() {
  local tools=target/maturin-venv
  if [ "$("$tools/bin/maturin" --version 2>/dev/null)" != "maturin $MATURIN_VERSION" ]; then
    rm -rf "$tools"
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check "maturin==$MATURIN_VERSION"
  fi
  "$tools/bin/maturin" "$@"
}

# The .deb and AppImage carry the CLI beside the tray app: the bundler's file map names
# the binary of the profile being packaged.
cli_at() { echo "{\"bundle\":{\"linux\":{\"deb\":{\"files\":{\"/usr/bin/sockpit\":\"../target/$1/sockpit\"}},\"appimage\":{\"files\":{\"/usr/bin/sockpit\":\"../target/$1/sockpit\"}}}}}"; }

[ -f ui/dist/index.html ] || npm --prefix ui run build

case "${1:-}" in
"")
  mkdir -p dist
  rm -f dist/sockpit-*.whl dist/*.deb dist/*.AppImage
  maturin build --release --out dist
  cargo build --release --locked --bin sockpit
  (cd src-tauri && "${tauri[@]}" --bundles deb --config "$(cli_at release)")
  cp target/release/bundle/deb/*.deb dist/
  # The AppImage bundler downloads linuxdeploy and AppRun from github.com on first use.
  if (cd src-tauri && "${tauri[@]}" --bundles appimage --config "$(cli_at release)"); then
    cp target/release/bundle/appimage/*.AppImage dist/
  else
    echo "package: no AppImage: the Tauri bundler could not fetch linuxdeploy from github.com" >&2
  fi
  ls -l dist/
  ;;
--test-wheel)
  out=target/wheel
  rm -rf "$out"
  maturin build --profile dev --out "$out"
  wheel=$(ls "$out"/sockpit-*.whl)
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
  # The venv's own `sockpit`, found on the venv's PATH as a user would after activating it.
  found=$(PATH="$PWD/$out/venv/bin:$PATH" command -v sockpit)
  [ "$found" = "$PWD/$out/venv/bin/sockpit" ] || { echo "wheel: sockpit on PATH is $found" >&2; exit 1; }
  start=$(date +%s%N)
  version=$("$found" --version)
  took=$((($(date +%s%N) - start) / 1000000))
  echo "wheel: $(basename "$wheel") $(du -k "$wheel" | cut -f1) KiB; installed $found; '$version' in ${took} ms"
  ;;
--test-deb)
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
  cargo build --locked --bin sockpit
  (cd src-tauri && "${tauri[@]}" --debug --bundles deb --config "$(cli_at debug)")
  deb=$(ls "$PWD"/target/debug/bundle/deb/*.deb)
  pkg=$(dpkg-deb -f "$deb" Package)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
  installed=$(dpkg-query -L "$pkg")
  for f in /usr/bin/sockpit-desktop /usr/bin/sockpit /usr/share/applications/Sockpit.desktop \
    /usr/share/icons/hicolor/{16x16,24x24,32x32,48x48,64x64,128x128,256x256,512x512}/apps/sockpit-desktop.png; do
    grep -qx "$f" <<<"$installed" || { echo "deb: $pkg does not install $f" >&2; exit 1; }
  done
  desktop-file-validate /usr/share/applications/Sockpit.desktop
  echo "deb: installed $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB); $(/usr/bin/sockpit --version)"
  status=0
  SOCKPIT_DESKTOP_BIN=/usr/bin/sockpit-desktop xvfb-run -a -s "-screen 0 1280x800x24" \
    dbus-run-session -- npm --prefix ui run e2e:desktop || status=$?
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$pkg" >/dev/null
  left=$(while read -r f; do [ -f "$f" ] && echo "$f"; done <<<"$installed" || true)
  [ -z "$left" ] || { echo "deb: removing $pkg left $left" >&2; exit 1; }
  ! dpkg-query -W "$pkg" >/dev/null 2>&1 || dpkg-query -W -f='${Status}' "$pkg" | grep -q "not-installed" \
    || { echo "deb: $pkg is still known to dpkg" >&2; exit 1; }
  echo "deb: removed $pkg; nothing left"
  exit "$status"
  ;;
*)
  echo "usage: scripts/package.sh [--test-wheel | --test-deb]" >&2
  exit 2
  ;;
esac
