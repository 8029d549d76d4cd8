#!/usr/bin/env bash
# Quick start, part one: set up, then run the main job on the bundled offline model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tokendim demo "$@"
