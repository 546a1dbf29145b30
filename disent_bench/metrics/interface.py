"""What a metric module is: the interface :func:`disent_bench.metrics.evaluate` relies on.

Every metric is a module (``beta_vae``, ``factor_vae``, ``mig``, ``dci``, ``sap``, ``modularity``,
``reconstruction``, ``unsupervised``, ``downstream``, ``irs``, ``mig_sup``, ``jemmig``, ``dcimig``,
``infomec``) registered in ``disent_bench.metrics._MODULES``; the evaluator
reaches it only through the four members of :class:`Metric`, in two phases:

1. **Draw** (before anything is encoded): for each requested metric,
   ``module.draw(dataset, settings, rng)``. The union of every drawn index is then encoded once
   (:mod:`disent_bench.metrics.cache`).
2. **Compute** (after encoding): for each requested metric,
   ``module.compute(dataset, draws, view, settings, random_state, **extras)``, with ``extras`` the
   inputs named in ``module.NEEDS``. Each returned ``key: value`` becomes ``"<NAME>.<key>": float(value)``
   in the evaluator's result, beside ``"<NAME>.seconds"`` (the compute phase's wall time, added by the
   evaluator).

Both phases take the metrics in the order they were asked for; that order changes no number, since
each metric has its own random stream (below).

Random state: nothing in a metric may read a global generator (``np.random.*``, ``torch`` RNG, Python's
``random``). Each metric gets one stream of its own, spawned from the evaluation seed at the metric's
position in the registry (so a metric's numbers do not depend on which other metrics run with it), and
split in three: the ``rng`` of :meth:`~Metric.draw`, the noise generator of the ``view`` (sampled codes)
and the integer ``random_state`` of :meth:`~Metric.compute`. A metric's numbers are a function of the
dataset, the encoder (for a metric that needs ``"model"``, its decoder too, on ``"device"``), its
settings and those three; ``"threads"`` changes its speed only, never a number.

The modules have other public functions, each metric's estimator on plain arrays (``mig_from_codes``,
``dci_from_codes``, ``sap_from_codes``, ``unsupervised_scores``, ``beta_vae.score_features``,
``factor_vae.score_votes``, ``modularity.modularity`` / ``explicitness``,
``reconstruction.per_image_losses``): the tests and scripts call those, the evaluator does not, so they
are each module's own API, not part of this interface.

Adding a metric
---------------
1. Write ``disent_bench/metrics/<name>.py`` with ``NAME = "<name>"``, ``NEEDS`` (usually ``()``),
   ``draw`` and ``compute`` as documented on :class:`Metric`; a module docstring that cites the paper
   and the reference implementation, and says where the estimator departs from it.
2. Register it at the **end** of the tuple behind ``_MODULES`` in :mod:`disent_bench.metrics` (a
   metric's position fixes its random stream: inserting it elsewhere would change other metrics'
   numbers), and name it in that module's docstring.
3. Give it settings in every preset of :mod:`disent_bench.metrics.presets` (``PAPER``, ``QUICK``,
   the table in its docstring) and a minimum for each setting in ``_MINIMUM`` (plus
   ``_FLOAT_SETTINGS`` / ``_FLAG_SETTINGS`` for non-integer settings).
4. ``tests/test_metrics_interface.py`` then checks the module against this interface; add tests of
   the estimator itself (known values, the reference's numbers where available).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView

__all__ = ["Metric", "EXTRAS", "DRAW_PARAMETERS", "COMPUTE_PARAMETERS", "LABELS_SUFFIX"]

# The extra inputs a metric may ask for in ``NEEDS``, and what the evaluator passes for each.
EXTRAS: dict[str, str] = {
    "model": "the encoder as given to evaluate(): a model with encode() and decode() (a metric that "
             "needs it is skipped, with a warning, for an encoder without a decoder)",
    "device": "the torch.device the encoder runs on (its images are on it too)",
    "threads": "the number of CPU threads the metric may use (evaluate(threads=...); default: the cores "
               "this process may use); speed only, never the numbers",
}
# The positional parameters of draw and compute, by name (what the tests check with inspect.signature).
DRAW_PARAMETERS = ("dataset", "settings", "rng")
COMPUTE_PARAMETERS = ("dataset", "draws", "view", "settings", "random_state")
# Drawn arrays whose key ends with this are per-point labels, not image indices: they are not encoded.
LABELS_SUFFIX = "_labels"


@runtime_checkable
class Metric(Protocol):
    """A metric module, as :func:`disent_bench.metrics.evaluate` uses it (a module, not a class: the
    members are module-level names and functions; ``self`` stands for the module).

    ``isinstance(module, Metric)`` checks that the four members exist; their signatures are checked by
    ``tests/test_metrics_interface.py``.
    """

    NAME: str
    """The metric's name: its key in the registry (``_MODULES``), in the presets and in ``settings``
    overrides, and the prefix of its result keys (``"<NAME>.<key>"``). Lower case, no dots."""

    NEEDS: tuple[str, ...]
    """The extra inputs :meth:`compute` takes as keyword-only arguments, from :data:`EXTRAS`
    (``"model"``, ``"device"``, ``"threads"``); ``()`` for a metric that only reads codes and factors."""

    def draw(self, dataset: GroundTruthData, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Every image the metric will look at, drawn up front; called once per evaluation, before encoding.

        ``dataset``: the dataset, or on a dataset with per-observation nuisance (``has_nuisance``) the
        metric's own view of it, which turns every drawn index into a fresh observation id; so draw image
        indices only through ``dataset.sample_indices(n, rng)`` and ``dataset.index_of(factor_rows)``
        (factor rows from ``dataset.sample_factors(n, rng)`` are fine). ``settings``: this metric's
        settings (the preset's, with overrides applied and checked). ``rng``: the metric's draw
        generator, the only randomness allowed here.

        Returns named integer arrays of any shape. Every array is image indices (observation ids) to be
        encoded, except those whose key ends with ``"_labels"`` (per-point labels such as the factor a
        point is about), which are passed through untouched. The dict is handed back to :meth:`compute`
        as ``draws``.
        """
        ...

    def compute(self, dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
                random_state: int) -> Mapping[str, Any]:
        """The metric's scores from the encoded codes; called once per evaluation, after encoding.

        ``dataset``: the same object :meth:`draw` got (read factors with ``dataset.factors_of(indices)``,
        images with ``dataset.batch(indices, device)``). ``draws``: what :meth:`draw` returned.
        ``view``: the codes, ``view.codes(indices)`` in the chosen representation (``"sampled"`` draws
        fresh noise from the metric's own generator ``view.noise_rng`` on every call, which also serves
        any noise the metric draws itself; ``view.mean`` / ``view.std`` read the cached moments); only
        indices that :meth:`draw` returned are encoded. ``settings``: as for :meth:`draw`.
        ``random_state``: an int in ``[0, 2**31 - 1)``, the seed of every estimator the metric fits
        (scikit-learn's ``random_state``, the boosting's). Plus, keyword-only, one argument per name in
        ``NEEDS`` (see :data:`EXTRAS`).

        Returns ``{key: number}`` (floats; NaN where the score is undefined): the evaluator reports
        ``"<NAME>.<key>"``. A key may hold dots to group sub-results (``downstream``'s
        ``"lr.100.mean_test_accuracy"``), never an empty part. ``"seconds"`` is the evaluator's key and must not be returned.
        """
        ...
