"""Where computing happens: which torch device a spec names (``auto`` picks cuda, then mps, then cpu),
checked against this machine, and how many CPU cores this process may use.

A low module: it depends on torch and :mod:`disent_bench.errors` only, so that training, the metrics and
the tools can all resolve a ``--device`` the same way without importing one another.
"""

from __future__ import annotations

import os

import torch

from disent_bench.errors import UserError

__all__ = ["resolve_device", "usable_cores"]


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda if available, else mps, else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` checked."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise UserError(f"device must be auto, cpu, cuda, cuda:N or mps, got {spec!r}")
    text = spec.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {spec!r} requested but CUDA is not available here; use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"device {spec!r} does not exist: {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return device
    if device.type == "mps":
        if not _mps_available():
            raise UserError(f"device {spec!r} requested but MPS is not available here; use --device cpu or auto")
        return device
    raise UserError(f"unsupported device {spec!r}; use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; all of the machine's where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
