"""The re-initialised-weights null control: same architecture and extraction, seeded weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tokendim_widgets
from tokendim_widgets import extraction
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.extraction import extract, random_init_model, random_init_states

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
    "def add(a, b):\n    return a + b",
]


def _no_build(*args, **kwargs):
    raise AssertionError("a model was built although the result is cached")


def test_shapes_match_values_differ_and_a_seed_is_deterministic(tiny, cache_dir: Path) -> None:
    pair = tiny("llama", seed=7)
    trained = extract(pair, PROMPTS, progress=False)
    null = random_init_states(pair, PROMPTS, progress=False)
    assert (null.n_layers, null.n_tokens, null.hidden_size) == (
        trained.n_layers,
        trained.n_tokens,
        trained.hidden_size,
    )
    assert null.layer_kinds == trained.layer_kinds
    assert null.tokens["token_id"].tolist() == trained.tokens["token_id"].tolist()
    assert not np.allclose(null.layer(2), trained.layer(2))
    assert null.model_id.endswith("(random init, seed 0)")
    assert null.model_info["identity"]["kind"] == "random_init"
    assert null.model_info["identity"]["seed"] == 0
    again = random_init_states(pair, PROMPTS, progress=False, cache=False)
    for i in range(null.n_layers):
        np.testing.assert_array_equal(again.layer(i), null.layer(i))
    other = random_init_states(pair, PROMPTS, seed=1, progress=False, cache=False)
    assert not np.allclose(other.layer(1), null.layer(1))
    assert other.model_id.endswith("(random init, seed 1)")


def test_the_models_own_initialisation_under_the_seed(tiny) -> None:
    # The tiny fixture builds its model under torch.manual_seed(seed): re-initialising a
    # seed-3 model with seed 0 gives exactly the seed-0 model.
    null = random_init_states(tiny("gpt2", seed=3), PROMPTS, progress=False, cache=False)
    reference = extract(tiny("gpt2", seed=0), PROMPTS, progress=False, cache=False)
    for i in range(null.n_layers):
        np.testing.assert_array_equal(null.layer(i), reference.layer(i))


def test_the_callers_random_state_is_left_alone(tiny) -> None:
    pair = tiny("llama")  # the fixture seeds torch itself
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    random_init_model(pair, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_a_second_call_reads_the_cache_without_building(
    tiny_dir, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tiny_dir("llama")
    first = random_init_states(folder, PROMPTS, progress=False, max_tokens=20)
    assert first.cache_key is not None
    assert first.model_id == f"{Path(folder).name} (random init, seed 0)"
    monkeypatch.setattr(extraction, "random_init_model", _no_build)
    calls: list[int] = []
    second = random_init_states(
        folder, PROMPTS, max_tokens=20, progress=lambda done, total, rate: calls.append(done)
    )
    assert second.cache_key == first.cache_key and second.is_memory_mapped
    assert calls == [first.n_tokens] == [20]
    np.testing.assert_array_equal(second.layer(-1), first.layer(-1))
    # Another seed or other options are another entry.
    with pytest.raises(AssertionError, match="a model was built"):
        random_init_states(folder, PROMPTS, seed=1, progress=False, max_tokens=20)
    with pytest.raises(AssertionError, match="a model was built"):
        random_init_states(folder, PROMPTS, progress=False, max_tokens=21)


def test_same_states_from_a_reference_and_from_its_loaded_pair(tiny_dir) -> None:
    from tokendim_widgets.models import load_model

    folder = tiny_dir("gpt2")
    by_ref = random_init_states(folder, PROMPTS, seed=2, progress=False, cache=False)
    by_pair = random_init_states(
        load_model(folder, device="cpu"), PROMPTS, seed=2, progress=False, cache=False
    )
    assert by_ref.model_id == by_pair.model_id
    for i in range(by_ref.n_layers):
        np.testing.assert_array_equal(by_ref.layer(i), by_pair.layer(i))


def test_the_sample_seed_is_separate_from_the_weight_seed(tiny) -> None:
    pair = tiny("llama")
    run = {"progress": False, "cache": False, "max_tokens": 15}
    trained = extract(pair, PROMPTS, **run)
    null = random_init_states(pair, PROMPTS, seed=4, **run)
    # The same tokens as the trained model's extraction, whatever the weight seed.
    assert null.tokens[["prompt", "position"]].equals(trained.tokens[["prompt", "position"]])
    resampled = random_init_states(pair, PROMPTS, seed=4, sample_seed=9, **run)
    assert not resampled.tokens[["prompt", "position"]].equals(null.tokens[["prompt", "position"]])


def test_dtype_is_recorded(tiny) -> None:
    null = random_init_states(tiny("llama"), PROMPTS, progress=False, cache=False, dtype="bfloat16")
    assert null.options["dtype"] == "bfloat16" == null.model_info["dtype"]


def test_bad_options(tiny) -> None:
    with pytest.raises(TokendimError, match="unknown options"):
        random_init_states(tiny("llama"), PROMPTS, max_tokenz=3)
    with pytest.raises(TokendimError, match="seed must be an int"):
        random_init_states(tiny("llama"), PROMPTS, seed="zero")
    with pytest.raises(TokendimError, match="model reference"):
        random_init_states(3.5, PROMPTS)


def test_exported() -> None:
    assert "random_init_states" in tokendim_widgets.__all__
    assert tokendim_widgets.random_init_states is random_init_states


def test_initialised_in_float32_whatever_dtype_the_config_names(tiny) -> None:
    import copy

    from tokendim_widgets.models import init_from_config

    model, _ = tiny("llama")
    config = copy.deepcopy(model.config)
    config.dtype = torch.bfloat16  # as a hub config.json often says
    auto = init_from_config(config, seed=0, task="causal")
    direct = init_from_config(config, seed=0, model_class=type(model))
    assert next(auto.parameters()).dtype == torch.float32
    for (name, a), b in zip(auto.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # the fixture's seed-0 float32 model
    assert all(
        torch.equal(a, b) for a, b in zip(auto.parameters(), direct.parameters(), strict=True)
    )
