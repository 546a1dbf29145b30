"""The pair objective shared by the weakly-supervised VAEs (Locatello et al. 2020, ICML, "Weakly-Supervised
Disentanglement Without Compromises"), as disentanglement_lib trains them (``methods/weak/weak_vae.py``).

A training example is a pair of images ``x1, x2`` whose factors differ in a few places. Both images are
encoded to Gaussian posteriors ``(mu1, lv1)``, ``(mu2, lv2)``; the dimensions judged *shared* by the pair
are replaced, in both posteriors, by one aggregate posterior; a sample of each is decoded, and the loss is
``(R1 + R2)/2 + beta (KL1 + KL2)/2`` with each KL on the aggregated posterior. Per pair and latent
dimension (v = exp(lv)):

* :func:`pair_divergence` ``delta = v1/v2 + (mu2 - mu1)^2/v2 - 1 + lv2 - lv1``, which is 2 KL(q1 || q2)
  (direction first image -> second, as the reference; the scale does not move the threshold);
* the aggregates: :func:`group_average` (GVAE, Hosoya 2019: ``mu = (mu1 + mu2)/2``,
  ``v = (v1 + v2)/2``) and :func:`ml_vae_average` (ML-VAE, Bouchacourt et al. 2018, the reference's form:
  ``v = 2 v1 v2/(v1 + v2)``, twice the product-of-experts variance, ``mu = (mu1 v2 + mu2 v1)/(v1 + v2)``,
  the product-of-experts mean);
* which dimensions keep their own posterior: :func:`adaptive_own_dims` (the Ada- models, the reference's
  ``aggregate_argmax``: two equal-width bins over ``[min delta, max delta]`` per pair, so a dim is own iff
  ``floor(2 (delta - min)/(max - min)) >= 1``, i.e. ``delta >= (min + max)/2``) or :func:`label_own_dims`
  (GVAE / ML-VAE told the changed factor: only the label's dimension is own, the reference's
  ``aggregate_labels``);
* :func:`select_posterior` takes the own posterior on own dims and the aggregate elsewhere.

:class:`WeakVAE` is the model base: the reference conv VAE (:class:`~disent_bench.models.vae.GaussianVAE`)
whose ``loss`` takes a batch of pairs ``(B, 2, C, H, W)`` and, for the label variants, the ``(B,)`` labels
(the index of the last changed factor). It evaluates on single images like every other model: ``encode``
is the conv encoder's. The four families are one small module each (``ada_gvae``, ``ada_ml_vae``,
``gvae``, ``ml_vae``), each choosing an aggregate and a mask.

Departures from the reference, and why:

* When every ``delta`` of a pair is equal (identical images, which the reference's pair sampler makes
  often: for k = 1 with probability mean_i 1/n_i), the reference's bin is 0/0 = NaN and what its clip and
  int cast make of it is up to the TensorFlow kernel. Here every dim is then shared (the spec's Decision
  3). For identical posteriors both aggregates equal each posterior, so the loss is the same either way.
* The aggregate log-variances are computed in log space (``logaddexp``) rather than as ``log`` of a sum of
  ``exp``: the same values, without overflow for large log-variances in float32.
* Both images of a batch go through the encoder in one call on the ``2B`` images, and through the decoder
  in one call (the reference makes two calls each with shared weights; the nets have no batch statistics,
  so the function is the same).
* The model computes in its own dtype (float32 by default, float64 in the tests); the reference is float32.
* For the label variants, a label >= ``latent_dim`` gives, as in the reference, an all-zero one-hot row and
  then no shared dim (every dim own). The spec's Decision 5 requires ``latent_dim >=`` the number of
  factors instead, so :meth:`WeakVAE.loss` refuses out-of-range labels in its first batch and
  :meth:`WeakVAE.check_num_factors` lets a trainer check before training; :func:`label_own_dims` itself
  keeps the reference's behaviour.

Options under other names, used by none of the four models: :func:`symmetric_pair_divergence`
(``KL(q1||q2) + KL(q2||q1)``, disent's default) and :func:`product_of_experts` (the exact
product-of-experts variance ``v1 v2/(v1 + v2)``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from disent_bench.errors import UserError
from disent_bench.models.base import bernoulli_reconstruction, check_weight, gaussian_kl, model_name_of
from disent_bench.models.vae import GaussianVAE

__all__ = ["WeakVAE", "PAIR_MODES", "RANDOM_K", "pair_divergence", "symmetric_pair_divergence", "group_average",
           "ml_vae_average", "product_of_experts", "adaptive_own_dims", "label_own_dims", "select_posterior",
           "check_k", "check_pairs"]

#: How the trainer draws pairs (spec Decision 1): the reference's ``simple_dynamics`` rule, or the paper's.
PAIR_MODES = ("reference", "paper")
#: ``k = -1``: the number of changed factors is drawn per pair (the paper's "Rnd"); "random" is its alias.
RANDOM_K = -1

_LOG_2 = math.log(2.0)


# -- the divergence between the two posteriors of a pair ---------------------------------------------
def pair_divergence(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                    logvar2: torch.Tensor) -> torch.Tensor:
    """Per dimension ``2 KL(N(mu1, v1) || N(mu2, v2)) = v1/v2 + (mu2 - mu1)^2/v2 - 1 + lv2 - lv1`` (``compute_kl``)."""
    return torch.exp(logvar1 - logvar2) + (mu2 - mu1).square() * torch.exp(-logvar2) - 1.0 + logvar2 - logvar1


def symmetric_pair_divergence(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                              logvar2: torch.Tensor) -> torch.Tensor:
    """Per dimension ``KL(q1 || q2) + KL(q2 || q1)`` (an option; the models use :func:`pair_divergence`)."""
    return 0.5 * (pair_divergence(mu1, logvar1, mu2, logvar2) + pair_divergence(mu2, logvar2, mu1, logvar1))


# -- the aggregate posterior of a pair -------------------------------------------------------------
def group_average(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                  logvar2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GVAE's aggregate ``(mu, logvar)``: ``mu = (mu1 + mu2)/2``, ``logvar = log((v1 + v2)/2)``."""
    return 0.5 * mu1 + 0.5 * mu2, torch.logaddexp(logvar1, logvar2) - _LOG_2


