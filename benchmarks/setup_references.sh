#!/usr/bin/env bash
# Create benchmarks/.venv-refs: an isolated environment for the reference library dadapy.
#
# Why a separate environment: dadapy 0.3.4 pins numpy<2, jax==0.4.30 and flax==0.8.5, and
# `from dadapy import Data` imports the whole package (jax included), so it cannot live next to
# the numpy 2 of the project's own environment, and it cannot be installed without jax either.
# The benchmark (benchmarks/estimators.py) runs dadapy in this environment as a subprocess that
# reads the same .npy file as everyone else.
#
# Requirements: Python 3.9-3.12 (jaxlib 0.4.30 has no wheels for 3.13+), a C compiler and the
# Python headers (dadapy is a source build with C extensions), access to PyPI.
#
# Usage:
#   benchmarks/setup_references.sh                 # uses python3
#   PYTHON=python3.11 benchmarks/setup_references.sh
#   REFS_VENV=/somewhere/else benchmarks/setup_references.sh
# Re-running reuses an existing environment and only installs what is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_dir="${REFS_VENV:-$here/.venv-refs}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: '$python' not found; set PYTHON to a Python 3.9-3.12 interpreter" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)'; then
    echo "error: $("$python" -V 2>&1) cannot install dadapy 0.3.4 (its jax==0.4.30 pin has" \
        "wheels for Python 3.9-3.12 only); set PYTHON to such an interpreter" >&2
    exit 1
fi

if [ ! -x "$env_dir/bin/python" ]; then
    echo "creating $env_dir with $("$python" -V 2>&1)"
    "$python" -m venv "$env_dir"
fi
pip=("$env_dir/bin/python" -m pip --disable-pip-version-check)

# numpy<2 is named explicitly so the resolver does not try a numpy 2 first; the rest (jax
# 0.4.30, jaxlib 0.4.30, flax 0.8.5, scipy, scikit-learn, matplotlib, seaborn, networkx, tqdm)
# comes from dadapy's own requirements. psutil is not needed: the workers read /proc.
"${pip[@]}" install "numpy<2" "dadapy==0.3.4"

# Smoke check on a small seeded cloud: the two calls the benchmark makes, and the 2NN ML variant.
"$env_dir/bin/python" - <<'EOF'
import numpy as np
from dadapy import Data

X = np.random.default_rng(0).normal(size=(500, 8))
d2, _, _ = Data(X).compute_id_2NN()
dml, _, _ = Data(X).compute_id_2NN(algorithm="ml")
ids, _, _ = Data(X).return_id_scaling_gride(range_max=16)
assert 5.0 < d2 < 11.0 and 5.0 < dml < 11.0 and len(ids) == 4, (d2, dml, ids)
from importlib.metadata import version

print(f"dadapy {version('dadapy')} OK with numpy {np.__version__}, jax {version('jax')}: "
      f"2NN {d2:.2f}, 2NN-ml {dml:.2f}, GRIDE {np.round(ids, 2)}")
EOF
echo "reference environment ready: $env_dir"
