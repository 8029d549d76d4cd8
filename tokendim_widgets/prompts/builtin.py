"""The built-in prompt sets shipped as package data (``prompts/data/<genre>.jsonl``).

Four genres of original English text written for this package, 30 prompts each, every prompt
39 to 85 tokens long for SmolLM2's tokenizer (7,078 tokens in all, mean 59):

* ``narrative``: short scenes of prose fiction;
* ``encyclopedic``: factual paragraphs on science, history and geography;
* ``code``: short snippets in Python, JavaScript, TypeScript, C, C++, Rust, Go, Java, SQL,
  shell, R, HTML and CSS (each record also names its ``language``);
* ``dialogue``: exchanges between named speakers, one turn per line.

The ``mixed`` set holds all of them, interleaved genre by genre (``narrative[0],
encyclopedic[0], code[0], dialogue[0], narrative[1], ...``) so that any prefix of it is
balanced.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from ..errors import TokendimError
from .promptset import PromptSet

#: The single-genre sets, in the order used to interleave ``mixed``.
GENRES: tuple[str, ...] = ("narrative", "encyclopedic", "code", "dialogue")
MIXED = "mixed"


def builtin_sets() -> list[str]:
    """Names of the built-in prompt sets.

    Returns
    -------
    list of str
        ``["narrative", "encyclopedic", "code", "dialogue", "mixed"]``.

    Examples
    --------
    >>> builtin_sets()
    ['narrative', 'encyclopedic', 'code', 'dialogue', 'mixed']
    """
    return [*GENRES, MIXED]


@cache
def _load_genre(genre: str) -> tuple[str, ...]:
    data = resources.files(__package__).joinpath("data", f"{genre}.jsonl")
    texts = []
    for line in data.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if record.get("genre", genre) != genre:  # guards against a mis-filed prompt
                raise RuntimeError(f"built-in prompt filed under {genre!r} says {record['genre']}")
            texts.append(record["text"])
    return tuple(texts)


def builtin(name: str) -> PromptSet:
    """Return a built-in prompt set.

    Parameters
    ----------
    name : str
        One of :func:`builtin_sets` (case-insensitive).

    Returns
    -------
    PromptSet
        Labels hold each prompt's genre; :attr:`PromptSet.source` is ``"builtin:<name>"``.

    Raises
    ------
    TokendimError
        For an unknown name (the known ones are listed).

    Examples
    --------
    >>> ps = builtin("code")
    >>> len(ps), ps.genre
    (30, 'code')
    >>> builtin("mixed").genres
    ('narrative', 'encyclopedic', 'code', 'dialogue')
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key in GENRES:
        texts = _load_genre(key)
        return PromptSet(key, texts, labels=(key,) * len(texts), source=f"builtin:{key}")
    if key == MIXED:
        per_genre = [_load_genre(g) for g in GENRES]
        texts_l: list[str] = []
        labels_l: list[str] = []
        for i in range(max(len(t) for t in per_genre)):
            for genre, texts in zip(GENRES, per_genre, strict=True):
                if i < len(texts):
                    texts_l.append(texts[i])
                    labels_l.append(genre)
        return PromptSet(MIXED, tuple(texts_l), labels=tuple(labels_l), source="builtin:mixed")
    raise TokendimError(
        f"Unknown built-in prompt set {name!r}; choose one of {', '.join(builtin_sets())}, "
        "or pass a list of prompts or a file path."
    )
