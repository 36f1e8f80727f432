#!/usr/bin/env bash
# Regenerates the PNG icons from the SVGs drawn here (needs rsvg-convert, Debian package librsvg2-bin).
# The app icon: a wall socket's face on a dark tile. Tray icons: the same face, with a
# status dot (green running, grey stopped, red error), drawn for 32 px.
set -euo pipefail
cd "$(dirname "$0")"
face() { # $1 = face colour, $2 = slot colour
  cat <<SVG
  <circle cx="32" cy="32" r="23" fill="$1"/>
  <rect x="21" y="21" width="6" height="15" rx="3" fill="$2"/>
  <rect x="37" y="21" width="6" height="15" rx="3" fill="$2"/>
  <path d="M26 44 a6 6 0 0 1 12 0 v3 h-12 z" fill="$2"/>
SVG
}
cat > app.svg <<SVG
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
  <rect x="2" y="2" width="60" height="60" rx="14" fill="#0f172a"/>
$(face "#e2e8f0" "#0f172a")
  <circle cx="48" cy="48" r="8" fill="#22c55e" stroke="#0f172a" stroke-width="3"/>
</svg>
SVG
tray() { # $1 = name, $2 = dot colour
  cat > "tray-$1.svg" <<SVG
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
$(face "#cbd5e1" "#1e293b")
  <circle cx="49" cy="49" r="12" fill="$2" stroke="#1e293b" stroke-width="4"/>
</svg>
SVG
}
tray running "#22c55e"
tray stopped "#94a3b8"
tray error "#ef4444"
render() { rsvg-convert -w "$2" -h "$2" "$1" -o "$3"; }
render app.svg 512 icon.png
# Every size the freedesktop icon theme (hicolor) and the .deb/AppImage want.
for n in 16 24 32 48 64 128 256; do render app.svg "$n" "${n}x${n}.png"; done
for s in running stopped error; do render "tray-$s.svg" 32 "tray-$s.png"; done
