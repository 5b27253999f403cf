#!/usr/bin/env bash
# Every check and test hooklens has: lint, types, JS unit tests, Python unit/integration/browser
# tests. Extra arguments go to pytest (e.g. -k attention, -m "not browser").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-browser

step() { printf '\n==> %s\n' "$*"; }
step "ruff (lint)";            .venv/bin/ruff check .
step "ruff (format check)";    .venv/bin/ruff format --check .
step "mypy (hooklens/)";       .venv/bin/mypy
step "tsc --noEmit (js/)";     npx tsc --noEmit
step "biome (js/ lint + format)"; npx biome check js
step "vitest (JS unit tests)"; npx vitest run
step "pytest (unit, integration, browser)"
.venv/bin/python -m pytest "$@"
