"""Pairs of observations for weakly-supervised training (Locatello et al. 2020, ICML, "Weakly-Supervised
Disentanglement Without Compromises").

A pair is two grid points that agree on every factor but a few: the model sees both images, not which
factors changed. :func:`sample_pairs` draws a batch of pairs as image indices, vectorised over the batch,
every draw from the ``torch.Generator`` passed in, on the generator's device. The team spec is
``shared/spec/weak.md`` (sections 1 and 4, Decisions 1 and 6).

Modes (Decision 1):

* ``"reference"``: disentanglement_lib's ``simple_dynamics`` (``methods/weak/train_weak_lib.py``, commit
  86a644d). Per pair: ``k_obs`` = ``k``, or uniform over 1..K-1 when ``k = -1``; ``m`` = 1 or ``k_obs`` with
  probability 1/2 each; ``m`` distinct factors drawn in order; each gets a new value uniform over *all* its
  values, so it may keep the old one (for ``k = 1`` the two images are identical with probability
  mean_i(1/n_i): 11.75% on dSprites' five factors). K counts every factor, one-valued ones included, as
  the reference does (such a factor can be chosen and then cannot change).
* ``"paper"``: the paper's description (disentanglement_lib issue #31; Roth et al.'s "uniform_fixed"):
  exactly ``k`` factors change (``k = -1``: uniform over 1..K'-1 per pair), each to a value uniform over its
  *other* values. Only the K' factors with at least two values can change.

:class:`PairBatch` gives both image indices, the label (the *last* factor of the drawn list, step 7 of the
spec; what the label-informed models use) and the full changed-factor mask ``chosen``.

Departures from the reference, and why:

* Every draw, the new factor values included, comes from the one seeded generator. The reference drew the
  new values from NumPy's unseeded global generator (``np.random.choice``), so its pairs could not be
  reproduced; here the same generator state gives the same pairs.
* The draws are batched (a Fisher-Yates shuffle of the factor positions per pair, vectorised over pairs)
  instead of one pair after another, so the stream differs from the reference's RandomState; the
  distribution is the same.
* Validation: ``k`` must be -1 or in 1..K-1 (the reference accepted anything and failed or looped later).
  In ``"paper"`` mode ``k`` must be at most K'-1, so that at least one factor that varies stays shared
  (the paper's k < d, on the factors that can change); the reference mode keeps the reference's 1..K-1.

Correlated training data (spec section 4, :mod:`disent_bench.data.correlation`): with ``weights`` (a
probability per grid point), ``first`` is drawn with ``P(first) = weights``, and ``second`` among the grid
points that equal ``first`` on the unchosen factors (reference mode: ``first`` itself included; paper mode:
those differing from ``first`` in every chosen factor) with probability proportional to ``weights``, as
Roth et al.'s ``PairedDataset`` does. That conditional draw is exact and vectorised in two stages:

1. Rejection: propose the chosen factors' values as the unweighted sampler does (uniform over the
   candidate set) and accept with probability ``w(proposal) / max(w)``. Accepted proposals have exactly
   ``P ∝ w`` on the candidate set. At most ``_REJECTION_ROUNDS`` rounds, each vectorised over the pairs
   not yet accepted; a pair keeps its first accepted proposal, and the rounds stop once every pair has
   one (each round waits on the device to learn which pairs are left: the weighted path synchronises,
   the uniform one never does).
2. Enumeration, for the pairs no round accepted: each one's whole candidate set is listed (by
   broadcasting over its chosen factors' candidate values), weighted and drawn from with
   ``torch.multinomial``. Pairs are grouped by their set of chosen factors (a loop over the distinct sets
   present) and go in chunks of at most ``_ENUMERATION_BUDGET`` candidates in all (one pair per chunk
   only when a single candidate set is that large, i.e. never on the study's data).

Pairs whose candidate set has at most ``_DIRECT_LIMIT`` points skip stage 1 (listing them is cheaper than
waiting for an acceptance). Both stages draw from ``P ∝ w`` on the candidate set, whatever decides which
stage a pair ends in, so the mixture is exact. Cost on dSprites (B = 64, one CPU thread): ~5 ms for the
weighted draw of ``first`` (a pass over the N weights), plus 1-10 ms for ``second``, up to ~50 ms when
several factors change under two strong pairs (sigma 0.04). A candidate set whose weights are all zero (only possible by float underflow of
extreme correlations) is drawn from uniformly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch

from disent_bench.errors import UserError

__all__ = ["PAIR_MODES", "PairBatch", "changeable_factors", "sample_pairs"]

PAIR_MODES = ("reference", "paper")

# Rejection rounds before the exact enumeration takes over (see the module docstring). A round costs
# O(K) small operations on the pairs still pending; with acceptance rate a, a fraction (1 - a)**128 of
# the pairs is left for enumeration (a = 0.05: 0.14%).
_REJECTION_ROUNDS = 128
# Candidate sets up to this size are listed at once instead (cost: B * _DIRECT_LIMIT gathers at most).
_DIRECT_LIMIT = 4096
# Candidates enumerated at once in the exact fallback (int64 indices and float64 weights: ~128 MiB).
_ENUMERATION_BUDGET = 1 << 23


class PairBatch(NamedTuple):
    """A batch of B pairs of image indices on the sampler's device.

    ``first``, ``second``: (B,) int64 image indices (row-major over the factor grid).
    ``label``: (B,) int64, the last factor of each pair's drawn list of factors to change (the
    reference's label, step 7 of the spec).
    ``chosen``: (B, K) bool, the factors chosen to change (Decision 1). In ``"reference"`` mode a chosen
    factor may have kept its value; in ``"paper"`` mode every chosen factor differs.
    """

    first: torch.Tensor
    second: torch.Tensor
    label: torch.Tensor
    chosen: torch.Tensor


def changeable_factors(factor_sizes: Sequence[int], mode: str) -> list[int]:
    """Positions of the factors a pair may change: all of them (``"reference"``), or those with >= 2 values."""
    if mode == "reference":
        return list(range(len(factor_sizes)))
    return [i for i, n in enumerate(factor_sizes) if int(n) >= 2]


def sample_pairs(factor_sizes: Sequence[int], factor_strides, batch_size: int, *, k: int, mode: str,
                 generator: torch.Generator, device: str | torch.device | None = None,
                 weights: torch.Tensor | None = None) -> PairBatch:
    """Draw ``batch_size`` pairs of grid points (see the module docstring).

    Parameters
    ----------
    factor_sizes, factor_strides:
        The grid: values per factor and row-major strides (``GroundTruthData.factor_sizes`` and
        ``.factor_strides``; factor 0 slowest).
    k:
        Factors to change: an int in 1..K-1 (``"paper"``: 1..K'-1, K' the factors with >= 2 values), or
        -1 for a uniform draw over that range per pair (the paper's "Rnd").
    mode:
        ``"reference"`` or ``"paper"`` (:data:`PAIR_MODES`).
    generator:
        The only source of randomness, on ``device``.
    weights:
        Optional (N,) probabilities of the grid points (correlated training data); ``None`` is uniform.
    """
    sizes, strides, device = _check_grid(factor_sizes, factor_strides, generator, device)
    size_list = [int(n) for n in factor_sizes]  # host copies: no device synchronisation per factor
    num_factors = len(size_list)
    if mode not in PAIR_MODES:
        raise UserError(f"pairs = {mode!r}: must be one of {', '.join(repr(m) for m in PAIR_MODES)}")
    changeable = changeable_factors(factor_sizes, mode)
    max_k = len(changeable) - 1
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        k = int(k)
    if not isinstance(k, int) or isinstance(k, bool) or not (k == -1 or 1 <= k <= max_k):
        counted = "factors" if mode == "reference" else "factors with at least two values"
        if max_k < 1:
            raise UserError(f"pairs = {mode!r} needs at least two {counted}; the grid {tuple(factor_sizes)} "
                            f"has {max_k + 1}")
        raise UserError(f"k = {k!r}: must be -1 (random) or an int in 1..{max_k} "
                        f"(the grid {tuple(factor_sizes)} has {max_k + 1} {counted}, and one must stay shared)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise UserError(f"batch_size = {batch_size!r}: must be a positive int")
    batch_size = int(batch_size)
    num_points = math.prod(size_list)
    if weights is not None:
        weights = _check_weights(weights, num_points, device)

    # 1. The first image: uniform over the grid, or P(first) = weights.
    if weights is None:
        first = torch.randint(num_points, (batch_size,), generator=generator, device=device)
    else:
        first = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
    old_values = (first[:, None] // strides) % sizes  # (B, K) factor classes of the first image

    # 2.-4. How many factors change, and which, in drawn order.
    rows = torch.arange(batch_size, device=device)
    if k == -1:  # "Rnd": uniform over 1..max_k per pair (the reference: randint(1, K))
        k_obs = torch.randint(1, max_k + 1, (batch_size,), generator=generator, device=device)
    else:
        k_obs = torch.full((batch_size,), k, dtype=torch.int64, device=device)
    if mode == "reference":
        # choice([1, k_obs]): each with probability 1/2 (so m = 1 also when the coin picks k_obs = 1).
        coin = torch.randint(2, (batch_size,), generator=generator, device=device)
        num_chosen = torch.where(coin == 0, torch.ones_like(k_obs), k_obs)
    else:
        num_chosen = k_obs
    order = _shuffled_positions(batch_size, len(changeable), generator, device)  # (B, K') drawn order
    drawn = torch.as_tensor(changeable, dtype=torch.int64, device=device)[order]  # factor positions
    chosen_in_order = torch.arange(len(changeable), device=device)[None, :] < num_chosen[:, None]
    chosen = torch.zeros((batch_size, num_factors), dtype=torch.bool, device=device)
    chosen.scatter_(1, drawn, chosen_in_order)
    label = drawn[rows, num_chosen - 1]  # the last factor of the drawn list

    # 5.-6. New values of the chosen factors: the candidate set of a pair is every grid point equal to
    # first on the unchosen factors (reference) and, in paper mode, different on every chosen factor.
    shift = 0 if mode == "reference" else 1
    second = _propose(first, old_values, chosen, size_list, strides, shift, generator)
    if weights is not None:
        second = _weighted_second(first, old_values, chosen, sizes, size_list, strides, shift, weights,
                                  second, generator)
    return PairBatch(first, second, label, chosen)


def _check_grid(factor_sizes, factor_strides, generator, device):
    if not isinstance(generator, torch.Generator):
        raise UserError(f"generator = {generator!r}: must be a torch.Generator (every draw comes from it)")
    device = torch.device(device) if device is not None else generator.device
    if device.type != generator.device.type:
        raise UserError(f"device = {device}: the generator lives on {generator.device}; pass one on {device}")
    try:
        sizes = torch.as_tensor([int(n) for n in factor_sizes], dtype=torch.int64, device=device)
        strides = torch.as_tensor([int(s) for s in factor_strides], dtype=torch.int64, device=device)
    except (TypeError, ValueError):
        raise UserError(f"factor_sizes = {factor_sizes!r}, factor_strides = {factor_strides!r}: "
                        f"must be sequences of ints") from None
    if sizes.numel() == 0 or bool((sizes < 1).any()):
        raise UserError(f"factor_sizes = {tuple(factor_sizes)}: need at least one factor, each with >= 1 value")
    expected = torch.ones_like(sizes)
    if sizes.numel() > 1:
        expected[:-1] = torch.flip(torch.cumprod(torch.flip(sizes[1:], (0,)), 0), (0,))
    if strides.shape != sizes.shape or not torch.equal(strides, expected):
        raise UserError(f"factor_strides = {tuple(int(s) for s in factor_strides)}: must be the row-major strides "
                        f"{tuple(expected.tolist())} of factor_sizes = {tuple(factor_sizes)}")
    return sizes, strides, device


def _check_weights(weights, num_points: int, device: torch.device) -> torch.Tensor:
    if not isinstance(weights, torch.Tensor) or weights.shape != (num_points,) or not weights.is_floating_point():
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise UserError(f"weights: must be a float tensor of shape ({num_points},), one probability per grid "
                        f"point, got {shape}")
    # float64: the weights of strong correlations span hundreds of orders of magnitude (MPS has no float64).
    weights = weights.to(device=device, dtype=torch.float32 if device.type == "mps" else torch.float64)
    if not bool(torch.isfinite(weights).all() & (weights >= 0).all() & (weights.sum() > 0)):
        raise UserError("weights: must be finite, non-negative and not all zero")
    return weights


def _shuffled_positions(batch_size: int, count: int, generator, device) -> torch.Tensor:
    """(B, count) int64: an independent uniform permutation of 0..count-1 per row (vectorised Fisher-Yates)."""
    order = torch.arange(count, device=device).repeat(batch_size, 1)
    rows = torch.arange(batch_size, device=device)
    for position in range(count - 1):  # a loop over positions, each step vectorised over the rows
        swap = torch.randint(position, count, (batch_size,), generator=generator, device=device)
        here = order[:, position].clone()
        order[:, position] = order[rows, swap]
        order[rows, swap] = here
    return order


def _propose(first, old_values, chosen, size_list: list[int], strides, shift: int, generator) -> torch.Tensor:
    """Second indices with each chosen factor uniform over its candidate values, the others kept.

    Candidate values of factor i: ``(old + shift + j) % n_i`` for j in 0..n_i-1-shift (shift 0: all values;
    shift 1: all but the old one). One draw per factor and row, chosen or not, so the stream does not
    depend on which factors were chosen.
    """
    rows = first.shape[0]
    step = torch.zeros_like(first)
    for factor, size in enumerate(size_list):  # a loop over factors, vectorised over the rows
        # randint's high must exceed low: a one-valued factor (reference mode only) has one candidate.
        offset = torch.randint(max(size - shift, 1), (rows,), generator=generator, device=first.device)
        new = (old_values[:, factor] + shift + offset) % size
        step += torch.where(chosen[:, factor], (new - old_values[:, factor]) * strides[factor], 0)
    return first + step


def _weighted_second(first, old_values, chosen, sizes, size_list, strides, shift: int, weights, second,
                     generator):
    """Second indices with ``P ∝ weights`` on each pair's candidate set (module docstring: rejection, then
    enumeration). ``second`` is the unweighted proposal already drawn: the first round's proposal."""
    bound = weights.max()
    second = second.clone()
    # Small candidate sets are cheaper to list than to hit by rejection (a strong correlation accepts
    # few uniform proposals); only pairs with large sets go through the rejection rounds first.
    set_sizes = torch.where(chosen, (sizes - shift).clamp(min=1), 1).prod(1)
    small = set_sizes <= _DIRECT_LIMIT
    pending = torch.nonzero(~small).flatten()
    proposal = second[pending]
    for round_ in range(_REJECTION_ROUNDS):
        if pending.numel() == 0:
            break
        if round_:
            proposal = _propose(first[pending], old_values[pending], chosen[pending], size_list, strides, shift,
                                generator)
        uniform = torch.rand(pending.shape, generator=generator, device=first.device, dtype=weights.dtype)
        accept = uniform * bound < weights[proposal]  # P(accept) = w(proposal) / max w
        second[pending[accept]] = proposal[accept]
        pending = pending[~accept]  # a host synchronisation per round (free on CPU)
    listed = torch.cat([torch.nonzero(small).flatten(), pending])
    if listed.numel():
        second[listed] = _enumerated_second(first[listed], old_values[listed], chosen[listed], sizes, strides,
                                            shift, weights, generator)
    return second


