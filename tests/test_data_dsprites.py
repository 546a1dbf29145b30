"""dSprites: the official-format loader, the factor grid, and the synthetic renderer's geometry."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from disent_bench.data import dsprites
from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.reference_compare import dsprites as dsprites_compare

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE_GIF = SHARED / "reference" / "dsprites.gif"


def _classes(shape=0, scale=5, orientation=0, pos_x=0, pos_y=0):
    return np.array([[shape, scale, orientation, pos_x, pos_y]])


def _centroid(image):
    ys, xs = np.nonzero(image)
    return xs.mean() + 0.5, ys.mean() + 0.5


# -- the official file ------------------------------------------------------------------------------
@pytest.mark.parametrize("compressed", [True, False])
def test_loader_reads_reduced_official_file(tmp_path, write_dsprites_npz, compressed):
    path = tmp_path / "dsprites.npz"
    images, local = write_dsprites_npz(path, compressed=compressed)
    data = dsprites.load_official(path, progress=False)
    assert data.source == "official" and data.packed_bits
    assert data.factor_names == dsprites.FACTOR_NAMES
    assert data.factor_sizes == (3, 1, 2, 2, 3)
    assert data.image_shape == (64, 64, 1)
    assert data.nbytes == len(images) * 64 * 8  # bit-packed: 512 bytes an image
    np.testing.assert_array_equal(data.images(np.arange(len(data)))[..., 0], images * 255)
    np.testing.assert_array_equal(data.factors_of(np.arange(len(data))), local)
    # factor values come from latents_values
    np.testing.assert_allclose(data.factor_values[2], dsprites.FACTOR_VALUES[2][[0, 10]])
    np.testing.assert_allclose(data.factor_values[4], dsprites.FACTOR_VALUES[4][[0, 15, 31]])
    assert data.shape_names == dsprites.SHAPE_NAMES
    batch = data.batch([0, len(data) - 1])
    assert batch.shape == (2, 1, 64, 64) and float(batch.max()) == 1.0


def test_loader_streams_images_in_blocks(tmp_path, write_dsprites_npz, monkeypatch):
    # Blocks smaller than the file, with a ragged last block, give the same store.
    path = tmp_path / "dsprites.npz"
    images, _ = write_dsprites_npz(path)
    monkeypatch.setattr(dsprites, "_READ_BLOCK_IMAGES", 5)
    data = dsprites.load_official(path, progress=False)
    np.testing.assert_array_equal(data.images(np.arange(len(data)))[..., 0], images * 255)


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in ("imgs", "latents_classes", "latents_values")}
    arrays.update(changes)
    np.savez_compressed(path, **arrays)


def test_shuffled_file_names_the_column_out_of_order(tmp_path, write_dsprites_npz):
    path = tmp_path / "dsprites.npz"
    images, local = write_dsprites_npz(path)
    with np.load(path, allow_pickle=False) as archive:
        classes = archive["latents_classes"]
    order = np.lexsort(classes.T[::-1][[1, 0, 2, 3, 4, 5]])  # posX fastest instead of posY
    _rewrite(path, imgs=images[order], latents_classes=classes[order])
    with pytest.raises(UserError, match=r"not in row-major order: posX \(latents_classes column 4\)"):
        dsprites.load_official(path, progress=False)


def test_incomplete_file_says_how_many_images_are_missing(tmp_path, write_dsprites_npz):
    path = tmp_path / "dsprites.npz"
    images, _ = write_dsprites_npz(path)
    with np.load(path, allow_pickle=False) as archive:
        classes = archive["latents_classes"]
    _rewrite(path, imgs=images[:-5], latents_classes=classes[:-5])
    with pytest.raises(UserError, match="5 images are missing"):
        dsprites.load_official(path, progress=False)


def test_values_other_than_0_1_are_rejected(tmp_path, write_dsprites_npz):
    path = tmp_path / "dsprites.npz"
    images, _ = write_dsprites_npz(path)
    _rewrite(path, imgs=images * 255)
    with pytest.raises(UserError, match="0/1 values, image 0 has value 255"):
        dsprites.load_official(path, progress=False)


def test_not_an_npz_and_object_arrays_are_refused(tmp_path, write_dsprites_npz):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(UserError, match="not a readable npz"):
        dsprites.load_official(bad, progress=False)
    path = tmp_path / "dsprites.npz"
    write_dsprites_npz(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in ("imgs", "latents_values")}
    np.savez(path, latents_classes=np.array([[0, 1]], dtype=object), **arrays)
    with pytest.raises(UserError, match="refusing to unpickle"):
        dsprites.load_official(path, progress=False)


def test_relabelled_shapes_are_detected_by_pixel_count(tmp_path, write_dsprites_npz):
    path = tmp_path / "dsprites.npz"
    images, _ = write_dsprites_npz(path)
    per_shape = len(images) // 3
    swapped = np.concatenate([images[2 * per_shape:], images[per_shape:2 * per_shape], images[:per_shape]])
    _rewrite(path, imgs=swapped)  # class 0 now holds hearts, class 2 squares
    with pytest.warns(UserWarning, match="look like heart, ellipse, square"):
        data = dsprites.load_official(path, progress=False)
    assert data.shape_names == ("heart", "ellipse", "square")


# -- the factor grid --------------------------------------------------------------------------------
def test_index_factor_round_trip_and_official_strides():
    # calloc'd zeros: the 360 MiB store is never touched, so this costs nothing.
    store = np.zeros((int(np.prod(dsprites.FACTOR_SIZES)), 64, 8), dtype=np.uint8)
    data = GroundTruthData("dsprites", "synthetic", dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, store,
                           packed_bits=True)
    assert len(data) == 737_280
    rng = np.random.default_rng(0)
    indices = rng.integers(0, len(data), 5000)
    classes = data.factors_of(indices)
    np.testing.assert_array_equal(data.index_of(classes), indices)
    # The official formula, with the constant colour class 0 in front.
    with_colour = np.concatenate([np.zeros((len(classes), 1), np.int64), classes], 1)
    np.testing.assert_array_equal(with_colour @ np.array([737280, 245760, 40960, 1024, 32, 1]), indices)
    assert data.factors_of(np.array([1]))[0].tolist() == [0, 0, 0, 0, 1]  # posY fastest
    assert data.factors_of(np.array([32]))[0].tolist() == [0, 0, 0, 1, 0]


def test_spec_matches_the_official_file():
    spec = dsprites.SPEC
    assert spec.factor_sizes == (3, 6, 40, 32, 32) and spec.num_images == 737_280
    assert spec.official_md5 == "7da33b31b13a06f4b04a70402ce90c2e"
    assert "fa310c66517cfc1939d77fe17c725154efc97127" in spec.official_url
    assert spec.official_url.endswith(spec.official_filename)
    np.testing.assert_allclose(spec.factor_values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert spec.factor_values[2][0] == 0.0 and spec.factor_values[2][-1] == pytest.approx(2 * np.pi)


def test_tiny_grid_is_a_subset_of_the_official_values():
    spec = dsprites.TINY_SPEC
    assert spec.official_filename is None and spec.factor_names == dsprites.FACTOR_NAMES
    for tiny, official in zip(spec.factor_values, dsprites.FACTOR_VALUES):
        assert np.all(np.isin(tiny, official)) and np.all(np.diff(tiny) > 0)


# -- the renderer -----------------------------------------------------------------------------------
def test_positions_move_the_sprite_right_and_down_by_32_over_31_pixels():
    rows = [[1, 5, 0, k, 9] for k in range(32)] + [[1, 5, 0, 9, k] for k in range(32)]
    images = dsprites.render(np.array(rows))
    xs = np.array([_centroid(image)[0] for image in images[:32]])
    ys = np.array([_centroid(image)[1] for image in images[32:]])
    np.testing.assert_allclose(np.diff(xs), 32 / 31, atol=0.25)
    np.testing.assert_allclose(np.diff(ys), 32 / 31, atol=0.25)
    # Positions 0 and 31 have the same sub-pixel offset: the same image moved by exactly 32 pixels.
    assert xs[-1] - xs[0] == pytest.approx(32.0) and ys[-1] - ys[0] == pytest.approx(32.0)
    np.testing.assert_array_equal(images[0][:, :32], images[31][:, 32:])
    assert _centroid(dsprites.render(_classes(1, 5, 0, 0, 0))[0]) == pytest.approx((16.0, 16.0))


def test_square_areas_and_shape_pixel_counts():
    squares = dsprites.render(np.array([[0, s, 0, 0, 0] for s in range(6)]))
    assert squares.reshape(6, -1).sum(1).tolist() == [100, 144, 196, 256, 324, 400]
    counts = dsprites.render(np.array([[s, 5, 0, 0, 0] for s in range(3)])).reshape(3, -1).sum(1)
    assert counts[0] == 400
    assert abs(counts[1] - 288) <= 10 and abs(counts[2] - 222) <= 10
    ellipse = dsprites.render(_classes(1, 5, 0, 0, 0))[0]
    ys, xs = np.nonzero(ellipse)
    assert xs.max() - xs.min() + 1 == 26 and ys.max() - ys.min() + 1 == 14  # major axis horizontal
    heart = dsprites.render(_classes(2, 5, 0, 0, 0))[0]
    ys, xs = np.nonzero(heart)
    assert xs.max() - xs.min() + 1 == 20 and ys.max() - ys.min() + 1 == 17
    assert _centroid(heart)[1] == pytest.approx(14.0, abs=0.5)  # ~2 px above the centre (16)
    assert heart[ys.min()].sum() < heart[ys.max() - 8].sum()  # lobes up, point down
    assert heart[ys.max()].sum() <= 2


def test_orientation_turns_counter_clockwise_and_wraps():
    images = dsprites.render(np.array([[2, 5, k, 15, 15] for k in (0, 10, 39)]))
    centre = 16 + 32 * 15 / 31
    x0, y0 = _centroid(images[0])
    x10, y10 = _centroid(images[1])
    assert y0 < centre - 1.5 and abs(x0 - centre) < 0.3      # lobes up at 0
    assert x10 < centre - 1.5 and abs(y10 - centre) < 0.5    # ~92 degrees CCW on screen: lobes left
    np.testing.assert_array_equal(images[0], images[2])      # index 39 is 2*pi
    # The square repeats every 90 degrees: equal pixel counts at 0 and 2*pi, and 4-fold symmetric at 0.
    square = dsprites.render(_classes(0, 5, 0, 0, 0))[0]
    np.testing.assert_array_equal(square[:32, :32], np.rot90(square[:32, :32]))


def test_render_matches_the_tiny_store_and_an_independent_rasteriser():
    store = dsprites.render_store(dsprites.TINY_GRID, progress=False)
    sizes = tuple(len(g) for g in dsprites.TINY_GRID)
    rng = np.random.default_rng(1)
    local = np.stack([rng.integers(0, n, 64) for n in sizes], 1)
    official = np.stack([dsprites.TINY_GRID[k][local[:, k]] for k in range(5)], 1)
    index = local @ np.array([int(np.prod(sizes[k + 1:])) for k in range(5)])
    rendered = dsprites.render(official)
    np.testing.assert_array_equal(np.unpackbits(store[index], axis=-1), rendered)
    # Straight per-pixel rasterisation with float coordinates (no lattice, no packing).
    centre = 0.5 + np.arange(64)
    mismatched = 0
    for (shape, scale, orientation, px, py), image in zip(official, rendered):
        s = dsprites.FACTOR_VALUES[1][scale]
        angle = dsprites.FACTOR_VALUES[2][orientation]
        ux = centre[None, :] - (16 + 32 * dsprites.FACTOR_VALUES[3][px])
        uy = centre[:, None] - (16 + 32 * dsprites.FACTOR_VALUES[4][py])
        qx = (np.cos(angle) * ux - np.sin(angle) * uy) / s
        qy = (np.sin(angle) * ux + np.cos(angle) * uy) / s
        mismatched += int((dsprites._inside_unit(int(shape), qx, qy) != image.astype(bool)).sum())
    assert mismatched <= 2  # only pixel centres within float rounding of an edge may differ


def test_fast_bit_packing_equals_numpy_packbits():
    pixels = (np.random.default_rng(2).random((50, 128)) < 0.3).astype(np.uint8)
    np.testing.assert_array_equal(dsprites._pack_rows(pixels), np.packbits(pixels, axis=-1))


def test_pixel_mean_on_a_random_sample_matches_the_official_set():
    rng = np.random.default_rng(0)
    classes = np.stack([rng.integers(0, n, 3000) for n in dsprites.FACTOR_SIZES], 1)
    assert dsprites.render(classes).mean() == pytest.approx(0.0425, abs=0.002)


def test_tiny_dataset_renders_fast_through_get_dataset(data_home):
    import time

    from disent_bench.data import get_dataset

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the tiny set has no official file
        data = get_dataset("dsprites_tiny", source="auto", progress=False)
    assert time.perf_counter() - start < 5.0  # typically ~0.1 s; generous for a loaded CI machine
    assert data.source == "synthetic" and len(data) == 1536 and data.factor_sizes == (3, 2, 4, 8, 8)
    assert data.checksum and (data_home / "synthetic" / "dsprites_tiny-v1.npy").is_file()
    again = get_dataset("dsprites_tiny", source="synthetic", progress=False)
    np.testing.assert_array_equal(again.images(np.arange(0, 1536, 50)), data.images(np.arange(0, 1536, 50)))


@pytest.mark.skipif(not REFERENCE_GIF.is_file(), reason=f"reference frames not found at {REFERENCE_GIF} "
                    "(the team's shared/ folder is not beside this checkout)")
def test_synthetic_images_match_the_official_reference_frames():
    frames = dsprites_compare.reference_frames(REFERENCE_GIF)
    assert frames.shape == (320, 64, 64)
    table = dsprites_compare._sprite_table()
    sample = range(0, 320, 16)
    ious = [dsprites_compare._best_match(frames[number], table)[0] for number in sample]
    assert min(ious) >= 0.9, dict(zip(sample, ious))
