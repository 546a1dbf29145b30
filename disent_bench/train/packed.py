"""Packed training: several runs of one model family trained together, as one computation, on one device.

A GPU running the reference conv net for one run at a time spends most of its time launching small
kernels. Runs of a grid that share a model family, architecture and training settings (they may differ
in hyper-parameter values and seeds) can instead train as one *pack*: their weights are stacked along a
new leading dimension and each step is one vectorised computation over all of them
(:func:`torch.func.vmap` of :func:`torch.func.functional_call`), so a kernel launch does the work of N runs.

Each run keeps everything it has alone, through its own :class:`~disent_bench.train.session.RunSession`:

* its own random streams: its batch indices come from its own sampling generator and its noise from its
  own noise generator (:meth:`~disent_bench.models.vae.GaussianVAE.draw_noise`, in the order the model
  draws alone), so it sees exactly the images and noise it would see alone;
* its own hyper-parameter values (``hyper``, vmapped), checkpoint, ``train_log.csv`` and exact resume:
  a packed run's checkpoint has the layout of a run trained alone, so either can resume the other;
* its own failure: a run whose losses stop being finite stops (its last good checkpoint stays) and the
  pack goes on without it.

Each run's gradient is that of its own loss (the pack back-propagates the sum of its members' losses,
which are independent), and Adam is elementwise, so a packed run follows its lone trajectory. Only the
kernels differ (a batched convolution sums in another order than a single one), so the weights agree to
float tolerance, not bit for bit: after 6 Adam steps of lr 1e-4 on an AMD EPYC CPU they differ by at most
1.6e-5 (3e-7 for most families), under 3% of what Adam can move a weight in that time. On an Intel Xeon
(other oneDNN kernels) about 1% of one AE's weights parted by up to 4.7e-4 (median 3e-7): where a
gradient is a near-cancellation, Adam's first steps move the weight by +-lr whatever its size, so a
rounding error picks the sign. The logged losses agree to 1e-4 relative (``tests/test_train_packed.py``
pins both). Resuming a packed run packed is exact.

Which models pack: the built-in ones and any :class:`~disent_bench.models.vae.GaussianVAE` subclass that
keeps its ``loss`` (see :func:`pack_problem`); others train alone, with the reason given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.identity import class_pack_problem, pack_signature
from disent_bench.models import BaseModel
from disent_bench.progress import ProgressReporter
from disent_bench.train.config import TrainConfig, TrainResult
from disent_bench.train.devices import prepare_model
from disent_bench.train.optimizers import Optimizers
from disent_bench.train.sampling import draw_indices, training_weights
from disent_bench.train.session import RunSession

__all__ = ["train_packed", "pack_problem", "class_pack_problem", "pack_key"]


def pack_problem(model: BaseModel) -> str | None:
    """Why ``model`` cannot train packed, or None when it can."""
    problem = class_pack_problem(type(model))
    if problem:
        return f"model {model.hparams.get('name')!r}: {problem}"
    if any(True for _ in model.buffers()):
        return f"model {model.hparams.get('name')!r} has buffers; packing stacks parameters only"
    return None


def pack_key(model: BaseModel, config: TrainConfig) -> str:
    """Runs whose keys are equal can train in one pack: :func:`disent_bench.identity.pack_signature` of the
    built model (its class and hparams) and its training settings."""
    return pack_signature(type(model), model.hparams, config.to_dict())


class _LossOf(nn.Module):
    """``forward`` = the model's ``loss_from_noise``, so that :func:`functional_call` can substitute weights."""

    def __init__(self, model: BaseModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, noise, step, hyper):  # noqa: D401 - nn.Module protocol
        return self.model.loss_from_noise(x, noise, step, hyper)