def ml_vae_average(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                   logvar2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ML-VAE's aggregate as the reference: ``v = 2 v1 v2/(v1 + v2)``, ``mu = (mu1 v2 + mu2 v1)/(v1 + v2)``.

    The mean is the product of experts' (``v2/(v1 + v2) = sigmoid(lv2 - lv1)``, computed so); the
    variance is twice the product of experts' (the reference's factor 2, kept by the spec's Decision 4).
    """
    mu = mu1 * torch.sigmoid(logvar2 - logvar1) + mu2 * torch.sigmoid(logvar1 - logvar2)
    return mu, _LOG_2 + logvar1 + logvar2 - torch.logaddexp(logvar1, logvar2)


def product_of_experts(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                       logvar2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact product of the two Gaussian experts, ``v = v1 v2/(v1 + v2)`` (an option; :func:`ml_vae_average`)."""
    mu, logvar = ml_vae_average(mu1, logvar1, mu2, logvar2)
    return mu, logvar - _LOG_2


# -- which dimensions of a pair keep their own posterior ------------------------------------------------
def adaptive_own_dims(delta: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B, D)``: True where a pair's dim keeps its own posterior, from its divergences ``delta`` (B, D).

    The reference's ``histogram_fixed_width_bins`` with 2 bins over ``[min, max]`` of each row: bin
    ``floor(2 (delta - min)/(max - min))`` clipped to {0, 1}; bin 1 is own. So the largest ``delta`` is
    always own, the smallest always shared. A row whose entries are all equal (0/0 in the reference) is
    all shared.
    """
    low = delta.amin(dim=-1, keepdim=True)
    span = delta.amax(dim=-1, keepdim=True) - low
    flat = span == 0
    scaled = (delta - low) / torch.where(flat, torch.ones_like(span), span)  # s_d in [0, 1]; 0 on a flat row
    return torch.floor(2.0 * scaled) >= 1.0


def label_own_dims(labels: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """Boolean ``(B, latent_dim)``: only dim ``labels[b]`` is own, every other dim shared (``aggregate_labels``).

    As the reference (``one_hot`` of depth ``latent_dim``, then "own where equal to the row's maximum"), a
    label outside ``[0, latent_dim)`` gives an all-zero row whose maximum 0 matches everywhere: all own.
    """
    one_hot = torch.arange(latent_dim, device=labels.device) == labels.reshape(-1, 1)
    return one_hot | ~one_hot.any(dim=1, keepdim=True)


def select_posterior(own: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, aggregate_mu: torch.Tensor,
                     aggregate_logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)`` on the dims where ``own`` is True, the aggregate's elsewhere."""
    return torch.where(own, mu, aggregate_mu), torch.where(own, logvar, aggregate_logvar)


# -- parameters -------------------------------------------------------------------------------------
def check_k(model: str, k: Any) -> int:
    """``k`` as the trainer reads it: an int >= 1, or -1 for a random number ("random" is accepted for -1)."""
    if k == "random":
        return RANDOM_K
    if isinstance(k, bool) or not isinstance(k, int) or (k < 1 and k != RANDOM_K):
        raise UserError(f"model {model!r}: k must be an integer >= 1 (factors changed per pair) or -1 / "
                        f"\"random\" (drawn per pair), got {k!r}")
    return k


def check_pairs(model: str, pairs: Any) -> str:
    """``pairs`` if it names a pair mode (:data:`PAIR_MODES`), else :class:`UserError`."""
    if pairs not in PAIR_MODES:
        raise UserError(f"model {model!r}: pairs must be one of {', '.join(map(repr, PAIR_MODES))}, got {pairs!r}")
    return pairs


# -- the model --------------------------------------------------------------------------------------
class WeakVAE(GaussianVAE):
    """A reference conv VAE trained on pairs; subclasses choose :meth:`aggregate` and :meth:`own_dims`.

    ``k`` and ``pairs`` say how the trainer draws the pairs (the model does not read them); ``beta``
    weighs the KL of the aggregated posteriors.
    """

    #: What the trainer feeds :meth:`loss`: batches of pairs ``(B, 2, C, H, W)``.
    data_kind: ClassVar[str] = "pairs"
    #: True for the variants told the changed factor: :meth:`loss` then needs ``labels``.
    uses_labels: ClassVar[bool] = False
    hyper_parameter_names = ("beta",)

    def __init__(self, *, in_channels: int, latent_dim: int = 10, beta: float = 1.0, k: int | str = RANDOM_K,
                 pairs: str = "reference") -> None:
        name = model_name_of(type(self))
        beta = check_weight(name, "beta", beta)
        k = check_k(name, k)
        pairs = check_pairs(name, pairs)
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, beta=beta, k=k, pairs=pairs)
        self.beta, self.k, self.pairs = beta, k, pairs
        self._labels_checked = False  # the first labelled batch is checked against latent_dim (Decision 5)

    # -- what a family chooses --------------------------------------------------------------------------
    def aggregate(self, mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                  logvar2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The aggregate posterior ``(mu, logvar)`` of each pair, ``(B, D)`` each."""
        raise NotImplementedError

    def own_dims(self, delta: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Boolean ``(B, D)``, True where a pair's dim keeps its own posterior."""
        raise NotImplementedError

    # -- checks ---------------------------------------------------------------------------------------
    def check_num_factors(self, num_factors: int) -> None:
        """Raise :class:`UserError` if the label variant cannot give each of ``num_factors`` factors a dim."""
        if self.uses_labels and num_factors > self.latent_dim:
            raise UserError(f"model {self.hparams['name']!r} is told which factor changed and needs latent_dim >= "
                            f"the number of factors ({num_factors}), got latent_dim {self.latent_dim}")

    def _check_pairs_batch(self, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        name = self.hparams["name"]
        if x.dim() != 5 or x.shape[1] != 2:
            raise UserError(f"model {name!r} trains on pairs: x must have shape (batch, 2, C, H, W), "
                            f"got {tuple(x.shape)}")
        if not self.uses_labels:
            return
        if labels is None:
            raise UserError(f"model {name!r} needs labels (the index of the changed factor of each pair)")
        if (not isinstance(labels, torch.Tensor) or labels.shape != (x.shape[0],)
                or labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool):
            raise UserError(f"model {name!r}: labels must be integers of shape ({x.shape[0]},), "
                            f"got {getattr(labels, 'dtype', type(labels).__name__)} of shape "
                            f"{tuple(getattr(labels, 'shape', ()))}")
        if not self._labels_checked:  # once: the check waits for the device, and the factors do not change
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.latent_dim:
                raise UserError(f"model {name!r}: a label is {high if high >= self.latent_dim else low}, "
                                f"outside 0..{self.latent_dim - 1}; this model needs latent_dim >= the number of "
                                "factors")
            self._labels_checked = True

    # -- the objective -------------------------------------------------------------------------------
    def regulariser(self, *, kl, mu, logvar, z, step, noise, hyper):
        """``beta`` times the KL of the aggregated posteriors (the reference's ``GroupVAEBase.regularizer``)."""
        return hyper["beta"] * kl, {}

    def draw_noise(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                   dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """``eps`` ~ N(0, I), ``(2 batch_size, D)``: rows ``[0, B)`` for the first images, ``[B, 2B)`` the second."""
        return {"eps": torch.randn((2 * batch_size, self.latent_dim), generator=generator, device=device,
                                   dtype=dtype)}

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None, step: int = 0,
             labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Batch means for pairs ``x`` ``(B, 2, C, H, W)`` in [0, 1] (``x[:, 0]`` first images, ``x[:, 1]`` second).

        ``labels`` ``(B,)``: each pair's changed factor (used by the label variants, ignored otherwise).
        Returns ``total`` = reconstruction + beta kl, ``reconstruction`` = (R1 + R2)/2, ``kl`` =
        (KL1 + KL2)/2 on the aggregated posteriors, ``elbo`` = -(reconstruction + kl) and ``shared_dims``
        (the mean number of shared dims per pair).
        """
        self._check_pairs_batch(x, labels)
        noise = self.draw_noise(x.shape[0], generator, x.device, x.dtype)
        return self.loss_from_noise(x, noise, step, self.hyper_parameters(), labels=labels)

    def loss_from_noise(self, x: torch.Tensor, noise: dict[str, torch.Tensor], step: int, hyper: dict[str, Any],
                        labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss dict of :meth:`loss` given the step's ``noise`` (:meth:`draw_noise`): no checks, no sync."""
        pairs = x.shape[0]
        images = x.transpose(0, 1).reshape(2 * pairs, *x.shape[2:])  # first images, then second ones
        mu, logvar = self.encode(images)
        mu1, mu2, logvar1, logvar2 = mu[:pairs], mu[pairs:], logvar[:pairs], logvar[pairs:]
        delta = pair_divergence(mu1, logvar1, mu2, logvar2)
        aggregate_mu, aggregate_logvar = self.aggregate(mu1, logvar1, mu2, logvar2)
        own = self.own_dims(delta, labels)
        mean1, logvar1 = select_posterior(own, mu1, logvar1, aggregate_mu, aggregate_logvar)
        mean2, logvar2 = select_posterior(own, mu2, logvar2, aggregate_mu, aggregate_logvar)
        mean, logvar = torch.cat([mean1, mean2]), torch.cat([logvar1, logvar2])
        z = mean + torch.exp(0.5 * logvar) * noise["eps"]
        # Means over the 2B images are (R1 + R2)/2 and (KL1 + KL2)/2: both halves have B images.
        reconstruction = bernoulli_reconstruction(self.decode(z), images)
        kl = gaussian_kl(mean, logvar)
        regulariser, terms = self.regulariser(kl=kl, mu=mean, logvar=logvar, z=z, step=step, noise=noise,
                                              hyper=hyper)
        shared_dims = (~own).sum(dim=1).to(mu.dtype).mean()
        return {"total": reconstruction + regulariser, "reconstruction": reconstruction, "kl": kl,
                "elbo": -(reconstruction + kl), "shared_dims": shared_dims, **terms}
