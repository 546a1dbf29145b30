"""Cars3D: the official tar.gz of MATLAB files, objects in list.txt order, the reference's thumbnail resize."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from PIL import Image

from disent_bench import data as data_api
from disent_bench.data import cars3d
from disent_bench.errors import UserError
from official_formats import cars3d_mesh, write_cars3d


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    # Added to the archive as 7, 1, 3 (an unsorted "directory listing"); list.txt says 3, 7, 1.
    return write_cars3d(tmp_path_factory.mktemp("cars") / cars3d.OFFICIAL_FILENAME, numbers=(7, 1, 3),
                        list_order=(3, 7, 1))


def test_objects_follow_list_txt_and_the_index_is_row_major(archive):
    cars = cars3d.load_archive(archive, progress=False)
    assert cars.factor_names == ("elevation", "azimuth", "object") and cars.factor_sizes == (4, 24, 3)
    assert cars.object_files == ("car_003_mesh.mat", "car_007_mesh.mat", "car_001_mesh.mat")
    rows = np.arange(len(cars))
    np.testing.assert_array_equal(cars.index_of(cars.factors_of(rows)), rows)
    # index = (elevation * 24 + azimuth) * 183 + object (here 3 objects); the test pixels encode the labels.
    for elevation, azimuth, obj in [(0, 0, 0), (3, 23, 2), (1, 5, 1)]:
        index = (elevation * 24 + azimuth) * 3 + obj
        pixel = cars.images([index])[0, 0, 0]
        assert pixel.tolist() == [10 * azimuth, 60 * elevation, 40 + (3, 7, 1)[obj]]


def test_images_are_the_reference_thumbnail(archive):
    cars = cars3d.load_archive(archive, progress=False)
    im = cars3d_mesh(7)
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(im[:, :, :, 5, 2])).resize((64, 64), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(cars.images([(2 * 24 + 5) * 3 + 1])[0], expected)


def test_list_txt_names_with_the_mat_suffix_are_accepted(tmp_path):
    path = write_cars3d(tmp_path / "c.tar.gz", numbers=(2, 1), list_suffix=".mat")
    assert cars3d.load_archive(path, progress=False).object_files == ("car_001_mesh.mat", "car_002_mesh.mat")


def test_bad_archives_are_named(tmp_path):
    path = write_cars3d(tmp_path / "c.tar.gz", numbers=(1, 2), list_order=(1, 5))
    with pytest.raises(UserError, match=r"list.txt: line 2 names 'car_005_mesh'"):
        cars3d.load_archive(path, progress=False)
    path = write_cars3d(tmp_path / "d.tar.gz", numbers=(1, 2), list_order=(1,))
    with pytest.raises(UserError, match=r"1 .mat files are not in list.txt \(e.g. car_002_mesh.mat\)"):
        cars3d.load_archive(path, progress=False)
    (tmp_path / "e.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(UserError, match="not a readable tar archive"):
        cars3d.load_archive(tmp_path / "e.tar.gz", progress=False)


def test_get_dataset_through_the_data_home(archive, data_home, monkeypatch):
    payload = archive.read_bytes()
    (data_home / cars3d.OFFICIAL_FILENAME).write_bytes(payload)
    monkeypatch.setattr(cars3d, "SPEC", dataclasses.replace(cars3d.SPEC, official_md5=hashlib.md5(payload).hexdigest()))
    first = data_api.get_dataset("cars3d", progress=False)
    monkeypatch.setattr(cars3d, "mesh_images", None)  # a second load maps the cache without reading the archive
    again = data_api.get_dataset("cars3d", progress=False)
    assert first.memory_mapped and again.memory_mapped and first.checksum == hashlib.sha256(payload).hexdigest()
    np.testing.assert_array_equal(first.batch(np.arange(10)).numpy(), again.batch(np.arange(10)).numpy())
    assert again.object_files == first.object_files == ("car_003_mesh.mat", "car_007_mesh.mat", "car_001_mesh.mat")
    with pytest.raises(UserError, match="cars3d has no synthetic version.*data fetch cars3d"):
        data_api.get_dataset("cars3d", "synthetic")
