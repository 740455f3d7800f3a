"""Which float type the networks compute in (notebook 04): the one "native bfloat16" rule.

Sampling (:meth:`DiffPose.sample`, :meth:`Lifter.predict`) and training
(:class:`~dphelpers.training.train.TrainConfig`'s ``precision``) both run under bfloat16 autocast
where the device computes it natively and in float32 elsewhere.  Both functions probe the
hardware, so they run only when called, never at import.
"""
from __future__ import annotations

import torch

__all__ = ["resolve_autocast", "default_precision"]


def resolve_autocast(autocast_dtype: torch.dtype | str | None,
                     device: torch.device) -> torch.dtype | None:
    """``"auto"`` -> bfloat16 where ``device`` computes it natively (CUDA with bf16 support, a CPU
    with AVX-512 BF16/AMX through oneDNN), else None (float32); a dtype or None passes through."""
    if autocast_dtype is None or autocast_dtype in (torch.bfloat16, torch.float16):
        return autocast_dtype
    if autocast_dtype != "auto":
        raise ValueError(f"autocast_dtype must be None (float32), 'auto', torch.bfloat16 or "
                         f"torch.float16, got {autocast_dtype!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    return None


def default_precision() -> str:
    """The training precision by default: ``"bf16"`` where this machine computes bfloat16
    natively (a CPU with AVX-512 BF16 or AMX through oneDNN, or a CUDA GPU that supports it),
    else ``"fp32"``; ``data/results/training_curves.json`` (notebook 04) is the evidence that
    bf16 trains as well as fp32, ``bench`` that it is faster where it is native."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    native = any(resolve_autocast("auto", torch.device(d)) is not None for d in devices)
    return "bf16" if native else "fp32"
