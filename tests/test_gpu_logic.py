"""The GPU path's logic, checked on the CPU: devices, streams and allocations are mocked.

Streams of the copy events, page-locked buffer turns, re-planning after out-of-memory
errors, fresh memory readings, the float32 precision guard of the exact searches, and the
conversion of bfloat16 / device tensors. ``benchmarks/gpu_check.sh`` runs the real thing.
"""

from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
import weakref
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from tokendim_widgets import devices
from tokendim_widgets import extraction as extraction_module
from tokendim_widgets import knn as knn_module
from tokendim_widgets import models as models_module
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.extraction import (
    HostBuffers,
    Progress,
    bytes_per_token,
    copy_done_event,
    default_batch_tokens,
    extract,
    run_batches,
)
from tokendim_widgets.hidden_states import HiddenStates
from tokendim_widgets.knn import float32_error, knn
from tokendim_widgets.projection import pca_2d

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hi there",
    "A language model moves each token through its layers, one block after another.",
    "def add(a, b):\n    return a + b",
    "She opened the door, looked outside and smiled at the rain.",
    "SELECT name FROM users WHERE age > 30;",
]


def brute_force(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = X.astype(np.float64)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


# ---- item 2: the copy-completion event ------------------------------------------------------
class FakeEvent:
    """Stands for torch.cuda.Event: remembers the stream it was recorded on."""

    made: ClassVar[list[FakeEvent]] = []

    def __init__(self) -> None:
        self.stream: Any = None
        self.synchronized = False
        FakeEvent.made.append(self)

    def record(self, stream: Any = None) -> None:
        self.stream = stream

    def synchronize(self) -> None:
        self.synchronized = True


@pytest.fixture
def fake_cuda_events(monkeypatch: pytest.MonkeyPatch) -> type[FakeEvent]:
    FakeEvent.made = []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: ("stream", str(device)))
    return FakeEvent


def test_copy_event_is_recorded_on_the_input_devices_stream(fake_cuda_events) -> None:
    # The model on cuda:1 (or a worker thread whose current device is 0): the event must be
    # on cuda:1's stream, where the copy was queued; recorded on the current device's
    # stream it can complete before the copy has.
    event = copy_done_event(torch.device("cuda", 1))
    assert event.stream == ("stream", "cuda:1")


