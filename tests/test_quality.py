"""Next-token loss: equal to Hugging Face's own loss per prompt, padding-safe, causal only."""

from __future__ import annotations

import math

import pytest
import torch

from tokendim_widgets import models as models_module
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.quality import model_quality, scored_bytes

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
    # Truncated to one token (the BOS), no prompt has a next token: refused before the run.
    with pytest.raises(TokendimError, match="no room for text"):
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
    # Bits per byte of English text: ~1 for small trained models, 8 for a constant guess.
    assert 0.3 < result["bits_per_byte"] < 3.0
    # Without a BOS in front, the first token's text is context, not scored.
    assert 0.8 * sum(map(len, PROMPTS)) < result["n_bytes"] <= sum(map(len, PROMPTS))


# ---- bits per byte ------------------------------------------------------------------------
# Non-ASCII text, so that UTF-8 bytes and characters differ.
TEXTS = ["Le café est très chaud.", "Hi there", "naïve façade — 3 × 4 = 12"]


def _bits_by_hand(model, ids: list[list[int]], skip: set[int]) -> float:
    """Summed next-token loss in bits from the model's logits, one unpadded prompt at a time."""
    total = 0.0
    with torch.inference_mode():
        for seq in ids:
            logits = model(input_ids=torch.tensor([seq])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            total -= sum(
                float(logp[t - 1, seq[t]]) for t in range(1, len(seq)) if seq[t] not in skip
            )
    return total / math.log(2)


def _with_template(tokenizer, template):
    """A copy of the tiny tokenizer with another post-processor (the original is shared)."""
    import copy

    other = copy.deepcopy(tokenizer)
    other.backend_tokenizer.post_processor = template
    return other


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_bits_per_byte_by_hand(tiny, arch: str) -> None:
    model, tokenizer = tiny(arch)
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    assert all(seq[0] == tokenizer.bos_token_id for seq in ids)  # BOS: every text byte scored
    n_bytes = sum(len(t.encode("utf-8")) for t in TEXTS)
    assert n_bytes > sum(len(t) for t in TEXTS)
    result = model_quality((model, tokenizer), TEXTS, batch_tokens=16)
    assert result["n_bytes"] == n_bytes
    expected = _bits_by_hand(model, ids, set()) / n_bytes
    assert result["bits_per_byte"] == pytest.approx(expected, rel=1e-5)
    # Nothing special is scored here, so bits per byte is the loss rescaled.
    per_token = result["loss"] * result["n_tokens"] / math.log(2) / n_bytes
    assert result["bits_per_byte"] == pytest.approx(per_token, rel=1e-6)
    assert result["loss"] == pytest.approx(_reference(model, tokenizer, TEXTS)[0], rel=1e-5)


def test_bits_per_byte_counts_only_the_scored_text_after_truncation(tiny) -> None:
    model, tokenizer = tiny("llama")
    texts = ["The quick brown fox jumps over the lazy dog.", "SELECT name FROM users;"]
    ids = [tokenizer(t)["input_ids"][:4] for t in texts]
    # Byte-level BPE: the decoded tokens are exactly the text they cover.
    n_bytes = sum(len(tokenizer.decode(seq[1:]).encode("utf-8")) for seq in ids)
    assert n_bytes < sum(len(t) for t in texts)
    result = model_quality((model, tokenizer), texts, max_length=4)
    assert result["n_tokens"] == 6 and result["n_bytes"] == n_bytes
    expected = _bits_by_hand(model, ids, set()) / n_bytes
    assert result["bits_per_byte"] == pytest.approx(expected, rel=1e-5)


def test_bits_per_byte_without_bos_leaves_out_the_first_tokens_text(tiny) -> None:
    from tokenizers import processors

    model, tokenizer = tiny("gpt2")
    plain = _with_template(tokenizer, processors.ByteLevel(trim_offsets=False))
    ids = [plain(t)["input_ids"] for t in TEXTS]
    assert all(seq[0] != tokenizer.bos_token_id for seq in ids)
    n_bytes = sum(
        len(t.encode("utf-8")) - len(plain.decode(seq[:1]).encode("utf-8"))
        for t, seq in zip(TEXTS, ids, strict=True)
    )
    result = model_quality((model, plain), TEXTS)
    assert result["n_bytes"] == n_bytes
    assert result["bits_per_byte"] == pytest.approx(
        _bits_by_hand(model, ids, set()) / n_bytes, rel=1e-5
    )


def test_an_appended_eos_counts_in_the_loss_but_spells_no_byte(tiny) -> None:
    from tokenizers import processors

    model, tokenizer = tiny("llama")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    both = _with_template(
        tokenizer,
        processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
        ),
    )
    ids = [both(t)["input_ids"] for t in TEXTS]
    assert all(seq[-1] == eos for seq in ids)
    n_bytes = sum(len(t.encode("utf-8")) for t in TEXTS)
    result = model_quality((model, both), TEXTS)
    assert result["n_tokens"] == sum(len(s) - 1 for s in ids)  # the EOS is predicted
    assert result["loss"] * result["n_tokens"] / math.log(2) == pytest.approx(
        _bits_by_hand(model, ids, set()), rel=1e-5
    )
    assert result["n_bytes"] == n_bytes
    assert result["bits_per_byte"] == pytest.approx(
        _bits_by_hand(model, ids, {eos}) / n_bytes, rel=1e-5
    )


def test_scored_bytes_of_a_slow_tokenizer_decode_the_ids(tiny) -> None:
    _, tokenizer = tiny("llama")

    class Slow:
        """The tiny tokenizer without character offsets."""

        is_fast = False

        def __getattr__(self, name: str):
            return getattr(tokenizer, name)

    ids = [tokenizer(t)["input_ids"][:7] for t in TEXTS]
    fast = scored_bytes(tokenizer, TEXTS, ids, max_length=7)
    assert scored_bytes(Slow(), TEXTS, ids, max_length=7) == fast
    assert fast[1] == len(b"Hi there")
