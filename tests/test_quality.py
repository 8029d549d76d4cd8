"""Next-token loss: equal to Hugging Face's own loss per prompt, padding-safe, causal only."""

from __future__ import annotations

import math

import pytest
import torch

from tokendim_widgets import models as models_module
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.quality import model_quality

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hi there",
    "A language model moves each token through its layers, one block after another.",
    "def add(a, b):\n    return a + b",
]


def _reference(model, tokenizer, prompts: list[str]) -> tuple[float, int]:
    """Mean NLL from the model's own loss, one unpadded prompt at a time."""
    total, count = 0.0, 0
    with torch.inference_mode():
        for text in prompts:
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            n = ids.shape[1] - 1
            loss = model(input_ids=ids, labels=ids).loss
            total += float(loss) * n
            count += n
    return total / count, count


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("batch_tokens", [4096, 16])
def test_loss_matches_unpadded_reference(tiny, arch: str, batch_tokens: int) -> None:
    model, tokenizer = tiny(arch, padding_side="left")
    expected, count = _reference(model, tokenizer, PROMPTS)
    result = model_quality((model, tokenizer), PROMPTS, batch_tokens=batch_tokens)
    assert result["n_tokens"] == count
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    # A random model over a vocabulary of V tokens is close to uniform: loss ~ log V.
    assert abs(result["loss"] - math.log(len(tokenizer))) < 1.0


def test_from_a_reference(tiny_dir) -> None:
    folder = tiny_dir("gpt2")
    model, tokenizer = models_module.load_model(folder, device="cpu")
    expected, _ = _reference(model, tokenizer, PROMPTS)
    # The reference ran on the CPU in float32: pin the device and dtype (on a CUDA machine
    # "auto" would run bfloat16, far outside this tolerance).
    result = model_quality(folder, PROMPTS, device="cpu", dtype="float32")
    assert result["loss"] == pytest.approx(expected, rel=1e-5)


def test_progress_callback(tiny) -> None:
    calls: list[tuple[int, int, float]] = []
    model_quality(tiny("llama"), PROMPTS, batch_tokens=16, progress=lambda *a: calls.append(a))
    assert calls[-1][0] == calls[-1][1] > 0


def test_encoders_have_no_next_token_loss(tiny) -> None:
    with pytest.raises(TokendimError, match="not a causal language model"):
        model_quality(tiny("bert"), PROMPTS)


def test_nothing_to_predict(tiny) -> None:
    # Truncated to one token (the BOS), no prompt has a next token.
    with pytest.raises(TokendimError, match="no next token"):
        model_quality(tiny("gpt2"), ["a b", "c d"], max_length=1)


def test_bad_model_argument() -> None:
    with pytest.raises(TokendimError, match="model reference"):
        model_quality(3.5, PROMPTS)


@pytest.mark.slow
def test_bundled_smollm2_quality(smollm2) -> None:
    result = model_quality(smollm2, PROMPTS)
    # A trained model predicts English far better than chance (log 49152 = 10.8 nats).
    assert 0.5 < result["loss"] < 6.0
    assert result["n_tokens"] > 30
