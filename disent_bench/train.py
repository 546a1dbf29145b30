"""The training loop: deterministic, resumable, visible, and as fast as a bare optimiser loop.

Protocol of the reference study (Locatello et al. 2019, disentanglement_lib): every step draws
``batch_size`` images uniformly with replacement from the whole dataset, and Adam (lr 1e-4, betas
(0.9, 0.999), eps 1e-8) takes one step on the batch-mean loss; 300,000 steps of batch 64.

* Deterministic: the weights are initialised from ``config.seed`` (``init_from_seed``), and two
  dedicated :class:`torch.Generator` streams on the training device, seeded from ``config.seed``,
  draw the batch indices and the reparameterisation noise. The same seed gives bit-identical weights
  and losses on CPU.
* Resumable: ``run_dir/checkpoint.pt`` (model and optimiser state, every RNG state, the step, the
  model's hparams, the config and the loss log) is written atomically every ``checkpoint_every``
  steps and at the end, so a kill at any moment leaves the last good checkpoint; training resumes
  from it and, on CPU, ends with weights bit-identical to an uninterrupted run.
* Visible: a progress bar (plain lines when not on a terminal) and ``run_dir/train_log.csv``, one row
  every ``log_every`` steps with the means over those steps. Losses are accumulated on the device
  and read back only at log steps, so the loop never waits on the device in between.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import pickle
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disent_bench._io import atomic_path, atomic_write_text
from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.models import BaseModel, build
from disent_bench.progress import ProgressReporter

__all__ = ["TrainConfig", "TrainResult", "train", "load_model", "read_checkpoint", "resolve_device",
           "make_optimizer", "prepare_model", "checkpoint_step", "use_channels_last", "CHECKPOINT_NAME", "LOG_NAME", "LOG_COLUMNS"]

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.csv"
LOG_COLUMNS = ("step", "loss", "reconstruction", "kl", "images_per_s", "elapsed")
_FORMAT = "disent-bench-checkpoint"
_VERSION = 1
# Settings a resumed run must share with its checkpoint, or it would not continue the same run.
_RESUME_KEYS = ("batch_size", "lr", "betas", "eps", "seed", "init_from_seed")
# Independent random streams derived from the seed (numpy SeedSequence spawn keys).
_STREAM_INIT, _STREAM_SAMPLE, _STREAM_NOISE = 0, 1, 2


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

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
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
        if isinstance(values.get("betas"), list):
            values["betas"] = tuple(values["betas"])
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


# -- devices ------------------------------------------------------------------------------------------
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


# -- pieces shared with the speed benchmark -----------------------------------------------------------
def _stream_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """Whether the model runs channels-last: ``config.channels_last``, or by default on the CPU only."""
    return config.channels_last if config.channels_last is not None else device.type == "cpu"


def prepare_model(model: BaseModel, config: TrainConfig, device: torch.device) -> BaseModel:
    """Move ``model`` to ``device`` in the memory layout the config asks for (in place; returned)."""
    model.to(device)
    if use_channels_last(config, device):
        model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: BaseModel, config: TrainConfig) -> torch.optim.Adam:
    """Adam with the config's lr, betas and eps (the reference's optimiser)."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps)


# -- checkpoints ----------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a training checkpoint (``weights_only``: no code runs); :class:`UserError` if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError,
            AttributeError, KeyError, IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint {path} is corrupt or not a disent-bench checkpoint ({first[:200]}); "
                        "delete it to start the run afresh") from None
    required = ("format", "version", "step", "model_hparams", "model_state", "optimizer_state", "config",
                "rng", "log", "pending", "elapsed")
    if not isinstance(state, dict) or state.get("format") != _FORMAT or any(k not in state for k in required):
        raise UserError(f"checkpoint {path} is not a disent-bench training checkpoint (missing fields); "
                        "delete it to start the run afresh")
    if state["version"] != _VERSION:
        raise UserError(f"checkpoint {path} has format version {state['version']}; this disent-bench reads "
                        f"version {_VERSION}")
    return state


def checkpoint_step(path: str | Path) -> int:
    """The step a checkpoint (or a run directory's checkpoint) has reached; :class:`UserError` if unreadable."""
    return int(read_checkpoint(path)["step"])


def _write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _check_resumable(path: Path, state: dict[str, Any], model: BaseModel, dataset: GroundTruthData,
                     config: TrainConfig) -> None:
    if state["model_hparams"] != model.hparams:
        raise UserError(f"checkpoint {path} holds another model ({state['model_hparams']}) than the one "
                        f"being trained ({model.hparams}); use another run directory or delete the checkpoint")
    saved = state["config"]
    for key in _RESUME_KEYS:
        old, new = saved.get(key), getattr(config, key)
        if isinstance(old, list):
            old = tuple(old)
        if old != new:
            raise UserError(f"checkpoint {path} was trained with {key}={old!r} but the config says {new!r}; "
                            "use the same setting to resume, or another run directory")
    info = state.get("dataset", {})
    if info.get("name") != dataset.name or info.get("source") != dataset.source or (
            info.get("checksum") and dataset.checksum and info["checksum"] != dataset.checksum):
        raise UserError(f"checkpoint {path} was trained on dataset {info.get('name')!r} "
                        f"({info.get('source')}, checksum {info.get('checksum')}) but this run uses "
                        f"{dataset.name!r} ({dataset.source}, checksum {dataset.checksum})")


