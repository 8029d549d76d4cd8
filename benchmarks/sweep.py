"""The same model sweep sequentially in one process and on a two-node Ray cluster.

Usage: ``python benchmarks/sweep.py [--prompts narrative] [--out DIR]`` (as root: the Ray run
needs ``unshare -n``). Both runs start from an empty cache. The Ray cluster is a head node and
a second node on this machine (one CPU each), on loopback only inside a network namespace, as in
tests/test_sweep_ray.py; its start-up is timed apart from the sweep. Models: the bundled
SmolLM2-135M, the bundled MiniLM-L6 encoder and a randomly initialised GPT-2 shape (6 blocks,
width 384, MiniLM's tokenizer). Prints one JSON record.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIMS = REPO / "tests" / "ray_shims"
PORT = 26490


def _random_gpt2(folder: Path) -> str:
    """A random GPT-2 (6 x 384) saved with MiniLM's tokenizer: a mid-size causal LM offline."""
    import torch
    import transformers as tf

    from tokendim_widgets.models import resolve_model

    if (folder / "config.json").exists():
        return str(folder)
    tokenizer = tf.AutoTokenizer.from_pretrained(resolve_model("minilm-l6").source)
    torch.manual_seed(0)
    config = tf.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=384,
        n_layer=6,
        n_head=6,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    model = tf.GPT2LMHeadModel(config)
    model.config.architectures = ["GPT2LMHeadModel"]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _inner(args: argparse.Namespace) -> None:
    from tokendim_widgets.sweeps import sweep

    models = json.loads(args.models)
    if args.inner == "ray":
        import ray

        ray.init(address=f"127.0.0.1:{PORT}", log_to_driver=False)
    started = time.perf_counter()
    result = sweep(
        models,
        args.prompts,
        estimators=["twonn"],
        executor=args.inner,
        cache_dir=args.cache,
        progress=False,
    )
    seconds = time.perf_counter() - started
    result.metrics.to_csv(Path(args.cache).with_suffix(".metrics.csv"), index=False)
    record = {
        "seconds": seconds,
        "status": result.models["status"].tolist(),
        "per_model": dict(zip(result.models["model"], result.models["seconds"], strict=True)),
        "errors": result.errors.to_dict("records"),
    }
    print("RESULT " + json.dumps(record))


def ports(base: int) -> str:
    """Fixed agent ports: the raylet then does not wait for its agents to report theirs."""
    names = (
        "metrics-export",
        "dashboard-agent-grpc",
        "dashboard-agent-listen",
        "runtime-env-agent",
    )
    return " ".join(f"--{name}-port={base + i}" for i, name in enumerate(names))


def _marked(marker: str, session: int) -> list[int]:
    """This run's cluster processes: its Unix session, or its marker in the environment."""
    needle = f"TOKENDIM_RAY_BENCH={marker}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                sid = int(stat[stat.rindex(")") + 2 :].split()[3])
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if sid == session or needle in environ:
                pids.append(int(entry))
    return pids


def _result(text: str) -> dict:
    line = next(x for x in text.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default="narrative")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="tdsweep-")))
    parser.add_argument("--inner", choices=["local", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        _inner(args)
        return
    models = {
        "smollm2-135m": "smollm2-135m",
        "minilm-l6": "minilm-l6",
        "gpt2-random-6x384": _random_gpt2(args.out / "gpt2-random"),
    }
    me = [sys.executable, __file__, "--prompts", args.prompts, "--models", json.dumps(models)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SHIMS), str(REPO)]))

    started = time.perf_counter()
    local = subprocess.run(
        [*me, "--inner", "local", "--cache", str(args.out / "cache-local")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    local_process = time.perf_counter() - started

    marker = uuid.uuid4().hex
    ray_tmp = tempfile.mkdtemp(prefix="tdrayb-")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    inner = " ".join([*me[:1], *[f"'{a}'" for a in me[1:]], "--inner", "ray", "--cache"])
    script = f"""set -e
ip link set lo up
echo "CLUSTER_START $(date +%s.%N)"
renice -n -10 -p $$ > /dev/null
{ray_bin} start --head --num-cpus=1 --port={PORT} --include-dashboard=false \
  --temp-dir={ray_tmp} {ports(PORT + 10)} > {args.out}/head.log 2>&1
{ray_bin} start --address=127.0.0.1:{PORT} --num-cpus=1 {ports(PORT + 20)} \
  > {args.out}/node.log 2>&1
for pid in $(ps -o pid= -s $$); do renice -n {os.nice(0)} -p "$pid" > /dev/null || true; done
echo "CLUSTER_UP $(date +%s.%N)"
{inner} {args.out}/cache-ray
"""
    env.update(TOKENDIM_RAY_BENCH=marker, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen(
        ["unshare", "-n", "bash", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate()
    finally:
        proc.kill()
        proc.wait()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _marked(marker, proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(3)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    if proc.returncode != 0:
        sys.exit(f"Ray run failed:\n{err[-3000:]}")
    seq, par = _result(local.stdout), _result(out)
    stamps = {
        x.split()[0]: float(x.split()[1]) for x in out.splitlines() if x.startswith("CLUSTER_")
    }
    record = {
        "prompts": args.prompts,
        "sequential_seconds": round(seq["seconds"], 1),
        "sequential_process_seconds": round(local_process, 1),
        "ray_seconds": round(par["seconds"], 1),
        "ray_cluster_start_seconds": round(stamps["CLUSTER_UP"] - stamps["CLUSTER_START"], 1),
        "ray_over_sequential": round(par["seconds"] / seq["seconds"] - 1, 3),
        "sequential_per_model": {k: round(v, 1) for k, v in seq["per_model"].items()},
        "ray_per_model": {k: round(v, 1) for k, v in par["per_model"].items()},
        "status": {"sequential": seq["status"], "ray": par["status"]},
        "load_average": os.getloadavg(),
    }
    import numpy as np
    import pandas as pd

    a = pd.read_csv(args.out / "cache-local.metrics.csv")
    b = pd.read_csv(args.out / "cache-ray.metrics.csv")
    record["ray_equals_sequential"] = {
        column: bool(np.allclose(a[column], b[column], rtol=1e-4, equal_nan=True))
        for column in ("working_dimension", "final_dimension", "bits_per_byte", "loss")
    }
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
