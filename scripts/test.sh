#!/usr/bin/env bash
# Install everything the tests need, then lint, type-check and run the whole test suite.
#   bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --dev
venv_dir="${FULFILLWATCH_VENV:-.venv}"

echo "== ruff"
"$venv_dir/bin/ruff" check .
echo "== mypy --strict (package code)"
"$venv_dir/bin/mypy" instrumentation/src collector_processor/src incident_engine/src dashboard/src
echo "== pytest"
"$venv_dir/bin/python" -m pytest "$@"
