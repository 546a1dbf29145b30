"""GVAE told the changed factor (Hosoya 2019, as Locatello et al. 2020, ICML, "Weakly-Supervised
Disentanglement Without Compromises", train it): the reference's ``GroupVAELabels``
(disentanglement_lib ``methods/weak/weak_vae.py``).

Each pair comes with a label, the index of the last factor changed; latent dim ``label`` keeps its own
posterior and every other dim gets the group average ``mu = (mu1 + mu2)/2``, ``v = (v1 + v2)/2``. This
ties latent dim i to factor i, so it needs ``latent_dim >=`` the number of factors (the spec's Decision
5; the reference silently shares no dim for a label >= latent_dim). When a pair changed several factors,
only the last is marked own, as in the reference. The objective and its departures from the reference are
in :mod:`disent_bench.models.weak`.
"""

from __future__ import annotations

from disent_bench.models.weak import WeakVAE, group_average, label_own_dims

__all__ = ["GVAE"]


class GVAE(WeakVAE):
    """GVAE with labels: group average on every dim but the changed factor's; ``beta`` weighs the KL."""

    uses_labels = True

    def aggregate(self, mu1, logvar1, mu2, logvar2):
        return group_average(mu1, logvar1, mu2, logvar2)

    def own_dims(self, delta, labels):
        return label_own_dims(labels, delta.shape[-1])
