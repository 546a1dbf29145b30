"""SmallNORB: NYU binary matrices, label-ordered store, the reference's Lanczos resize, instance as nuisance."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from disent_bench import data as data_api
from disent_bench.data import smallnorb
from disent_bench.data.spec import OfficialFile
from disent_bench.errors import UserError
from official_formats import matrix_bytes, smallnorb_image, write_smallnorb

GRID = dict(categories=(0, 2), train_instances=(4, 6), test_instances=(1,), elevations=(0, 8), azimuths=(0, 2, 34),
            lightings=(0, 5))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_smallnorb(tmp_path_factory.mktemp("norb"), **GRID)


@pytest.fixture(scope="module")
def norb(files):
    return smallnorb.load_files(files, progress=False)


def test_binary_matrix_headers_round_trip():
    for array in (np.arange(6, dtype=np.int32), np.arange(24, dtype=np.int32).reshape(6, 4),
                  np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)):
        raw = matrix_bytes(array)
        assert len(raw) - array.nbytes == 8 + 4 * max(3, array.ndim)  # the header size of the format
        dtype, shape = smallnorb.read_header(io.BytesIO(raw), "x")
        assert dtype == array.dtype and shape == array.shape


def test_unknown_magic_and_truncation_are_named(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_bytes(np.array([0x1E3D4C52, 1, 3, 1, 1], "<i4").tobytes())  # "packed": unsupported
    with pytest.raises(UserError, match=r"bad.mat: magic number 0x1e3d4c52"):
        smallnorb.read_matrix(bad)
    short = tmp_path / "short.mat.gz"
    with gzip.open(short, "wb") as handle:
        handle.write(matrix_bytes(np.arange(10, dtype=np.int32))[:-4])
    with pytest.raises(UserError, match="short.mat.gz: the data ends early"):
        smallnorb.read_matrix(short)


def test_factors_instances_and_the_label_order(norb):
    # Latent factors only; the instance (train 4, 6 + test 1) is nuisance.
    assert norb.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert norb.factor_sizes == (2, 2, 3, 2) and norb.num_instances == 3 and len(norb) == 24
    assert norb.instance_values.tolist() == [1, 4, 6]
    np.testing.assert_array_equal(norb.factor_values[2], [0, 20, 340])  # azimuth 0, 2, 34 -> degrees
    rows = np.arange(len(norb))
    np.testing.assert_array_equal(norb.index_of(norb.factors_of(rows)), rows)
    # Every store row is the first (left) image of the pair whose labels it is sorted under, resized.
    for category, instance, elevation, azimuth, lighting in [(0, 1, 0, 0, 0), (2, 6, 8, 34, 5), (2, 4, 0, 2, 5)]:
        latent = norb.index_of([GRID["categories"].index(category), GRID["elevations"].index(elevation),
                                GRID["azimuths"].index(azimuth), GRID["lightings"].index(lighting)])
        row = norb.store_rows([latent], [norb.instance_values.tolist().index(instance)])[0]
        expected = smallnorb.resize(smallnorb_image(category, instance, elevation, azimuth, lighting, camera=0)[None])
        np.testing.assert_array_equal(norb._store[row, ..., 0], expected[0])


def test_lanczos_resize_against_an_independent_computation():
    """Pillow's Lanczos-3 for 96 -> 64, computed by hand in two separable float passes (uint8 between)."""
    def weights(size_in, size_out):
        scale = size_in / size_out
        support = 3.0 * scale
        matrix = np.zeros((size_out, size_in))
        for x in range(size_out):
            centre = (x + 0.5) * scale
            lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size_in)
            t = (np.arange(lo, hi) - centre + 0.5) / scale
            w = np.sinc(t) * np.sinc(t / 3.0) * (np.abs(t) < 3)
            matrix[x, lo:hi] = w / w.sum()
        return matrix

    w = weights(96, 64)
    rng = np.random.default_rng(0)
    image = np.zeros((96, 96), np.uint8)
    image[20:70, 30:50] = 255                      # hard edges: Lanczos overshoots, uint8 clips
    image[75:90] = rng.integers(0, 256, (15, 96))  # texture
    horizontal = np.clip(np.rint(image @ w.T), 0, 255)
    expected = np.clip(np.rint(w @ horizontal), 0, 255)
    got = smallnorb.resize(image[None])[0].astype(float)
    assert np.abs(got - expected).max() <= 1  # Pillow rounds in fixed point
    assert np.mean(got == expected) > 0.97
    # A flat image stays flat (the weights sum to one).
    assert (smallnorb.resize(np.full((1, 96, 96), 137, np.uint8)) == 137).all()


