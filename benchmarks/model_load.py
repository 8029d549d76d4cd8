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
import json, sys, time
import tokendim_widgets as td
start = time.perf_counter()
model, tokenizer = td.load_model(sys.argv[1], device="cpu", progress=False, cache=sys.argv[2] == "1")
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def load_seconds(model: str, cache_dir: str, cache: bool) -> float:
    """Seconds of one ``load_model`` call in a fresh process."""
    env = {**os.environ, "TOKENDIM_CACHE_DIR": cache_dir, "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, model, "1" if cache else "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


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
    for name, seconds in rows:
        print(f"{name:<9} {seconds:6.1f} s")
    best = {n: min(s for m, s in rows if m == n) for n, _ in rows}
    print(
        f"speed-up of the cached load over de-quantising: {best['uncached'] / best['cached']:.1f}x"
    )


if __name__ == "__main__":
    main()