def _enumerated_second(first, old_values, chosen, sizes, strides, shift: int, weights, generator):
    """Exact draw over each row's whole candidate set: rows grouped by their set of chosen factors (a loop
    over the distinct sets present, at most 2**K), each group in chunks of bounded total size."""
    out = torch.empty_like(first)
    patterns, group_of = torch.unique(chosen, dim=0, return_inverse=True)
    for group, pattern in enumerate(patterns.tolist()):
        members = torch.nonzero(group_of == group).flatten()
        factors = [i for i, is_chosen in enumerate(pattern) if is_chosen]
        counts = [int(sizes[i]) - shift for i in factors]  # candidate values per chosen factor
        width = math.prod(counts)
        rows_per_chunk = max(1, _ENUMERATION_BUDGET // width)
        for start in range(0, members.numel(), rows_per_chunk):  # chunks of rows, normally one
            rows = members[start:start + rows_per_chunk]
            # candidates[r, j_1, ..., j_m] = first + sum_i (new_i(j_i) - old_i) * stride_i, built by broadcasting.
            candidates = first[rows].reshape((-1,) + (1,) * len(factors))
            for axis, (factor, count) in enumerate(zip(factors, counts)):
                old = old_values[rows, factor, None]
                new = (old + shift + torch.arange(count, device=first.device)) % sizes[factor]
                shape = [rows.numel()] + [1] * len(factors)
                shape[axis + 1] = count
                candidates = candidates + ((new - old) * strides[factor]).reshape(shape)
            candidates = candidates.reshape(rows.numel(), width)
            candidate_weights = weights[candidates]
            # All-zero rows (float underflow only): uniform over the candidates instead of an error.
            empty = candidate_weights.sum(1, keepdim=True) <= 0
            candidate_weights = torch.where(empty, torch.ones_like(candidate_weights), candidate_weights)
            pick = torch.multinomial(candidate_weights, 1, generator=generator)
            out[rows] = candidates.gather(1, pick).squeeze(1)
    return out
