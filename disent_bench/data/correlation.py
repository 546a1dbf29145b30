"""Training data with correlated factors (Träuble et al. 2021, ICML, "On Disentangled Representations
Learned from Correlated Data").

Correlation changes only how *training* batches are drawn: grid point x gets the probability
``P(x) = w(x) / sum w`` and training draws with replacement from it; evaluation stays on the independent
grid (Decision 6 of ``shared/spec/weak.md``, section 4). With ``c_i(x)`` the value of factor i scaled to
[0, 1] over the grid (``class / (n_i - 1)`` for evenly spaced values), a correlated pair (a, b) of strength
``sigma`` weighs

    w_ab(x) = exp(-(c_a - c_b)^2 / (2 sigma^2)),   anti-correlated: exp(-(c_a - (1 - c_b))^2 / (2 sigma^2)),

and several pairs multiply: ``w = prod w_ab`` (no pair: uniform). Reference implementation: Roth et al.
2023, facebookresearch/disentangling-correlated-factors (``datasets/utils.py``,
``provide_correlation_sampler``; ``constraints/avail_correlations.yaml``).

Grid syntax (a list of tables): ``{ factors = ["posX", "posY"], sigma = 0.2 }``, optionally ``anti = true``,
or a confounder ``{ confounder = "scale", sigma = 0.2 }`` that ties that factor to every other factor with at
least two values (Roth et al.'s ``(A, 'random')`` repeated ``max_num_single`` times).

Departures from the reference, and why:

* The sign is per pair (``anti``), not one global option (``inv_traeuble``): it costs nothing and a global
  sign is the special case of every pair carrying the same one.
* A confounder's partners are fixed (all other factors that vary) rather than drawn in random order by the
  unseeded global generator: the set is the same, and the reference's order did not change the weights.
* The weights are computed in log space and on the grid's shape (one broadcast table per pair, never an
  (N, K) matrix), so strong correlations on several pairs do not underflow the product; the reference
  multiplied float64 weights directly (the same numbers where nothing underflows).
* Unknown factors, a factor paired with itself, duplicate pairs, ``sigma <= 0`` and unknown keys are
  errors (the reference's ``('random', B)`` branch compared the second name twice and matched wrongly).
* A factor with a single value cannot be correlated (its scaled value is 0/0): an error when named
  explicitly, skipped as a confounder partner.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from disent_bench.errors import UserError

__all__ = ["Correlation", "canonical", "describe", "grid_weights", "parse_correlations"]

_PAIR_KEYS = {"factors", "sigma", "anti"}
_CONFOUNDER_KEYS = {"confounder", "sigma", "anti"}


@dataclass(frozen=True)
class Correlation:
    """One correlated pair of factors.

    ``factors``: the two factor names as written (a confounder's name first); ``sigma``: the strength
    (smaller is stronger); ``anti``: anti-correlation (``c_b`` replaced by ``1 - c_b``); ``indices``: the
    factors' positions in the dataset's factor order.
    """

    factors: tuple[str, str]
    sigma: float
    anti: bool = False
    indices: tuple[int, int] = (0, 1)


def parse_correlations(entries, factor_names: Sequence[str],
                       factor_sizes: Sequence[int] | None = None) -> tuple[Correlation, ...]:
    """The correlated pairs of a grid's ``correlations`` list (see the module docstring).

    ``factor_sizes`` (optional, in ``factor_names``' order) lets a confounder skip one-valued factors and
    rejects one-valued factors named in a pair; without it every factor counts as varying.
    """
    names = tuple(factor_names)
    sizes = tuple(int(n) for n in factor_sizes) if factor_sizes is not None else (2,) * len(names)
    if len(sizes) != len(names):
        raise ValueError("factor_sizes and factor_names differ in length")
    valid = ", ".join(names)
    if entries is None:
        return ()
    if isinstance(entries, (Mapping, str)) or not isinstance(entries, Sequence):
        raise UserError(f"correlations: must be a list of tables such as "
                        f"{{ factors = [\"{names[0]}\", \"{names[-1]}\"], sigma = 0.2 }}, got {type(entries).__name__}")
    result: list[Correlation] = []
    seen: dict[frozenset, int] = {}

    def position(where: str, key: str, name) -> int:
        if not isinstance(name, str) or name not in names:
            raise UserError(f"{where}: unknown factor {name!r} in '{key}'; valid factors: {valid}")
        return names.index(name)

    for number, entry in enumerate(entries):
        where = f"correlations[{number}]"
        if not isinstance(entry, Mapping):
            raise UserError(f"{where}: must be a table with 'factors' (or 'confounder') and 'sigma', "
                            f"got {entry!r}")
        if ("factors" in entry) == ("confounder" in entry):
            raise UserError(f"{where}: needs exactly one of 'factors' (a pair of names) or 'confounder' "
                            f"(one name), got keys {sorted(entry)}")
        allowed = _PAIR_KEYS if "factors" in entry else _CONFOUNDER_KEYS
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise UserError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(allowed))}")
        if "sigma" not in entry:
            raise UserError(f"{where}: missing 'sigma' (the correlation strength, a number > 0, e.g. 0.2)")
        sigma = entry["sigma"]
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma <= 0:
            raise UserError(f"{where}: sigma = {sigma!r}: must be a finite number > 0 (smaller is stronger)")
        anti = entry.get("anti", False)
        if not isinstance(anti, bool):
            raise UserError(f"{where}: anti = {anti!r}: must be true or false")
        if "factors" in entry:
            pair = entry["factors"]
            if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise UserError(f"{where}: 'factors' must be a list of two factor names (valid: {valid}), "
                                f"got {pair!r}")
            a, b = (position(where, "factors", name) for name in pair)
            if a == b:
                raise UserError(f"{where}: factor {names[a]!r} is paired with itself in 'factors'; "
                                f"name two different factors of: {valid}")
            for index in (a, b):
                if sizes[index] < 2:
                    raise UserError(f"{where}: factor {names[index]!r} has a single value and cannot be "
                                    f"correlated; valid factors: "
                                    f"{', '.join(n for n, s in zip(names, sizes) if s >= 2)}")
            pairs = [(a, b)]
        else:
            a = position(where, "confounder", entry["confounder"])
            if sizes[a] < 2:
                raise UserError(f"{where}: confounder {names[a]!r} has a single value and cannot be correlated")
            pairs = [(a, b) for b in range(len(names)) if b != a and sizes[b] >= 2]
            if not pairs:
                raise UserError(f"{where}: confounder {names[a]!r} has no other factor with two or more values")
        for a, b in pairs:
            key = frozenset((a, b))
            if key in seen:
                raise UserError(f"{where}: the pair {names[a]}~{names[b]} is already correlated by "
                                f"correlations[{seen[key]}]; each pair may appear once")
            seen[key] = number
            result.append(Correlation((names[a], names[b]), float(sigma), anti, (a, b)))
    return tuple(result)


def scaled_values(factor_sizes: Sequence[int], factor_values: Sequence | None = None) -> list[np.ndarray]:
    """Per factor, its values scaled to [0, 1] (min-max); ``class / (n - 1)`` without ``factor_values``."""
    scaled = []
    for i, size in enumerate(factor_sizes):
        if factor_values is None:
            scaled.append(np.arange(size, dtype=np.float64) / max(size - 1, 1))
            continue
        values = np.asarray(factor_values[i], dtype=np.float64).reshape(-1)
        if values.size != size:
            raise ValueError(f"factor {i}: {values.size} values for {size} classes")
        span = values.max() - values.min()
        scaled.append((values - values.min()) / span if span > 0 else np.zeros(size))
    return scaled


def grid_weights(factor_sizes: Sequence[int], correlations: Sequence[Correlation],
                 factor_values: Sequence | None = None) -> np.ndarray:
    """(N,) float64 probabilities of the grid points in index order (row-major), summing to 1.

    ``factor_values`` (optional, e.g. ``GroundTruthData.factor_values``): each factor's values, scaled to
    [0, 1] per factor (Decision 6); without them a factor's classes are taken as evenly spaced values.
    Memory: one float64 per grid point (plus a small table per pair).
    """
    sizes = tuple(int(n) for n in factor_sizes)
    scaled = scaled_values(sizes, factor_values)
    log_weight = np.zeros(sizes, dtype=np.float64)
    for correlation in correlations:
        a, b = correlation.indices
        if not (0 <= a < len(sizes) and 0 <= b < len(sizes)) or a == b:
            raise ValueError(f"correlation {correlation.factors}: factor positions {correlation.indices} do not "
                             f"fit the grid {sizes}")
        if sizes[a] < 2 or sizes[b] < 2:
            raise UserError(f"correlation {correlation.factors[0]}~{correlation.factors[1]}: a factor with a "
                            f"single value cannot be correlated")
        c_a = scaled[a]
        c_b = 1.0 - scaled[b] if correlation.anti else scaled[b]
        table = -np.square(c_a[:, None] - c_b[None, :]) / (2.0 * correlation.sigma ** 2)  # (n_a, n_b)
        if a > b:  # the table's axes must follow the grid's axis order to broadcast
            table = table.T
        shape = [1] * len(sizes)
        shape[a], shape[b] = sizes[a], sizes[b]
        log_weight += table.reshape(shape)
    log_weight -= log_weight.max()  # the largest weight is 1: nothing underflows that matters
    weight = np.exp(log_weight, out=log_weight).reshape(-1)
    weight /= weight.sum()
    return weight


def _sign(correlation: Correlation) -> str:
    return "-" if correlation.anti else ""


def describe(correlations: Sequence[Correlation]) -> str:
    """A label for reports: ``"correlated: posX~posY σ=0.2"`` (``posX~-posY`` when anti-correlated; several
    pairs joined by ", "), or ``"uncorrelated"``."""
    if not correlations:
        return "uncorrelated"
    parts = [f"{c.factors[0]}~{_sign(c)}{c.factors[1]} σ={c.sigma:g}" for c in correlations]
    return "correlated: " + ", ".join(parts)


def canonical(correlations: Sequence[Correlation]) -> list[dict]:
    """A JSON-able, order-normalised form for run configurations (Decision 6: sigma, pairs and sign).

    Each pair lists its factors in the dataset's order, and pairs are sorted by those positions, so the
    same set of pairs, however written (a confounder or its pairs one by one), gives the same list.
    """
    rows = []
    for c in correlations:
        (a, name_a), (b, name_b) = sorted(zip(c.indices, c.factors))
        rows.append(((a, b), {"factors": [name_a, name_b], "sigma": float(c.sigma), "anti": bool(c.anti)}))
    return [row for _, row in sorted(rows, key=lambda item: item[0])]
