#!/usr/bin/env bash
# The main job: set up, then open JupyterLab on notebooks/quickstart.ipynb with the embedded
# demo model. Extra arguments go to `hooklens demo` (e.g. --no-browser, --port 8899, --dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hooklens demo "$@"
