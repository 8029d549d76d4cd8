"""Prompt sets: what runs through the model to make a token cloud.

A :class:`PromptSet` is an immutable list of prompts with a content hash that keys every cache
downstream. Make one from anything with :func:`as_prompt_set`: a built-in set name
(:func:`builtin_sets`), a .txt/.jsonl/.csv file (:func:`load_prompts`), a list of str, or a
Hugging Face dataset (:func:`from_hf_dataset`). :meth:`PromptSet.shuffled` and
:func:`shuffled_token_ids` give the shuffled-token control.

Examples
--------
>>> from tokendim_widgets.prompts import as_prompt_set, builtin_sets
>>> "mixed" in builtin_sets()
True
>>> len(as_prompt_set("mixed")) >= 100
True
"""

from .builtin import GENRES, builtin, builtin_sets
from .loaders import (
    SUPPORTED_SUFFIXES,
    as_prompt_set,
    from_hf_dataset,
    load_prompts,
    parse_prompts,
)
from .promptset import PromptSet, prompt_set_hash
from .shuffle import Tokenizer, shuffled_texts, shuffled_token_ids

__all__ = [
    "GENRES",
    "SUPPORTED_SUFFIXES",
    "PromptSet",
    "Tokenizer",
    "as_prompt_set",
    "builtin",
    "builtin_sets",
    "from_hf_dataset",
    "load_prompts",
    "parse_prompts",
    "prompt_set_hash",
    "shuffled_texts",
    "shuffled_token_ids",
]
