"""Batched forward passes that capture the hidden states of every layer for every token.

:func:`extract` runs the base model (no LM head) over token-budget batches of right-padded
prompts and streams the states of the requested layers into the on-disk store, from which they
come back as read-only memory maps; a repeated call reads the cache without loading the model,
and an interrupted one resumes from its last checkpoint. The last layer is taken before the
final normalisation by default (``final_norm="pre_norm"``). Why padding, the last layer and
resuming work as they do: ``docs/extraction.md``.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import models
from .devices import cuda_memory, free_memory, is_out_of_memory, resolve_device, resolve_dtype
from .errors import Cancelled, TokendimError
from .hidden_states import HiddenStates, layer_file
from .models import (
    detect_task,
    init_from_config,
    load_config,
    loaded_identity,
    model_identity,
    random_init_identity,
    remember_identity,
    resolve_model,
)
from .progress import ProgressCallback, TokenProgress
from .prompts import as_prompt_set
from .store import Store, make_key
from .validation import check_choice, check_int, check_optional_int

if TYPE_CHECKING:
    import torch

    from .prompts import PromptSet

NAMESPACE = "hidden_states"
FINAL_NORM_OPTIONS = ("model", "pre_norm")
# Names of the final normalisation module on the base model, across architectures
# (Llama/Mistral/Qwen/Gemma: norm; GPT-2/GPT-J/Bloom: ln_f; Phi/OPT/GPT-NeoX: final_*).
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f", "final_norm")

#: Token progress of extraction and model quality (the name quality.py imports from here).
Progress = TokenProgress
CancelLike = threading.Event | Callable[[], bool] | None


# ---- small helpers shared with quality.py ----------------------------------------------
def as_cancel(cancel: CancelLike) -> Callable[[], bool]:
    """A zero-argument predicate from a threading.Event, a callable or None."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    if callable(cancel):
        return lambda: bool(cancel())
    raise TokendimError(
        f"cancel must be a threading.Event or a zero-argument callable, not {cancel!r}."
    )


def base_model(model: Any) -> Any:
    """The transformer body of a Hugging Face model (no LM head)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TokendimError(
            f"Expected a Hugging Face model (torch.nn.Module), got {type(model).__name__}; "
            "pass a model reference or the (model, tokenizer) pair from load_model()."
        )
    base = getattr(model, "base_model", model)
    return base if isinstance(base, torch.nn.Module) else model


def _text_config(model: Any) -> Any:
    config = getattr(model, "config", None)
    if config is None:
        raise TokendimError(f"{type(model).__name__} has no Hugging Face config.")
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def n_blocks(model: Any) -> int:
    """Number of transformer blocks L (the model returns L + 1 hidden states)."""
    value = getattr(_text_config(model), "num_hidden_layers", None)
    if not isinstance(value, int) or value < 1:
        raise TokendimError(f"Cannot tell how many layers {type(model).__name__} has.")
    return value


def context_length(model: Any, tokenizer: Any) -> int | None:
    """Longest input the model was built for, or None when it has no limit we can read."""
    config = _text_config(model)
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10_000_000:
        return limit
    return None


def special_ids(tokenizer: Any) -> set[int]:
    """Ids of special tokens (BOS, EOS, CLS, SEP, PAD...), the unknown token excepted.

    ``[UNK]`` stands for real text the vocabulary lacks, so its state is kept like any word.
    """
    ids = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}
    unk = getattr(tokenizer, "unk_token_id", None)
    unk_is_special = unk is not None and unk in {
        getattr(tokenizer, n, None) for n in ("bos_token_id", "eos_token_id", "pad_token_id")
    }
    if unk is not None and not unk_is_special:
        ids.discard(int(unk))
    return ids


def pad_id(tokenizer: Any) -> int:
    """The id used for padding (any id works: pads are masked and never stored)."""
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


def tokenize(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int | None,
    limit: int | None,
    input_ids: Sequence[Sequence[int]] | None = None,
) -> list[list[int]]:
    """Token ids of every prompt (special tokens added), checked against the context length.

    Raises
    ------
    TokendimError
        When a prompt is longer than the model's context and ``max_length`` is not given,
        when ``max_length`` exceeds the context, or when a prompt yields no token.
    """
    if max_length is not None and limit is not None and max_length > limit:
        raise TokendimError(
            f"max_length={max_length} is longer than the model's context of {limit} tokens; "
            f"use max_length <= {limit}."
        )
    if input_ids is not None:
        if len(input_ids) != len(texts):
            raise TokendimError(
                f"input_ids has {len(input_ids)} sequences for {len(texts)} prompts; give one "
                "list of token ids per prompt."
            )
        ids = [[int(t) for t in seq] for seq in input_ids]
        if max_length is not None:
            ids = [seq[:max_length] for seq in ids]
    else:
        if tokenizer is None or not callable(tokenizer):
            raise TokendimError("A tokenizer is needed: pass (model, tokenizer).")
        n_special = n_added_special(tokenizer)
        if max_length is not None and max_length <= n_special:
            # The tokenizer would keep its special tokens and silently skip the truncation.
            raise TokendimError(
                f"max_length={max_length} leaves no room for text: the tokenizer adds "
                f"{n_special} special tokens to every prompt. Use max_length >= "
                f"{n_special + 1}."
            )
        encoded = tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=max_length is not None,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            verbose=False,
        )
        ids = [list(map(int, seq)) for seq in encoded["input_ids"]]
    empty = [i for i, seq in enumerate(ids) if not seq]
    if empty:
        raise TokendimError(
            f"{len(empty)} prompts give no tokens (first at index {empty[0]}); remove them."
        )
    caps = [x for x in (max_length, limit) if x is not None]
    too_long = [i for i, seq in enumerate(ids) if caps and len(seq) > min(caps)]
    if too_long:
        longest = max(len(ids[i]) for i in too_long)
        where = f"(the longest has {longest}; first at index {too_long[0]})"
        if max_length is not None:
            raise TokendimError(
                f"{len(too_long)} prompts are still longer than max_length={max_length} after "
                f"truncation {where}: the tokenizer did not truncate them. Shorten them."
            )
        raise TokendimError(
            f"{len(too_long)} prompts are longer than the model's context of {limit} "
            f"tokens {where}. Pass max_length={limit} (or less) to truncate them, or "
            "shorten them."
        )
    return ids


def n_added_special(tokenizer: Any) -> int:
    """How many special tokens the tokenizer adds to one prompt (0 when it cannot say)."""
    count = getattr(tokenizer, "num_special_tokens_to_add", None)
    if not callable(count):
        return 0
    try:
        return int(count(pair=False))
    except Exception:  # a tokenizer that cannot tell: rely on the length check after it
        return 0


def plan_batches(
    lengths: Sequence[int], budget: int, order: Sequence[int] | None = None
) -> list[list[int]]:
    """Group sequences into batches of at most ``budget`` padded tokens, longest first.

    Sorting by length keeps padding small; a sequence longer than the budget runs alone.

    Parameters
    ----------
    lengths : sequence of int
        Length of each sequence.
    budget : int
        Maximum of ``n_sequences * longest_length`` per batch.
    order : sequence of int, optional
        The indices to plan (default: all).

    Returns
    -------
    list of list of int
        Batches of indices into ``lengths``.

    Examples
    --------
    >>> plan_batches([3, 5, 2, 5], budget=10)
    [[1, 3], [0, 2]]
    """
    indices = list(range(len(lengths))) if order is None else list(order)
    indices.sort(key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in indices:
        n = lengths[i]
        if current and (len(current) + 1) * max(longest, n) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def collate(sequences: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` (CPU int64 tensors)."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


#: Attention implementations that never hold a (heads x length x length) score matrix.
_FUSED_ATTENTION = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


def bytes_per_token(model: Any, dtype: torch.dtype, longest: int = 0) -> int:
    """Device memory one padded token of a batch needs during extraction (an estimate).

    Every layer's state is held until the batch ends, plus the gathered copy, plus the
    transient activations of one block (MLP intermediate, attention projections). Eager
    attention (or an unknown implementation) also holds one layer's scores and softmax for
    each of the ``longest`` positions: ``heads * longest`` values in the dtype and float32.
    """
    import torch

    config = _text_config(model)
    width = int(getattr(config, "hidden_size", 1024) or 1024)
    ffn = int(getattr(config, "intermediate_size", 4 * width) or 4 * width)
    layers = n_blocks(model) + 1
    size = torch.empty((), dtype=dtype).element_size()
    per_token = (2 * layers * width + 4 * ffn + 8 * width) * size
    attention = getattr(config, "_attn_implementation", None) or getattr(
        getattr(model, "config", None), "_attn_implementation", None
    )
    if attention not in _FUSED_ATTENTION:
        heads = int(getattr(config, "num_attention_heads", 0) or max(1, width // 64))
        per_token += heads * int(longest) * (2 * size + 4)
    return int(per_token)


def default_batch_tokens(
    model: Any, device: torch.device, dtype: torch.dtype, longest: int = 0
) -> int:
    """Padded tokens per batch: 512 on CPU; on CUDA, what free memory allows (<= 16384).

    Free memory is read after garbage collection and emptying the allocator's cache
    (:func:`~tokendim_widgets.devices.cuda_memory`); ``longest`` (the longest sequence)
    sizes the attention scores of eager attention (:func:`bytes_per_token`).
    """
    if device.type != "cuda":
        # Activations of a few hundred tokens stay in the CPU caches (docs/extraction.md).
        return 512
    free, _ = cuda_memory(device)
    budget = int(0.5 * free / bytes_per_token(model, dtype, longest))
    # Beyond ~16k tokens a GPU gains no throughput, only host-buffer and memory footprint.
    return int(min(max(budget, 256), 16384))


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error of any torch backend (cuBLAS workspace included)."""
    return is_out_of_memory(exc)


