"""Where torch work runs and in which precision: one policy shared by extraction and kNN."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import TokendimError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device for ``device``.

    ``"auto"`` (or ``None``) picks CUDA when present, then Apple MPS, else the CPU.
    Anything else is passed to :class:`torch.device` and checked for availability.
    """
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise TokendimError(
            f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise TokendimError(
            f"Device {device!r} was asked for but torch sees no CUDA GPU; "
            "use device='auto' or 'cpu', or install a CUDA build of torch."
        )
    if resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise TokendimError(f"Device {device!r} was asked for but MPS is not available.")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Return the compute dtype for ``dtype`` on ``device``.

    ``"auto"``: bfloat16 on CUDA GPUs that support it, else float16 on CUDA, float16 on MPS,
    float32 on the CPU (reduced precision is slower there and buys nothing).
    """
    import torch

    if dtype is None or (isinstance(dtype, str) and dtype == "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float64": torch.float64,
    }
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise TokendimError(
            f"Unknown dtype {dtype!r}: use 'auto', 'float32', 'float16' or 'bfloat16'."
        ) from None


def as_host_array(x: Any) -> Any:
    """``x`` as a numpy array when it is a torch tensor, else ``x`` unchanged.

    Any device; reduced-precision floats (bfloat16, which numpy lacks, float16) become
    float32, exactly. Callers then check the array as they check any other.
    """
    if not all(hasattr(x, name) for name in ("detach", "cpu", "is_floating_point")):
        return x
    import torch

    t = x.detach().cpu()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t.numpy()


# ---- memory ------------------------------------------------------------------------------
#: Messages of out-of-memory errors that torch raises as plain RuntimeErrors: the caching
#: allocator's, MPS's, and cuBLAS/cuDNN failing to allocate their workspace.
_OOM_MESSAGES = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an out-of-memory error of any torch backend (cuBLAS workspace included)."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in _OOM_MESSAGES)


def free_memory() -> None:
    """Collect garbage (reference cycles too) and return the allocators' cached blocks.

    Memory freed by an earlier run, or held only by reference cycles (accelerate's hooks
    keep a model in one), otherwise still counts as used in the device's free memory.
    """
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and hasattr(mps, "empty_cache"):
        with contextlib.suppress(RuntimeError):  # MPS built in but unusable
            mps.empty_cache()


def cuda_memory(device: torch.device | str | int | None = None) -> tuple[int, int]:
    """(free, total) bytes of a CUDA device, read after :func:`free_memory`.

    Every memory decision (placement, batch budgets) reads this, never a stale
    ``mem_get_info``.
    """
    import torch

    free_memory()
    free, total = torch.cuda.mem_get_info(device)
    return int(free), int(total)


# ---- precision of float32 matrix products ------------------------------------------------
_precision_lock = threading.Lock()
_precision_depth = 0
_precision_saved: dict[str, Any] = {}

#: Unit roundoff of the inputs of a float32 matrix product when torch may round them first:
#: TF32 keeps 10 mantissa bits, bfloat16 7 (truncation assumed, the worse case).
_REDUCED_UNIT = {"tf32": 2.0**-10, "bf16": 2.0**-7}


def _precision_flags() -> dict[str, Any]:
    """Torch's float32-product precision settings in force (new API where torch has it)."""
    import torch

    flags: dict[str, Any] = {}
    matmul = torch.backends.cuda.matmul
    # The legacy flag where it reads: setting the new one over a legacy setting would leave
    # torch's "mixed APIs" state, in which reading allow_tf32 raises. It raises already when
    # the user set the new one: then the new one.
    try:
        flags["cuda_tf32"] = bool(matmul.allow_tf32)
        # Setting the legacy flag makes the new one explicit: "none" (inherit) comes back.
        with contextlib.suppress(AttributeError, RuntimeError):
            flags["cuda_inherit"] = str(matmul.fp32_precision) == "none"
    except RuntimeError:
        flags["cuda"] = str(matmul.fp32_precision)
    mkldnn = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    if mkldnn is not None:
        with contextlib.suppress(AttributeError, RuntimeError):
            flags["mkldnn"] = str(mkldnn.fp32_precision)
    with contextlib.suppress(AttributeError, RuntimeError):
        flags["bf16_reduction"] = matmul.allow_bf16_reduced_precision_reduction
    return flags


def _apply_precision_flags(flags: dict[str, Any]) -> None:
    import torch

    matmul = torch.backends.cuda.matmul
    if "cuda" in flags:
        matmul.fp32_precision = flags["cuda"]
    if "cuda_tf32" in flags:
        matmul.allow_tf32 = flags["cuda_tf32"]
    if flags.get("cuda_inherit"):
        matmul.fp32_precision = "none"
    if "mkldnn" in flags:
        mkldnn_matmul = getattr(torch.backends.mkldnn, "matmul")  # noqa: B009 (torch >= 2.9)
        mkldnn_matmul.fp32_precision = flags["mkldnn"]
    if "bf16_reduction" in flags:
        matmul.allow_bf16_reduced_precision_reduction = flags["bf16_reduction"]


def product_unit_roundoff() -> float:
    """Extra relative rounding of float32 matrix-product inputs under the settings in force.

    0 when products run in full float32; TF32's or bfloat16's unit when torch is allowed to
    round to them (``torch.set_float32_matmul_precision("high")`` or ``"medium"``, common in
    notebooks). Error bounds of float32 products add it.
    """
    flags = _precision_flags()
    unit = _REDUCED_UNIT["tf32"] if flags.get("cuda_tf32") else 0.0
    for key in ("cuda", "mkldnn"):
        unit = max(unit, _REDUCED_UNIT.get(str(flags.get(key, "")), 0.0))
    return unit


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Run float32 matrix products in full float32 inside (no TF32, no bfloat16 rounding).

    Exact searches certify their results with float32 error bounds, which TF32 (set by
    ``torch.set_float32_matmul_precision("high")``) exceeds ~40-fold, and bfloat16 products
    must accumulate in float32. The settings are process-wide: they are set on entry and
    restored when the last nested or concurrent user leaves (other threads' products run in
    full float32 meanwhile: slower, never less accurate).
    """
    global _precision_depth
    with _precision_lock:
        if _precision_depth == 0:
            _precision_saved.clear()
            _precision_saved.update(_precision_flags())
            wanted = {
                key: ("ieee" if key in ("cuda", "mkldnn") else False) for key in _precision_saved
            }
            _apply_precision_flags(wanted)
        _precision_depth += 1
    try:
        yield
    finally:
        with _precision_lock:
            _precision_depth -= 1
            if _precision_depth == 0:
                _apply_precision_flags(_precision_saved)
