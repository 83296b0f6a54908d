#!/usr/bin/env bash
# One command for every benchmark:   ./bench/run.sh          (all, ~8-10 minutes; adaptive_sim ~3)
#                    or just some:   ./bench/run.sh collect tag_size
# Installs what is missing first (scripts/setup.sh --test, then wrk, nginx and redis-tools from
# Debian), then prints each benchmark's figures against a baseline measured in the same run.
# Exits 0 when every benchmark ran (a MISS is a result, not a failure), 1 when one crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v gzip >/dev/null || missing+=(gzip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d: the nginx package must not start a system-wide nginx on port 80; the
  # benchmark starts its own on a free local port.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { [ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi

exec .venv/bin/python -m bench "$@"
