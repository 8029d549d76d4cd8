"""Next-token loss and perplexity of a causal LM on a prompt set.

The token-correlation paper relates the working-space dimension to model quality; this module
measures quality on the very prompts whose hidden states are analysed, with the same
tokenisation, right padding and token-budget batching as :func:`~tokendim_widgets.extract`.
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
    tokenize,
)

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
    """Mean next-token negative log-likelihood and perplexity of a causal LM.

    Every token after the first of each prompt is predicted from the tokens before it (a
    BOS the tokenizer adds is context, never a target); the loss is the mean over all
    predicted tokens of all prompts, in nats.

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
        predicted tokens).

    Raises
    ------
    TokendimError
        For an encoder-only model (it predicts no next token), prompts that predict nothing
        (one token each), prompts longer than the context.

    Examples
    --------
    >>> model_quality("smollm2-135m", "narrative")  # doctest: +SKIP
    {'loss': 2.9..., 'perplexity': 19..., 'n_tokens': 1390}
    """
    import torch
    import torch.nn.functional as F

    from .extraction import _positive_int
    from .models import load_model
    from .prompts import as_prompt_set

    prompt_set = as_prompt_set(prompts)
    batch_tokens = _positive_int(batch_tokens, "batch_tokens")
    max_length = _positive_int(max_length, "max_length")
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
    totals = {"nll": 0.0}

    def step(batch: list[int]) -> None:
        seqs: Sequence[Sequence[int]] = [ids[i] for i in batch]
        input_ids, mask = collate(seqs, pad)
        input_ids, mask = input_ids.to(input_device), mask.to(input_device)
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
        # Position t predicts token t + 1; right padding keeps real targets in place.
        targets = input_ids[:, 1:]
        valid = mask[:, 1:].bool()
        chosen = logits[:, :-1][valid.to(logits.device)].float()
        nll = F.cross_entropy(chosen, targets[valid].to(chosen.device), reduction="sum")
        totals["nll"] += float(nll)
        return None

    bar = Progress(progress, sum(lengths), desc="model quality")
    try:
        with torch.inference_mode():
            run_batches(lengths, budget, step, should_stop=lambda: False, progress=bar)
    finally:
        bar.close()
    loss = totals["nll"] / n_predicted
    return {"loss": loss, "perplexity": math.exp(loss), "n_tokens": n_predicted}
