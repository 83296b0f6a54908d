#!/usr/bin/env bash
# Installs whatever is missing on a fresh Debian machine, then builds the SDK.
#   scripts/setup.sh          runtime: Python venv, npm packages, SDK build
#   scripts/setup.sh --test   also Debian's chromium, redis-server and nginx for the tests
# Never downloads a browser of its own: the tests drive Debian's /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_UPDATED=""
apt_install() {
  [ -n "$APT_UPDATED" ] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Debian packages (only when absent)
if [ "${1:-}" = "--test" ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)  # e2e/test_edge.py
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    # policy-rc.d: installing nginx must not start a system-wide nginx on port 80; the tests
    # start their own, from deploy/nginx.conf, on a free local port.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
      $SUDO chmod +x /usr/sbin/policy-rc.d
      made_policy=1
    fi
    apt_install "${missing[@]}" || { [ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d; exit 1; }
    [ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  fi
fi

# Python virtualenv (reinstalled only when pyproject.toml changes)
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv 2>/dev/null || { apt_install python3-venv; rm -rf .venv; "$PYTHON" -m venv .venv; }
fi
stamp=".venv/.vitrina-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: pip install -e .[test]"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  rm -f .venv/.vitrina-*; touch "$stamp"
fi

# npm packages (npm ci only when the lock file changes) and the SDK build
lock_stamp="node_modules/.vitrina-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$lock_stamp" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$lock_stamp"
fi
npm run --silent build