# ---- item 5: page-locked buffer turns -------------------------------------------------------
def test_a_failed_allocation_keeps_the_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    failures = deque([False, False, True, False])
    allocated: list[weakref.ref[torch.Tensor]] = []

    def allocate(numel: int, dtype: torch.dtype) -> torch.Tensor:
        if failures.popleft():
            raise RuntimeError("CUDA error: out of memory (simulated cudaHostAlloc)")
        buffer = torch.empty(numel, dtype=dtype)
        allocated.append(weakref.ref(buffer))
        return buffer

    monkeypatch.setattr(extraction_module, "pinned_empty", allocate)
    buffers = HostBuffers()
    first = buffers.take((2, 3), torch.float32)
    buffers.commit()
    second = buffers.take((2, 3), torch.float32)
    buffers.commit()
    assert first.data_ptr() != second.data_ptr() and buffers.slot == 0
    # Batch 3 needs a larger buffer: the allocation fails, the batch is retried smaller.
    with pytest.raises(RuntimeError, match="out of memory"):
        buffers.take((4, 3), torch.float32)
    assert buffers.slot == 0  # the turn did not pass: batch 2's buffer (slot 1) is safe
    retry = buffers.take((4, 3), torch.float32)
    assert retry.data_ptr() != second.data_ptr()
    buffers.commit()
    assert buffers.take((2, 3), torch.float32).data_ptr() == second.data_ptr()
    # Released at the end of a run: the buffers, and torch's cache of page-locked memory.
    emptied: list[bool] = []
    if hasattr(torch, "accelerator"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(
            torch.accelerator, "empty_host_cache", lambda: emptied.append(True), raising=False
        )
    del first, second, retry  # the batches are done with their views
    assert any(ref() is not None for ref in allocated)  # the buffers are kept for reuse...
    buffers.release()
    assert all(ref() is None for ref in allocated)  # ...until released
    assert emptied == ([True] if hasattr(torch, "accelerator") else [])


def _forced_async(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run extraction's CUDA pipeline on the CPU: same code, host tensors for device ones."""
    monkeypatch.setattr(extraction_module, "async_host_copy", lambda device: True)
    monkeypatch.setattr(extraction_module, "upload", lambda tensor, device: tensor.to(device))
    monkeypatch.setattr(
        extraction_module, "pinned_empty", lambda n, dtype: torch.empty(n, dtype=dtype)
    )


def test_the_asynchronous_pipeline_stores_what_the_blocking_one_does(
    tiny, monkeypatch: pytest.MonkeyPatch, fake_cuda_events
) -> None:
    model, tokenizer = tiny("llama")
    run = {"cache": False, "progress": False, "batch_tokens": 40}
    reference = extract((model, tokenizer), PROMPTS, **run)
    _forced_async(monkeypatch)
    states = extract((model, tokenizer), PROMPTS, **run)
    for layer in range(reference.n_layers):
        np.testing.assert_array_equal(states.layer(layer), reference.layer(layer))
    events = fake_cuda_events.made
    assert len(events) > 2 and all(e.synchronized for e in events)  # the last batch too
    assert {e.stream for e in events} == {("stream", "cpu")}  # the input device's stream


def test_uploads_precede_the_forward_and_host_writes_follow_the_next_one(
    tiny, monkeypatch: pytest.MonkeyPatch, fake_cuda_events
) -> None:
    # Item 4: nothing issued after a forward pass may wait for it (the index upload used to
    # be a blocking copy from pageable memory), and batch i's rows are written on the host
    # only once batch i + 1's forward pass is queued, so the two overlap on a GPU.
    model, tokenizer = tiny("llama")
    _forced_async(monkeypatch)
    log: list[str] = []
    monkeypatch.setattr(
        extraction_module, "upload", lambda t, device: (log.append("upload"), t.to(device))[1]
    )
    monkeypatch.setattr(FakeEvent, "synchronize", lambda self: log.append("write"))
    base = model.base_model
    real_forward = base.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        log.append("forward")
        return real_forward(*args, **kwargs)

    base.forward = forward
    try:
        extract((model, tokenizer), PROMPTS, cache=False, progress=False, batch_tokens=40)
    finally:
        del base.forward
    batches = log.count("forward")
    assert batches >= 3
    # Per batch: three uploads (ids, mask, rows to keep), its forward pass, then the rows of
    # the batch before it are written.
    expected = ["upload"] * 3 + ["forward"]
    expected += (["upload"] * 3 + ["forward", "write"]) * (batches - 1) + ["write"]
    assert log == expected


def test_a_failed_host_allocation_never_overwrites_the_pending_batch(
    tiny, monkeypatch: pytest.MonkeyPatch, fake_cuda_events
) -> None:
    # The third batch's buffer allocation runs out of memory once; the batch is retried
    # smaller. Had the failed attempt passed the turn, the retry would write into the
    # buffer of batch 2, whose rows are not yet stored, and those rows would be wrong.
    model, tokenizer = tiny("llama")
    prompts = [f"{text} ({n})" for n in range(4) for text in PROMPTS]
    run = {"cache": False, "progress": False, "batch_tokens": 256}
    reference = extract((model, tokenizer), prompts, **run)
    _forced_async(monkeypatch)
    real_take = HostBuffers.take
    slots: list[int] = []

    def take(self: HostBuffers, shape: Any, dtype: torch.dtype) -> torch.Tensor:
        slots.append(self.slot)
        if len(slots) == 3:
            raise RuntimeError("CUDA error: out of memory (simulated cudaHostAlloc)")
        return real_take(self, shape, dtype)

    monkeypatch.setattr(HostBuffers, "take", take)
    states = extract((model, tokenizer), prompts, **run)
    assert len(slots) >= 4
    assert slots[3] == slots[2] != slots[1]  # the retry never takes the pending batch's
    # Re-planned batches pad differently (float noise of ~1e-9); another batch's rows in
    # the pending batch's place would differ by the states' own size.
    for layer in range(reference.n_layers):
        np.testing.assert_allclose(states.layer(layer), reference.layer(layer), atol=1e-6)


# ---- item 5: re-planning after an out-of-memory error ----------------------------------------
def test_out_of_memory_replans_every_later_batch() -> None:
    lengths = [10] * 16
    attempts: list[int] = []

    def step(batch: list[int]) -> None:
        tokens = len(batch) * max(lengths[i] for i in batch)
        attempts.append(tokens)
        if tokens > 40:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    bar = Progress(None, sum(lengths), desc="")
    budget = run_batches(lengths, 80, step, should_stop=lambda: False, progress=bar)
    assert budget == 40
    # One failure, then every batch under the new budget: the batches planned at 80 tokens
    # after the failed one do not fail again each in turn.
    assert sum(t > 40 for t in attempts) == 1
    assert bar.done == sum(lengths)


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "CUDA out of memory. Tried to allocate 2.00 GiB",
        "MPS backend out of memory",
    ],
)
def test_out_of_memory_messages(message: str) -> None:
    assert extraction_module.is_oom(RuntimeError(message))
    assert not extraction_module.is_oom(RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED"))


# ---- item 3: memory readings -------------------------------------------------------------------
class _Held:
    """A device allocation kept alive only by a reference cycle (as accelerate's hooks do)."""

    def __init__(self, pool: dict[str, int], size: int) -> None:
        self.pool, self.size, self.me = pool, size, self
        pool["used"] += size

    def __del__(self) -> None:
        self.pool["used"] -= self.size


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    pool = {"total": 80 * 2**30, "used": 0, "cache": 0, "emptied": 0}

    def mem_get_info(device: Any = None) -> tuple[int, int]:
        return pool["total"] - pool["used"] - pool["cache"], pool["total"]

    def empty_cache() -> None:
        pool["cache"] = 0
        pool["emptied"] += 1

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    return pool


def test_memory_is_read_after_collecting_cycles_and_emptying_the_cache(fake_gpu) -> None:
    gc.disable()
    try:
        _Held(fake_gpu, 60 * 2**30)  # an old model in a cycle: garbage, not yet collected
        fake_gpu["cache"] = 10 * 2**30  # blocks the allocator kept from an earlier run
        assert torch.cuda.mem_get_info()[0] == 10 * 2**30  # what a stale reading sees
        free, total = devices.cuda_memory(0)
    finally:
        gc.enable()
    assert free == total == 80 * 2**30 and fake_gpu["emptied"] == 1


def test_placement_reads_fresh_memory(tiny_dir, fake_gpu, monkeypatch: pytest.MonkeyPatch) -> None:
    # A 20 GiB model on an 80 GiB GPU whose memory is held by garbage (an old model in a
    # reference cycle) and the allocator's cache: a stale reading (10 GiB free) would spread
    # it over the CPU with device_map="auto".
    import transformers

    captured: dict[str, Any] = {}

    def from_pretrained(*args: Any, **kwargs: Any) -> Any:
        captured.update(kwargs)
        return torch.nn.Linear(2, 2)  # stands for the model; .to("cuda") is not called

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    monkeypatch.setattr(models_module, "estimated_bytes", lambda config, dtype: 20 * 2**30)
    monkeypatch.setattr(torch.nn.Linear, "to", lambda self, *a, **k: self)
    gc.disable()
    try:
        _Held(fake_gpu, 60 * 2**30)
        fake_gpu["cache"] = 10 * 2**30
        models_module.load_model(tiny_dir("llama"), device="cuda", dtype="float32")
    finally:
        gc.enable()
    assert captured and "device_map" not in captured


def test_batch_budget_from_fresh_memory_and_attention(tiny, fake_gpu) -> None:
    model, _ = tiny("llama")
    cuda = torch.device("cuda")
    fake_gpu["cache"] = 70 * 2**30
    budget = default_batch_tokens(model, cuda, torch.bfloat16, longest=64)
    assert budget == 16384  # the cached blocks count as free
    config = model.config
    fused = bytes_per_token(model, torch.bfloat16, longest=4096)
    previous = config._attn_implementation
    try:
        config._attn_implementation = "eager"
        eager = bytes_per_token(model, torch.bfloat16, longest=4096)
    finally:
        config._attn_implementation = previous
    if previous in ("sdpa", "flash_attention_2"):
        assert fused == bytes_per_token(model, torch.bfloat16, longest=1)
    # Eager attention holds heads x longest scores per token: in bfloat16 and float32.
    assert eager - bytes_per_token(model, torch.bfloat16, longest=0) >= 4 * 4096 * (2 + 4)


def test_mixture_of_experts_weights_count() -> None:
    import transformers as tf

    config = tf.MixtralConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_local_experts=8,
        num_experts_per_tok=2,
        tie_word_embeddings=False,
    )
    actual = sum(p.numel() for p in tf.MixtralForCausalLM(config).parameters()) * 4
    estimate = models_module.estimated_bytes(config, torch.float32)
    assert 0.9 < estimate / actual < 1.15
    dense = tf.MixtralConfig(**{**config.to_dict(), "num_local_experts": 1})
    assert models_module.estimated_bytes(dense, torch.float32) < 0.5 * actual


