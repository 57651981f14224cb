#!/usr/bin/env bash
# Set up what the browser tests (tests/web) need, idempotently:
#   - Debian's Chromium and chromedriver (/usr/bin/chromium), installed with apt-get when missing;
#   - Playwright's Python package (in .venv, from the dev extra) WITHOUT its own browser download:
#     the tests drive the system Chromium.
# The front-end files the tests use (GOV.UK Frontend CSS, axe-core) are committed, so no npm step
# is needed; scripts/vendor_web.sh regenerates them from web/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "browser_setup: installing chromium and chromium-driver" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-liberation >/dev/null
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import playwright" 2>/dev/null; then
  echo "browser_setup: installing playwright (Python package only)" >&2
  .venv/bin/pip install -q "playwright>=1.49"
fi

chromium --version 2>/dev/null | head -1 >&2 || true
echo "browser_setup: ready (run: .venv/bin/pytest tests/web)" >&2
