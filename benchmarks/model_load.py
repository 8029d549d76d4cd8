"""Model load from the de-quantised weights cache against de-quantising the GGUF file.

Each load runs in a fresh Python process (imports excluded from the figure), so the cached
load pays what a new notebook kernel pays: reading the entry and checking its checksums.

    python benchmarks/model_load.py [--model smollm2-135m] [--repeats 2]

Prints one line per load: ``uncached`` (``cache=False``: the GGUF file de-quantised, as
before the cache existed), ``cold`` (empty cache folder: de-quantised, written, read back)
and ``cached`` (read from the entry).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import hashlib, json, sys, time
start = time.perf_counter()
import torch, transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
import transformers.modeling_gguf_pytorch_utils
import tokendim_widgets as td
imports = time.perf_counter() - start
start = time.perf_counter()
model, tokenizer = td.load_model(
    sys.argv[1], device="cpu", progress=False, cache=sys.argv[2] == "1"
)
seconds = time.perf_counter() - start
with torch.no_grad():
    logits = model(**tokenizer("The quick brown fox", return_tensors="pt")).logits
digest = hashlib.sha256(logits.numpy().tobytes()).hexdigest()[:16]
print(json.dumps({"seconds": seconds, "imports": imports, "logits": digest}))
"""


def load_seconds(model: str, cache_dir: str, cache: bool) -> dict:
    """Seconds of one ``load_model`` call in a fresh process (after the imports), the
    imports' seconds and a digest of the model's logits on one prompt."""
    env = {**os.environ, "TOKENDIM_CACHE_DIR": cache_dir, "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, model, "1" if cache else "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for _ in range(args.repeats):
            rows.append(("uncached", load_seconds(args.model, cache_dir, cache=False)))
        rows.append(("cold", load_seconds(args.model, cache_dir, cache=True)))
        for _ in range(args.repeats):
            rows.append(("cached", load_seconds(args.model, cache_dir, cache=True)))
    for name, run in rows:
        print(
            f"{name:<9} {run['seconds']:6.1f} s   (imports before it {run['imports']:5.1f} s, "
            f"logits {run['logits']})"
        )
    best = {n: min(r["seconds"] for m, r in rows if m == n) for n, _ in rows}
    same = len({r["logits"] for _, r in rows}) == 1
    print(f"best cached load is {best['uncached'] / best['cached']:.1f}x faster than de-quantising")
    print("identical logits in every load" if same else "LOGITS DIFFER between loads")


if __name__ == "__main__":
    main()