# ---- item 6: the precision of the exact searches' products ----------------------------------
@pytest.fixture
def tf32_allowed() -> Any:
    torch.set_float32_matmul_precision("high")  # what many notebooks do
    try:
        yield
    finally:
        torch.set_float32_matmul_precision("highest")


def _tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 values truncated to TF32 (10 mantissa bits), as tensor cores read them."""
    bits = x.contiguous().view(torch.int32) & ~((1 << 13) - 1)
    return bits.view(torch.float32)


def test_tf32_products_exceed_the_float32_bound_and_the_guard_restores_it(
    tf32_allowed, monkeypatch: pytest.MonkeyPatch
) -> None:
    dim = 256
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(200, dim)).astype(np.float32))
    exact = torch.cdist(x.double(), x.double()) ** 2
    sq = (x.double() ** 2).sum(1)
    tf = _tf32(x).double()
    approx = sq[:, None] + sq[None, :] - 2.0 * tf @ tf.t()
    norms = sq.sqrt()
    scale = (norms[:, None] + norms[None, :]) ** 2
    error = float(((approx - exact).abs() / scale).max())
    with devices.full_float32():
        strict = float32_error(dim)
    assert error > 10 * strict  # TF32 products break the float32 certificate...
    assert float32_error(dim) > error  # ...and the bound widens while TF32 is allowed
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"

    seen: set[tuple[str, str]] = set()
    original = torch.addmm

    def spy(*args: Any, **kwargs: Any) -> Any:  # the search's float32 products
        matmul = torch.backends
        seen.add((matmul.cuda.matmul.fp32_precision, matmul.mkldnn.matmul.fp32_precision))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "addmm", spy)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    _, i = knn(X, 5, device="cpu", chunk_size=128)
    monkeypatch.undo()
    assert seen == {("ieee", "ieee")}  # full float32 for every product of the search
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"  # restored after it
    assert torch.backends.mkldnn.matmul.fp32_precision == "tf32"
    np.testing.assert_array_equal(i, brute_force(X, 5)[1])


def test_the_guard_nests_and_turns_off_bfloat16_reductions() -> None:
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_bf16_reduced_precision_reduction
    with devices.full_float32():
        with devices.full_float32():
            assert matmul.allow_bf16_reduced_precision_reduction is False
        assert matmul.fp32_precision == "ieee"
    assert matmul.allow_bf16_reduced_precision_reduction == before


# ---- item 7: the kNN on an accelerator ------------------------------------------------------
def test_knn_out_of_memory_retries_with_smaller_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    real = knn_module._search_tiles
    tiles: list[Any] = []

    def search(t: Any, k: int, dev: Any, chunk: Any) -> Any:
        tiles.append(chunk)
        if chunk is None or chunk > 1000:
            raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED (simulated)")
        return real(t, k, torch.device("cpu"), chunk)

    monkeypatch.setattr(knn_module, "_search_tiles", search)
    monkeypatch.setattr(knn_module, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(knn_module, "free_memory", lambda: None)
    X = np.random.default_rng(1).normal(size=(3000, 6)).astype(np.float32)
    _, i = knn(X, 4, device="cuda")
    assert tiles == [None, 1500, 750]
    np.testing.assert_array_equal(i, brute_force(X, 4)[1])

    def never(*args: Any, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(knn_module, "_search_tiles", never)
    with pytest.raises(TokendimError, match="device='cpu'"):
        knn(X, 4, device="cuda")


def test_rerank_steps_are_large_on_a_gpu() -> None:
    assert knn_module._rerank_bytes(torch.device("cpu"), 1024) == 4 * 2**20
    # ~10^4 launches of 4 MiB per graph at width 4096 become a few dozen.
    assert knn_module._rerank_bytes(torch.device("cuda"), 8192) == 256 * 2**20


# ---- item 8: bfloat16 and device tensors --------------------------------------------------
def test_bfloat16_tensors_are_accepted_as_float32() -> None:
    x = torch.randn(3, 40, 8).to(torch.bfloat16)
    states = HiddenStates.from_arrays(x)
    assert states.layer(0).dtype == np.float32
    np.testing.assert_array_equal(states.layer(2), x[2].float().numpy())
    assert HiddenStates.from_arrays(list(x)).n_layers == 3
    layout = pca_2d(x[0])
    np.testing.assert_allclose(layout, pca_2d(x[0].float().numpy()), atol=1e-5)
    assert math.isfinite(float(np.abs(layout).sum()))


# ---- item 3: the session keeps its model through a prompt change --------------------------
def test_the_session_loads_a_model_once_and_frees_it_for_the_next(
    tiny_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weakref

    from tokendim_widgets.session import Session

    real_load = models_module.load_model
    loaded: list[Any] = []

    def load(*args: Any, **kwargs: Any) -> Any:
        pair = real_load(*args, **kwargs)
        loaded.append(weakref.ref(pair[0]))
        return pair

    monkeypatch.setattr(models_module, "load_model", load)
    first = PROMPTS[:3] * 8
    s = Session(model=tiny_dir("llama"), prompts=first, projection_method="pca", k=5)
    try:
        s.run().wait(120)
        assert s.error == "" and len(loaded) == 1
        s.prompts = PROMPTS[3:] * 8
        s.wait(120)
        assert s.error == "" and len(loaded) == 1  # the model stayed in memory
        s.dtype = "bfloat16"  # another load key: the model is loaded again (the same layers)
        s.wait(120)
        assert s.error == "" and len(loaded) == 2
        gc.collect()
        assert loaded[0]() is None  # the first model was let go
    finally:
        s.close()


_GUARD_SCRIPT = """
import sys, warnings
import torch
warnings.simplefilter("error")
from tokendim_widgets.devices import full_float32
m, mk = torch.backends.cuda.matmul, torch.backends.mkldnn.matmul
case = sys.argv[1]
if case == "legacy":
    m.allow_tf32 = True
elif case == "new":
    m.fp32_precision = "tf32"
elif case == "precision":
    torch.set_float32_matmul_precision("high")
def read(f):
    try:
        return f()
    except RuntimeError:
        return "raises"
def state():
    return (read(lambda: m.allow_tf32), m.fp32_precision, mk.fp32_precision,
            read(torch.get_float32_matmul_precision), m.allow_bf16_reduced_precision_reduction)
before = state()
with full_float32():
    inside = state()
assert state() == before, (state(), before)
assert inside[1:3] == ("ieee", "ieee") and inside[4] is False, inside
print("ok")
"""


@pytest.mark.skipif(not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="torch < 2.9")
@pytest.mark.parametrize("case", ["untouched", "legacy", "new", "precision"])
def test_the_guard_restores_every_way_of_setting_the_precision(case: str) -> None:
    # However the user set TF32 (legacy flag, new per-backend setting, matmul precision),
    # the guard leaves every reading as it found it: no "mixed legacy and new API" state,
    # in which torch refuses to read allow_tf32.
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _GUARD_SCRIPT, case],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
