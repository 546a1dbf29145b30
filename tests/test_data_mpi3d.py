"""MPI3D: npz images mapped in place (stored) or converted once to a mapped cache (compressed); sizes from N."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from disent_bench import data as data_api
from disent_bench.data import mpi3d
from disent_bench.data.spec import OfficialFile
from disent_bench.data.store import npz_member_info
from disent_bench.errors import UserError
from official_formats import mpi3d_images, write_mpi3d_npz

SIZES = (2, 3, 2, 1, 1, 3, 4)  # a reduced grid written in the official layout


def test_factor_sizes_come_from_the_image_count():
    assert mpi3d.factor_sizes_for(1_036_800) == (6, 6, 2, 3, 3, 40, 40)
    assert mpi3d.factor_sizes_for(460_800) == (4, 4, 2, 3, 3, 40, 40)
    # The reference's toy/realistic sizes (4, 4, ...) would need 460,800 images; a 6x6 file is never read that way.
    with pytest.raises(UserError, match=r"holds 1,036,801 images; MPI3D files hold 1,036,800 \(6x6x2x3x3x40x40\)"):
        mpi3d.factor_sizes_for(1_036_801)
    assert [s.factor_sizes for s in mpi3d.SPECS] == [(6, 6, 2, 3, 3, 40, 40)] * 3 + [(4, 4, 2, 3, 3, 40, 40)]


@pytest.mark.parametrize("compressed", [False, True])
def test_memory_mapped_batches_equal_the_in_memory_images(tmp_path, compressed):
    path = tmp_path / "mpi3d_toy.npz"
    images = write_mpi3d_npz(path, SIZES, compressed=compressed)
    assert npz_member_info(path, "images").compressed == compressed
    mapped = mpi3d.load_npz(path, factor_sizes=SIZES, cache_dir=tmp_path / "cache", checksum="c0ffee", progress=False)
    assert mapped.memory_mapped
    # Stored: mapped where it lies, no cache file; compressed: converted once into the cache.
    assert len(list((tmp_path / "cache").glob("*.npy"))) == (1 if compressed else 0)
    in_memory = mpi3d.load_npz(path, factor_sizes=SIZES, progress=False)
    rows = np.random.default_rng(0).integers(0, len(images), 100)
    np.testing.assert_array_equal(mapped.images(rows), images[rows])
    torch.testing.assert_close(mapped.batch(rows), torch.from_numpy(images[rows]).permute(0, 3, 1, 2).float() / 255)
    np.testing.assert_array_equal(mapped.batch(torch.as_tensor(rows)).numpy(), in_memory.batch(rows).numpy())
    # Factor rows and indices round-trip, and the image at a factor row is the one the writer put there.
    factors = mapped.factors_of(rows)
    np.testing.assert_array_equal(mapped.index_of(factors), rows)
    np.testing.assert_array_equal(mapped.images(mapped.index_of(factors)), mpi3d_images(rows, SIZES))


def test_a_current_cache_is_reused_and_a_stale_one_rebuilt(tmp_path):
    path = tmp_path / "m.npz"
    write_mpi3d_npz(path, SIZES, compressed=True)
    mpi3d.load_npz(path, factor_sizes=SIZES, cache_dir=tmp_path, checksum="aaaa", progress=False)
    cache = next(tmp_path.glob("mpi3d_toy-aaaa*.npy"))
    mtime = cache.stat().st_mtime_ns
    mpi3d.load_npz(path, factor_sizes=SIZES, cache_dir=tmp_path, checksum="aaaa", progress=False)
    assert cache.stat().st_mtime_ns == mtime
    with open(cache, "r+b") as handle:  # damaged after it was stamped
        handle.truncate(100)
    again = mpi3d.load_npz(path, factor_sizes=SIZES, cache_dir=tmp_path, checksum="aaaa", progress=False)
    assert again.images([len(again) - 1]).shape == (1, 64, 64, 3) and cache.stat().st_size > 100


def test_format_checks_name_the_problem(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((4, 64, 64, 1), np.uint8))
    with pytest.raises(UserError, match=r"'images' is uint8 \(4, 64, 64, 1\); expected uint8 \(N, 64, 64, 3\)"):
        mpi3d.check_npz(path, 4)
    np.savez(path, imgs=np.zeros((4, 64, 64, 3), np.uint8))
    with pytest.raises(UserError, match="no 'images' array in the npz"):
        mpi3d.check_npz(path, 4)
    np.savez(path, images=np.zeros((4, 64, 64, 3), np.uint8))
    with pytest.raises(UserError, match="holds 4 images, this MPI3D file has 1,036,800"):
        mpi3d.check_npz(path, 1_036_800)


def test_get_dataset_refuses_a_file_of_the_wrong_size_and_has_no_synthetic(tmp_path, data_home, monkeypatch):
    write_mpi3d_npz(data_home / "mpi3d_toy.npz", SIZES)
    spec = next(s for s in mpi3d.SPECS if s.name == "mpi3d_toy")
    # Verified by format: the count check is the toy file's (1,036,800), so a reduced file is refused by name.
    with pytest.raises(UserError, match=r"mpi3d_toy.npz: 'images' holds 144 images, this MPI3D file has 1,036,800"):
        data_api.get_dataset("mpi3d_toy", progress=False)
    patched = dataclasses.replace(spec, official_files=(OfficialFile("mpi3d_toy.npz", None),))
    monkeypatch.setattr(mpi3d, "SPECS", tuple(patched if s.name == "mpi3d_toy" else s for s in mpi3d.SPECS))
    with pytest.raises(UserError, match=r"holds 144 images; MPI3D files hold 1,036,800"):
        data_api.get_dataset("mpi3d_toy", progress=False)
    with pytest.raises(UserError, match="mpi3d_real has no synthetic version.*data fetch mpi3d_real"):
        data_api.get_dataset("mpi3d_real", "synthetic")
