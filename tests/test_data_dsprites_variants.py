"""color, noisy and scream dSprites: the reference's per-observation randomness, reproducible from keys and seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings

import numpy as np
import pytest
from PIL import Image

from disent_bench import data as data_api
from disent_bench.data import dsprites, scream
from disent_bench.data.dsprites_variants import ColorDSprites, NoisyDSprites, ScreamDSprites
from disent_bench.errors import UserError
from disent_bench.metrics import evaluate


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    return data_api.get_dataset("dsprites_tiny", "synthetic", home, progress=False)


def keys(n, key=11, first=0):
    return np.stack([np.full(n, key, np.uint64), np.arange(first, first + n, dtype=np.uint64)], 1)


def sprite(base, indices):
    return base.images(indices)[..., 0] > 0


def test_color_multiplies_the_sprite_by_one_colour_per_image(base):
    data = ColorDSprites(base)
    indices = np.array([5, 5, 5, 100, 700])
    images = data.observe(indices, keys(5))
    assert images.shape == (5, 64, 64, 3) and data.image_shape == (64, 64, 3) and data.num_channels == 3
    on = sprite(base, indices)
    for image, mask in zip(images, on):
        colour = image[mask][0]
        assert np.all(image[mask] == colour) and np.all((colour >= 0.5) & (colour < 1.0))
        assert np.all(image[~mask] == 0.0)
    assert len({tuple(image[mask][0]) for image, mask in zip(images, on)}) == 5  # fresh colour per observation


def test_noisy_puts_a_white_sprite_on_uniform_noise(base):
    data = NoisyDSprites(base)
    indices = np.array([9, 9])
    images = data.observe(indices, keys(2))
    on = sprite(base, indices)
    assert np.all(images[on] == 1.0)
    background = images[~on]
    assert background.min() >= 0.0 and background.max() < 1.0 and abs(background.mean() - 0.5) < 0.02
    assert not np.array_equal(images[0], images[1])


def test_scream_crops_shifts_and_inverts_under_the_sprite(base):
    painting = scream.synthetic_painting()
    data = ScreamDSprites(base, painting)
    indices = np.array([3, 3, 1000])
    k = keys(3)
    images = data.observe(indices, k)
    corners, colours = data.crops(k)
    height, width = painting.shape[:2]
    for image, mask, (top, left), colour in zip(images, sprite(base, indices), corners, colours):
        assert 0 <= top < height - 64 and 0 <= left < width - 64
        background = (painting[top:top + 64, left:left + 64] + colour) / 2
        np.testing.assert_allclose(image[~mask], background[~mask], atol=1e-6)
        np.testing.assert_allclose(image[mask], 1 - background[mask], atol=1e-6)
    assert not np.array_equal(images[0], images[1])


@pytest.mark.parametrize("variant", [ColorDSprites, NoisyDSprites])
def test_same_keys_same_images_and_batches_reproducible_from_indices(base, variant):
    data = variant(base)
    indices = np.array([1, 2, 1, 2])
    np.testing.assert_array_equal(data.images(indices, keys=keys(4)), data.images(indices, keys=keys(4)))
    assert not np.array_equal(data.images(indices, keys=keys(4)), data.images(indices, keys=keys(4, first=4)))
    # Training passes no keys: the batch is a function of its indices, repeats of an index still differ.
    first, second = data.batch(indices), data.batch(indices)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert first.shape == (4, 3, 64, 64) and not np.array_equal(first[0].numpy(), first[2].numpy())
    assert not np.array_equal(first.numpy(), data.batch(indices[::-1].copy()).numpy()[::-1])


def _colour_encoder(x):
    """Codes = the mean of each channel: factor-blind, nuisance-sensitive (the colour of color dSprites)."""
    return x.mean(axis=(2, 3))


def test_evaluation_encodes_every_draw_with_fresh_nuisance(base):
    data = ColorDSprites(base)
    settings = {"mig": {"num_train": 300}, "sap": {"num_train": 200, "num_test": 100}}
    first = evaluate(data, _colour_encoder, metrics=["mig", "sap"], preset="quick", seed=3, settings=settings,
                     progress=False)
    again = evaluate(data, _colour_encoder, metrics=["mig", "sap"], preset="quick", seed=3, settings=settings,
                     progress=False)
    assert {k: v for k, v in first.items() if "seconds" not in k} == {k: v for k, v in again.items() if "seconds" not in k}
    # Every occurrence is its own observation: 300 + 200 + 100 draws, not the distinct indices among them.
    assert first["images_encoded"] == 600
    other = evaluate(data, _colour_encoder, metrics=["mig", "sap"], preset="quick", seed=4, settings=settings,
                     progress=False)
    assert other["mig.score"] != first["mig.score"]
    # Without nuisance the same draws encode only the distinct indices.
    plain = evaluate(base, lambda x: x.mean(axis=(2, 3)), metrics=["mig", "sap"], preset="quick", seed=3,
                     settings=settings, progress=False)
    assert plain["images_encoded"] < 600


def test_observation_ids_carry_factors_and_images():
    from disent_bench.metrics.cache import ObservationSet

    class Data:  # the few methods ObservationSet needs, with an image that shows its key
        has_nuisance = True

        def sample_indices(self, n, rng):
            return rng.integers(0, 4, n)

        def factors_of(self, indices):
            return np.asarray(indices)[:, None]

        def batch(self, indices, device=None, *, keys=None):
            import torch
            return torch.as_tensor(np.concatenate([indices[:, None], keys.astype(np.int64)], 1))

    observations = ObservationSet(Data())
    a, b = observations.drawer(100), observations.drawer(200)
    ids_a = a.sample_indices(5, np.random.default_rng(0))
    ids_b = b.sample_indices(3, np.random.default_rng(0))
    assert ids_a.tolist() == [0, 1, 2, 3, 4] and ids_b.tolist() == [5, 6, 7] and len(observations) == 8
    rows = observations.batch(np.arange(8)).numpy()
    # Keys: (metric key, number within the metric), so one metric's nuisance does not depend on another's draws.
    assert rows[:, 1].tolist() == [100] * 5 + [200] * 3 and rows[:, 2].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    np.testing.assert_array_equal(a.factors_of(ids_a)[:, 0], rows[:5, 0])


@pytest.fixture
def tiny_dsprites(monkeypatch):
    """dsprites rendered on the tiny grid (the full renderer takes seconds)."""
    spec = dataclasses.replace(dsprites.SPEC, factor_sizes=dsprites.TINY_SPEC.factor_sizes,
                               render_synthetic=dsprites.TINY_SPEC.render_synthetic,
                               factor_values=dsprites.TINY_SPEC.factor_values)
    monkeypatch.setattr(dsprites, "SPEC", spec)


def test_sources_follow_dsprites_and_auto_warns_once(data_home, tiny_dsprites):
    for name in ("color_dsprites", "noisy_dsprites", "scream_dsprites"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = data_api.get_dataset(name, progress=False)
        assert [str(w.message).split(":")[0] for w in caught] == [name]
        assert "SYNTHETIC" in str(caught[0].message) and f"data fetch {name}" in str(caught[0].message)
        assert data.source == "synthetic" and data.name == name and data.image_shape == (64, 64, 3)
    with pytest.raises(UserError, match="official file not found.*data fetch scream_dsprites"):
        data_api.get_dataset("scream_dsprites", "official")


def test_scream_from_the_official_files(data_home, tiny_dsprites, monkeypatch, write_dsprites_npz, tmp_path):
    write_dsprites_npz(data_home / dsprites.OFFICIAL_FILENAME)
    payload = (data_home / dsprites.OFFICIAL_FILENAME).read_bytes()
    monkeypatch.setattr(dsprites, "SPEC", dataclasses.replace(dsprites.SPEC, official_md5=hashlib.md5(payload).hexdigest()))
    painting = (np.random.default_rng(0).random((400, 320, 3)) * 255).astype(np.uint8)
    Image.fromarray(painting).save(data_home / scream.OFFICIAL_FILENAME, quality=95)
    data = data_api.get_dataset("scream_dsprites", "auto", progress=False)
    assert data.source == "official"
    assert data.painting.shape == (274, 219, 3)  # thumbnail within 350 x 274, aspect kept
    stamp = (data_home / (scream.OFFICIAL_FILENAME + ".json")).read_text()
    assert hashlib.sha256((data_home / scream.OFFICIAL_FILENAME).read_bytes()).hexdigest() in stamp
    assert "format" in stamp  # verified by format, no published checksum


def test_the_painting_is_checked_by_format(tmp_path):
    Image.fromarray(np.zeros((100, 80), np.uint8)).save(tmp_path / "grey.jpg")
    with pytest.raises(UserError, match="grey.jpg: the painting is a L image; expected an RGB JPEG"):
        scream.check_painting(tmp_path / "grey.jpg")
    Image.fromarray(np.zeros((100, 80, 3), np.uint8)).save(tmp_path / "small.jpg")
    with pytest.raises(UserError, match="small.jpg: the painting is 80x100; expected at least 128"):
        scream.check_painting(tmp_path / "small.jpg")
    (tmp_path / "page.jpg").write_bytes(b"<html>not an image</html>")
    with pytest.raises(UserError, match="page.jpg: does not decode as an image"):
        scream.check_painting(tmp_path / "page.jpg")


def test_training_on_nuisance_is_reproducible_from_the_seed(base):
    """Training batches key their nuisance on the drawn indices: same seed, same weights; another seed differs."""
    import torch

    from disent_bench import models
    from disent_bench.train import TrainConfig, train

    data = NoisyDSprites(base)

    def weights(seed):
        model = models.build("vae", in_channels=3, latent_dim=4)
        train(model, data, TrainConfig(steps=3, batch_size=8, seed=seed, log_every=3, device="cpu"), progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    first = weights(0)
    assert torch.equal(first, weights(0)) and not torch.equal(first, weights(1))


def test_a_resumed_run_sees_the_same_nuisance_as_an_uninterrupted_one(base, tmp_path):
    import torch

    from disent_bench import models
    from disent_bench.train import TrainConfig, train

    data = ColorDSprites(base)

    def run(steps, run_dir):
        model = models.build("vae", in_channels=3, latent_dim=4)
        config = TrainConfig(steps=steps, batch_size=8, seed=5, log_every=2, checkpoint_every=2, device="cpu")
        train(model, data, config, run_dir=run_dir, progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    run(2, tmp_path / "resumed")
    assert torch.equal(run(4, tmp_path / "resumed"), run(4, tmp_path / "straight"))
