"""3D Shapes: the official-format HDF5 loader (on tiny files written like the official one) and the renderer."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from disent_bench.data import shapes3d
from disent_bench.data import shapes3d_render as render
from disent_bench.errors import UserError
from disent_bench.reference_compare import shapes3d as shapes3d_compare

REFERENCE_GIF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "3dshapes.gif"

# A reduced grid of official classes per factor: 2 x 2 x 2 x 2 x 2 x 3 = 96 images.
SMALL_GRID = ([0, 6], [3, 9], [1, 2], [0, 7], [1, 3], [0, 7, 14])


def _grid_labels(grid=SMALL_GRID) -> np.ndarray:
    """Label VALUES of a row-major grid (last factor fastest), as the official file stores them."""
    mesh = np.meshgrid(*[np.asarray(g) for g in grid], indexing="ij")
    classes = np.stack([m.ravel() for m in mesh], axis=1)
    return np.stack([shapes3d.FACTOR_VALUES[k][classes[:, k]] for k in range(6)], axis=1).astype(np.float64)


def _write_h5(path: Path, images: np.ndarray | None, labels: np.ndarray | None) -> Path:
    with h5py.File(path, "w") as handle:
        if images is not None:
            # gzip in multi-image chunks, like the official file
            handle.create_dataset("images", data=images, chunks=(10, 64, 64, 3), compression="gzip")
        if labels is not None:
            handle.create_dataset("labels", data=labels)
    return path


@pytest.fixture()
def small_file(tmp_path):
    labels = _grid_labels()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(len(labels), 64, 64, 3), dtype=np.uint8)
    return _write_h5(tmp_path / "3dshapes.h5", images, labels), images, labels


# -- official loader --------------------------------------------------------------------------------
def test_load_official_reduced_grid(small_file):
    path, images, labels = small_file
    data = shapes3d.load_official(path, progress=False)
    assert data.source == "official" and data.name == "shapes3d"
    assert data.factor_names == shapes3d.FACTOR_NAMES
    assert data.factor_sizes == (2, 2, 2, 2, 2, 3)
    assert data.image_shape == (64, 64, 3)
    np.testing.assert_array_equal(data.images(np.arange(len(images))), images)
    # factor_values are the file's values; the row-major index <-> factor classes round trip
    np.testing.assert_allclose(data.factor_values[5], [-30.0, 0.0, 30.0])
    np.testing.assert_allclose(data.factor_values[3], [0.75, 1.25])
    index = np.arange(len(data))
    classes = data.factors_of(index)
    np.testing.assert_array_equal(data.index_of(classes), index)
    values = np.stack([data.factor_values[k][classes[:, k]] for k in range(6)], axis=1)
    np.testing.assert_allclose(values, labels)


def test_get_dataset_maps_a_converted_store_equal_to_the_in_memory_one(small_file, data_home, monkeypatch):
    import dataclasses
    import hashlib

    from disent_bench import data as data_api

    path, images, _ = small_file
    payload = path.read_bytes()
    (data_home / shapes3d.OFFICIAL_FILENAME).write_bytes(payload)
    monkeypatch.setattr(shapes3d, "SPEC", dataclasses.replace(
        shapes3d.SPEC, official_size=len(payload), official_sha256=hashlib.sha256(payload).hexdigest()))
    mapped = data_api.get_dataset("shapes3d", progress=False)
    assert mapped.memory_mapped and len(list((data_home / "cache").glob("shapes3d-*.npy"))) == 1
    in_memory = shapes3d.load_official(path, progress=False)
    assert not in_memory.memory_mapped
    rows = np.random.default_rng(1).integers(0, len(images), 64)
    np.testing.assert_array_equal(mapped.batch(rows).numpy(), in_memory.batch(rows).numpy())
    np.testing.assert_array_equal(mapped.images(rows), images[rows])


def test_read_blocks_are_chunk_aligned_and_complete(small_file, monkeypatch):
    path, images, _ = small_file
    # A block smaller than one chunk must still read whole chunks, and every image exactly once.
    monkeypatch.setattr(shapes3d, "READ_BLOCK_BYTES", 1)
    data = shapes3d.load_official(path, progress=False)
    np.testing.assert_array_equal(data.images(np.arange(len(images))), images)


def test_labels_to_classes_with_tolerance():
    labels = _grid_labels()
    # float32 round-off (as in a converted file) is still on the grid
    classes, present = shapes3d.labels_to_classes(labels.astype(np.float32))
    assert [p.tolist() for p in present] == [list(g) for g in SMALL_GRID]
    assert classes[0].tolist() == [0, 3, 1, 0, 1, 0]
    assert classes[-1].tolist() == [6, 9, 2, 7, 3, 14]
    full = shapes3d.labels_to_classes(np.array([[0.9, 0.0, 0.5, 1.25, 3.0, 30.0]]))[0]
    assert full.tolist() == [[9, 0, 5, 7, 3, 14]]


def test_labels_off_grid_name_column_and_value():
    labels = _grid_labels()
    labels[5, 3] = 0.8  # between scale 0.75 and 0.8214
    with pytest.raises(UserError, match=r"column 3 \(scale\) has value 0.8 at row 5"):
        shapes3d.labels_to_classes(labels)
    # classes instead of values: orientation class 7 is not a value in -30..30 step 4.29
    classes_not_values = _grid_labels()
    classes_not_values[:, 5] = np.tile([0, 7, 14], 32)
    with pytest.raises(UserError, match=r"orientation.*not on the official grid"):
        shapes3d.labels_to_classes(classes_not_values)
    with pytest.raises(UserError, match=r"shape \(3, 5\)"):
        shapes3d.labels_to_classes(np.zeros((3, 5)))


def test_shuffled_file_is_refused(tmp_path):
    labels = _grid_labels()
    order = np.random.default_rng(1).permutation(len(labels))
    images = np.zeros((len(labels), 64, 64, 3), np.uint8)
    path = _write_h5(tmp_path / "shuffled.h5", images, labels[order])
    with pytest.raises(UserError, match=r"not in row-major order.*looks shuffled"):
        shapes3d.load_official(path, progress=False)


def test_missing_combinations_are_named(tmp_path):
    labels = _grid_labels()
    keep = np.ones(len(labels), bool)
    keep[[4, 50]] = False
    path = _write_h5(tmp_path / "holes.h5", np.zeros((keep.sum(), 64, 64, 3), np.uint8), labels[keep])
    with pytest.raises(UserError, match=r"2 factor combinations are missing \(e\.g\. floor_hue=0, wall_hue=0\.3, "
                                        r"object_hue=0\.1, scale=0\.75, shape=3, orientation=0\)"):
        shapes3d.load_official(path, progress=False)
    duplicated = np.concatenate([labels, labels[:3]])
    path = _write_h5(tmp_path / "dups.h5", np.zeros((len(duplicated), 64, 64, 3), np.uint8), duplicated)
    with pytest.raises(UserError, match=r"3 images repeat a combination"):
        shapes3d.load_official(path, progress=False)


def test_missing_key_wrong_dtype_and_not_hdf5(tmp_path):
    labels = _grid_labels()
    path = _write_h5(tmp_path / "nolabels.h5", np.zeros((len(labels), 64, 64, 3), np.uint8), None)
    with pytest.raises(UserError, match=r"dataset 'labels' not found \(the file has \['images'\]\)"):
        shapes3d.load_official(path, progress=False)
    path = _write_h5(tmp_path / "float.h5", np.zeros((len(labels), 64, 64, 3), np.float32), labels)
    with pytest.raises(UserError, match=r"'images' is float32 .*expected uint8"):
        shapes3d.load_official(path, progress=False)
    path = _write_h5(tmp_path / "short.h5", np.zeros((len(labels) - 1, 64, 64, 3), np.uint8), labels)
    with pytest.raises(UserError, match=r"'labels' has shape \(96, 6\) but 'images' has 95 rows"):
        shapes3d.load_official(path, progress=False)
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match=r"not a readable HDF5 file"):
        shapes3d.load_official(bogus, progress=False)


def test_spec_matches_the_official_dataset():
    spec = shapes3d.SPEC
    assert spec.name == "shapes3d"
    assert spec.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert spec.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert spec.num_images == 480_000 and spec.image_shape == (64, 64, 3) and not spec.packed_bits
    assert spec.official_filename == "3dshapes.h5" and spec.official_size == 267_573_662
    assert spec.official_sha256 == "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"
    np.testing.assert_allclose(spec.factor_values[5], np.linspace(-30, 30, 15))
    assert shapes3d.STRIDES.tolist() == [48000, 4800, 480, 60, 15, 1]


# -- renderer ---------------------------------------------------------------------------------------
def _index(floor=0, wall=6, obj=3, scale=0, shape=0, orientation=7) -> int:
    return int(np.dot([floor, wall, obj, scale, shape, orientation], [48000, 4800, 480, 60, 15, 1]))


def test_hue_colours():
    np.testing.assert_allclose(render.hue_rgb(0.6) * 255, [0, 102, 255], atol=0.5)
    np.testing.assert_allclose(render.hue_rgb(np.array([0.0, 0.3])) * 255, [[255, 0, 0], [51, 255, 0]], atol=0.5)


def test_scene_at_orientation_zero():
    # floor hue 0 (red), wall hue 0.6, object hue 0.3, cube at scale 0.75, orientation 0 degrees
    image = render.render_indices([_index()])[0].astype(int)
    sky = image[1:17].reshape(-1, 3)
    np.testing.assert_allclose(sky.mean(0), [153, 226, 249], atol=2)
    back_wall = image[22:34, 4:16].reshape(-1, 3).mean(0)  # left of the object, away from the edges
    np.testing.assert_allclose(back_wall, [0, 102, 255], atol=12)
    assert back_wall[2] > 240 and back_wall[0] < 5
    floor = image[60:64].reshape(-1, 3)
    assert np.all(floor[:, 0] > 150) and np.all(floor[:, 1:] < 10)
    # horizon rows: sky above row 17, floor from row 42
    assert image[17:40, 2, 2].min() > 200 and image[42:64, 2, 0].min() > 200


def test_object_hue_changes_only_the_object():
    a, b = render.render_indices([_index(obj=3), _index(obj=8)]).astype(int)
    changed = np.any(a != b, axis=-1)
    maps = render.render_maps(0, 0.75, 0.0)
    on_object = maps[..., render.K_OBJECT] > 0
    assert changed.sum() > 150
    assert not np.any(changed & ~on_object)  # nothing outside the object's (anti-aliased) pixels
    assert np.all(changed[maps[..., render.K_OBJECT] > 0.3])


def test_larger_scale_is_a_taller_object_on_the_same_floor():
    rows = []
    for scale in (0, 7):
        maps = render.render_maps(3, float(render.SCALES[scale]), 0.0)
        covered = np.flatnonzero((maps[..., render.K_OBJECT] > 0).any(axis=1))
        rows.append((covered.min(), covered.max()))
    (top_small, bottom_small), (top_large, bottom_large) = rows
    assert top_large < top_small - 12  # the capsule grows upwards by ~20 px
    assert abs(bottom_large - bottom_small) <= 2  # ... about its base on the floor


def _corner_column(image: np.ndarray) -> int:
    """The column of the vertical room corner: where the wall brightness jumps (back vs side wall)."""
    band = image[22:34].astype(float).sum(-1).mean(0)
    return int(np.argmax(np.abs(np.diff(band)))) + 1


def test_orientation_moves_the_room_corner():
    left, right = render.render_indices([_index(orientation=0), _index(orientation=14)])
    assert abs(_corner_column(left) - 44) <= 3  # -30 degrees
    assert abs(_corner_column(right) - 18) <= 3  # +30 degrees


def test_shadow_is_darker_than_the_floor():
    maps = render.render_maps(3, 1.25, 30.0)
    floor = maps[..., render.K_FLOOR]
    # Whole floor pixels right of the object and below the floor line
    region = floor[50:60, 36:56]
    assert region.min() < 0.6 * np.median(floor[58:64, :])
    image = render.render_indices([_index(scale=7, shape=3, orientation=14)])[0].astype(int)
    assert image[50:60, 36:56, 0].min() < 0.6 * np.median(image[58:64, :, 0])


def test_render_indices_matches_compose_and_orders_like_the_official_file():
    index = _index(floor=2, wall=4, obj=7, scale=3, shape=2, orientation=5)
    image = render.render_indices([index])[0]
    maps = render.render_maps(2, float(render.SCALES[3]), float(render.ORIENTATIONS[5]))
    expected = render.compose(maps, render.hue_rgb(0.2), render.hue_rgb(0.4), render.hue_rgb(0.7))
    np.testing.assert_array_equal(image, expected)
    with pytest.raises(ValueError):
        render.render_indices([480_000])


def test_render_synthetic_writes_official_order(tmp_path, monkeypatch):
    # Full size would be 5.9 GB: shrink the grid to 2 floor hues x 2 wall hues x 2 object hues, keeping
    # all 480 geometry configurations, and check sampled images against render_indices.
    monkeypatch.setattr(shapes3d, "FACTOR_SIZES", (2, 2, 2, 8, 4, 15))
    monkeypatch.setattr(shapes3d, "NUM_IMAGES", 8 * 480)
    monkeypatch.setattr(shapes3d, "STRIDES", np.array([1920, 960, 480, 60, 15, 1]))
    monkeypatch.setattr(render, "render_all_maps", _small_maps())
    out = tmp_path / "synthetic.npy"
    shapes3d.render_synthetic(out, progress=False)
    store = np.load(out, mmap_mode="r", allow_pickle=False)
    assert store.shape == (3840, 64, 64, 3) and store.dtype == np.uint8
    for f, w, o, config in [(0, 0, 0, 0), (1, 0, 1, 479), (0, 1, 1, 137), (1, 1, 0, 301)]:
        scale, shape, orientation = np.unravel_index(config, (8, 4, 15))
        expected = render.render_indices([_index(f, w, o, scale, shape, orientation)], _FAST)[0]
        np.testing.assert_array_equal(store[f * 1920 + w * 960 + o * 480 + config], expected)


_FAST = render.Scene(supersample=1)


def _small_maps():
    original = render.render_all_maps

    def fast(scene=None, progress=None):
        return original(_FAST, progress)
    return fast


@pytest.mark.skipif(not REFERENCE_GIF.is_file(), reason=f"reference GIF not found at {REFERENCE_GIF} "
                    "(the team's shared/ folder beside the project)")
def test_reference_frames_and_hue_estimates():
    frames = shapes3d_compare.reference_frames(REFERENCE_GIF)
    assert frames.shape == (53, 64, 64, 3) and frames.dtype == np.uint8
    floors, walls, objects = shapes3d_compare._candidate_hues(frames[7])  # red floor, blue (0.6) wall, green object
    assert floors[0] == 0 and walls[0] == 6 and objects[0] == 3
    synthetic = render.render_indices([_index()])[0].astype(int)
    assert np.abs(synthetic - frames[7].astype(int)).mean() < 8


def test_compare_reference_recovers_known_frames(tmp_path, monkeypatch):
    """A GIF made like the official one (upscaled frames, 2-pixel border) of two synthetic images:
    the matcher must find their exact factors and write the picture."""
    from PIL import Image

    monkeypatch.setattr(render, "render_all_maps", _small_maps())
    truth = [(3, 7, 1, 2, 1, 3), (8, 2, 5, 6, 3, 11)]
    images = render.render_indices([_index(*t) for t in truth], _FAST)
    frames = []
    for image in images:
        big = np.full((227, 227, 3), 255, np.uint8)
        big[2:225, 2:225] = np.asarray(Image.fromarray(image).resize((223, 223), Image.NEAREST))
        frames.append(Image.fromarray(big))
    gif = tmp_path / "frames.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = tmp_path / "pictures" / "compare.png"
    result = shapes3d_compare.compare_reference(gif, out, progress=False)
    assert result["frames"] == 2
    assert [tuple(f) for f in result["factors"]] == truth
    assert result["mean_abs_error"] < 6  # GIF palette and resampling only
    assert out.is_file() and out.stat().st_size > 10_000
    with pytest.raises(UserError, match=r"must be a \.png"):
        shapes3d_compare.compare_reference(gif, tmp_path / "compare.jpg", progress=False)