def _free_accelerator_memory() -> None:
    free_memory()


Finalizer = Callable[[], None]


def run_batches(
    lengths: Sequence[int],
    budget: int,
    step: Callable[[list[int]], Finalizer | None],
    *,
    should_stop: Callable[[], bool],
    progress: TokenProgress,
    order: Sequence[int] | None = None,
    on_done: Callable[[list[int], int], Any] | None = None,
) -> int:
    """Run ``step`` over token-budget batches, halving the budget on out-of-memory errors.

    ``step(batch)`` runs one batch and may return a finalizer that completes it later (the
    device copy of batch ``i`` completes while batch ``i + 1`` computes). Finalizers run in
    batch order; when a batch is finalized ``on_done(batch, budget)`` is called (the
    extraction records it for a resumed run), then progress advances. After an
    out-of-memory error every batch not yet run is planned again under the halved budget,
    not only the one that failed (the later ones would fail the same way). Batches are
    planned from the longest sequence down, so the batches not yet done are planned exactly
    as a new call over them would plan them: a resumed run repeats the same batches.

    Returns
    -------
    int
        The final budget (smaller than the first if memory ran out).

    Raises
    ------
    Cancelled
        When ``should_stop()`` becomes true between batches.
    TokendimError
        When a single sequence does not fit in memory.
    """
    queue: deque[list[int]] = deque(plan_batches(lengths, budget, order))
    pending: tuple[Finalizer | None, list[int]] | None = None

    def finish(item: tuple[Finalizer | None, list[int]] | None) -> None:
        if item is None:
            return
        finalizer, batch = item
        if finalizer is not None:
            finalizer()
        if on_done is not None:
            on_done(batch, budget)
        progress.advance(sum(lengths[i] for i in batch))

    while queue:
        if should_stop():
            finish(pending)  # its results are computed: keep them for a resumed run
            raise Cancelled(_STOPPED)
        batch = queue.popleft()
        out_of_memory = False
        try:
            finalizer = step(batch)
        except Exception as exc:
            if not is_oom(exc):
                raise
            out_of_memory = True
        if out_of_memory:
            # Outside the except block, so the traceback (and the batch's tensors its frames
            # hold) is released before the memory is returned to the device.
            _free_accelerator_memory()
            if len(batch) == 1:
                raise TokendimError(
                    f"Out of memory on a single prompt of {lengths[batch[0]]} tokens. Pass "
                    "max_length= to truncate prompts, use a smaller dtype (dtype='bfloat16'), "
                    "or run on the CPU (device='cpu')."
                ) from None
            longest = max(lengths[i] for i in batch)
            budget = max(1, min(budget, len(batch) * longest) // 2)
            remaining = batch + [i for queued in queue for i in queued]
            queue = deque(plan_batches(lengths, budget, remaining))
            continue
        finish(pending)
        pending = (finalizer, batch)
    finish(pending)
    if should_stop():
        raise Cancelled(_STOPPED)
    return budget


_STOPPED = (
    "Stopped at the user's request; the batches done are kept in the cache folder and the "
    "same call resumes from them."
)


# ---- model placement and identity ------------------------------------------------------
def _is_spread(model: Any) -> bool:
    device_map = getattr(model, "hf_device_map", None)
    if not isinstance(device_map, dict):
        return False
    return len({str(v) for v in device_map.values()}) > 1


def _first_param(model: Any) -> Any:
    import torch

    try:
        return next(model.parameters())
    except StopIteration:
        return torch.empty(0)


def placed_dtype(model: Any, device: Any, dtype: Any) -> tuple[torch.device, torch.dtype]:
    """Device and dtype a given (already loaded) model will run in, without moving it.

    ``"auto"`` keeps the model where and as it is; anything else is resolved by the shared
    policy (:mod:`tokendim_widgets.devices`).
    """
    param = _first_param(model)
    if device is None or (isinstance(device, str) and device == "auto"):
        target = param.device
    else:
        target = resolve_device(device)
    if dtype is None or (isinstance(dtype, str) and dtype == "auto"):
        torch_dtype = param.dtype
    else:
        torch_dtype = resolve_dtype(dtype, target)
    return target, torch_dtype


def place(model: Any, device: torch.device, dtype: torch.dtype) -> None:
    """Move/cast a given model in place when it is not already on ``device`` in ``dtype``."""
    param = _first_param(model)
    if _is_spread(model):
        return  # accelerate placed it over several devices; leave it there
    if param.device != device:
        model.to(device)
    if param.is_floating_point() and param.dtype != dtype:
        model.to(dtype)


def fingerprint(model: Any, tokenizer: Any) -> dict[str, Any]:
    """Identity of a model object not loaded by :func:`load_model`: config, samples, tokenizer.

    Hashes the configuration, every parameter's name, shape and dtype, 64 evenly spaced
    values of each parameter and the tokenizer's vocabulary: cheap even on a GPU, and it
    tells apart different random initialisations and fine-tunes.
    """
    import torch

    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        settings = config.to_dict()
        for volatile in ("transformers_version", "_name_or_path", "name_or_path"):
            settings.pop(volatile, None)
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(type(model).__name__.encode())
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            flat = param.detach().reshape(-1)
            picks = torch.linspace(0, max(flat.numel() - 1, 0), steps=min(64, flat.numel()))
            values = flat[picks.long().to(flat.device)].float().cpu().numpy()
            digest.update(f"{name}{tuple(param.shape)}{param.dtype}".encode())
            digest.update(values.tobytes())
    digest.update(_tokenizer_fingerprint(tokenizer).encode())
    return {"id": f"object:{digest.hexdigest()}", "kind": "object"}


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    if tokenizer is None:
        return ""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(
        tokenizer, "_tokenizer", None
    )
    if backend is not None and hasattr(backend, "to_str"):
        # Truncation and padding are per-call settings the tokenizer keeps from its last
        # call: not part of its identity (else a call with max_length changes the key).
        state = json.loads(backend.to_str())
        text = json.dumps(
            {k: v for k, v in state.items() if k not in ("truncation", "padding")},
            sort_keys=True,
        )
    else:
        vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
        text = json.dumps(sorted(vocab.items()))
    extra = {
        "class": type(tokenizer).__name__,
        "special": sorted(special_ids(tokenizer)),
        "bos": getattr(tokenizer, "add_bos_token", None),
        "eos": getattr(tokenizer, "add_eos_token", None),
    }
    return hashlib.sha256((text + json.dumps(extra, sort_keys=True)).encode()).hexdigest()


def _final_norm(base: Any) -> tuple[str | None, Any]:
    import torch

    for name in _FINAL_NORM_NAMES:
        module = getattr(base, name, None)
        if isinstance(module, torch.nn.Module):
            return name, module
    return None, None


def _model_id(identity: dict[str, Any], model: Any) -> str:
    name = identity.get("model_id")
    if name:
        return str(name)
    config = getattr(model, "config", None)
    path = getattr(config, "_name_or_path", "") or ""
    return os.path.basename(str(path).rstrip("/\\")) or type(model).__name__


@dataclass
class _Plan:
    """Which positions of which prompts are run and stored, and where their rows go."""

    ids: list[list[int]]  # full token ids per prompt
    keep: list[np.ndarray]  # stored positions per prompt (sorted)
    run_length: list[int]  # tokens run through the model per prompt
    offset: np.ndarray  # first destination row per prompt
    tokens: pd.DataFrame


def _plan(
    ids: list[list[int]],
    specials: set[int],
    *,
    drop_special: bool,
    max_tokens: int | None,
    seed: int,
    causal: bool,
    decode: Callable[[int], str],
) -> _Plan:
    prompt_col, pos_col, tid_col, special_col, last_col = [], [], [], [], []
    for p, seq in enumerate(ids):
        arr = np.asarray(seq, dtype=np.int64)
        special = np.isin(arr, np.fromiter(specials, dtype=np.int64, count=len(specials)))
        content = np.flatnonzero(~special)
        is_last = np.zeros(len(arr), dtype=bool)
        if content.size:
            is_last[content[-1]] = True
        rows = content if drop_special else np.arange(len(arr))
        prompt_col.append(np.full(rows.size, p, dtype=np.int32))
        pos_col.append(rows.astype(np.int32))
        tid_col.append(arr[rows])
        special_col.append(special[rows])
        last_col.append(is_last[rows])
    prompt = np.concatenate(prompt_col)
    position = np.concatenate(pos_col)
    total = prompt.size
    if total == 0:
        raise TokendimError(
            "The prompts hold no tokens to store (only special tokens); pass "
            "drop_special=False or give prompts with text."
        )
    chosen = np.arange(total)
    if max_tokens is not None and max_tokens < total:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(total, size=max_tokens, replace=False))
    prompt, position = prompt[chosen], position[chosen]
    token_id = np.concatenate(tid_col)[chosen]
    unique = {int(t): decode(int(t)) for t in np.unique(token_id)}
    tokens = pd.DataFrame(
        {
            "prompt": prompt,
            "position": position,
            "token_id": token_id,
            "token": [unique[int(t)] for t in token_id],
            "special": np.concatenate(special_col)[chosen],
            "is_last": np.concatenate(last_col)[chosen],
        }
    )
    n_prompts = len(ids)
    counts = np.bincount(prompt, minlength=n_prompts)
    offset = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    keep = [position[bounds[p] : bounds[p + 1]].astype(np.int64) for p in range(n_prompts)]
    # A causal model's state at a position depends only on the tokens up to it, so tokens
    # after the last stored one need not run (max_tokens then saves compute too).
    run_length = [
        0 if k.size == 0 else (int(k[-1]) + 1 if causal else len(ids[p]))
        for p, k in enumerate(keep)
    ]
    return _Plan(ids, keep, run_length, offset, tokens)