# -- the loss log ---------------------------------------------------------------------------------------
def _csv_text(rows: list[dict[str, float]], header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(LOG_COLUMNS)
    for row in rows:
        writer.writerow([int(row["step"])] + [repr(float(row[k])) for k in LOG_COLUMNS[1:]])
    return buffer.getvalue()


# -- training -------------------------------------------------------------------------------------------
def train(model: BaseModel, dataset: GroundTruthData, config: TrainConfig | None = None,
          run_dir: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``dataset`` to ``config.steps`` steps (in place); see the module docstring.

    With ``run_dir``, resumes from ``run_dir/checkpoint.pt`` when it exists (it must hold the same
    model, dataset and training settings, else :class:`UserError` and nothing is written) and keeps
    ``checkpoint.pt`` and ``train_log.csv`` there. Returns the model in eval mode with its loss log.
    """
    config = config if config is not None else TrainConfig()
    config.validate()
    if not isinstance(model, BaseModel):
        raise UserError(f"train() needs a disent_bench.models.BaseModel, got {type(model).__name__}")
    model.check_image_shape(dataset.image_shape)
    device = resolve_device(config.device)
    run_dir = Path(run_dir) if run_dir is not None else None
    checkpoint_path = run_dir / CHECKPOINT_NAME if run_dir is not None else None
    log_path = run_dir / LOG_NAME if run_dir is not None else None

    # Everything is checked before anything is written.
    state = None
    if checkpoint_path is not None and checkpoint_path.exists():
        state = read_checkpoint(checkpoint_path)
        _check_resumable(checkpoint_path, state, model, dataset, config)

    sample_gen = torch.Generator(device=device)
    noise_gen = torch.Generator(device=device)
    if state is None:
        if config.init_from_seed:
            model.to("cpu")  # initialise on the CPU so the weights do not depend on the device
            model.reset_parameters(_stream_seed(config.seed, _STREAM_INIT))
        sample_gen.manual_seed(_stream_seed(config.seed, _STREAM_SAMPLE))
        noise_gen.manual_seed(_stream_seed(config.seed, _STREAM_NOISE))
    prepare_model(model, config, device)
    optimizer = make_optimizer(model, config)

    step = 0
    log: list[dict[str, float]] = []
    sum_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    pending = torch.zeros(3, dtype=sum_dtype, device=device)  # loss sums since the last log row
    pending_steps = 0
    elapsed_before = 0.0
    if state is not None:
        try:
            model.load_state_dict(state["model_state"])
            optimizer.load_state_dict(state["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UserError(f"checkpoint {checkpoint_path} does not fit the model: {str(exc).splitlines()[0]}") from None
        step = int(state["step"])
        log = [dict(row) for row in state["log"]]
        if log and int(log[-1]["step"]) == step < config.steps and step % config.log_every != 0:
            log.pop()  # the last session's end-of-run row: the interval it summarised continues now
        pending = state["pending"].to(device=device, dtype=sum_dtype)
        pending_steps = int(state["pending_steps"])
        elapsed_before = float(state["elapsed"])
        _restore_rng(state["rng"], sample_gen, noise_gen, device, config.seed, step)
    if run_dir is not None:
        _remove_stale_temporaries(run_dir)
    if log_path is not None:
        # Fresh: a new log. Resumed: the checkpoint's rows only, so rows written after it are dropped.
        atomic_write_text(log_path, _csv_text(log))

    start_step = step
    batch_size = config.batch_size
    num_images = len(dataset)
    name = model.hparams.get("name", type(model).__name__)
    model.train()
    start = time.perf_counter()
    interval_start, interval_step = start, step

    def checkpoint_state() -> dict[str, Any]:
        return {
            "format": _FORMAT, "version": _VERSION, "step": step,
            "model_hparams": dict(model.hparams),
            "model_state": {k: v.detach().to("cpu", memory_format=torch.contiguous_format)
                            for k, v in model.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "config": config.to_dict(),
            "rng": _rng_state(sample_gen, noise_gen, device),
            "log": log, "pending": pending.to("cpu"), "pending_steps": pending_steps,
            "elapsed": elapsed_before + time.perf_counter() - start,
            "dataset": {"name": dataset.name, "source": dataset.source, "checksum": dataset.checksum},
            "torch_version": str(torch.__version__),
        }

    with ProgressReporter(f"train {name}", config.steps, enabled=progress, completed=step) as reporter:
        while step < config.steps:
            indices = torch.randint(num_images, (batch_size,), generator=sample_gen, device=device)
            images = dataset.batch(indices, device)
            losses = model.loss(images, generator=noise_gen)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            step += 1
            with torch.no_grad():
                pending += torch.stack([losses["total"].detach(), losses["reconstruction"].detach(),
                                        losses["kl"].detach()]).to(sum_dtype)
            pending_steps += 1

            fields = {}
            if step % config.log_every == 0 or step == config.steps:
                means = (pending / pending_steps).tolist()  # the one host sync, every log_every steps
                now = time.perf_counter()
                row = {"step": step, "loss": means[0], "reconstruction": means[1], "kl": means[2],
                       "images_per_s": (step - interval_step) * batch_size / max(now - interval_start, 1e-9),
                       "elapsed": elapsed_before + now - start}
                log.append(row)
                if step % config.log_every == 0:
                    pending.zero_()
                    pending_steps = 0
                    interval_start, interval_step = now, step
                # else: an end-of-session row off the log grid; its interval goes on if the run is resumed
                if log_path is not None:
                    with open(log_path, "a", newline="") as handle:
                        handle.write(_csv_text([row], header=False))
                if not all(math.isfinite(value) for value in means):
                    # Stop at once: a diverged run would otherwise spend its remaining steps on NaNs, and
                    # its last good checkpoint (written before this interval) must not be overwritten.
                    raise FloatingPointError(
                        f"training diverged at step {step}: the mean losses of the last {pending_steps} steps "
                        f"are not finite (loss {means[0]}, reconstruction {means[1]}, KL {means[2]})")
                fields = {"loss": row["loss"], "rec": row["reconstruction"], "kl": row["kl"],
                          "img/s": round(row["images_per_s"])}
            if checkpoint_path is not None and (step % config.checkpoint_every == 0 or step == config.steps):
                _write_checkpoint(checkpoint_path, checkpoint_state())
            reporter.update(1, **fields)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if checkpoint_path is not None and step == start_step and state is None:
        _write_checkpoint(checkpoint_path, checkpoint_state())  # steps=0: still leave a loadable model
    model.eval()
    steps_run = step - start_step
    return TrainResult(model=model, step=step, start_step=start_step, log=log, seconds=seconds,
                       images_per_s=steps_run * batch_size / seconds if steps_run and seconds > 0 else 0.0,
                       device=str(device), checkpoint_path=checkpoint_path, final=dict(log[-1]) if log else {})


def _remove_stale_temporaries(run_dir: Path) -> None:
    # A kill during an atomic write leaves its temporary file behind (the target is intact); a run
    # directory has one trainer at a time (the runner claims it), so any such file is an orphan.
    for name in (CHECKPOINT_NAME, LOG_NAME):
        for orphan in run_dir.glob(f".{name}.*.tmp"):
            orphan.unlink(missing_ok=True)


def _rng_state(sample_gen: torch.Generator, noise_gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"device_type": device.type, "sample": sample_gen.get_state(),
                             "noise": noise_gen.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, Any], sample_gen: torch.Generator, noise_gen: torch.Generator,
                 device: torch.device, seed: int, step: int) -> None:
    # The global torch RNG is not used by the built-in models but may be by user models.
    torch.set_rng_state(state["torch_cpu"])
    if state["device_type"] == device.type:
        sample_gen.set_state(state["sample"])
        noise_gen.set_state(state["noise"])
        if device.type == "cuda" and "torch_cuda" in state:
            torch.cuda.set_rng_state(state["torch_cuda"], device)
        return
    # Generator states are device-specific: moving a run to another kind of device continues it with
    # streams re-seeded from (seed, step), deterministic but not the numbers the old device would draw.
    import warnings

    warnings.warn(f"resuming a run trained on {state['device_type']} on {device.type}: the random streams "
                  "are re-seeded, so the result will differ from an uninterrupted run", stacklevel=3)
    sample_gen.manual_seed(_stream_seed(seed, 1000 + 2 * step))
    noise_gen.manual_seed(_stream_seed(seed, 1001 + 2 * step))


def load_model(path: str | Path, device: str | torch.device = "cpu") -> BaseModel:
    """The model saved in a training checkpoint (or a run directory holding one), in eval mode on ``device``.

    Like :func:`train`, it lays the model out channels-last on the CPU (faster convolutions there).
    """
    state = read_checkpoint(path)
    hparams = dict(state["model_hparams"])
    if "name" not in hparams:
        raise UserError(f"checkpoint {path} does not name its model (no 'name' in its hparams)")
    model = build(**hparams)
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint {path} does not fit model {hparams['name']!r}: "
                        f"{str(exc).splitlines()[0]}") from None
    # The layout train() uses on this device, so that encodings match the model train() returned.
    torch_device = resolve_device(device)
    return prepare_model(model, TrainConfig(steps=0, device=str(torch_device)), torch_device).eval()
