#!/usr/bin/env bash
# Install the extra binaries the test suite uses into .tools/bin (on PATH via the Makefile).
#
# promtool (and prometheus) come from Debian's `prometheus` package. The .deb is unpacked
# with `dpkg -x` rather than installed, so no service is started and nothing outside the
# repository changes. Idempotent: when promtool is already usable this exits at once, silently.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD/.tools"
bin="$root/bin"

if command -v promtool >/dev/null 2>&1 || [ -x "$bin/promtool" ]; then
  exit 0
fi

log() { echo "tools.sh: $*" >&2; }

mkdir -p "$bin" "$root/cache"
cd "$root/cache"

if ! ls prometheus_*.deb >/dev/null 2>&1; then
  # `apt-get download` runs as an unprivileged user when it can; keep the directory writable.
  chmod 0777 "$root/cache" 2>/dev/null || true
  if ! apt-get download -qq prometheus >/dev/null 2>&1; then
    log "apt-get download failed; running apt-get update first"
    apt-get update -qq >/dev/null
    apt-get download -qq prometheus >/dev/null
  fi
fi

deb="$(ls -1 prometheus_*.deb | head -n 1)"
rm -rf "$root/prometheus"
dpkg -x "$deb" "$root/prometheus"

for tool in promtool prometheus; do
  ln -sfn "../prometheus/usr/bin/$tool" "$bin/$tool"
done

"$bin/promtool" --version >/dev/null