def _decoder(tokenizer: Any) -> Callable[[int], str]:
    def decode(token_id: int) -> str:
        try:
            return str(
                tokenizer.decode(
                    [token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False
                )
            )
        except Exception:  # any tokenizer failure: fall back to the raw token
            return str(tokenizer.convert_ids_to_tokens(token_id))

    return decode


def _layers_option(layers: Any) -> list[int] | None:
    """The ``layers`` argument as a list of ints (or None for all), checked for type only."""
    if layers is None:
        return None
    if isinstance(layers, int | np.integer) and not isinstance(layers, bool):
        return [int(layers)]
    message = f"layers must be None, an int or a list of ints, got {layers!r}."
    if isinstance(layers, str | bytes):
        raise TokendimError(message)
    try:
        items = list(layers)
    except TypeError:
        raise TokendimError(message) from None
    if any(isinstance(i, bool) or not isinstance(i, int | np.integer) for i in items):
        raise TokendimError(message)
    return [int(i) for i in items]


def _normalise_layers(layers: list[int] | None, total: int) -> list[int]:
    if layers is None:
        return list(range(total))
    wanted = layers
    bad = [i for i in wanted if not -total <= i < total]
    if bad or not wanted:
        raise TokendimError(
            f"layers {bad or wanted} out of range: this model has {total} hidden-state layers "
            f"(0 = embedding output .. {total - 1} = last block; negatives count from the end)."
        )
    return sorted({i % total for i in wanted})


def _layer_kinds(
    layer_ids: list[int], total: int, norm_name: str | None, final_norm: str
) -> list[str]:
    kinds = []
    for i in layer_ids:
        if i == 0:
            kinds.append("embedding")
        elif i == total - 1 and norm_name is not None:
            kinds.append("final_norm" if final_norm == "model" else "pre_norm")
        else:
            kinds.append("residual")
    return kinds


# ---- the public entry point ------------------------------------------------------------
def extraction_key(
    identity: dict[str, Any], prompt_hash: str, options: dict[str, Any]
) -> str | None:
    """Cache key of an extraction, or None when the model has no stable identity yet."""
    if not identity.get("id"):
        return None
    return make_key(NAMESPACE, identity["id"], prompt_hash, options)


def extract(
    model: Any,
    prompts: Any,
    *,
    max_length: int | None = None,
    max_tokens: int | None = None,
    layers: int | Sequence[int] | None = None,
    drop_special: bool = True,
    final_norm: str = "pre_norm",
    batch_tokens: int | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | ProgressCallback | None = True,
    cancel: CancelLike = None,
    seed: int = 0,
    input_ids: Sequence[Sequence[int]] | None = None,
    on_load: Callable[[tuple[Any, Any]], Any] | None = None,
) -> HiddenStates:
    """Hidden states of every layer for every token of a prompt set.

    Parameters
    ----------
    model : str, path or (model, tokenizer)
        A model reference (built-in alias, hub id, local folder, ``.gguf`` file; see
        :func:`~tokendim_widgets.load_model`) or a loaded ``(model, tokenizer)`` pair. With a
        reference, a cached result is returned without loading the model.
    prompts : PromptSet, list of str, built-in set name or file path
        Anything :func:`~tokendim_widgets.as_prompt_set` accepts.
    max_length : int, optional
        Truncate prompts to this many tokens (special tokens included). Without it a prompt
        longer than the model's context is an error.
    max_tokens : int, optional
        Keep a seeded uniform sample of this many tokens (over all prompts); the others are
        not stored. With a causal model the tokens after a prompt's last kept token are not
        run either.
    layers : int or sequence of int, optional
        Which hidden states to keep: 0 = embedding output, ``i`` = after block ``i``,
        negatives from the end. Default: all ``L + 1``.
    drop_special : bool, default True
        Do not store the states of special tokens the tokenizer adds (BOS, CLS, SEP, EOS;
        ``[UNK]`` is kept). The model still sees them.
    final_norm : {"pre_norm", "model"}, default "pre_norm"
        The last layer as the residual stream after the last block, before the model's final
        normalisation (kind ``"pre_norm"``), so that it is measured on the same footing as
        the un-normalised residual layers before it; or as the model returns it, after that
        normalisation (what the LM head reads; kind ``"final_norm"``). No difference for
        models without a final norm (BERT).
    batch_tokens : int, optional
        Padded tokens per forward pass. Default: 512 on CPU, from free memory on CUDA (at
        most 16384). Halved and retried when the device runs out of memory.
    device, dtype : str or torch type, default "auto"
        Where and in what precision to run (see :func:`~tokendim_widgets.load_model`). For a
        given ``(model, tokenizer)``, ``"auto"`` keeps the model as it is and anything else
        moves/casts it in place.
    cache : bool, default True
        Read and write the on-disk cache.
    cache_dir : str or path, optional
        Cache folder (default: ``$TOKENDIM_CACHE_DIR`` or the user cache folder).
    progress : bool or callable, default True
        True: a tqdm progress bar (tokens/s). A callable is called as
        ``progress(done_tokens, total_tokens, tokens_per_second)`` after each batch.
    cancel : threading.Event or callable, optional
        Checked between batches; when set, :class:`~tokendim_widgets.Cancelled` is raised and
        no cache entry is left.
    seed : int, default 0
        Seed of the ``max_tokens`` sample.
    input_ids : list of list of int, optional
        Token ids to run instead of tokenising the texts, one list per prompt, special
        tokens included (e.g. ``PromptSet.shuffled_token_ids(tokenizer)``, the exact
        shuffled control).
    on_load : callable, optional
        Called with the ``(model, tokenizer)`` pair when this call loads the model from its
        reference (not on a cache hit), so a caller can keep it for the next prompt set
        instead of loading it again.

    Returns
    -------
    HiddenStates
        Layers as float32 (memory-mapped and read-only when cached); rows ordered by prompt,
        then position.

    Raises
    ------
    TokendimError
        Empty or blank prompt set, prompts longer than the context without ``max_length``,
        unknown model or alias, bad option values, out of memory on a single prompt.
    Cancelled
        When ``cancel`` was set.

    Examples
    --------
    >>> states = extract("smollm2-135m", "narrative", max_tokens=2000)  # doctest: +SKIP
    >>> states.n_layers, states.hidden_size  # doctest: +SKIP
    (31, 576)
    """
    prompt_set: PromptSet = as_prompt_set(prompts)
    max_length = check_optional_int(max_length, "max_length")
    max_tokens = check_optional_int(max_tokens, "max_tokens")
    batch_tokens = check_optional_int(batch_tokens, "batch_tokens")
    check_choice(final_norm, "final_norm", FINAL_NORM_OPTIONS)
    check_int(seed, "seed")
    should_stop = as_cancel(cancel)
    ids_hash = None
    if input_ids is not None:
        ids_hash = hashlib.sha256(
            json.dumps([[int(t) for t in s] for s in input_ids]).encode()
        ).hexdigest()

    # Identity and compute dtype first: a cache hit must not load the model.
    loaded: tuple[Any, Any] | None = None
    ref = None
    if isinstance(model, str | os.PathLike):
        ref = resolve_model(model)
        identity = model_identity(ref)
        key_dtype = resolve_dtype(dtype, resolve_device(device))
    elif isinstance(model, tuple | list) and len(model) == 2:
        loaded = (model[0], model[1])
        base_model(loaded[0])  # type check with a clear message
        identity = loaded_identity(loaded[0]) or fingerprint(*loaded)
        key_dtype = placed_dtype(loaded[0], device, dtype)[1]
    else:
        raise TokendimError(
            f"model must be a model reference (str or path) or a (model, tokenizer) pair, "
            f"not {type(model).__name__}."
        )
    options: dict[str, Any] = {
        "max_length": max_length,
        "max_tokens": max_tokens,
        "layers": _layers_option(layers),
        "drop_special": bool(drop_special),
        "final_norm": final_norm,
        "dtype": str(key_dtype).replace("torch.", ""),
        "seed": int(seed),
        "input_ids": ids_hash,
    }

    store = Store(cache_dir) if cache else None
    key = extraction_key(identity, prompt_set.hash, options)
    if store is not None and key is not None:
        entry = store.get(NAMESPACE, key)
        if entry is not None:
            states = HiddenStates.from_entry(entry)
            # The key holds the prompts' content, not their name: report this run's name.
            states.prompt_set = {**states.prompt_set, "name": prompt_set.name}
            if callable(progress):
                progress(states.n_tokens, states.n_tokens, 0.0)
            return states

    if loaded is None:
        assert ref is not None
        loaded = models.load_model(  # through the module: tests stand in for it there
            model,
            device=device,
            dtype=dtype,
            # A bar for the load only where one is seen; a callback counts tokens, not tensors.
            progress=None if progress is True else False,
            cache=cache,
            cache_dir=cache_dir,
        )
        if on_load is not None:
            on_load(loaded)
        if key is None:  # a hub model at a branch: its commit is known once downloaded
            identity = loaded_identity(loaded[0]) or model_identity(ref)
            key = extraction_key(identity, prompt_set.hash, options)
        torch_device, torch_dtype = placed_dtype(loaded[0], "auto", "auto")
    else:
        torch_device, torch_dtype = placed_dtype(loaded[0], device, dtype)
        place(loaded[0], torch_device, torch_dtype)
    return _run(
        loaded,
        prompt_set,
        identity=identity,
        options=options,
        store=store,
        key=key,
        torch_device=torch_device,
        torch_dtype=torch_dtype,
        batch_tokens=batch_tokens,
        progress=progress,
        should_stop=should_stop,
        input_ids=input_ids,
    )


def _run(
    loaded: tuple[Any, Any],
    prompt_set: PromptSet,
    *,
    identity: dict[str, Any],
    options: dict[str, Any],
    store: Any,
    key: str | None,
    torch_device: torch.device,
    torch_dtype: torch.dtype,
    batch_tokens: int | None,
    progress: bool | ProgressCallback | None,
    should_stop: Callable[[], bool],
    input_ids: Sequence[Sequence[int]] | None,
) -> HiddenStates:
    import torch

    model, tokenizer = loaded
    base = base_model(model)
    total_layers = n_blocks(model) + 1
    layer_ids = _normalise_layers(options["layers"], total_layers)
    norm_name, norm_module = _final_norm(base)
    pre_norm = options["final_norm"] == "pre_norm" and norm_module is not None
    kinds = _layer_kinds(layer_ids, total_layers, norm_name, options["final_norm"])
    causal = (identity.get("task") or detect_task(model.config)) == "causal"

    ids = tokenize(
        tokenizer,
        prompt_set.texts,
        max_length=options["max_length"],
        limit=context_length(model, tokenizer),
        input_ids=input_ids,
    )
    plan = _plan(
        ids,
        special_ids(tokenizer),
        drop_special=options["drop_special"],
        max_tokens=options["max_tokens"],
        seed=options["seed"],
        causal=causal,
        decode=_decoder(tokenizer),
    )
    n_rows = len(plan.tokens)
    width = int(getattr(_text_config(model), "hidden_size", 0) or 0)
    model_id = _model_id(identity, model)
    model_info = {
        "model_id": model_id,
        "architecture": type(model).__name__,
        "model_type": getattr(model.config, "model_type", None),
        "task": "causal" if causal else "encoder",
        "n_blocks": total_layers - 1,
        "hidden_size": width,
        # The precision the forward pass ran in (also options["dtype"], which keys the cache).
        "dtype": str(torch_dtype).replace("torch.", ""),
        "device": str(torch_device),
        "context_length": context_length(model, tokenizer),
        "final_norm_module": norm_name,
        "tokenizer": type(tokenizer).__name__,
        "identity": identity,
    }
    try:
        import transformers

        model_info["transformers_version"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass

    run_order = [p for p in range(len(ids)) if plan.run_length[p] > 0]
    total_tokens = sum(plan.run_length[p] for p in run_order)
    writer = None
    if store is not None and key is not None:
        # What the partial result of an interrupted run must match to be resumed.
        request = {
            "rows": n_rows,
            "width": width,
            "layers": layer_ids,
            "device": str(torch_device),
            "versions": f"torch={torch.__version__},{model_info.get('transformers_version')}",
            "plan": hashlib.sha256(
                json.dumps([plan.run_length, plan.offset.tolist()]).encode()
            ).hexdigest(),
        }
        writer = store.resumable_writer(NAMESPACE, key, request)
    try:
        if writer is not None:
            if not writer.resumed:
                writer.reserve(len(layer_ids) * n_rows * width * 4)
            outputs: list[np.ndarray] = [
                writer.create_array(layer_file(j), (n_rows, width), np.float32)
                for j in range(len(layer_ids))
            ]
            done = {int(p) for batch in writer.done_items() for p in batch}
        else:
            outputs = [np.empty((n_rows, width), dtype=np.float32) for _ in layer_ids]
            done = set()
        todo = [p for p in run_order if p not in done]
        initial = total_tokens - sum(plan.run_length[p] for p in todo)
        bar = TokenProgress(
            progress, total_tokens, desc=f"hidden states of {model_id}", initial=initial
        )
        step: _Step | None = None
        try:
            step = _Step(
                base,
                plan,
                layer_ids,
                outputs,
                pad_id(tokenizer),
                torch_device,
                norm_module if pre_norm else None,
                total_layers,
            )
            longest = max((plan.run_length[p] for p in run_order), default=0)
            budget = (
                (writer.state.get("budget") if writer is not None else None)
                or batch_tokens
                or default_batch_tokens(model, torch_device, torch_dtype, longest)
            )
            on_done = None
            if writer is not None:
                writer.save_state(budget=budget)
                on_done = _Checkpoints(writer)
            with torch.inference_mode():
                run_batches(
                    plan.run_length,
                    budget,
                    step,
                    should_stop=should_stop,
                    progress=bar,
                    order=todo,
                    on_done=on_done,
                )
        finally:
            bar.close()
            if step is not None:
                step.host.release()
        del step  # it holds the output arrays; the writer must be their last holder
        set_info = {"name": prompt_set.name, "hash": prompt_set.hash}
        meta: dict[str, Any] = {
            "model_id": model_id,
            "model_info": model_info,
            "prompt_set": set_info,
            "options": options,
            "layer_ids": layer_ids,
            "layer_kinds": kinds,
            "n_tokens": n_rows,
            "hidden_size": width,
        }
        if writer is None:
            return HiddenStates(
                outputs,
                plan.tokens,
                layer_ids=layer_ids,
                layer_kinds=kinds,
                model_id=model_id,
                model_info=model_info,
                prompt_set=set_info,
                prompts=prompt_set.texts,
                options=options,
                cache_key=None,
            )
        writer.write_table("tokens", plan.tokens)
        writer.write_json("prompts", list(prompt_set.texts))
        writer.meta.update(meta)
        # Close the writable memory maps before the folder is renamed (Windows refuses to
        # rename a folder with open files) and reopen them read-only from the entry.
        del outputs
        entry = writer.commit()
    except (KeyboardInterrupt, Cancelled, SystemExit):
        if writer is not None:
            writer.abort()  # a resumable writer keeps the batches done for the next call
        raise
    except BaseException:
        if writer is not None:
            writer.discard()  # a failed run is not resumed
        raise
    return HiddenStates.from_entry(entry)


#: Seconds between two checkpoints of an extraction (see :class:`_Checkpoints`).
CHECKPOINT_SECONDS = 1.0


class _Checkpoints:
    """Records finished batches in a resumable writer, checkpointing at most once a second.

    A checkpoint flushes the arrays to disk: doing it after every batch would cost a disk
    write per batch on a GPU that runs hundreds of batches a second.
    """

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.last = time.perf_counter()
        self.budget: int | None = None

    def __call__(self, batch: list[int], budget: int) -> None:
        self.writer.mark_done([int(p) for p in batch])
        if budget != self.budget:  # an out-of-memory error halved it: resume with the new one
            self.writer.save_state(budget=budget)
            self.budget = budget
        now = time.perf_counter()
        if now - self.last >= CHECKPOINT_SECONDS:
            self.writer.checkpoint()
            self.last = now


# ---- device-to-host copies --------------------------------------------------------------
def async_host_copy(device: torch.device) -> bool:
    """Whether batches leave ``device`` asynchronously (CUDA: into page-locked buffers, while
    the next batch computes) rather than by blocking copies."""
    return device.type == "cuda"


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``; on CUDA through page-locked memory, without blocking.

    A copy from pageable memory waits for all the work queued on the stream: issued after a
    forward pass, it would hold the host until that pass ends, and the host's writes of the
    previous batch would overlap nothing.
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def copy_done_event(device: torch.device) -> Any:
    """A CUDA event recorded on ``device``'s current stream, where its copies are queued.

    Not the current device's stream: the model may sit on ``cuda:1``, or a worker thread's
    current device may be another; an event there can complete before the copy has.
    """
    import torch

    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event


def pinned_empty(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A page-locked host tensor of ``numel`` elements."""
    import torch

    return torch.empty(numel, dtype=dtype, pin_memory=True)


class HostBuffers:
    """Two page-locked host buffers used in turn by the device-to-host copies of batches.

    Batch ``i``'s buffer is read (its finalizer) before batch ``i + 2`` writes into it. The
    turn passes only at :meth:`commit`, once a copy is queued: a batch that fails before
    (an allocation out of memory, retried smaller) takes the same buffer again, never the
    one whose batch is still pending. :meth:`release` frees them.
    """

    def __init__(self) -> None:
        self._buffers: list[torch.Tensor | None] = [None, None]
        self._turn = 0
        self._allocated = False

    @property
    def slot(self) -> int:
        """The buffer the next copy goes to (0 or 1)."""
        return self._turn % 2

    def take(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """This turn's buffer as a tensor of ``shape`` (grown, never shrunk, as needed)."""
        numel = int(np.prod(shape))
        slot = self.slot
        buffer = self._buffers[slot]
        if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
            self._buffers[slot] = None  # its batch is done: free it before allocating
            buffer = pinned_empty(numel, dtype)  # slow: reused for the following batches
            self._buffers[slot] = buffer
            self._allocated = True
        return buffer[:numel].view(*shape)

    def commit(self) -> None:
        """The copy into this turn's buffer is queued: the next batch takes the other one."""
        self._turn += 1

    def release(self) -> None:
        """Drop both buffers and return torch's cached page-locked memory to the system."""
        import torch

        self._buffers = [None, None]
        empty = getattr(getattr(torch, "accelerator", None), "empty_host_cache", None)
        if self._allocated and empty is not None and torch.cuda.is_available():
            empty()
        self._allocated = False


class _Step:
    """Runs one batch through the base model and writes the stored rows of every layer."""

    def __init__(
        self,
        base: Any,
        plan: _Plan,
        layer_ids: list[int],
        outputs: list[np.ndarray],
        pad: int,
        device: torch.device,
        norm_module: Any,
        total_layers: int,
    ) -> None:
        import torch

        self.base = base
        self.plan = plan
        self.layer_ids = layer_ids
        self.outputs = outputs
        self.pad = pad
        self.total_layers = total_layers
        self.norm_module = norm_module
        embeddings = base.get_input_embeddings() if hasattr(base, "get_input_embeddings") else None
        weight = getattr(embeddings, "weight", None)
        self.input_device = weight.device if isinstance(weight, torch.Tensor) else device
        self.async_copy = async_host_copy(self.input_device)
        self.host = HostBuffers()
        params = inspect.signature(base.forward).parameters
        self.extra: dict[str, Any] = {"output_hidden_states": True, "return_dict": True}
        if "use_cache" in params:
            self.extra["use_cache"] = False

    def __call__(self, batch: list[int]) -> Finalizer | None:
        import torch

        plan = self.plan
        seqs = [plan.ids[p][: plan.run_length[p]] for p in batch]
        input_ids, mask = collate(seqs, self.pad)
        width = input_ids.shape[1]
        flat = np.concatenate([row * width + plan.keep[p] for row, p in enumerate(batch)])
        dest = np.concatenate([plan.offset[p] + np.arange(plan.keep[p].size) for p in batch])
        index = torch.as_tensor(flat, dtype=torch.long)
        if self.async_copy:  # queued before the forward pass, so nothing waits for it
            input_ids, mask, index = (
                upload(x, self.input_device) for x in (input_ids, mask, index)
            )
        captured: dict[str, torch.Tensor] = {}
        handle = None
        if self.norm_module is not None:

            def grab(_module: Any, args: tuple[Any, ...]) -> None:
                captured["pre_norm"] = args[0]

            handle = self.norm_module.register_forward_pre_hook(grab)
        try:
            out = self.base(
                input_ids=input_ids.to(self.input_device),  # no copy when uploaded
                attention_mask=mask.to(self.input_device),
                **self.extra,
            )
        finally:
            if handle is not None:
                handle.remove()
        states = out.hidden_states
        if states is None or len(states) != self.total_layers:
            raise TokendimError(
                f"{type(self.base).__name__} returned {0 if states is None else len(states)} "
                f"hidden states, expected {self.total_layers}; this architecture is not "
                "supported yet."
            )
        last = self.total_layers - 1
        picked = []
        for i in self.layer_ids:
            tensor = captured["pre_norm"] if (i == last and "pre_norm" in captured) else states[i]
            picked.append(tensor)
        del out, states
        captured.clear()
        if not self.async_copy:
            for j, tensor in enumerate(picked):
                rows = tensor.reshape(-1, tensor.shape[-1]).index_select(0, index.to(tensor.device))
                self.outputs[j][dest] = rows.to("cpu", torch.float32).numpy()
            return None
        # CUDA: gather on the device, one asynchronous copy into pinned memory, and write to
        # the outputs later, while the next batch computes. Under a device map each layer's
        # rows are picked where the layer is, and only those rows cross to the input device.
        indices = {index.device: index}

        def rows_of(t: torch.Tensor) -> torch.Tensor:
            on = indices.get(t.device)
            if on is None:
                on = indices[t.device] = index.to(t.device, non_blocking=t.is_cuda)
            rows = t.reshape(-1, t.shape[-1]).index_select(0, on)
            return rows.to(self.input_device, non_blocking=True)

        gathered = torch.stack([rows_of(t) for t in picked])
        del picked
        host = self.host.take(gathered.shape, gathered.dtype)
        host.copy_(gathered, non_blocking=True)
        done = copy_done_event(self.input_device)
        self.host.commit()

        def finish() -> None:
            done.synchronize()
            for j in range(host.shape[0]):
                self.outputs[j][dest] = host[j].float().numpy()

        return finish


# ---- the re-initialised-weights null control --------------------------------------------
RANDOM_INIT_NAMESPACE = "random_init"
# Options of extract() that do not change the stored states.
_NOT_DATA = ("progress", "cancel", "cache", "cache_dir", "batch_tokens")


def _base_identity(model: Any) -> dict[str, Any]:
    """Identity of a model reference or of a (model, tokenizer) pair, without loading."""
    if isinstance(model, str | os.PathLike):
        return model_identity(resolve_model(model))
    if isinstance(model, tuple | list) and len(model) == 2:
        base_model(model[0])
        identity = loaded_identity(model[0]) or fingerprint(model[0], model[1])
        return {**identity, "model_id": _model_id(identity, model[0])}
    raise TokendimError(
        f"model must be a model reference (str or path) or a (model, tokenizer) pair, "
        f"not {type(model).__name__}."
    )


def random_init_model(
    model: Any,
    *,
    seed: int = 0,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
) -> tuple[Any, Any]:
    """The architecture of ``model`` with seeded, freshly initialised weights.

    The model is built from the model's own configuration by its own class, so its own
    initialisation runs, under ``torch.manual_seed(seed)`` on the CPU (the caller's random
    state is restored). For a reference no trained weight is read (a ``.gguf`` file gives
    only its metadata).

    Parameters
    ----------
    model : str, path or (model, tokenizer)
        A model reference or a loaded pair.
    seed : int, default 0
        Seed of the initialisation.
    device, dtype : str or torch type, default "auto"
        As in :func:`extract`: for a reference the device and dtype the trained model would
        load in, for a pair ``"auto"`` keeps the pair's.

    Returns
    -------
    (model, tokenizer)
        In evaluation mode, with the trained model's tokenizer; its identity (``model_id``
        ``"<name> (random init, seed <seed>)"``) is recorded for :func:`extract`.
    """

    check_int(seed, "seed")
    if isinstance(model, str | os.PathLike):
        config, tokenizer, _, task = load_config(model)
        fresh = init_from_config(config, seed=int(seed), task=task)
        target = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, target)
        base = _base_identity(model)
    else:
        base = _base_identity(model)
        trained, tokenizer = model[0], model[1]
        config = copy.deepcopy(trained.config)
        task = base.get("task") or detect_task(config)
        fresh = init_from_config(config, seed=int(seed), model_class=type(trained))
        target, torch_dtype = placed_dtype(trained, device, dtype)
    fresh.to(target, torch_dtype)
    remember_identity(fresh, {**random_init_identity(base, int(seed)), "task": task})
    return fresh, tokenizer


def random_init_states(
    model: Any, prompts: Any, *, seed: int = 0, **extract_options: Any
) -> HiddenStates:
    """Hidden states of the same architecture with seeded random weights: the null control.

    The ID profile of a trained model means something only against what the architecture
    gives untrained; this runs the exact extraction of :func:`extract` (same tokenizer,
    prompts and options) on :func:`random_init_model`. The states' ``model_id`` reads
    ``"<name> (random init, seed <seed>)"`` and ``model_info["identity"]["kind"]`` is
    ``"random_init"``. The result is cached by the trained model's identity, the seed and the
    options, and a repeated call reads it without building a model.

    Parameters
    ----------
    model : str, path or (model, tokenizer)
        The trained model: a reference (alias, hub id, folder, ``.gguf``) or a loaded pair.
    prompts : PromptSet, list of str, built-in set name or file path
        As in :func:`extract`.
    seed : int, default 0
        Seed of the weights. (The ``max_tokens`` sample has its own seed, ``sample_seed``,
        default 0 as in :func:`extract`, so that the control sees the same tokens.)
    **extract_options
        Any option of :func:`extract` (``max_tokens``, ``layers``, ``device``, ``dtype``,
        ``cache``...), with ``sample_seed`` for its ``seed``.

    Returns
    -------
    HiddenStates

    Raises
    ------
    TokendimError
        An unknown option, or anything :func:`extract` raises.

    Examples
    --------
    >>> null = random_init_states("smollm2-135m", "narrative", seed=0)  # doctest: +SKIP
    >>> null.model_id  # doctest: +SKIP
    'smollm2-135m (random init, seed 0)'
    """
    check_int(seed, "seed")
    allowed = set(inspect.signature(extract).parameters) - {"model", "prompts", "seed"}
    unknown = sorted(set(extract_options) - allowed - {"sample_seed"})
    if unknown:
        raise TokendimError(
            f"random_init_states got unknown options {unknown}; it takes the options of "
            f"extract(): {', '.join(sorted(allowed | {'sample_seed'}))}."
        )
    options = dict(extract_options)
    options["seed"] = options.pop("sample_seed", 0)
    device = options.pop("device", "auto")
    dtype = options.pop("dtype", "auto")
    prompt_set = as_prompt_set(prompts)

    # The index entry: (trained identity, seed, prompts, options) -> the states' cache key.
    store = Store(options.get("cache_dir")) if options.get("cache", True) else None
    index_key = None
    if store is not None:
        identity = random_init_identity(_base_identity(model), int(seed))
        if isinstance(model, str | os.PathLike):
            key_dtype = resolve_dtype(dtype, resolve_device(device))
        else:
            key_dtype = placed_dtype(model[0], device, dtype)[1]
        request = {k: v for k, v in options.items() if k not in _NOT_DATA}
        request["layers"] = _layers_option(request.get("layers"))
        if request.get("input_ids") is not None:
            request["input_ids"] = hashlib.sha256(
                json.dumps([[int(t) for t in s] for s in request["input_ids"]]).encode()
            ).hexdigest()
        request["dtype"] = str(key_dtype).replace("torch.", "")
        if identity["id"] is not None:
            try:
                index_key = make_key(
                    RANDOM_INIT_NAMESPACE, identity["id"], prompt_set.hash, request
                )
            except TypeError:  # an option value with no canonical form: no index
                index_key = None
        entry = store.get(RANDOM_INIT_NAMESPACE, index_key) if index_key else None
        target = entry.meta.get("hidden_states") if entry is not None else None
        found = store.get(NAMESPACE, str(target)) if target else None
        if found is not None:
            states = HiddenStates.from_entry(found)
            progress = options.get("progress", True)
            if callable(progress):
                progress(states.n_tokens, states.n_tokens, 0.0)
            return states

    fresh = random_init_model(model, seed=int(seed), device=device, dtype=dtype)
    states = extract(fresh, prompt_set, **options)
    del fresh
    if store is not None and index_key is not None and states.cache_key is not None:
        store.put(RANDOM_INIT_NAMESPACE, index_key, meta={"hidden_states": states.cache_key})
    return states
