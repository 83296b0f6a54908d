#!/usr/bin/env bash
# One command: set everything up, then run Vitrina on embedded defaults (SQLite, bundled
# GeoLite2, no Redis) with a demo shop and a sample config published.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/vitrina demo "$@"
