"""Next-token loss, perplexity and bits per byte of a causal LM on a prompt set.

The token-correlation paper relates the working-space dimension to model quality; this module
measures quality on the very prompts whose hidden states are analysed, with the same
tokenisation, right padding and token-budget batching as :func:`~tokendim_widgets.extract`.

Loss per token depends on the tokenizer (a model with longer tokens predicts fewer, harder
ones), so models with different vocabularies are compared in bits per byte (Gao et al. 2020,
"The Pile", arXiv:2101.00027): the total loss of the scored tokens in bits over the
number of UTF-8 bytes of the text those tokens spell.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import TokendimError
from .extraction import (
    Progress,
    ProgressCallback,
    collate,
    context_length,
    pad_id,
    place,
    placed_dtype,
    run_batches,
    special_ids,
    tokenize,
)
from .models import load_model
from .prompts import as_prompt_set
from .validation import check_optional_int

if TYPE_CHECKING:
    import torch

#: Logits are float32 (batch_tokens x vocab): cap them at about this many bytes per batch.
_LOGIT_BYTES = 1 << 30


def _is_causal_lm(model: Any) -> bool:
    name = type(model).__name__
    has_head = callable(getattr(model, "get_output_embeddings", None)) and (
        model.get_output_embeddings() is not None
    )
    return has_head and name.endswith(("ForCausalLM", "LMHeadModel")) and "Masked" not in name


def scored_bytes(
    tokenizer: Any,
    texts: Sequence[str],
    ids: Sequence[Sequence[int]],
    *,
    max_length: int | None = None,
) -> list[int]:
    """UTF-8 bytes of the text each prompt's scored (predicted) tokens spell.

    The scored tokens are positions 1 to n - 1. Their text runs from the end of the first
    token's text (0 when the first token is a special token such as BOS) to the end of the
    last scored non-special token's text, which is where truncation cut the prompt.
    Character offsets come from a fast tokenizer; with a slow one (or ids that the offsets
    call does not reproduce) the text is decoded from the ids instead, which can differ by
    the spaces a tokenizer's decoder normalises.

    Parameters
    ----------
    tokenizer : tokenizer
        The tokenizer that produced ``ids`` from ``texts``.
    texts : sequence of str
        The prompts.
    ids : sequence of sequence of int
        Their token ids, special tokens included, truncated as scored.
    max_length : int, optional
        The truncation ``ids`` were made with.

    Returns
    -------
    list of int
        Bytes per prompt.
    """
    specials = special_ids(tokenizer)
    offsets: list[Any] | None = None
    if getattr(tokenizer, "is_fast", False):
        try:
            encoded = tokenizer(
                list(texts),
                add_special_tokens=True,
                truncation=max_length is not None,
                max_length=max_length,
                padding=False,
                return_offsets_mapping=True,
                return_attention_mask=False,
                verbose=False,
            )
            offsets = [
                spans if [int(t) for t in got] == list(seq) else None
                for got, spans, seq in zip(
                    encoded["input_ids"], encoded["offset_mapping"], ids, strict=True
                )
            ]
        except (NotImplementedError, ValueError, TypeError, KeyError):
            offsets = None

    def spelled(part: Sequence[int]) -> int:
        content = [t for t in part if t not in specials]
        if not content:
            return 0
        decoded = tokenizer.decode(
            content, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return len(str(decoded).encode("utf-8"))

    counts = []
    for p, (text, seq) in enumerate(zip(texts, ids, strict=True)):
        spans = None if offsets is None else offsets[p]
        if spans is None:
            counts.append(max(spelled(seq) - spelled(seq[:1]), 0))
            continue
        start = 0 if seq[0] in specials else int(spans[0][1])
        ends = [int(e) for t, (_, e) in zip(seq[1:], spans[1:], strict=True) if t not in specials]
        end = max(ends, default=start)
        counts.append(len(text[start:end].encode("utf-8")) if end > start else 0)
    return counts


def model_quality(
    model: Any,
    prompts: Any,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    batch_tokens: int | None = None,
    progress: bool | ProgressCallback | None = False,
    max_length: int | None = None,
) -> dict[str, float]:
    """Mean next-token negative log-likelihood, perplexity and bits per byte of a causal LM.

    Every token after the first of each prompt is predicted from the tokens before it (a
    BOS the tokenizer adds is context, never a target); the loss is the mean over all
    predicted tokens of all prompts, in nats.

    Bits per byte (Gao et al. 2020, The Pile) is comparable across tokenizers: the summed
    loss of the predicted non-special tokens, divided by ln 2 and by the UTF-8 bytes of the
    text exactly those tokens spell (:func:`scored_bytes`: without a BOS the first token's
    text is context, not scored; after truncation only the text up to the cut counts;
    special targets such as an appended EOS spell no text and are left out of it).

    Parameters
    ----------
    model : str, path or (model, tokenizer)
        A model reference or the pair from :func:`~tokendim_widgets.load_model`; must be a
        causal language model.
    prompts : PromptSet, list of str, built-in set name or file path
        The text to score.
    device, dtype : str or torch type, default "auto"
        As in :func:`~tokendim_widgets.extract`.
    batch_tokens : int, optional
        Padded tokens per forward pass (default: 1024 on CPU, capped so that one batch's
        logits take at most about 1 GiB).
    progress : bool or callable, default False
        As in :func:`~tokendim_widgets.extract`.
    max_length : int, optional
        Truncate prompts to this many tokens.

    Returns
    -------
    dict
        ``loss`` (mean NLL in nats), ``perplexity`` (``exp(loss)``), ``n_tokens`` (number of
        predicted tokens), ``bits_per_byte`` (NaN when the scored tokens spell no text) and
        ``n_bytes`` (the UTF-8 bytes it divides by).

    Raises
    ------
    TokendimError
        For an encoder-only model (it predicts no next token), prompts that predict nothing
        (one token each), prompts longer than the context.

    Examples
    --------
    >>> model_quality("smollm2-135m", "narrative")  # doctest: +SKIP
    {'loss': 2.9..., 'perplexity': 19..., 'n_tokens': 1390, 'bits_per_byte': 1.1..., ...}
    """
    import torch
    import torch.nn.functional as F

    prompt_set = as_prompt_set(prompts)
    batch_tokens = check_optional_int(batch_tokens, "batch_tokens")
    max_length = check_optional_int(max_length, "max_length")
    if isinstance(model, str | os.PathLike):
        model, tokenizer = load_model(model, device=device, dtype=dtype)
        target, torch_dtype = placed_dtype(model, "auto", "auto")
    elif isinstance(model, tuple | list) and len(model) == 2:
        model, tokenizer = model
        target, torch_dtype = placed_dtype(model, device, dtype)
    else:
        raise TokendimError(
            "model must be a model reference or a (model, tokenizer) pair, "
            f"not {type(model).__name__}."
        )
    if not _is_causal_lm(model):
        raise TokendimError(
            f"{type(model).__name__} is not a causal language model, so it has no next-token "
            "loss; model quality is defined for causal LMs (e.g. 'smollm2-135m')."
        )
    place(model, target, torch_dtype)
    ids = tokenize(
        tokenizer,
        prompt_set.texts,
        max_length=max_length,
        limit=context_length(model, tokenizer),
    )
    lengths = [len(s) for s in ids]
    n_predicted = sum(n - 1 for n in lengths)
    if n_predicted == 0:
        raise TokendimError(
            "Every prompt is a single token, so there is no next token to predict; give "
            "longer prompts."
        )
    vocab = int(model.get_output_embeddings().weight.shape[0])
    cap = max(1, _LOGIT_BYTES // (4 * vocab))
    budget = min(batch_tokens or (1024 if target.type == "cpu" else 8192), cap)
    input_device = model.get_input_embeddings().weight.device
    pad = pad_id(tokenizer)
    totals = {"nll": 0.0, "text_nll": 0.0}
    n_bytes = sum(scored_bytes(tokenizer, prompt_set.texts, ids, max_length=max_length))
    specials = torch.tensor(sorted(special_ids(tokenizer)), dtype=torch.long)

    def step(batch: list[int]) -> None:
        seqs: Sequence[Sequence[int]] = [ids[i] for i in batch]
        input_ids, mask = collate(seqs, pad)
        input_ids, mask = input_ids.to(input_device), mask.to(input_device)
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
        # Position t predicts token t + 1; right padding keeps real targets in place.
        targets = input_ids[:, 1:]
        valid = mask[:, 1:].bool()
        chosen = logits[:, :-1][valid.to(logits.device)].float()
        scored = targets[valid].to(chosen.device)
        nll = F.cross_entropy(chosen, scored, reduction="none")
        totals["nll"] += float(nll.sum())
        # Special targets (an EOS the tokenizer appends) spell no byte of text.
        text = ~torch.isin(scored, specials.to(scored.device))
        totals["text_nll"] += float(nll[text].sum())
        return None

    bar = Progress(progress, sum(lengths), desc="model quality")
    try:
        with torch.inference_mode():
            run_batches(lengths, budget, step, should_stop=lambda: False, progress=bar)
    finally:
        bar.close()
    loss = totals["nll"] / n_predicted
    bits_per_byte = totals["text_nll"] / math.log(2) / n_bytes if n_bytes else math.nan
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "n_tokens": n_predicted,
        "bits_per_byte": bits_per_byte,
        "n_bytes": n_bytes,
    }
