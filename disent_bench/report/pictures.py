"""The pictures that explain a trained (V)AE to a reader, per model setting.

* ``overview``: test images with their reconstructions under them, a linear interpolation between the
  codes of two images, and images decoded from z ~ N(0, I) (the prior a VAE is trained to match);
* ``traversals``: one row per latent dimension, sorted by its KL to the prior (mean over a batch of
  the per-dimension KL; for an AE, which has no posterior variance, by the variance of its codes),
  varying that dimension alone around one image's code; each row is labelled with the factor the
  dimension captures best (largest mutual information with the factor, normalised by the factor's
  entropy, as in MIG: Chen et al. 2018) so a reader sees which dims are informative and what they mean.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from disent_bench import data  # noqa: E402
from disent_bench.metrics.discrete import discrete_entropy, histogram_discretize, mutual_info_matrix  # noqa: E402
from disent_bench.report.families import ascii_label  # noqa: E402
from disent_bench.report.plots import save_figure, slug  # noqa: E402
from disent_bench.train import load_model  # noqa: E402

NUM_RECON = 8
NUM_INTERP = 10
NUM_SAMPLES = 16
NUM_TRAVERSE = 9
ANALYSIS_IMAGES = 2048
INACTIVE_KL = 0.1  # nats: a dim whose mean KL is below this carries (almost) no information


def _to_images(logits: torch.Tensor) -> np.ndarray:
    """Bernoulli means ``(n, H, W, C)`` in [0, 1] from decoder logits ``(n, C, H, W)``."""
    return torch.sigmoid(logits).permute(0, 2, 3, 1).cpu().numpy()


GUTTER = (0.25, 0.45, 0.75)  # a colour no dSprites/3D Shapes pixel is read as, so tiles stay apart


def _mosaic(images: np.ndarray, ncols: int, pad: int = 2) -> np.ndarray:
    """Images ``(n, H, W, C)`` as one RGB ``(rows*H, ncols*W, 3)`` canvas with coloured gutters."""
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w, c = images.shape
    nrows = math.ceil(n / ncols)
    canvas = np.empty((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), dtype=np.float32)
    canvas[...] = GUTTER
    for i in range(n):
        r, col = divmod(i, ncols)
        canvas[r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = images[i]
    return canvas


def _show(ax: plt.Axes, canvas: np.ndarray, title: str) -> None:
    ax.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xticks([])
    ax.set_yticks([])


@torch.no_grad()
def encode_indices(model, dataset, indices: np.ndarray, device) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean codes ``(n, D)`` and log-variances (None for a model without) of the images ``indices``."""
    mus, logvars = [], []
    for start in range(0, len(indices), 256):
        mu, logvar = model.encode(dataset.batch(indices[start:start + 256], device))
        mus.append(mu.float().cpu().numpy())
        if logvar is not None:
            logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), (np.concatenate(logvars) if logvars else None)


def dimension_analysis(model, dataset, device, seed: int = 0) -> pd.DataFrame:
    """Per latent dim: KL (mean over a batch), code std, and the factor it captures best (normalised MI)."""
    rng = np.random.default_rng(seed)
    indices = dataset.sample_indices(ANALYSIS_IMAGES, rng)
    mu, logvar = encode_indices(model, dataset, indices, device)
    factors = dataset.factors_of(indices)
    mi = mutual_info_matrix(histogram_discretize(mu, 20), factors)  # (D, K)
    entropy = discrete_entropy(factors)
    with np.errstate(divide="ignore", invalid="ignore"):
        nmi = np.where(entropy > 0, mi / entropy, 0.0)
    if logvar is not None:
        kl = 0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1.0).mean(axis=0)
    else:
        kl = np.full(mu.shape[1], np.nan)
    best = nmi.argmax(axis=1)
    return pd.DataFrame({
        "dim": np.arange(mu.shape[1]), "kl": kl, "code_std": mu.std(axis=0),
        "code_low": np.quantile(mu, 0.02, axis=0), "code_high": np.quantile(mu, 0.98, axis=0),
        "factor": [dataset.factor_names[k] for k in best], "nmi": nmi[np.arange(mu.shape[1]), best],
    })


