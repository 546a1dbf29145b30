"""ML-VAE told the changed factor (Bouchacourt et al. 2018, as Locatello et al. 2020, ICML,
"Weakly-Supervised Disentanglement Without Compromises", train it): the reference's ``MLVaeLabels``
(disentanglement_lib ``methods/weak/weak_vae.py``).

Each pair comes with a label, the index of the last factor changed; latent dim ``label`` keeps its own
posterior and every other dim gets the ML-VAE aggregate (the product-of-experts mean and, as the
reference, twice its variance ``2 v1 v2/(v1 + v2)``, the spec's Decision 4). This ties latent dim i to
factor i, so it needs ``latent_dim >=`` the number of factors (Decision 5; the reference silently shares
no dim for a label >= latent_dim). When a pair changed several factors, only the last is marked own, as
in the reference. The objective and its departures from the reference are in
:mod:`disent_bench.models.weak`.
"""

from __future__ import annotations

from disent_bench.models.weak import WeakVAE, label_own_dims, ml_vae_average

__all__ = ["MLVAE"]


class MLVAE(WeakVAE):
    """ML-VAE with labels: ML-VAE aggregate on every dim but the changed factor's; ``beta`` weighs the KL."""

    uses_labels = True

    def aggregate(self, mu1, logvar1, mu2, logvar2):
        return ml_vae_average(mu1, logvar1, mu2, logvar2)

    def own_dims(self, delta, labels):
        return label_own_dims(labels, delta.shape[-1])
