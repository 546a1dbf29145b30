"""Ada-ML-VAE (Locatello et al. 2020, ICML, "Weakly-Supervised Disentanglement Without Compromises"): the
reference's ``MLVaeArgmax`` (disentanglement_lib ``methods/weak/weak_vae.py``).

An ML-VAE (Bouchacourt et al. 2018: shared dims get the product-of-experts mean, and, as the reference,
twice the product-of-experts variance ``2 v1 v2/(v1 + v2)``, the spec's Decision 4) whose shared dims are
chosen per pair by the adaptive threshold: a dim is shared iff ``2 KL(q1 || q2) < (min + max)/2`` over
the pair's dims. It ignores labels. The objective and its departures from the reference are in
:mod:`disent_bench.models.weak`.
"""

from __future__ import annotations

from disent_bench.models.weak import WeakVAE, adaptive_own_dims, ml_vae_average

__all__ = ["AdaMLVAE"]


class AdaMLVAE(WeakVAE):
    """Ada-ML-VAE: ML-VAE aggregate on the dims the adaptive threshold judges shared; ``beta`` weighs the KL."""

    def aggregate(self, mu1, logvar1, mu2, logvar2):
        return ml_vae_average(mu1, logvar1, mu2, logvar2)

    def own_dims(self, delta, labels):
        return adaptive_own_dims(delta)
