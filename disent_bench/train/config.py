"""Training settings (:class:`TrainConfig`, the reference study's defaults) and what a run returns (:class:`TrainResult`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disent_bench.errors import UserError
from disent_bench.models import BaseModel

__all__ = ["TrainConfig", "TrainResult"]


@dataclass
class TrainConfig:
    """Training settings; defaults are the reference study's (except ``steps`` is up to you).

    ``channels_last``: lay the model out channels-last (NHWC) in memory; ``None`` picks it where it
    pays (CPU, where oneDNN convolutions run about twice as fast at batch 256).
    ``init_from_seed``: re-initialise the model's weights from ``seed`` before the first step (so the
    seed fixes the whole run); set False to train a model's current weights (e.g. fine-tuning).
    """

    steps: int = 300_000
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 10_000
    log_every: int = 100
    init_from_seed: bool = True
    channels_last: bool | None = None
    #: Correlated training data (Träuble et al. 2021): the grid's ``[[datasets]] correlations`` entries, which
    #: change how training batches are drawn (never the evaluation); () draws uniformly, as the reference.
    correlations: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        if isinstance(self.correlations, list):
            self.correlations = tuple(self.correlations)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first bad setting."""
        def integer(key: str, low: int) -> None:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"training setting {key} must be an integer >= {low}, got {value!r}")

        integer("steps", 0)
        integer("batch_size", 1)
        integer("seed", 0)
        integer("checkpoint_every", 1)
        integer("log_every", 1)
        for key in ("lr", "eps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise UserError(f"training setting {key} must be a number > 0, got {value!r}")
        betas = self.betas
        if (not isinstance(betas, tuple) or len(betas) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise UserError(f"training setting betas must be two numbers in [0, 1), got {betas!r}")
        if not isinstance(self.device, str):
            raise UserError(f"training setting device must be a string (auto, cpu, cuda, cuda:N, mps), "
                            f"got {self.device!r}")
        for key in ("init_from_seed",):
            if not isinstance(getattr(self, key), bool):
                raise UserError(f"training setting {key} must be true or false, got {getattr(self, key)!r}")
        if not isinstance(self.correlations, tuple) or not all(isinstance(c, dict) for c in self.correlations):
            raise UserError(f"training setting correlations must be a list of tables, got {self.correlations!r}")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise UserError(f"training setting channels_last must be true, false or unset, got {self.channels_last!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, mapping: dict[str, Any], *, where: str = "training settings") -> "TrainConfig":
        """Build from a mapping (e.g. a TOML table); unknown keys raise :class:`UserError` naming them."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
        values = dict(mapping)
        for key in ("betas", "correlations"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass
class TrainResult:
    """What :func:`train` did: the trained model (in eval mode) and its loss log."""

    model: BaseModel
    step: int                      # the step the model has reached (== config.steps)
    start_step: int                # the step this call started from (> 0 when resumed)
    log: list[dict[str, float]]    # every log row so far (resumed runs included)
    seconds: float                 # wall time of this call's steps
    images_per_s: float            # images trained per second in this call (0 if no step ran)
    device: str
    checkpoint_path: Path | None = None
    final: dict[str, float] = field(default_factory=dict)  # the last log row

    @property
    def resumed(self) -> bool:
        return self.start_step > 0

    @property
    def final_losses(self) -> dict[str, float]:
        """The last log row's mean losses: ``{"total", "reconstruction", "kl"}`` (empty if nothing was logged)."""
        if not self.final:
            return {}
        return {"total": self.final["loss"], "reconstruction": self.final["reconstruction"], "kl": self.final["kl"]}