@torch.no_grad()
def overview(model, dataset, device, title: str, out_dir: Path, stem: str, seed: int = 0) -> dict[str, Path]:
    """Inputs over reconstructions, an interpolation, and samples from the prior, in one figure."""
    rng = np.random.default_rng(seed)
    indices = dataset.sample_indices(NUM_RECON, rng)
    x = dataset.batch(indices, device)
    mu, _ = model.encode(x)
    recon = _to_images(model.decode(mu))
    inputs = x.permute(0, 2, 3, 1).cpu().numpy()
    pair = mu[:2]
    t = torch.linspace(0, 1, NUM_INTERP, device=mu.device)[:, None]
    interp = _to_images(model.decode((1 - t) * pair[0] + t * pair[1]))
    interp = np.concatenate([inputs[:1], interp, inputs[1:2]])
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(NUM_SAMPLES, model.latent_dim, generator=generator).to(mu.device)
    samples = _to_images(model.decode(z))

    fig, axes = plt.subplots(3, 1, figsize=(9.5, 9.2), gridspec_kw={"height_ratios": [2, 1, 2]})
    _show(axes[0], _mosaic(np.concatenate([inputs, recon]), NUM_RECON),
          "Inputs (top row) and their reconstructions from the mean code (bottom row)")
    _show(axes[1], _mosaic(interp, len(interp)),
          f"Linear interpolation between the codes of two inputs ({NUM_INTERP} decoded steps; "
          "the real inputs at both ends)")
    prior_note = ("" if model.has_variance else
                  " (an AE has no prior: these show how far its codes are from N(0, I))")
    _show(axes[2], _mosaic(samples, NUM_SAMPLES // 2), f"Decoded from z ~ N(0, I){prior_note}")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return save_figure(fig, out_dir, stem)


@torch.no_grad()
def traversals(model, dataset, device, title: str, out_dir: Path, stem: str, seed: int = 0) -> dict[str, Path]:
    """One row per latent dim (sorted by KL, or code variance for an AE), labelled with its best factor."""
    dims = dimension_analysis(model, dataset, device, seed)
    vae = model.has_variance
    dims = dims.sort_values("kl" if vae else "code_std", ascending=False).reset_index(drop=True)
    rng = np.random.default_rng(seed + 1)
    base_index = dataset.sample_indices(1, rng)
    x = dataset.batch(base_index, device)
    base, _ = model.encode(x)
    rows = []
    for _, row in dims.iterrows():
        if vae:
            values = np.linspace(-2.5, 2.5, NUM_TRAVERSE)  # the prior's +-2.5 std
        else:
            values = np.linspace(row["code_low"], row["code_high"], NUM_TRAVERSE)  # the codes' 2..98% range
        z = base.repeat(NUM_TRAVERSE, 1)
        z[:, int(row["dim"])] = torch.as_tensor(values, dtype=z.dtype, device=z.device)
        rows.append(_to_images(model.decode(z)))
    images = np.concatenate(rows)
    h, w, _ = dataset.image_shape
    fig, ax = plt.subplots(figsize=(NUM_TRAVERSE * 0.85 + 4.2, len(dims) * 0.85 + 1.2))
    _show(ax, _mosaic(images, NUM_TRAVERSE), "")
    ticks, labels = [], []
    for i, row in dims.iterrows():
        ticks.append(i * (h + 2) + h / 2)
        if vae:
            if row["kl"] < INACTIVE_KL:
                labels.append(f"z{int(row['dim'])}  KL {row['kl']:.2f}  inactive")
            else:
                labels.append(f"z{int(row['dim'])}  KL {row['kl']:.2f}  {row['factor']} (NMI {row['nmi']:.2f})")
        else:
            labels.append(f"z{int(row['dim'])}  std {row['code_std']:.2f}  {row['factor']} (NMI {row['nmi']:.2f})")
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=9, family="monospace")
    ax.tick_params(axis="y", length=0)
    span = "from -2.5 to +2.5 (prior std)" if vae else "over the 2–98% range of its codes"
    order = "KL to the prior" if vae else "code std (an AE has no KL)"
    ax.set_xlabel(f"each row varies one latent dim {span} around one image's code; rows sorted by {order};\n"
                  "label: the factor the dim captures best (MI / factor entropy)", fontsize=9)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out_dir, stem)


def make_pictures(frame: pd.DataFrame, results_dir: Path, out_dir: Path, *, progress: bool = True) -> list[dict]:
    """Pictures for one run (the lowest seed) of every model setting of every dataset/source.

    Returns [{"dataset", "source", "label", "run_id", "overview": {...}, "traversals": {...}}].
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # The lowest seed of each setting, in the tables' order (families as the reference orders them).
    lowest = frame.groupby(["dataset", "source", "label"], sort=False, dropna=False)["seed"].idxmin()
    chosen = frame.loc[sorted(lowest.dropna().astype(int))]
    pictures = []
    datasets = {}
    for _, row in chosen.iterrows():
        key = (row["dataset"], row["source"])
        if key not in datasets:
            datasets[key] = data.get_dataset(row["dataset"], row["source"], progress=progress)
        dataset = datasets[key]
        model = load_model(results_dir / "runs" / row["run_id"] / "checkpoint.pt", device="cpu")
        model.eval()
        tag = "SYNTHETIC" if row["source"] == "synthetic" else row["source"]
        title = f"{row['label']} on {row['dataset']} ({tag} data), seed {row['seed']}, {int(row['steps'])} steps"
        stem = slug(row["dataset"], row["source"], ascii_label(row["label"]), "s" + str(row["seed"]))
        pictures.append({
            "dataset": row["dataset"], "source": row["source"], "label": row["label"], "run_id": row["run_id"],
            "overview": overview(model, dataset, "cpu", title, out_dir, stem + "-overview"),
            "traversals": traversals(model, dataset, "cpu", title, out_dir, stem + "-traversals"),
        })
    return pictures