def test_reference_mode_i_and_our_uint8_resize_differ_only_near_overshoot():
    """The reference resizes in Pillow mode "I" (its int8 array), which keeps Lanczos overshoot; uint8 clips it.

    Smooth images resize identically; hard edges (overshoot beyond 0..255) differ by a few grey levels at a
    fraction of a percent of the pixels (measured here: at most 5 levels on 0.27% of the pixels).
    """
    def both(image):
        ours = smallnorb.resize(image[None])[0].astype(np.int64)
        reference = np.asarray(Image.fromarray(image.astype(np.int32)).resize((64, 64), Image.Resampling.LANCZOS))
        return ours, reference

    y, x = np.mgrid[0:96, 0:96]
    smooth = (128 + 60 * np.sin(x / 7.0) * np.cos(y / 9.0)).astype(np.uint8)
    ours, reference = both(smooth)
    np.testing.assert_array_equal(ours, reference)
    ours, reference = both(smallnorb_image(2, 6, 8, 34, 5))
    assert reference.min() < 0 or reference.max() > 255  # this image does overshoot
    differ = ours != np.clip(reference, 0, 255)
    assert 0 < differ.mean() < 0.01 and np.abs(ours - np.clip(reference, 0, 255)).max() <= 8


def test_instance_is_drawn_per_observation(norb):
    index = np.zeros(300, np.int64)  # one factor row, drawn 300 times
    keys = np.stack([np.full(300, 7, np.uint64), np.arange(300, dtype=np.uint64)], 1)
    instances = norb.instances(keys)
    assert set(instances.tolist()) == {0, 1, 2}
    images = norb.images(index, keys=keys)
    assert len({img.tobytes() for img in images}) == 3  # one image per instance
    np.testing.assert_array_equal(norb.images(index[:5], keys=keys[:5]), images[:5])  # same keys, same images
    # Without keys (training) a batch is reproducible from its indices, and repeats of an index still vary.
    first = norb.batch(index[:50])
    np.testing.assert_array_equal(norb.batch(index[:50]).numpy(), first.numpy())
    assert len({x.numpy().tobytes() for x in first}) > 1


@pytest.fixture
def official_files(files, monkeypatch, data_home):
    """The tiny files in the data home, with the spec's checksums pointed at them."""
    listed = []
    for name, path in files.items():
        (data_home / name).write_bytes(path.read_bytes())
        listed.append(OfficialFile(name, f"http://127.0.0.1:9/{name}", path.stat().st_size,
                                   hashlib.sha256(path.read_bytes()).hexdigest()))
    monkeypatch.setattr(smallnorb, "SPEC", dataclasses.replace(smallnorb.SPEC, official_files=tuple(listed)))
    return data_home


def test_get_dataset_verifies_caches_and_maps_the_store(official_files, norb):
    dataset = data_api.get_dataset("smallnorb", progress=False)
    assert dataset.source == "official" and dataset.memory_mapped and dataset.factor_sizes == norb.factor_sizes
    np.testing.assert_array_equal(np.asarray(dataset._store), norb._store)
    assert len(list((official_files / "cache").glob("smallnorb-*.npy"))) == 1
    keys = np.stack([np.full(24, 3, np.uint64), np.arange(24, dtype=np.uint64)], 1)
    np.testing.assert_array_equal(dataset.batch(np.arange(24), keys=keys).numpy(),
                                  norb.batch(np.arange(24), keys=keys).numpy())
    assert data_api.dataset_status("smallnorb")["official_verified"]


def test_no_synthetic_smallnorb_names_data_fetch(data_home):
    for source in ("synthetic", "auto"):
        with pytest.raises(UserError, match=r"smallnorb has no synthetic version.*disent-bench data fetch smallnorb"):
            data_api.get_dataset("smallnorb", source)
    with pytest.raises(UserError, match=r"official file not found .*data fetch smallnorb.*no synthetic version"):
        data_api.get_dataset("smallnorb", "official")
