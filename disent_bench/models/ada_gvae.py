"""Ada-GVAE (Locatello et al. 2020, ICML, "Weakly-Supervised Disentanglement Without Compromises"): the
reference's ``GroupVAEArgmax`` (disentanglement_lib ``methods/weak/weak_vae.py``).

A GVAE (Hosoya 2019: shared dims get the average ``mu = (mu1 + mu2)/2``, ``v = (v1 + v2)/2``) whose shared
dims are chosen per pair by the adaptive threshold: a dim is shared iff ``2 KL(q1 || q2) < (min + max)/2``
over the pair's dims. It ignores labels. The objective and its departures from the reference are in
:mod:`disent_bench.models.weak`.
"""

from __future__ import annotations

from disent_bench.models.weak import WeakVAE, adaptive_own_dims, group_average

__all__ = ["AdaGVAE"]


class AdaGVAE(WeakVAE):
    """Ada-GVAE: group average on the dims the adaptive threshold judges shared; ``beta`` weighs the KL."""

    def aggregate(self, mu1, logvar1, mu2, logvar2):
        return group_average(mu1, logvar1, mu2, logvar2)

    def own_dims(self, delta, labels):
        return adaptive_own_dims(delta)
