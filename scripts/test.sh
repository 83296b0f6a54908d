#!/usr/bin/env bash
# One command: set everything up, then run every test (JS units, size budget, pytest with
# real redis-server, gunicorn and Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
echo "== JS unit tests (node --test)"
node --test sdk_js/test/
echo "== JS types (tsc, JSDoc // @ts-check)"
npm run --silent typecheck
echo "== size budget (size-limit)"
npx --no-install size-limit
echo "== pytest (server, both stores, e2e in Chromium)"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
