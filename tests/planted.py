"""Synthetic hidden states with a planted dimension profile, shared by the analysis tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tokendim_widgets.hidden_states import HiddenStates


def planted_layers(
    dims: tuple[int, ...],
    *,
    n_prompts: int = 30,
    tokens_per_prompt: int = 50,
    width: int = 64,
    noise: float = 0.0,
    seed: int = 0,
) -> HiddenStates:
    """A "model" whose layer l is uniform on a random dims[l]-dimensional subspace.

    Tokens are grouped into prompts of equal length with positions 0..tokens_per_prompt-1,
    like real extractions, so the cloud options have something to select.
    """
    rng = np.random.default_rng(seed)
    n = n_prompts * tokens_per_prompt
    layers = np.empty((len(dims), n, width), dtype=np.float32)
    for i, d in enumerate(dims):
        basis, _ = np.linalg.qr(rng.normal(size=(width, d)))
        latent = rng.uniform(-1.0, 1.0, size=(n, d))
        cloud = latent @ basis.T
        if noise:
            cloud = cloud + rng.normal(scale=noise, size=(n, width))
        layers[i] = (cloud + rng.normal(size=width)).astype(np.float32)
    tokens = pd.DataFrame(
        {
            "prompt": np.repeat(np.arange(n_prompts), tokens_per_prompt).astype(np.int32),
            "position": np.tile(np.arange(tokens_per_prompt), n_prompts).astype(np.int32),
            "token_id": rng.integers(0, 1000, size=n).astype(np.int32),
            "token": [f"t{i}" for i in range(n)],
        }
    )
    return HiddenStates.from_arrays(layers, tokens, model_id=f"planted{dims}")
