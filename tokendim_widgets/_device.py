"""Where torch work runs and in which precision: one policy shared by extraction and kNN."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
