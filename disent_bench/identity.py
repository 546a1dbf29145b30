"""What makes two runs the same run, and which runs may train together: one rule, written once.

* **Run identity.** A run's id (:func:`run_id`) hashes only what decides what the run learns: the
  dataset and its source, the model and its parameters, the latent size, the semantic training settings
  and the seed. :data:`NON_SEMANTIC_TRAIN_KEYS` never change what a run learns (how often it logs and
  checkpoints, where it computes, whether it shows a bar), so editing them never orphans finished work.
  The grid uses it for every run id.
* **Packability.** Runs may train as one pack (:mod:`disent_bench.train.packed`) when their model class
  packs (:func:`class_pack_problem`) and their :func:`pack_signature` is equal: the same model with the
  same parameters but for its swept hyper-parameters (``hyper_parameter_names``), and the same training
  settings but for :data:`PER_RUN_TRAIN_KEYS`, which each member keeps for itself. The runner groups runs
  by it before anything is built; the packed trainer asserts it on the built models.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from disent_bench.models.vae import AE, GaussianVAE

__all__ = ["NON_SEMANTIC_TRAIN_KEYS", "CORE_TRAIN_KEYS", "PER_RUN_TRAIN_KEYS", "canonical", "semantic_train",
           "run_id", "RunIds", "class_pack_problem", "pack_signature"]

#: Training settings that never change what a run learns (so they stay out of its id).
NON_SEMANTIC_TRAIN_KEYS = ("checkpoint_every", "log_every", "device", "seed", "progress", "channels_last")
#: Always part of a run's id (with their values, default or not).
CORE_TRAIN_KEYS = ("steps", "batch_size", "lr", "betas", "eps")
#: Training settings in which the runs of one pack may differ: each member keeps its own. The other
#: non-semantic ones (device, channels_last, progress) are how the pack computes, so its runs share them.
PER_RUN_TRAIN_KEYS = ("seed", "checkpoint_every", "log_every")


def canonical(value: Any) -> Any:
    """Numbers as the same JSON whether written 4 or 4.0; used for ids and duplicate checks."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    return value


def semantic_train(train: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The training settings that decide what a run learns.

    With ``defaults`` (the trainer's), settings beyond :data:`CORE_TRAIN_KEYS` count only when they differ
    from their default, so a setting a later version adds (with a default that keeps today's behaviour)
    keeps every id.
    """
    semantic = {k: v for k, v in train.items() if k not in NON_SEMANTIC_TRAIN_KEYS}
    if defaults is not None:
        semantic = {k: v for k, v in semantic.items()
                    if k in CORE_TRAIN_KEYS or canonical(v) != canonical(defaults.get(k))}
    return semantic


def _fmt_value(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace(":", ".")).strip("_")


def run_id(dataset: Mapping[str, str], model: Mapping[str, Any], train: Mapping[str, Any], seed: int,
           label: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None) -> str:
    """``<dataset>-<model>-<hyper-parameters>-s<seed>-<hash8>``: readable, and stable across invocations.

    The hash covers the dataset and source, the model and its parameters, the latent size,
    :func:`semantic_train` of the training settings, and the seed.
    """
    return RunIds(dataset, model, train, label, defaults)(seed)


class RunIds:
    """The :func:`run_id` of one setting's runs, seed by seed: what does not depend on the seed (the readable
    part, the hashed text around the seed) is built once, so a grid of millions of seeds costs one hash per run.

    ``RunIds(dataset, model, train, label, defaults)(seed) == run_id(dataset, model, train, seed, label,
    defaults)``; :attr:`prefix` is the readable part before ``-s<seed>-<hash8>`` (two settings with different
    prefixes never share an id, seeds being digits).
    """

    __slots__ = ("prefix", "_dataset", "_model", "_train", "_head", "_tail")

    def __init__(self, dataset: Mapping[str, str], model: Mapping[str, Any], train: Mapping[str, Any],
                 label: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None) -> None:
        self._dataset, self._model = dict(dataset), dict(model)
        self._train = semantic_train(train, defaults)
        # Correlated training data is a different run of the same dataset: say so in the readable part too.
        parts = [_slug(dataset["name"]) + ("_corr" if dataset.get("correlations") else ""), _slug(model["name"])]
        for k, v in sorted(model.get("params", {}).items()):
            parts.append(f"{_slug(k)}{_fmt_value(v)}")
        for k, v in sorted((label or {}).items()):
            parts.append(f"{_slug(k)}{_fmt_value(v)}")
        self.prefix = "-".join(parts)
        # The hashed text is json.dumps(canonical(payload), sort_keys=True) with the keys dataset, model, seed,
        # train in that (sorted) order: the text before the seed and after it are the same for every seed.
        around = json.dumps(canonical({"dataset": self._dataset, "model": self._model}), sort_keys=True)
        self._head = hashlib.sha256((around[:-1] + ', "seed": ').encode())
        self._tail = (', "train": ' + json.dumps(canonical(self._train), sort_keys=True) + "}").encode()

    def __call__(self, seed: int) -> str:
        if type(seed) is int:  # noqa: E721 - a bool or a float seed is written otherwise: the general path
            hasher = self._head.copy()
            hasher.update(str(seed).encode())
            hasher.update(self._tail)
        else:
            payload = {"dataset": self._dataset, "model": self._model, "train": self._train, "seed": seed}
            hasher = hashlib.sha256(json.dumps(canonical(payload), sort_keys=True).encode())
        return f"{self.prefix}-s{seed}-{hasher.hexdigest()[:8]}"


def class_pack_problem(cls: type) -> str | None:
    """Why models of class ``cls`` cannot train packed (judged from the class alone), or None."""
    if not issubclass(cls, (GaussianVAE, AE)):
        return "it is not a GaussianVAE (packing needs its draw_noise and loss_from_noise)"
    base = GaussianVAE if issubclass(cls, GaussianVAE) else AE
    if cls.loss is not base.loss:
        return "it overrides loss(); packing calls loss_from_noise"
    return None


def pack_signature(model_class: type, model_params: Mapping[str, Any], train: Mapping[str, Any],
                   **context: Any) -> str:
    """Runs with equal signatures may share a pack (given their class packs, :func:`class_pack_problem`).

    ``model_params``: the model's parameters (swept hyper-parameters may differ and are left out);
    ``train``: its training settings (:data:`PER_RUN_TRAIN_KEYS` may differ and are left out);
    ``context``: anything else the members must share (the runner adds the dataset, device and threads).
    """
    swept = set(getattr(model_class, "hyper_parameter_names", ()))
    structural = {k: v for k, v in model_params.items() if k not in swept}
    settings = {k: v for k, v in train.items() if k not in PER_RUN_TRAIN_KEYS}
    return json.dumps([f"{model_class.__module__}:{model_class.__qualname__}", structural, settings, context],
                      sort_keys=True, default=str)
