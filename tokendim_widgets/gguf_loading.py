"""One-pass loading of a GGUF model: its config, tokenizer and weights from one read.

transformers' ``from_pretrained(..., gguf_file=...)`` parses a GGUF file once for the config,
once more inside ``AutoTokenizer`` (to pick the tokenizer class) and a third time for the
weights, each time with the ``gguf`` package's reader, which walks every string of the
vocabulary through numpy; the weights pass also rebuilds gguf's tensor-name table once per
module of the model. That is ~20 s for SmolLM2-135M on two cores, of which the de-quantisation
itself is ~2 s.

For the architectures in :data:`FAST_ARCHITECTURES`, :func:`plan` reads the metadata and the
tensor table once (:func:`read_header`, ~0.03 s: the strings of the vocabulary are skipped, not
decoded), and :class:`GgufPlan` builds from them what the standard path builds:

* the config: the same renaming of the metadata keys as transformers' GGUF config reader
  (``GGUF_TO_TRANSFORMERS_MAPPING``, its defaults, tied embeddings when the file has no
  ``output.weight``), instantiated as ``AutoConfig.from_pretrained`` does;
* the tokenizer: the class ``AutoTokenizer`` picks for that config, loaded through its own
  ``from_pretrained(..., gguf_file=...)`` (the library's GGUF tokenizer conversion, unchanged);
* the weights: each tensor de-quantised with ``gguf.quants.dequantize`` (what transformers
  calls), put through transformers' tensor processor for the architecture (the q/k
  permutation of Llama, the norm offset of Gemma) and named with one gguf name table, then
  loaded with ``from_pretrained(None, config=..., state_dict=...)``.

Every other file goes through the standard path, and so does a listed architecture whenever
something could make the standard path decide differently (see :func:`plan`). The tests
compare both paths on a tiny Llama and the bundled models: same config, tokenizer (settings,
files, token ids), weights bit for bit and logits. Design notes: ``docs/extraction.md``.
"""

from __future__ import annotations

import copy
import mmap
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

try:
    import gguf
    from transformers import CONFIG_MAPPING, TOKENIZER_MAPPING, TokenizersBackend
    from transformers.integrations import GGUF_CONFIG_DEFAULTS_MAPPING
    from transformers.modeling_gguf_pytorch_utils import (
        GGUF_TO_TRANSFORMERS_MAPPING,
        TENSOR_PROCESSORS,
        TensorProcessor,
    )
except ImportError:  # gguf is optional, and transformers before 5.0 lacks some of these
    #: Whether the one-pass path can run here: the gguf package and transformers 5.x.
    AVAILABLE = False
else:
    AVAILABLE = True
    # Metadata renamed into the config, by key prefix ("llama", "general", "tokenizer"...).
    _CONFIG_RENAMES = cast(dict[str, dict[str, Any]], GGUF_TO_TRANSFORMERS_MAPPING["config"])
    _Q = gguf.GGMLQuantizationType
    # Tensor types stored as values, with the numpy type gguf's reader gives them; every
    # other type the de-quantiser knows is handed over as rows of bytes.
    _VALUE_TYPES = {_Q.F32: np.float32, _Q.F16: np.float16}
    # Types gguf's reader gives as integers or doubles, which neither path de-quantises.
    _UNREAD_TYPES = frozenset({_Q.F64, _Q.I8, _Q.I16, _Q.I32, _Q.I64})

#: GGUF architectures (``general.architecture``) loaded in one pass; every other one goes
#: through transformers' ``from_pretrained(gguf_file=...)``. Each is covered by a test that
#: compares both paths (Llama: SmolLM2 and the tiny test model; Gemma 3: Gemma 3 270M).
FAST_ARCHITECTURES = frozenset({"llama", "gemma3"})

# The metadata value types of the GGUF spec: the fixed-size ones as struct formats, then
# string and array.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the file's table: its name, torch-order shape, ggml type and bytes."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # from the start of the data section
    nbytes: int


