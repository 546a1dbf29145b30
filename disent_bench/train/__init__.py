"""Training: :func:`train` a model on a dataset, deterministically and resumably (see :mod:`.loop`).

The package's parts: :mod:`.config` (settings and results), :mod:`.devices` (device and memory
layout), :mod:`.optimizers` (one step: the model's Adam and its auxiliary optimisers),
:mod:`.checkpoint` (atomic, code-free checkpoints and resuming), :mod:`.train_log` (``train_log.csv``),
:mod:`.session` (one run's state over one call: resume, loss sums, log rows, checkpoints), :mod:`.loop`
(the loop itself) and :mod:`.packed` (several runs trained as one computation).
"""

from disent_bench.train.checkpoint import CHECKPOINT_NAME, checkpoint_step, load_model, read_checkpoint
from disent_bench.train.config import TrainConfig, TrainResult
from disent_bench.train.devices import prepare_model, resolve_device, use_channels_last
from disent_bench.train.train_log import LOG_COLUMNS, LOG_NAME
from disent_bench.train.loop import train
from disent_bench.train.optimizers import Optimizers, loss_takes_step, make_optimizers, training_step

__all__ = ["TrainConfig", "TrainResult", "train", "load_model", "read_checkpoint", "resolve_device",
           "make_optimizers", "Optimizers", "training_step", "loss_takes_step", "prepare_model", "checkpoint_step",
           "use_channels_last", "CHECKPOINT_NAME", "LOG_NAME", "LOG_COLUMNS"]
