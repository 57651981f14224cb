#!/usr/bin/env bash
# The project's test command: set up (idempotent), lint, then the whole test suite.
#  - scripts/setup.sh: .venv with govchat, its pinned dependencies and the offline models;
#  - scripts/browser_setup.sh: Debian's Chromium for the browser tests (tests/web);
#  - scripts/postgres_setup.sh: a throwaway local PostgreSQL server, so the storage tests run
#    against PostgreSQL as well as SQLite (GOVCHAT_TEST_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser_setup.sh
eval "$(bash scripts/postgres_setup.sh)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
