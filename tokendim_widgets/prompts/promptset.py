"""The :class:`PromptSet`: an immutable, content-hashed sequence of prompts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, overload

from ..errors import TokendimError
from .shuffle import Tokenizer, shuffled_texts, shuffled_token_ids

#: Prefix of the canonical encoding. Bump the version only together with the expected hash in
#: the tests: every cached hidden-state store is keyed on this hash.
_HASH_DOMAIN = b"tokendim-widgets/prompt-set/v1\x00"


def prompt_set_hash(texts: Sequence[str]) -> str:
    """Return the hex SHA-256 of the canonical encoding of ``texts``.

    The encoding is a fixed domain prefix, then the number of texts and, for each text, its
    UTF-8 length and bytes, the integers as unsigned 64-bit big-endian. Length prefixes make it
    unambiguous (``["ab", "c"]`` and ``["a", "bc"]`` differ) and it depends on nothing but the
    code points, so it is the same on every platform and Python version. No normalisation is
    applied: texts that differ in any code point give different hidden states, so they must
    give different hashes.

    Parameters
    ----------
    texts : sequence of str
        The prompts, in order.

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> prompt_set_hash(["a", "b"]) == prompt_set_hash(("a", "b"))
    True
    >>> prompt_set_hash(["ab", "c"]) == prompt_set_hash(["a", "bc"])
    False
    """
    digest = hashlib.sha256(_HASH_DOMAIN)
    digest.update(len(texts).to_bytes(8, "big"))
    for text in texts:
        # surrogatepass: a lone surrogate (possible in a Python str) still hashes, distinctly.
        data = text.encode("utf-8", errors="surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _describe_indices(indices: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    if len(indices) > limit:
        shown += f", ... ({len(indices)} in all)"
    return shown


@dataclass(frozen=True, init=False, repr=False)
class PromptSet:
    """An immutable, ordered set of prompts with a stable content hash.

    Parameters
    ----------
    name : str
        A short human-readable name (``"narrative"``, a file stem, ``"custom"``). It does not
        enter :attr:`hash`.
    texts : iterable of str
        The prompts, in order, stored as a tuple. Must be non-empty and no prompt may be empty
        or whitespace only.
    labels : iterable of str, optional
        One label per prompt (for the built-in sets, its genre), used to colour and group
        tokens. ``None`` when the prompts carry no label.
    source : str, optional
        Where the prompts came from (``"builtin:code"``, a file path, ``"hf:wikitext"``); for
        display only.

    Attributes
    ----------
    hash : str
        Hex SHA-256 of the canonical encoding of :attr:`texts` (see :func:`prompt_set_hash`):
        stable across runs, platforms and Python versions; independent of name, labels and
        source. Caches of hidden states are keyed on it.

    Raises
    ------
    TokendimError
        If the set is empty, a prompt is not a str, some prompts are blank (their indices are
        listed) or the labels do not match the prompts.

    Examples
    --------
    >>> ps = PromptSet("demo", ("The cat sat.", "def f(x): return x"))
    >>> len(ps), ps[1]
    (2, 'def f(x): return x')
    >>> ps.hash == PromptSet("other name", ["The cat sat.", "def f(x): return x"]).hash
    True
    """

    name: str
    texts: tuple[str, ...]
    labels: tuple[str, ...] | None = None
    source: str = ""

    # An explicit __init__ (not the generated one) so that any iterable of str type-checks
    # as input while the attributes stay tuples.
    def __init__(
        self,
        name: str,
        texts: Iterable[str],
        labels: Iterable[str] | None = None,
        source: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TokendimError("A PromptSet needs a non-empty str name.")
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise TokendimError(
                f"Prompt set {name!r}: texts must be a list or tuple of prompts, not a "
                f"{type(texts).__name__}; wrap a single prompt in a list, e.g. ['my prompt']."
            )
        texts = tuple(texts)
        if not texts:
            raise TokendimError(
                f"Prompt set {name!r} is empty: give at least one non-blank prompt "
                "(or a built-in set, see tokendim_widgets.prompts.builtin_sets())."
            )
        not_str = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if not_str:
            kinds = sorted({type(texts[i]).__name__ for i in not_str})
            raise TokendimError(
                f"Prompt set {name!r}: prompts at index {_describe_indices(not_str)} are "
                f"not str (found {', '.join(kinds)}); convert them to text first."
            )
        texts = tuple(str(t) for t in texts)  # plain str, also for numpy.str_ and the like
        blank = [i for i, t in enumerate(texts) if not t.strip()]
        if blank:
            raise TokendimError(
                f"Prompt set {name!r}: {len(blank)} of {len(texts)} prompts are empty or "
                f"whitespace only (0-based index {_describe_indices(blank)}); remove them or "
                "give them text."
            )
        if labels is not None:
            labels = tuple(labels)
            if len(labels) != len(texts) or not all(isinstance(x, str) for x in labels):
                raise TokendimError(
                    f"Prompt set {name!r}: labels must be one str per prompt "
                    f"({len(texts)}), got {len(labels)}."
                )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "source", str(source))

    # The hash is cached on first use; cached_property writes to the instance __dict__
    # directly, which a frozen dataclass allows (it has no __slots__).
    @cached_property
    def hash(self) -> str:
        """Hex SHA-256 of the canonical encoding of the texts (see :func:`prompt_set_hash`)."""
        return prompt_set_hash(self.texts)

    @property
    def genre(self) -> str | None:
        """The common label when every prompt has the same one (a one-genre set), else None."""
        if self.labels is None or len(set(self.labels)) != 1:
            return None
        return self.labels[0]

    @property
    def genres(self) -> tuple[str, ...]:
        """The distinct labels in order of first appearance (empty when unlabelled)."""
        if self.labels is None:
            return ()
        return tuple(dict.fromkeys(self.labels))

    def __len__(self) -> int:
        return len(self.texts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> PromptSet: ...

    def __getitem__(self, index: int | slice) -> str | PromptSet:
        """A prompt by position, or a sub-set (a new PromptSet) by slice."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self.texts))
            return self.select(range(start, stop, step))
        return self.texts[index]

    def __repr__(self) -> str:
        genres = f", genres={list(self.genres)}" if self.labels is not None else ""
        return f"PromptSet(name={self.name!r}, n={len(self)}{genres}, hash={self.hash[:12]!r})"

    def select(self, indices: Iterable[int], *, name: str | None = None) -> PromptSet:
        """Return the prompts at ``indices`` (in that order) as a new set.

        Parameters
        ----------
        indices : iterable of int
            Positions to keep; repeats and negative positions are allowed.
        name : str, optional
            Name of the result; by default ``"<name>[subset]"``.

        Returns
        -------
        PromptSet

        Examples
        --------
        >>> PromptSet("s", ["a b", "c d", "e f"]).select([2, 0]).texts
        ('e f', 'a b')
        """
        idx = [int(i) for i in indices]
        try:
            texts = tuple(self.texts[i] for i in idx)
            labels = None if self.labels is None else tuple(self.labels[i] for i in idx)
        except IndexError:
            raise TokendimError(
                f"Prompt set {self.name!r} has {len(self)} prompts; index out of range in "
                f"{_describe_indices(idx)}."
            ) from None
        return replace(self, name=name or f"{self.name}[subset]", texts=texts, labels=labels)

    def with_name(self, name: str) -> PromptSet:
        """Return the same prompts under another name (the hash does not change)."""
        return replace(self, name=name)

    def shuffled(self, tokenizer: Tokenizer, seed: int = 0, *, max_tries: int = 64) -> PromptSet:
        """The shuffled-token control: each prompt's tokens in a seeded random order, as text.

        See :func:`tokendim_widgets.prompts.shuffled_texts`; the result is named
        ``"<name>-shuffled"``. For an exact control (no re-tokenisation drift), feed
        :meth:`shuffled_token_ids` to the extraction instead.

        Parameters
        ----------
        tokenizer : Hugging Face tokenizer
            The tokenizer of the model the set will run through.
        seed : int, default 0
            Seed of the permutations; the same seed gives the same result everywhere.
        max_tries : int, default 64
            Round trips per prompt allowed to find an order whose text re-tokenises exactly.

        Returns
        -------
        PromptSet

        Examples
        --------
        >>> control = prompts.shuffled(tokenizer, seed=0)  # doctest: +SKIP
        """

        return shuffled_texts(self, tokenizer, seed=seed, max_tries=max_tries)

    def shuffled_token_ids(
        self, tokenizer: Tokenizer, seed: int = 0, *, add_special_tokens: bool = True
    ) -> list[list[int]]:
        """The shuffled-token control as token ids, one list per prompt (exact, no decoding).

        See :func:`tokendim_widgets.prompts.shuffled_token_ids`.

        Examples
        --------
        >>> ids = prompts.shuffled_token_ids(tokenizer, seed=0)  # doctest: +SKIP
        """

        return shuffled_token_ids(self, tokenizer, seed=seed, add_special_tokens=add_special_tokens)

    def to_records(self) -> list[dict[str, Any]]:
        """The prompts as ``{"index", "text", "label"}`` dicts (e.g. for a DataFrame)."""
        labels = self.labels or ("",) * len(self.texts)
        return [
            {"index": i, "text": t, "label": lab}
            for i, (t, lab) in enumerate(zip(self.texts, labels, strict=True))
        ]
