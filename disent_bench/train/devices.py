"""Where training runs (``auto`` picks cuda, then mps, then cpu) and the model's memory layout there."""

from __future__ import annotations

import torch

from disent_bench.errors import UserError
from disent_bench.models import BaseModel
from disent_bench.train.config import TrainConfig

__all__ = ["resolve_device", "use_channels_last", "prepare_model"]


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


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """Whether the model runs channels-last: ``config.channels_last``, or by default on the CPU only."""
    return config.channels_last if config.channels_last is not None else device.type == "cpu"


def prepare_model(model: BaseModel, config: TrainConfig, device: torch.device) -> BaseModel:
    """Move ``model`` to ``device`` in the memory layout the config asks for (in place; returned)."""
    model.to(device)
    if use_channels_last(config, device):
        model.to(memory_format=torch.channels_last)
    return model
