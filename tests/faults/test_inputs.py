"""Careless input: max_length too small for the special tokens, names of cached prompt sets,
and the hostile inputs that were already handled (kept as regressions)."""

from __future__ import annotations

import numpy as np
import pytest

from tokendim_widgets import TokendimError, as_prompt_set, extract, make_estimator

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
]


@pytest.mark.parametrize(("arch", "n_special"), [("bert", 2), ("gpt2", 1)])
def test_max_length_that_leaves_no_room_for_text_is_an_error(tiny, arch, n_special):
    pair = tiny(arch)
    for max_length in range(1, n_special + 1):
        with pytest.raises(TokendimError, match=f"Use max_length >= {n_special + 1}"):
            extract(pair, PROMPTS, max_length=max_length, cache=False, progress=False)
    states = extract(pair, PROMPTS, max_length=n_special + 1, cache=False, progress=False)
    assert states.n_tokens == len(PROMPTS)  # one text token per prompt, specials dropped
    assert (states.tokens.groupby("prompt").size() == 1).all()


def test_too_long_prompts_are_not_asked_for_max_length_when_it_was_given(tiny):
    pair = tiny("gpt2")
    long_prompt = " ".join(PROMPTS * 40)  # far beyond the tiny model's 128 positions
    with pytest.raises(TokendimError, match="Pass max_length=128"):
        extract(pair, [long_prompt], cache=False, progress=False)
    states = extract(pair, [long_prompt], max_length=16, cache=False, progress=False)
    assert states.n_tokens == 15  # BOS dropped


def test_a_cached_entry_reports_the_name_of_this_run(tiny, cache_dir):
    pair = tiny("gpt2")
    first = extract(pair, as_prompt_set(PROMPTS, name="first"), progress=False)
    second = extract(pair, as_prompt_set(PROMPTS, name="second"), progress=False)
    assert second.cache_key == first.cache_key  # same content, same entry
    assert first.prompt_set["name"] == "first" and second.prompt_set["name"] == "second"


# ---- already handled: kept so that they stay handled -----------------------------------------
@pytest.mark.parametrize(
    ("prompts", "match"),
    [([], "empty|no prompt"), (["", "   "], "empty|blank|no prompt")],
)
def test_empty_and_blank_prompts(tiny, prompts, match):
    with pytest.raises(TokendimError, match=f"(?i){match}"):
        extract(tiny("gpt2"), prompts, cache=False, progress=False)


def test_unknown_model_and_missing_prompt_file(tmp_path):
    with pytest.raises(TokendimError, match=r"(?i)unknown|no model"):
        extract(tmp_path / "no-such-model", PROMPTS, cache=False, progress=False)
    with pytest.raises(TokendimError):
        extract("minilm-l6", tmp_path / "missing.txt", cache=False, progress=False)


@pytest.mark.parametrize(
    "X",
    [
        np.full((50, 4), np.nan),
        np.ones(10),
        np.zeros((2, 3)),
        np.array([["a", "b"]] * 30),
    ],
    ids=["nan", "1-d", "too-few", "text"],
)
def test_bad_arrays_raise_our_error(X):
    with pytest.raises(TokendimError):
        make_estimator("twonn").fit(X)


@pytest.mark.parametrize("option", [{"max_tokens": 0}, {"max_length": -1}, {"seed": "x"}])
def test_bad_extraction_options(tiny, option):
    with pytest.raises(TokendimError):
        extract(tiny("gpt2"), PROMPTS, cache=False, progress=False, **option)