class _Pack:
    """The stacked weights of a pack's members and their optimisers (Adam on the stacked tensors)."""

    def __init__(self, models: Sequence[BaseModel], config: TrainConfig, device: torch.device,
                 optimizer_states: Sequence[tuple[dict, dict] | None]) -> None:
        template = models[0]
        # Each member's hyper-parameters, fixed for the pack's life: one (N,) tensor per name, vmapped.
        dtype = next(template.parameters()).dtype
        hypers = [model.hyper_parameters() for model in models]
        self.hyper = {key: torch.tensor([float(h[key]) for h in hypers], dtype=dtype, device=device)
                      for key in hypers[0]}
        self.names = [name for name, _ in template.named_parameters()]
        per_model = [dict(m.named_parameters()) for m in models]
        self.params = {name: nn.Parameter(torch.stack([p[name].detach().to(device, memory_format=torch.contiguous_format)
                                                       for p in per_model]))
                       for name in self.names}
        # The same split into the main Adam and the auxiliary ones, with the same checks, as a run alone.
        self.optimizers = Optimizers(template, config, parameters=self.params)
        if any(state is not None for state in optimizer_states):
            if any(state is None for state in optimizer_states):
                raise UserError("a pack mixes fresh and resumed runs; pack runs at the same step only")
            self.optimizers.load_state_dict(
                _stack_adam([state[0] for state in optimizer_states]),
                {name: _stack_adam([state[1][name] for state in optimizer_states])
                 for name in self.optimizers.auxiliary})
        self.module = _LossOf(template)
        self.compute = vmap(self._member_loss, in_dims=(0, 0, 0, None, 0), randomness="error")

    def _member_loss(self, params, x, noise, step, hyper):
        return functional_call(self.module, {f"model.{n}": p for n, p in params.items()}, (x, noise, step, hyper))

    def loss(self, images: torch.Tensor, noise: dict, step: int) -> dict[str, torch.Tensor]:
        return self.compute(self.params, images, noise, step, self.hyper)

    def step(self, losses: dict[str, torch.Tensor]) -> None:
        # The sum of independent members' losses: each member's weights get the gradient of its own loss.
        objectives = {"total": losses["total"].sum()}
        for spec in self.optimizers.auxiliary_specs.values():
            objectives[spec.loss_key] = losses[spec.loss_key].sum()
        self.optimizers.step(objectives)

    def member_state(self, k: int) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
        """Member ``k``'s weights (CPU) and optimiser states, in the layout of a run trained alone."""
        weights = {n: self.params[n][k].detach().to("cpu").clone() for n in self.names}
        main = _slice_adam(self.optimizers.main.state_dict(), k)
        auxiliary = {name: _slice_adam(optimizer.state_dict(), k)
                     for name, optimizer in self.optimizers.auxiliary.items()}
        return weights, main, auxiliary


