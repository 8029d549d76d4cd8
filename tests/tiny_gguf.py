"""A tiny random Llama (or Qwen2) written as a ``.gguf`` file (Q8_0 weights), for the load tests.

Built with the gguf package's writer from the offline BPE tokenizer of the shared fixtures, so
the tests exercise transformers' real GGUF reader (metadata, tokenizer, de-quantisation)
without the 100 MB bundled model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN = 64
FFN = 128
BLOCKS = 2
HEADS = 4
KV_HEADS = 2


def write_tiny_gguf(
    path: Path,
    tokenizer: Any,
    *,
    seed: int = 0,
    architecture: str = "llama",
    name: str | None = None,
) -> Path:
    """Write a 2-block model of width 64 with ``tokenizer``'s vocabulary to ``path``.

    ``architecture`` is ``"llama"`` or ``"qwen2"`` (the same blocks, with biases on the query,
    key and value projections); ``name`` goes to ``general.name``. The 2-D weights are
    quantised to Q8_0 (their inner sizes are multiples of 32), the norms and biases stay
    float32; the weights are seeded, so a seed gives the same file.
    """
    import gguf

    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    specials = {tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    n_vocab = len(tokens)

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), architecture)
    if name is not None:
        writer.add_name(name)
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(BLOCKS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in specials else 1 for i in range(n_vocab)])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(True)

    def matrix(name: str, rows: int, cols: int) -> None:
        values = rng.normal(0.0, 0.2, size=(rows, cols)).astype(np.float32)
        quantised = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, quantised, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def norm(name: str) -> None:
        writer.add_tensor(name, (1.0 + 0.1 * rng.normal(size=HIDDEN)).astype(np.float32))

    def bias(name: str, size: int) -> None:
        writer.add_tensor(name, (0.1 * rng.normal(size=size)).astype(np.float32))

    kv_width = HIDDEN // HEADS * KV_HEADS
    matrix("token_embd.weight", n_vocab, HIDDEN)
    for i in range(BLOCKS):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", HIDDEN, HIDDEN)
        matrix(f"blk.{i}.attn_k.weight", kv_width, HIDDEN)
        matrix(f"blk.{i}.attn_v.weight", kv_width, HIDDEN)
        if architecture == "qwen2":
            bias(f"blk.{i}.attn_q.bias", HIDDEN)
            bias(f"blk.{i}.attn_k.bias", kv_width)
            bias(f"blk.{i}.attn_v.bias", kv_width)
        matrix(f"blk.{i}.attn_output.weight", HIDDEN, HIDDEN)
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", FFN, HIDDEN)
        matrix(f"blk.{i}.ffn_up.weight", FFN, HIDDEN)
        matrix(f"blk.{i}.ffn_down.weight", HIDDEN, FFN)
    norm("output_norm.weight")
    matrix("output.weight", n_vocab, HIDDEN)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