class _Reader:
    """Walks a GGUF file's header: magic, counts, metadata, tensor table (GGUF v2 and v3).

    Little-endian files only (a big-endian one fails the version check). Strings of a string
    array are decoded only for the keys in ``arrays`` (the vocabulary is ~50k strings); the
    other arrays of strings read as their length.
    """

    def __init__(self, buffer: Any, arrays: Any) -> None:
        self.buffer, self.pos, self.arrays = buffer, 0, arrays

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buffer, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def string(self) -> str:
        (length,) = _U64.unpack_from(self.buffer, self.pos)
        start = self.pos + 8
        self.pos = start + length
        if self.pos > len(self.buffer):
            raise ValueError("a string runs past the end of the file")
        return bytes(self.buffer[start : self.pos]).decode("utf-8")

    def value(self, kind: int, key: str) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])[0]
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise ValueError(f"unknown metadata value type {kind}")
        item, count = self.unpack("IQ")
        if item in _SCALARS:
            return list(self.unpack(f"{count}{_SCALARS[item]}"))
        if item != _STRING:
            raise ValueError(f"metadata array of type {item}")
        if key in self.arrays:
            return [self.string() for _ in range(count)]
        for _ in range(count):
            (length,) = _U64.unpack_from(self.buffer, self.pos)
            self.pos += 8 + length
        return count

    def header(self) -> tuple[dict[str, Any], list[TensorEntry], int]:
        """``(metadata, tensor table, offset of the data section)``."""
        magic, version = self.unpack("4sI")
        if magic != b"GGUF" or version not in (2, 3):
            raise ValueError("not a little-endian GGUF v2 or v3 file")
        n_tensors, n_keys = self.unpack("QQ")
        metadata: dict[str, Any] = {}
        for _ in range(n_keys):
            key = self.string()
            if key in metadata:  # gguf's reader keeps both, under two names
                raise ValueError(f"the metadata key {key!r} appears twice")
            (kind,) = _U32.unpack_from(self.buffer, self.pos)
            self.pos += 4
            metadata[key] = self.value(kind, key)
        tensors = []
        for _ in range(n_tensors):
            name = self.string()
            (n_dims,) = self.unpack("I")
            dims = self.unpack(f"{n_dims}Q")
            ggml_type, offset = self.unpack("IQ")
            block, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
            nbytes = prod(dims) * block_bytes // block
            tensors.append(TensorEntry(name, tuple(reversed(dims)), ggml_type, offset, nbytes))
        alignment = int(metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT))
        if alignment <= 0 or len({t.name for t in tensors}) != len(tensors):
            raise ValueError("a bad alignment or a tensor named twice")
        data_start = -(-self.pos // alignment) * alignment
        return metadata, tensors, data_start


def read_header(
    path: str | Path, arrays: Any = ()
) -> tuple[dict[str, Any], list[TensorEntry], int]:
    """A GGUF file's metadata, tensor table and data offset, without reading any tensor
    (needs the gguf package: the sizes of its tensor types).

    ``arrays``: the keys whose string arrays are wanted in full (any container of keys).
    """
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        return _Reader(buffer, arrays).header()


class _ConfigArrays:
    """The metadata keys whose string arrays the config needs in full: those it renames."""

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        prefix, _, rest = key.partition(".")
        return rest in _CONFIG_RENAMES.get(prefix, {})


def config_dict(metadata: dict[str, Any], tensor_names: Iterable[str]) -> dict[str, Any]:
    """The config dict transformers' GGUF reader makes of this metadata, for the listed
    architectures (others have special cases of their own there).

    The metadata keys ``<prefix>.<name>`` that ``GGUF_TO_TRANSFORMERS_MAPPING["config"]``
    renames become config fields (a one-element array becomes its element), after the
    architecture's defaults and ``tie_word_embeddings`` (no ``output.weight`` tensor); a
    Gemma 3 file describes its text model; the vocabulary size, when no key gives it, is the
    number of tokens.
    """
    architecture = metadata["general.architecture"]
    config: dict[str, Any] = {"tie_word_embeddings": "output.weight" not in set(tensor_names)}
    for key, value in GGUF_CONFIG_DEFAULTS_MAPPING.get(architecture, {}).items():
        config.setdefault(key, value)
    for key, value in metadata.items():
        prefix, _, rest = key.partition(".")
        field = _CONFIG_RENAMES.get(prefix, {}).get(rest)
        if field is None or field == -1:
            continue
        config[field] = value[0] if isinstance(value, list) and len(value) == 1 else value
    if config.get("model_type") == "gemma3":
        config["model_type"] = "gemma3_text"
    tokens = metadata.get("tokenizer.ggml.tokens")
    if "vocab_size" not in config and tokens is not None:
        config["vocab_size"] = tokens if isinstance(tokens, int) else len(tokens)
    return config


def weights_names(model: Any, processor: Any, names: Any) -> dict[str, str]:
    """GGUF tensor name -> the model's parameter name, for every parameter gguf's table knows.

    Each module's parameters are looked up by their names relative to it (``q_proj`` under
    a layer, ``model.layers.0.self_attn.q_proj`` at the top); where two modules map the same
    GGUF tensor, the first module in depth-first order wins. ``names`` is
    ``gguf.get_tensor_name_map`` of the architecture and block count, built once;
    ``processor`` is transformers' tensor processor of the architecture, which may rename
    parameters first and map the ones the table does not know.
    """
    found: dict[str, str] = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        qualifier = f"{prefix}." if prefix else ""
        own: dict[str, str] = {}
        for key in module.state_dict():
            key = processor.preprocess_name(key)
            stem, dot, kind = key.rpartition(".")
            suffix = f".{kind}" if dot and kind in ("weight", "bias") else ""
            stem = stem if suffix else key
            gguf_name = names.get_name(stem)
            if gguf_name is None:
                processor.perform_fallback_tensor_mapping(own, suffix, qualifier, key)
            else:
                own[gguf_name + suffix] = qualifier + key
        for gguf_name, hf_name in own.items():
            found.setdefault(gguf_name, hf_name)
    return found


def _arch(architecture: str) -> Any:
    for arch, name in gguf.MODEL_ARCH_NAMES.items():
        if name == architecture:
            return arch
    raise ValueError(f"the gguf package does not know the architecture {architecture!r}")


@dataclass(frozen=True)
class GgufPlan:
    """A GGUF file the one-pass path loads, with what its header says.

    Attributes
    ----------
    path : Path
        The file.
    architecture : str
        Its ``general.architecture``.
    config_dict : dict
        The config fields (:func:`config_dict`).
    tensors : tuple of TensorEntry
        Its tensor table, in file order.
    data_start : int
        Offset of the tensor data in the file.
    """

    path: Path
    architecture: str
    config_dict: dict[str, Any]
    tensors: tuple[TensorEntry, ...]
    data_start: int

    def config(self, source: str) -> Any:
        """The config, as ``AutoConfig.from_pretrained(source, gguf_file=...)`` makes it."""
        config_class = CONFIG_MAPPING[self.config_dict["model_type"]]
        return config_class.from_dict(copy.deepcopy(self.config_dict), name_or_path=source)

    def tokenizer(self, config: Any, source: str, gguf_file: str) -> Any:
        """The tokenizer, as ``AutoTokenizer.from_pretrained(source, gguf_file=...)`` makes it.

        ``AutoTokenizer`` parses the file's config again only to choose the class: with no
        ``tokenizer_config.json`` beside the file (see :func:`plan`), the class registered
        for the config's type, else ``TokenizersBackend``. That class then builds itself from
        the file (transformers' GGUF tokenizer conversion, unchanged).
        """
        registered = TOKENIZER_MAPPING.get(type(config), None)
        tokenizer_class: Any = registered if isinstance(registered, type) else TokenizersBackend
        return tokenizer_class.from_pretrained(source, gguf_file=gguf_file)

    def state_dict(
        self, model: Any, dtype: torch.dtype, bar: Any = None
    ) -> dict[str, torch.Tensor]:
        """The de-quantised tensors, named as ``model``'s parameters (a meta-device model does).

        ``bar``, if given, is advanced by one per tensor of the file.
        """
        processor = TENSOR_PROCESSORS.get(self.architecture, TensorProcessor)(
            config=self.config_dict
        )
        table = gguf.get_tensor_name_map(_arch(self.architecture), model.config.num_hidden_layers)
        names = weights_names(model, processor, table)
        parsed: dict[str, Any] = {"tensors": {}}  # processors of some architectures fill it
        blob = np.memmap(self.path, mode="r", dtype=np.uint8)
        entries: Iterator[TensorEntry] = iter(self.tensors)
        for entry in bar.wrap(entries) if bar is not None else entries:
            weights = gguf.quants.dequantize(self._raw(blob, entry), _Q(entry.ggml_type))
            result = processor.process(
                weights=weights, name=entry.name, tensor_key_mapping=names, parsed_parameters=parsed
            )
            if result.name in names:
                tensor = torch.from_numpy(np.copy(result.weights)).to(dtype)
                parsed["tensors"][names[result.name]] = tensor
        return dict(parsed["tensors"])

    def _raw(self, blob: np.ndarray, entry: TensorEntry) -> np.ndarray:
        """One tensor's bytes as gguf's reader presents them: values, or rows of blocks."""
        start = self.data_start + entry.offset
        data = blob[start : start + entry.nbytes]
        qtype = _Q(entry.ggml_type)
        if qtype in _VALUE_TYPES:
            return data.view(_VALUE_TYPES[qtype]).reshape(entry.shape)
        return data.reshape(gguf.quant_shape_to_byte_shape(entry.shape, qtype))

    def model(self, loader: Any, config: Any, dtype: torch.dtype, bar: Any = None) -> Any:
        """The model ``loader`` (an auto class) makes of ``config``, with :meth:`state_dict`'s
        weights, in ``dtype`` on the CPU and in evaluation mode."""
        with torch.device("meta"):
            skeleton = loader.from_config(copy.deepcopy(config))
        state = self.state_dict(skeleton, dtype, bar)
        # The class the auto class chose (which needs a name or path to load from itself).
        model_class = type(skeleton)
        del skeleton
        model = model_class.from_pretrained(None, config=config, state_dict=state, dtype=dtype)
        # from_pretrained names the config after its first argument: the GGUF file's folder
        # on the standard path.
        model.config.name_or_path = config.name_or_path
        return model


def plan(path: str | Path) -> GgufPlan | None:
    """The one-pass plan for a GGUF file, or None when the standard path must load it.

    None for an architecture outside :data:`FAST_ARCHITECTURES`, a header that does not read
    (the standard path then reports what is wrong), tensor data past the end of the file, a
    tensor type stored as integers or doubles, a Llama file named "mistral" (transformers
    reads it as Mistral), and a ``tokenizer_config.json`` beside the file (``AutoTokenizer``
    would choose the tokenizer class from it).
    """
    if not AVAILABLE:
        return None
    path = Path(path)
    try:
        metadata, tensors, data_start = read_header(path, _ConfigArrays())
        size = path.stat().st_size
    except (OSError, ValueError, KeyError, struct.error, UnicodeDecodeError, OverflowError):
        return None
    architecture = metadata.get("general.architecture")
    if architecture not in FAST_ARCHITECTURES:
        return None
    if "mistral" in str(metadata.get("general.name", "")).lower():
        return None
    if (path.parent / "tokenizer_config.json").exists():
        return None
    for entry in tensors:
        if entry.ggml_type in _UNREAD_TYPES or data_start + entry.offset + entry.nbytes > size:
            return None
    names = [entry.name for entry in tensors]
    return GgufPlan(
        path, str(architecture), config_dict(metadata, names), tuple(tensors), data_start
    )
