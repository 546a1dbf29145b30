"""evaluate(): encode-once cache, determinism, representations, reconstruction, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disent_bench.errors import UserError
from disent_bench.metrics import PRESETS, available, evaluate
from disent_bench.metrics.reconstruction import per_image_losses
from factor_images import factor_classes, factor_image_dataset

SIZES = (2, 3, 4, 5, 6)
TINY = {  # small samples: these tests are about the plumbing, not the estimators
    "beta_vae": {"num_train": 40, "num_eval": 20, "batch_size": 16},
    "factor_vae": {"num_train": 40, "num_eval": 20, "batch_size": 16, "num_variance_estimate": 500},
    "mig": {"num_train": 500},
    "dci": {"num_train": 100, "num_test": 50},
    "sap": {"num_train": 200, "num_test": 100},
    "modularity": {"num_train": 300, "num_test": 200},
    "reconstruction": {"num_batches": 3, "batch_size": 32},
    "downstream": {"train_sizes": [10, 100], "num_test": 100},
    "irs": {"num_train": 300},
    "mig_sup": {"num_train": 300},
    "jemmig": {"num_train": 300},
    "dcimig": {"num_train": 300},
    "infomec": {"num_train": 300},
}
NON_RECON = [m for m in available() if m != "reconstruction"]


class Recorder:
    """An encoder (noisy factor classes) that records every image it is given."""

    def __init__(self, noise: float = 0.5):
        self.seen: list[np.ndarray] = []
        self.calls = 0
        self.noise = noise

    def __call__(self, x):
        self.calls += 1
        codes = factor_classes(x)
        self.seen.append(codes.copy())
        # Noise that depends on the image only (so each image has one code), enough to make scores vary.
        phase = np.sin(codes @ np.arange(1, codes.shape[1] + 1) * 12.9898)[:, None]
        return codes + self.noise * phase * np.arange(1, codes.shape[1] + 1)


class TinyVAE(torch.nn.Module):
    """A linear VAE on the 1 x K factor images: enough to test variance and decoder handling."""

    def __init__(self, num_factors: int, log_variance: float = -2.0):
        super().__init__()
        torch.manual_seed(0)
        self.enc = torch.nn.Linear(num_factors, num_factors)
        self.dec = torch.nn.Linear(num_factors, num_factors)
        self.log_variance = log_variance
        self.encoded_rows = 0

    has_variance = True

    def encode(self, x):
        self.encoded_rows += x.shape[0]
        flat = x.reshape(x.shape[0], -1)
        mu = self.enc(flat * 255.0)
        return mu, torch.full_like(mu, self.log_variance)

    def decode(self, z):
        return self.dec(z).reshape(z.shape[0], 1, 1, -1)


@pytest.fixture(scope="module")
def dataset():
    return factor_image_dataset(SIZES)


def quick(dataset, encoder, **kwargs):
    kwargs.setdefault("settings", TINY)
    kwargs.setdefault("metrics", NON_RECON)
    return evaluate(dataset, encoder, preset="quick", progress=False, **kwargs)


def without_seconds(result):
    return {k: v for k, v in result.items() if not k.endswith("seconds")}


def test_each_image_is_encoded_once(dataset):
    recorder = Recorder()
    # DCI's and the downstream task's boosting are slow at the quick preset and add no draws to speak of.
    metrics = [m for m in NON_RECON if m not in ("dci", "downstream")]
    result = quick(dataset, recorder, settings=None, batch_size=257, metrics=metrics)
    seen = np.concatenate(recorder.seen)
    indices = dataset.index_of(seen.astype(np.int64))
    # The quick preset draws far more images (~65k) than the dataset holds (720): each is encoded once.
    assert np.unique(indices).size == indices.size
    assert result["images_encoded"] == indices.size <= len(dataset)
    assert recorder.calls == math.ceil(indices.size / 257)
    assert {"beta_vae.eval_accuracy", "factor_vae.num_active_dims", "mig.score",
            "sap.score", "modularity.explicitness", "images_encoded", "encoding_seconds", "seconds"} <= set(result)
    assert all(f"{m}.seconds" in result for m in metrics)


def test_images_encoded_counts_the_union_of_draws():
    big = factor_image_dataset((10, 12, 14, 16))  # 26,880 images: the draws do not cover it
    recorder = Recorder()
    result = quick(big, recorder, metrics=["mig", "factor_vae"])
    indices = big.index_of(np.concatenate(recorder.seen).astype(np.int64))
    drawn = 500 + 500 + (40 + 20) * 16
    assert np.unique(indices).size == indices.size == result["images_encoded"]
    assert 0.9 * drawn < result["images_encoded"] <= drawn


def test_same_seed_same_numbers_other_seed_other_samples(dataset):
    first = without_seconds(quick(dataset, Recorder()))
    assert first == without_seconds(quick(dataset, Recorder()))
    big = factor_image_dataset((10, 12, 14, 16))
    seen = []
    for seed in (0, 1):
        recorder = Recorder()
        quick(big, recorder, metrics=["mig"], seed=seed)
        seen.append(np.sort(big.index_of(np.concatenate(recorder.seen).astype(np.int64))))
    assert not np.array_equal(seen[0], seen[1])
    other = without_seconds(quick(dataset, Recorder(), seed=1, metrics=["beta_vae", "factor_vae", "mig"]))
    assert all(other[k] != first[k] for k in ("beta_vae.eval_accuracy", "mig.score"))


def test_a_metric_scores_the_same_alone_or_with_others(dataset):
    together = quick(dataset, Recorder(), metrics=["beta_vae", "factor_vae", "mig", "sap", "modularity"])
    for metric in ("mig", "sap", "factor_vae"):
        alone = quick(dataset, Recorder(), metrics=[metric])
        for key, value in alone.items():
            if key.startswith(metric + ".") and not key.endswith("seconds"):
                assert value == together[key], key


def test_sampled_representation_draws_fresh_noise(dataset):
    sharp = TinyVAE(len(SIZES), log_variance=-40.0)  # std ~ 2e-9: sampled == mean
    mean = quick(dataset, sharp, metrics=["mig", "factor_vae"])
    sampled = quick(dataset, sharp, metrics=["mig", "factor_vae"], representation="sampled")
    for key in ("mig.score", "factor_vae.eval_accuracy"):
        assert sampled[key] == pytest.approx(mean[key], abs=1e-6)
    noisy = TinyVAE(len(SIZES), log_variance=4.0)  # std ~ 7.4: much larger than the code's spread
    noisy_mean = quick(dataset, noisy, metrics=["mig"])
    noisy_sampled = quick(dataset, noisy, metrics=["mig"], representation="sampled")
    assert noisy_sampled["mig.score"] < noisy_mean["mig.score"] - 0.1
    assert without_seconds(noisy_sampled) == without_seconds(
        quick(dataset, noisy, metrics=["mig"], representation="sampled"))


def test_reconstruction_matches_a_direct_computation(dataset):
    model = TinyVAE(len(SIZES), log_variance=-1.0)
    model.train()
    result = quick(dataset, model, metrics=["reconstruction"], seed=3)
    assert model.training  # evaluate restores the mode it found
    assert result["images_encoded"] == len(np.unique(_draw_reconstruction(dataset, 3)))
    indices = _draw_reconstruction(dataset, 3)
    with torch.no_grad():
        x = dataset.batch(indices)
        mu, _ = model.encode(x)
        bce, mse = per_image_losses(model.decode(mu), x)
    assert result["reconstruction.bce"] == pytest.approx(float(bce.mean()), rel=1e-5)
    assert result["reconstruction.mse"] == pytest.approx(float(mse.mean()), rel=1e-5)
    # A sampled code with std e^-0.5 ~ 0.6 reconstructs worse than the mean on average.
    assert result["reconstruction.bce_sampled"] > result["reconstruction.bce"]


def _draw_reconstruction(dataset, seed):
    from disent_bench.metrics import reconstruction

    position = available().index("reconstruction")
    draw_stream = np.random.SeedSequence(seed, spawn_key=(position,)).spawn(3)[0]
    return reconstruction.draw(dataset, TINY["reconstruction"], np.random.default_rng(draw_stream))["images"]


def test_reconstruction_is_skipped_for_encoder_only_callables(dataset):
    with pytest.warns(UserWarning, match="reconstruction skipped"):
        result = quick(dataset, Recorder(), metrics=["mig", "reconstruction"])
    assert "mig.score" in result and not any(k.startswith("reconstruction.") for k in result)
    with pytest.warns(UserWarning), pytest.raises(UserError, match="only reconstruction was asked for"):
        quick(dataset, Recorder(), metrics=["reconstruction"])


@pytest.mark.parametrize("encoder,message", [
    (lambda x: np.zeros(np.asarray(x).shape[0]), r"shape \(\d+,\); expected \(n, D\)"),
    (lambda x: np.full((np.asarray(x).shape[0], 3), np.nan), "non-finite"),
    (lambda x: np.zeros((np.asarray(x).shape[0] + 1, 3)), "rows of codes for"),
    (lambda x: "codes", "expected a numeric array"),
])
def test_bad_encoder_output_is_a_user_error(dataset, encoder, message):
    with pytest.raises(UserError, match=message):
        quick(dataset, encoder, metrics=["mig"])


@pytest.mark.parametrize("kwargs,message", [
    ({"metrics": ["mig", "bogus"]}, "unknown metric 'bogus'; valid metrics: beta_vae"),
    ({"metrics": "mig,dci,nope"}, "unknown metric 'nope'"),
    ({"metrics": []}, "no metrics given"),
    ({"settings": {"mig": {"num_train": 0}}}, r"mig.num_train must be an integer >= 1, got 0"),
    ({"settings": {"factor_vae": {"batch_size": 1}}}, r"factor_vae.batch_size must be an integer >= 2"),
    ({"settings": {"dci": {"num_train": 2.5}}}, "dci.num_train must be an integer"),
    ({"settings": {"mig": {"bins": 10}}}, "unknown setting 'bins' for metric mig; valid settings: num_train, num_bins"),
    ({"settings": {"migg": {}}}, "settings for unknown metric 'migg'"),
    ({"preset": "fast"}, "unknown metrics preset 'fast'; valid presets: paper, quick"),
    ({"representation": "median"}, "unknown representation 'median'"),
    ({"representation": "sampled"}, "needs an encoder that returns a variance"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_arguments_are_user_errors(dataset, kwargs, message):
    recorder = Recorder()
    args = {"metrics": ["mig"], "settings": None, **kwargs}
    with pytest.raises(UserError, match=message):
        evaluate(dataset, recorder, progress=False, **args)
    assert recorder.calls == 0  # arguments are checked before any encoding


def test_presets_cover_every_metric_and_paper_is_the_reference():
    assert set(PRESETS) == {"paper", "quick"}
    for preset in PRESETS.values():
        assert set(preset) == set(available())
    paper = PRESETS["paper"]
    assert paper["beta_vae"] == {"batch_size": 64, "num_train": 10000, "num_eval": 5000}
    assert paper["factor_vae"] == {"batch_size": 64, "num_train": 10000, "num_eval": 5000,
                                   "num_variance_estimate": 10000, "prune_threshold": 0.05}
    assert paper["mig"] == {"num_train": 10000, "num_bins": 20}
    assert paper["dci"] == {"num_train": 10000, "num_test": 5000}
    assert paper["sap"] == {"num_train": 10000, "num_test": 5000, "continuous_factors": 0}
    assert paper["modularity"] == {"num_train": 10000, "num_test": 5000, "num_bins": 20}
    assert paper["reconstruction"]["num_batches"] * paper["reconstruction"]["batch_size"] == 64000
    assert paper["unsupervised"] == {"num_train": 10000, "num_bins": 20}
