#!/usr/bin/env bash
# Screenshots of the built course website (`make site` first) in headless Chromium, to look at before publishing.
#   tools/site_screenshots.sh [OUT_DIR] [PAGE ...]      e.g. tools/site_screenshots.sh shots lessons/01_micrograd
# Debian: apt-get install chromium. Pages default to the home page and every lesson.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-site-screenshots}"; shift || true
[ -f site/index.html ] || { echo "no site/index.html: run \`make site\` first" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "no Chromium found: install it (Debian: apt-get install chromium)" >&2; exit 1; }
pages=("$@")
[ ${#pages[@]} -gt 0 ] || pages=(. $(cd site && ls -d lessons/*/))
mkdir -p "$out"
profile="$(mktemp -d)"; trap 'rm -rf "$profile"' EXIT
for page in "${pages[@]}"; do
  name="$(echo "${page%/}" | tr / _)"; [ "$name" = "." ] && name=home
  "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
    --user-data-dir="$profile" --window-size=1280,2400 --screenshot="$out/$name.png" \
    "file://$PWD/site/${page%/}/index.html" 2>/dev/null
  echo "$out/$name.png"
done
