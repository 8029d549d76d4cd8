#!/usr/bin/env bash
# Quick start, part one: set up, run the headless demo on the bundled offline model (prints the
# ID curves and the paper's metrics), then open JupyterLab on notebooks/quickstart.ipynb.
#   scripts/demo.sh              demo, then JupyterLab (when run from a terminal)
#   scripts/demo.sh --headless   demo only (also the default without a terminal or under CI)
set -euo pipefail
cd "$(dirname "$0")/.."
headless=0
if [ "${1:-}" = "--headless" ]; then headless=1; shift; fi
if [ -n "${CI:-}" ] || [ ! -t 0 ] || [ ! -t 1 ]; then headless=1; fi
bash scripts/setup.sh
.venv/bin/tokendim demo "$@"
if [ "$headless" = 0 ]; then
  echo
  echo "==> opening JupyterLab on notebooks/quickstart.ipynb (Ctrl+C to stop)"
  exec .venv/bin/jupyter lab notebooks/quickstart.ipynb
fi
