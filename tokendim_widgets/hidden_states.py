"""The hidden states of a token cloud: one float32 matrix per layer plus token metadata.

A :class:`HiddenStates` is what :func:`~tokendim_widgets.extract` returns and what every
analysis consumes. Row ``i`` of every layer and row ``i`` of :attr:`HiddenStates.tokens`
describe the same token. Layers read from the cache are read-only memory maps, so opening a
large extraction costs no memory until a layer is used.

Layer kinds
-----------
Each stored layer has a kind (:attr:`HiddenStates.layer_kinds`), recorded in the metadata:

``"embedding"``
    The input of the first block: the token embeddings (plus position embeddings, embedding
    layer norm or scaling where the architecture has them), as Hugging Face's
    ``hidden_states[0]``.
``"residual"``
    The residual stream after a block (``hidden_states[i]``, ``1 <= i <= L``). In post-norm
    encoders (BERT) the block output is already layer-normalised.
``"final_norm"``
    The last block's output after the model's final normalisation (``model.norm``,
    ``ln_f``...): what the LM head reads, and Hugging Face's ``hidden_states[L]`` for
    pre-norm decoders. Its scale differs from the un-normalised residual layers before it.
``"pre_norm"``
    The last block's output *before* that final normalisation (the default of
    :func:`~tokendim_widgets.extract`), so that the last layer compares like for like with
    the other residual layers.
``"synthetic"``
    Arrays given to :meth:`HiddenStates.from_arrays` without a kind.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .devices import as_host_array
from .errors import TokendimError
from .validation import check_int

if TYPE_CHECKING:
    from .store import Entry, EntryWriter

LAYER_KINDS: tuple[str, ...] = ("embedding", "residual", "final_norm", "pre_norm", "synthetic")

#: Columns :attr:`HiddenStates.tokens` always has, in this order.
TOKEN_COLUMNS: tuple[str, ...] = ("prompt", "position", "token_id", "token")


def _as_layer_list(layers: Any) -> list[np.ndarray]:
    layers = as_host_array(layers)  # torch tensors (CUDA, bfloat16) as float32 arrays
    if isinstance(layers, np.ndarray):
        if layers.ndim != 3:
            raise TokendimError(
                "layers must be a 3-D array (n_layers, n_tokens, hidden_size) or a sequence "
                f"of 2-D arrays (n_tokens, hidden_size); got an array of shape {layers.shape}."
            )
        arrays = [layers[i] for i in range(layers.shape[0])]
    else:
        try:
            arrays = [np.asarray(as_host_array(layer)) for layer in layers]
        except TypeError:
            raise TokendimError(
                f"layers must be an array or a sequence of arrays, not {type(layers).__name__}."
            ) from None
    if not arrays:
        raise TokendimError("layers is empty: give at least one (n_tokens, hidden_size) array.")
    shape = arrays[0].shape
    for i, layer in enumerate(arrays):
        if layer.ndim != 2 or layer.shape != shape:
            raise TokendimError(
                f"Every layer must be a 2-D array of the same shape; layer {i} has shape "
                f"{layer.shape}, layer 0 has {shape}."
            )
        if not np.issubdtype(layer.dtype, np.number) or np.iscomplexobj(layer):
            raise TokendimError(f"Layer {i} is not real-valued (dtype {layer.dtype}).")
    if shape[0] == 0 or shape[1] == 0:
        raise TokendimError(f"Layers of shape {shape} hold no data.")
    # No copy when the caller already gives float32 (memory maps stay memory maps).
    return [np.asarray(layer, dtype=np.float32) for layer in arrays]


def _default_tokens(n_tokens: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt": np.zeros(n_tokens, dtype=np.int32),
            "position": np.arange(n_tokens, dtype=np.int32),
            "token_id": np.full(n_tokens, -1, dtype=np.int64),
            "token": [""] * n_tokens,
        }
    )


def _check_tokens(tokens: pd.DataFrame, n_tokens: int) -> pd.DataFrame:
    if not isinstance(tokens, pd.DataFrame):
        raise TokendimError(f"tokens must be a pandas DataFrame, not {type(tokens).__name__}.")
    if len(tokens) != n_tokens:
        raise TokendimError(
            f"tokens has {len(tokens)} rows but the layers have {n_tokens}: row i of tokens "
            "must describe row i of every layer."
        )
    tokens = tokens.reset_index(drop=True)
    defaults = _default_tokens(n_tokens)
    for column in TOKEN_COLUMNS:
        if column not in tokens.columns:
            tokens[column] = defaults[column]
    rest = [c for c in tokens.columns if c not in TOKEN_COLUMNS]
    return tokens[[*TOKEN_COLUMNS, *rest]]


class HiddenStates:
    """Hidden states of every token at every stored layer, with token metadata.

    Build one with :func:`~tokendim_widgets.extract` (from a model) or
    :meth:`from_arrays` (synthetic clouds); the constructor is internal.

    Attributes
    ----------
    n_layers : int
        Number of stored layers. A full extraction stores the embedding output and every
        block: ``L + 1`` for a model of ``L`` blocks.
    n_tokens : int
        Number of tokens (rows of every layer).
    hidden_size : int
        Width of the hidden states.
    layer_ids : tuple of int
        For stored layer ``i``, its index in the model's hidden states (0 = embedding output,
        ``j`` = after block ``j``). ``(0, 1, ..., L)`` for a full extraction.
    layer_kinds : tuple of str
        Per stored layer, one of ``"embedding"``, ``"residual"``, ``"final_norm"``,
        ``"pre_norm"`` (see the module documentation) or ``"synthetic"``.
    tokens : pandas.DataFrame
        Row ``i`` describes row ``i`` of every layer. Columns: ``prompt`` (index of the
        prompt in the set), ``position`` (index in the model input, special tokens counted),
        ``token_id``, ``token`` (its text, untrusted: render as text), then extras from the
        extraction: ``special`` (a special token such as BOS/CLS/SEP; only present when kept),
        ``is_last`` (the last non-special token of its prompt).
    model_id : str
        Stable name of the model (the alias, hub id or file name).
    model_info : dict
        Architecture, number of blocks, dtype, device, identity of the weights.
    prompt_set : dict
        ``{"name": ..., "hash": ...}`` of the prompt set.
    prompts : tuple of str
        The prompt texts (``tokens["prompt"]`` indexes them).
    options : dict
        The extraction options that shaped the data (max_length, max_tokens, layers,
        drop_special, final_norm, dtype, seed...).
    cache_key : str or None
        Key of the cache entry the states were read from or written to; None when not cached.
    uid : str
        Unique to this object (never reused, unlike ``id()``): results cached from these
        states are keyed by it.

    Examples
    --------
    >>> import numpy as np
    >>> hs = HiddenStates.from_arrays(np.zeros((3, 5, 4), dtype=np.float32))
    >>> hs.n_layers, hs.n_tokens, hs.hidden_size
    (3, 5, 4)
    >>> hs.layer(-1).shape
    (5, 4)
    """

    def __init__(
        self,
        layers: Sequence[np.ndarray],
        tokens: pd.DataFrame,
        *,
        layer_ids: Sequence[int] | None = None,
        layer_kinds: Sequence[str] | None = None,
        model_id: str = "synthetic",
        model_info: Mapping[str, Any] | None = None,
        prompt_set: Mapping[str, Any] | None = None,
        prompts: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        cache_key: str | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        self._layers = list(layers)
        # A subset keeps the parent's arrays and applies the row index on access, so taking
        # a subset of memory-mapped states reads nothing until a layer is asked for.
        self._rows = rows
        n_tokens = len(rows) if rows is not None else int(self._layers[0].shape[0])
        self._tokens = _check_tokens(tokens, n_tokens)
        n = len(self._layers)
        self.layer_ids: tuple[int, ...] = (
            tuple(range(n)) if layer_ids is None else tuple(int(i) for i in layer_ids)
        )
        self.layer_kinds: tuple[str, ...] = (
            ("synthetic",) * n if layer_kinds is None else tuple(layer_kinds)
        )
        if len(self.layer_ids) != n or len(self.layer_kinds) != n:
            raise TokendimError(
                f"{n} layers but {len(self.layer_ids)} layer ids and "
                f"{len(self.layer_kinds)} layer kinds."
            )
        unknown = sorted(set(self.layer_kinds) - set(LAYER_KINDS))
        if unknown:
            raise TokendimError(f"Unknown layer kinds {unknown}; use {', '.join(LAYER_KINDS)}.")
        self.model_id = str(model_id)
        self.model_info: dict[str, Any] = dict(model_info or {})
        self.prompt_set: dict[str, Any] = dict(prompt_set or {"name": "synthetic", "hash": ""})
        self.prompts: tuple[str, ...] = tuple(prompts)
        self.options: dict[str, Any] = dict(options or {})
        self.cache_key = cache_key
        # Unique to this object for the life of the process (unlike id(), never reused): the
        # key under which results computed from these states are cached.
        self.uid = uuid.uuid4().hex

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        layers: np.ndarray | Sequence[np.ndarray],
        tokens: pd.DataFrame | None = None,
        *,
        prompts: Sequence[str] | None = None,
        model_id: str = "synthetic",
        model_info: Mapping[str, Any] | None = None,
        layer_kinds: Sequence[str] | None = None,
        layer_ids: Sequence[int] | None = None,
        prompt_set: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> HiddenStates:
        """Wrap arrays (e.g. a synthetic cloud with a planted dimension) as hidden states.

        Parameters
        ----------
        layers : array (n_layers, n_tokens, hidden_size) or sequence of (n_tokens, hidden_size)
            One matrix per layer; converted to float32 (no copy when already float32).
        tokens : pandas.DataFrame, optional
            One row per token. Missing columns among ``prompt``, ``position``, ``token_id``,
            ``token`` are filled in (all tokens in prompt 0 at positions 0, 1, ...).
        prompts : sequence of str, optional
            The prompt texts; empty by default.
        model_id : str, default "synthetic"
            Name shown in plots and reports.
        model_info : dict, optional
            Free-form description of the source.
        layer_kinds : sequence of str, optional
            Per layer kind (see the module documentation); ``"synthetic"`` by default.
        layer_ids : sequence of int, optional
            Per layer index in the source model; ``0, 1, ...`` by default.
        prompt_set : dict, optional
            ``{"name", "hash"}`` of the prompts.
        options : dict, optional
            How the arrays were made.

        Returns
        -------
        HiddenStates
            With ``cache_key=None``.

        Raises
        ------
        TokendimError
            If the layers are empty, not 2-D, of different shapes, or tokens has another
            number of rows.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> hs = HiddenStates.from_arrays(rng.normal(size=(2, 100, 8)))
        >>> hs.layer(0).dtype, list(hs.tokens.columns)
        (dtype('float32'), ['prompt', 'position', 'token_id', 'token'])
        """
        arrays = _as_layer_list(layers)
        n_tokens = arrays[0].shape[0]
        frame = _default_tokens(n_tokens) if tokens is None else tokens
        return cls(
            arrays,
            frame,
            layer_ids=layer_ids,
            layer_kinds=layer_kinds,
            model_id=model_id,
            model_info=model_info,
            prompt_set=prompt_set,
            prompts=() if prompts is None else prompts,
            options=options,
        )

    # ---- shape -------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of stored layers."""
        return len(self._layers)

    @property
    def n_tokens(self) -> int:
        """Number of tokens (rows)."""
        return len(self._tokens)

    @property
    def hidden_size(self) -> int:
        """Width of every layer."""
        return int(self._layers[0].shape[1])

    @property
    def tokens(self) -> pd.DataFrame:
        """Token metadata, row ``i`` for row ``i`` of every layer (see the class docs)."""
        return self._tokens

    @property
    def compute_dtype(self) -> str:
        """The precision the model computed the states in (``"float32"`` for synthetic ones).

        Stored layers are float32 whatever it was; near copies of one state differ by the
        rounding of this precision (see :func:`~tokendim_widgets.graphs.merge_rtol`).
        """
        return str(self.options.get("dtype") or "float32").replace("torch.", "")

    @property
    def is_memory_mapped(self) -> bool:
        """True when the layers are read from disk on demand (cached states)."""
        return isinstance(self._layers[0], np.memmap)

    @property
    def nbytes(self) -> int:
        """Bytes of all layers (what loading every layer into memory would cost)."""
        return self.n_layers * self.n_tokens * self.hidden_size * 4

    # ---- access ------------------------------------------------------------------------
    def layer(self, i: int) -> np.ndarray:
        """The hidden states at stored layer ``i``.

        Parameters
        ----------
        i : int
            Position among the stored layers, ``0 <= i < n_layers``; negative counts from
            the end. (For a full extraction it equals the model's layer index; see
            :attr:`layer_ids` otherwise.)

        Returns
        -------
        numpy.ndarray
            float32, shape ``(n_tokens, hidden_size)``. Read-only for cached states (a memory
            map) and for subsets; copy it before modifying it in place.

        Examples
        --------
        >>> import numpy as np
        >>> hs = HiddenStates.from_arrays(np.ones((2, 3, 4), dtype=np.float32))
        >>> float(hs.layer(1).sum())
        12.0
        """
        check_int(i, "Layer index")
        if not -self.n_layers <= i < self.n_layers:
            raise TokendimError(
                f"Layer {i} does not exist: these states have {self.n_layers} layers "
                f"(0..{self.n_layers - 1})."
            )
        data = self._layers[int(i)]
        if self._rows is None:
            return data
        out = data[self._rows]
        out.flags.writeable = False
        return out

    def __repr__(self) -> str:
        cached = f", cache_key={self.cache_key[:12]!r}" if self.cache_key else ""
        return (
            f"HiddenStates(model_id={self.model_id!r}, n_layers={self.n_layers}, "
            f"n_tokens={self.n_tokens}, hidden_size={self.hidden_size}, "
            f"prompt_set={self.prompt_set.get('name')!r}{cached})"
        )

    def subset(self, rows: Any) -> HiddenStates:
        """The same states restricted to some tokens (rows), in the given order.

        Parameters
        ----------
        rows : array-like of int or bool
            Row indices, or a boolean mask of length ``n_tokens``.

        Returns
        -------
        HiddenStates
            Its tokens are re-indexed from 0; a ``source_row`` column holds the row each came
            from. Layers are gathered on access (nothing is copied up front). ``cache_key``
            is None.

        Examples
        --------
        >>> import numpy as np
        >>> hs = HiddenStates.from_arrays(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
        >>> sub = hs.subset([2, 0])
        >>> sub.n_tokens, sub.layer(0)[0].tolist(), sub.tokens["source_row"].tolist()
        (2, [8.0, 9.0, 10.0, 11.0], [2, 0])
        """
        index = np.asarray(rows)
        if index.dtype == bool:
            if index.shape != (self.n_tokens,):
                raise TokendimError(
                    f"A boolean row mask must have length n_tokens={self.n_tokens}, "
                    f"got shape {index.shape}."
                )
            index = np.flatnonzero(index)
        elif index.size == 0:
            index = np.zeros(0, dtype=np.int64)
        elif not np.issubdtype(index.dtype, np.integer) or index.ndim != 1:
            raise TokendimError("rows must be a 1-D sequence of int indices or a boolean mask.")
        index = index.astype(np.int64)
        if index.size and (index.min() < -self.n_tokens or index.max() >= self.n_tokens):
            raise TokendimError(f"Row index out of range for {self.n_tokens} tokens.")
        index = np.where(index < 0, index + self.n_tokens, index)
        if index.size == 0:
            raise TokendimError("The subset is empty: select at least one token.")
        base_rows = index if self._rows is None else self._rows[index]
        tokens = self._tokens.iloc[index].reset_index(drop=True)
        source = tokens["source_row"].to_numpy() if "source_row" in tokens.columns else index
        tokens = tokens.assign(source_row=np.asarray(source, dtype=np.int64))
        return HiddenStates(
            self._layers,
            tokens,
            layer_ids=self.layer_ids,
            layer_kinds=self.layer_kinds,
            model_id=self.model_id,
            model_info=self.model_info,
            prompt_set=self.prompt_set,
            prompts=self.prompts,
            options=self.options,
            cache_key=None,
            rows=base_rows,
        )

    # ---- persistence (through the generic store) ---------------------------------------
    def _metadata(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_info": self.model_info,
            "prompt_set": self.prompt_set,
            "options": self.options,
            "layer_ids": list(self.layer_ids),
            "layer_kinds": list(self.layer_kinds),
            "n_tokens": self.n_tokens,
            "hidden_size": self.hidden_size,
        }

    @classmethod
    def from_entry(cls, entry: Entry) -> HiddenStates:
        """Open a store entry written by :func:`write_entry` (layers memory-mapped)."""
        meta = entry.meta
        n = len(meta["layer_ids"])
        layers = [entry.array(layer_file(i)) for i in range(n)]
        return cls(
            layers,
            entry.table("tokens"),
            layer_ids=meta["layer_ids"],
            layer_kinds=meta["layer_kinds"],
            model_id=meta["model_id"],
            model_info=meta["model_info"],
            prompt_set=meta["prompt_set"],
            prompts=entry.json("prompts"),
            options=meta["options"],
            cache_key=entry.key,
        )


def layer_file(i: int) -> str:
    """Name of stored layer ``i``'s array in a store entry."""
    return f"layer_{i:03d}"


def write_entry(writer: EntryWriter, states: HiddenStates) -> None:
    """Write ``states`` into an open store entry (layers, tokens, prompts, metadata).

    The extraction writes layers progressively with the same file names; this writes states
    already in memory (synthetic ones, subsets) so they can be cached the same way.
    """
    for i in range(states.n_layers):
        writer.write_array(layer_file(i), np.ascontiguousarray(states.layer(i)))
    writer.write_table("tokens", states.tokens)
    writer.write_json("prompts", list(states.prompts))
    writer.meta.update(states._metadata())