def _stack_adam(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One Adam state over stacked parameters from the members' own (equal steps, same param groups)."""
    stacked: dict[int, dict[str, torch.Tensor]] = {}
    for index, first in states[0]["state"].items():
        entry = {}
        for key, value in first.items():
            if key == "step":
                steps = {float(state["state"][index]["step"]) for state in states}
                if len(steps) > 1:
                    raise UserError(f"the runs of a pack have taken different numbers of optimiser steps ({sorted(steps)})")
                entry[key] = value.clone() if isinstance(value, torch.Tensor) else value
            else:
                entry[key] = torch.stack([state["state"][index][key] for state in states])
        stacked[index] = entry
    return {"state": stacked, "param_groups": states[0]["param_groups"]}


def _slice_adam(state: dict[str, Any], k: int) -> dict[str, Any]:
    out = {}
    for index, entry in state["state"].items():
        out[index] = {key: (value.detach().to("cpu").clone() if key == "step" else value[k].detach().to("cpu").clone())
                      if isinstance(value, torch.Tensor) else value for key, value in entry.items()}
    return {"state": out, "param_groups": [dict(group) for group in state["param_groups"]]}


def train_packed(models: Sequence[BaseModel], dataset: GroundTruthData, configs: Sequence[TrainConfig],
                 run_dirs: Sequence[str | Path | None] | None = None,
                 progress: bool = True) -> list[TrainResult | FloatingPointError]:
    """Train ``models`` (one run each, with its config and run directory) together as one pack.

    Every run is checked (as :func:`~disent_bench.train.train` checks it) before anything is written; the
    runs must pack (:func:`pack_problem`, equal :func:`pack_key`) and stand at the same step. Returns, per
    run, its :class:`TrainResult` or the :class:`FloatingPointError` that stopped it (the others go on).
    """
    if not models:
        return []
    if len(configs) != len(models) or (run_dirs is not None and len(run_dirs) != len(models)):
        raise UserError("train_packed: one config (and run directory) per model")
    run_dirs = list(run_dirs) if run_dirs is not None else [None] * len(models)
    for model in models:
        problem = pack_problem(model)
        if problem:
            raise UserError(f"cannot pack: {problem}")
    keys = {pack_key(model, config) for model, config in zip(models, configs)}
    if len(keys) > 1:  # the runner groups by the same rule, so this is a caller's mistake
        raise UserError("cannot pack runs of different models, parameters (other than the swept "
                        "hyper-parameters) or training settings (other than the seed, checkpoint and log "
                        "intervals)")
    sessions = [RunSession(model, dataset, config, run_dir) for model, config, run_dir in zip(models, configs, run_dirs)]
    if len({session.step for session in sessions}) > 1:
        raise UserError(f"cannot pack runs at different steps ({sorted({s.step for s in sessions})}); "
                        "pack runs at the same step only")
    if len({str(session.device) for session in sessions}) > 1:
        raise UserError("cannot pack runs on different devices")
    config, device = sessions[0].config, sessions[0].device
    for session in sessions:
        session.begin()

    results: dict[int, TrainResult | FloatingPointError] = {}
    active = list(range(len(models)))
    pack = _Pack([models[k] for k in active], config, device, [sessions[k].optimizer_states() for k in active])
    pending: torch.Tensor | None = None
    num_images, batch = len(dataset), config.batch_size
    weights = training_weights(dataset, config, device)  # the members share their dataset and its correlations
    name = models[0].hparams.get("name", type(models[0]).__name__)
    dtype = next(models[0].parameters()).dtype

    def checkpoint_of(position: int, k: int):
        def state() -> dict[str, Any]:
            weights, main, auxiliary = pack.member_state(position)
            return sessions[k].checkpoint_state(weights, main, auxiliary)
        return state

    with ProgressReporter(f"train {name} x{len(models)} (packed)", config.steps, enabled=progress,
                          completed=sessions[0].step) as reporter:
        while active and not sessions[active[0]].finished:
            step = sessions[active[0]].step
            member_indices = [draw_indices(num_images, batch, sessions[k].sample_gen, device, weights)
                              for k in active]
            if dataset.has_nuisance:
                # Nuisance is keyed on each batch's own indices: gather each run's batch as it would alone.
                images = torch.stack([dataset.batch(indices, device) for indices in member_indices])
            else:  # one gather for the whole pack
                images = dataset.batch(torch.cat(member_indices), device)
                images = images.reshape(len(active), batch, *images.shape[1:])
            noises = [models[k].draw_noise(batch, sessions[k].noise_gen, device, dtype) for k in active]
            noise = {key: torch.stack([n[key] for n in noises]) for key in noises[0]}
            losses = pack.loss(images, noise, step)
            pack.step(losses)
            if pending is None:
                for k in active:  # the loss terms are fixed now; the members' sums become rows of one tensor
                    sessions[k].loss_vector({key: value[0] for key, value in losses.items()})
                pending = torch.stack([sessions[k].ensure_pending() for k in active])
                for position, k in enumerate(active):
                    sessions[k].share_pending(pending[position])
            terms = sessions[active[0]].terms
            with torch.no_grad():
                pending += torch.stack([losses["total"].detach(), *(losses[t].detach() for t in terms)],
                                       dim=1).to(pending.dtype)
            failed = []
            fields: dict[str, Any] = {}
            for position, k in enumerate(active):
                session = sessions[k]
                session.record_step()  # its losses are in its row of ``pending`` already
                try:
                    fields = session.end_step(checkpoint_of(position, k)) or fields
                except FloatingPointError as exc:
                    results[k] = exc
                    failed.append(position)
            if failed:
                # Re-pack the survivors from their current states (their weights and optimiser moments).
                survivors = [(position, k) for position, k in enumerate(active) if position not in failed]
                states = {k: pack.member_state(position) for position, k in survivors}
                rows = {k: sessions[k].pending.clone() for _, k in survivors}
                active = [k for _, k in survivors]
                if active:
                    for k in active:
                        models[k].load_state_dict(states[k][0])
                    pack = _Pack([models[k] for k in active], config, device,
                                 [(states[k][1], states[k][2]) for k in active])
                    pending = torch.stack([rows[k] for k in active]).to(device)
                    for position, k in enumerate(active):
                        sessions[k].share_pending(pending[position])
            reporter.update(1, **fields)

    for position, k in enumerate(active):
        weights, main, auxiliary = pack.member_state(position)
        models[k].load_state_dict(weights)
        prepare_model(models[k], config, device)
        results[k] = sessions[k].finish(checkpoint_of(position, k))
    return [results[k] for k in range(len(models))]
