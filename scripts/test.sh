#!/usr/bin/env bash
# Quick start, part two: set up, then run every check: lint, format, types, JS tests, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "==> ruff check";          .venv/bin/ruff check .
echo "==> ruff format --check"; .venv/bin/ruff format --check .
echo "==> mypy";                .venv/bin/mypy
echo "==> front-end tests";     (cd js && npm test --silent && npm run check-offline --silent)
echo "==> pytest"
exec .venv/bin/python -m pytest -q -ra "$@"
