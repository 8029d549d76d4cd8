#!/usr/bin/env bash
# The GPU check: one prepared run on a CUDA machine (under 8 minutes on one H100/H200).
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on the GPU machine
#   bash benchmarks/gpu_check.sh --wheels   # here, with a registry: fill .whl/ to carry
#
# Order: (1) a CUDA device must exist, else it stops at once with "SKIP: no CUDA device" and
# exit status 0, before any install or test; (2) the environment; (3) packages the machine
# lacks, from carried wheels in .whl/ (or the registry if reachable), --no-deps into a
# private folder: torch and the CUDA libraries are never installed or replaced; (4) the test
# suite on CUDA; (5) benchmarks/gpu_check.py (exactness, throughput, out of memory, memory,
# kNN and correlation counts with TF32 off and on, duplicates, a session), which ends with
# one summary table. Exit status: 0 when every check passed (or no CUDA device), 1 if any
# failed. See "GPU check" in benchmarks/README.md.
#
# Environment: PYTHON (default python3), PYTEST_TIMEOUT (200 s), CHECK_BUDGET (220 s of
# checks started), OUT (a folder: the log is copied there).
set -u
cd "$(dirname "$0")/.." || exit 1
PY="${PYTHON:-python3}"
SITE="${TMPDIR:-/tmp}/gpu-check-site"
# Packages the package, its tests and the checks import, and the wheels that provide them.
NEEDED="traitlets anywidget psygnal ipywidgets comm jupyterlab_widgets widgetsnbextension
ipython decorator jedi parso matplotlib_inline pexpect ptyprocess prompt_toolkit wcwidth
stack_data asttokens executing pure_eval ipython_pygments_lexers umap_learn pynndescent
scikit_dimension gguf"

if [ "${1:-}" = "--wheels" ]; then
    # Run where a registry is reachable; the wheels travel with the tool's carry (".whl").
    mkdir -p .whl
    for dist in $NEEDED; do
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$dist" || echo "gpu_check: could not download $dist"
    done
    ls .whl
    exit 0
fi

# (1) A CUDA device, first and fast: nothing is installed or run without one.
if ! "$PY" - <<'EOF'
import sys
try:
    import torch
except ImportError:
    print("gpu_check: SKIP: no CUDA device (torch is not installed for this Python).")
    sys.exit(1)
if not torch.cuda.is_available():
    print(f"gpu_check: SKIP: no CUDA device (torch {torch.__version__} sees none).")
    sys.exit(1)
EOF
then
    exit 0
fi

LOG="$(mktemp "${TMPDIR:-/tmp}/gpu-check.XXXXXX.log")"
exec > >(tee "$LOG") 2>&1
started=$(date +%s)
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export TOKENDIM_CACHE_DIR="${TMPDIR:-/tmp}/gpu-check-cache"

# (2) The environment.
echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>/dev/null \
    || echo "nvidia-smi: not available"
"$PY" - <<'EOF'
import importlib, platform
import torch
p = torch.cuda.get_device_properties(0)
m = torch.backends.cuda.matmul
try:
    tf32 = m.fp32_precision
except (AttributeError, RuntimeError):
    tf32 = f"allow_tf32={m.allow_tf32}"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"{torch.cuda.device_count()} device(s): {p.name}, {p.total_memory / 2**30:.1f} GiB, "
      f"sm_{p.major}{p.minor}, {p.multi_processor_count} SMs")
print(f"bf16 supported: {torch.cuda.is_bf16_supported()}; float32 matmul precision: {tf32}; "
      f"cuDNN TF32: {torch.backends.cudnn.allow_tf32}; bf16 reduced-precision reductions: "
      f"{m.allow_bf16_reduced_precision_reduction}")
for name in ("numpy", "transformers", "accelerate", "tokenizers", "pandas", "pytest"):
    try:
        print(f"  {name} {importlib.import_module(name).__version__}")
    except ImportError:
        print(f"  {name}: missing")
EOF

# (3) What the machine lacks: carried wheels (never torch, triton or nvidia-*), --no-deps.
reach=no
"$PY" -c "import urllib.request as u; u.urlopen('https://pypi.org/simple/pip/', timeout=4)" \
    >/dev/null 2>&1 && reach=yes
echo "package registry reachable: $reach"
missing=$("$PY" - <<'EOF'
import importlib.util
names = {"traitlets": "traitlets", "anywidget": "anywidget", "umap": "umap-learn",
         "skdim": "scikit-dimension", "gguf": "gguf", "hypothesis": "hypothesis",
         "IPython": "ipython", "ipywidgets": "ipywidgets"}
print(" ".join(d for m, d in names.items() if importlib.util.find_spec(m) is None))
EOF
)
echo "missing: ${missing:-nothing}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$missing" ]; then
    wheels=$(ls .whl/*.whl 2>/dev/null | grep -Ev '/(torch|triton|nvidia)[-_]' || true)
    if [ -n "$wheels" ]; then
        # shellcheck disable=SC2086
        "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" $wheels \
            && export PYTHONPATH="$PYTHONPATH:$SITE"
        echo "installed from .whl into $SITE (after the machine's own packages)"
    elif [ "$reach" = yes ]; then
        # shellcheck disable=SC2086
        "$PY" -m pip install -q --no-deps --target "$SITE" $missing \
            && export PYTHONPATH="$PYTHONPATH:$SITE"
    else
        echo "no wheels carried and no registry: tests needing $missing will fail or skip"
    fi
fi

# (4) The test suite on CUDA (device="auto" picks it), browser and notebook tests excepted.
xdist=""
"$PY" -c "import xdist" 2>/dev/null && xdist="-n 8"
echo; echo "== test suite (timeout ${PYTEST_TIMEOUT:-200} s) $xdist"
# shellcheck disable=SC2086
timeout "${PYTEST_TIMEOUT:-200}" "$PY" -m pytest -q -m "not slow and not browser" $xdist \
    -p no:cacheprovider --continue-on-collection-errors \
    --ignore=tests/browser --ignore=tests/test_notebooks.py tests 2>&1 | tail -25
rc=${PIPESTATUS[0]}
summary=$(grep -E '[0-9]+ (passed|failed|error)' "$LOG" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
[ "$rc" = 124 ] && summary="timed out after ${PYTEST_TIMEOUT:-200} s; ${summary:-no summary}"
echo "pytest exit status $rc: $summary"

# (5) The checks and the summary table.
"$PY" benchmarks/gpu_check.py --budget "${CHECK_BUDGET:-220}" --pytest "${summary:-none} (rc $rc)"
status=$?
echo "total $(( $(date +%s) - started )) s, exit status $status"
if [ -n "${OUT:-}" ]; then cp "$LOG" "$OUT/gpu_check.log"; fi
exit $status
