#!/usr/bin/env bash
# Adds Bitsmith to this user's application menu; run from the unpacked bundle folder.
# Nothing is copied except the menu entry and the icon: the app runs from where it was unpacked.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
share="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$share/applications" "$share/icons/hicolor/256x256/apps" "$share/icons/hicolor/scalable/apps"
sed "s|@BUNDLE@|$here|g" "$here/bitsmith.desktop" > "$share/applications/bitsmith.desktop"
cp "$here/bitsmith.png" "$share/icons/hicolor/256x256/apps/bitsmith.png"
cp "$here/bitsmith.svg" "$share/icons/hicolor/scalable/apps/bitsmith.svg"
command -v update-desktop-database >/dev/null && update-desktop-database "$share/applications" || true
echo "Bitsmith added to the application menu ($share/applications/bitsmith.desktop)"
