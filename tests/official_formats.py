"""Writers of tiny files in the official formats of SmallNORB, Cars3D and MPI3D (for tests and measurements).

Each writes the layout the loaders read, byte for byte as the release does: SmallNORB's gzip'd binary
matrices (magic, ndim, max(3, ndim) int32 dimension sizes, C-order data), Cars3D's tar.gz of MATLAB v5
``car_XXX_mesh.mat`` files with ``list.txt``, MPI3D's npz with one ``images`` array (stored or deflated;
:func:`write_mpi3d_npz_streaming` writes a full-size file without holding it in memory).
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np

SMALLNORB_MAGIC = {np.dtype("uint8"): 0x1E3D4C55, np.dtype("int32"): 0x1E3D4C54}


def matrix_bytes(array: np.ndarray) -> bytes:
    """An array in NYU's binary matrix format."""
    array = np.ascontiguousarray(array)
    dtype = np.dtype(array.dtype)
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([SMALLNORB_MAGIC[dtype], array.ndim, *dims], dtype="<i4").tobytes()
    return header + array.astype(dtype.newbyteorder("<")).tobytes()


def smallnorb_image(category, instance, elevation, azimuth, lighting, camera=0) -> np.ndarray:
    """A 96x96 uint8 test image that encodes its labels (bright bars whose positions are the labels)."""
    image = np.full((96, 96), 20 + 10 * camera, dtype=np.uint8)
    image[4:20, 8 + 15 * category:20 + 15 * category] = 250
    image[24:40, 8 + 8 * instance:14 + 8 * instance] = 200
    image[44:60, 8 + 9 * elevation:14 + 9 * elevation] = 160
    image[64:76, 4 + 5 * (azimuth // 2):8 + 5 * (azimuth // 2)] = 230
    image[80:92, 8 + 14 * lighting:18 + 14 * lighting] = 120
    return image


def write_smallnorb(directory: Path, categories=(0, 2), train_instances=(4, 6), test_instances=(1,),
                    elevations=(0, 8), azimuths=(0, 2, 34), lightings=(0, 5), *, shuffle_seed=0) -> dict[str, Path]:
    """The six SmallNORB files (gz) for a reduced grid, rows shuffled (the loader must sort by labels).

    Returns file name -> path, as ``smallnorb.load_files`` takes it.
    """
    from disent_bench.data import smallnorb

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(shuffle_seed)
    paths = {}
    for stem, instances in ((smallnorb.TRAIN_STEM, train_instances), (smallnorb.TEST_STEM, test_instances)):
        labels = np.array([(c, i, e, a, lt) for c in categories for i in instances for e in elevations
                           for a in azimuths for lt in lightings], dtype=np.int32)
        labels = labels[rng.permutation(len(labels))]
        pairs = np.stack([np.stack([smallnorb_image(*row, camera=0), smallnorb_image(*row, camera=1)])
                          for row in labels])
        contents = {"dat": pairs.astype(np.uint8), "cat": labels[:, 0].copy(), "info": labels[:, 1:].copy()}
        for kind, array in contents.items():
            name = f"{stem}-{kind}.mat.gz"
            with gzip.open(directory / name, "wb") as handle:
                handle.write(matrix_bytes(array))
            paths[name] = directory / name
    return paths


def cars3d_mesh(number: int, size: int = 128) -> np.ndarray:
    """A car's ``im`` array (H, W, 3, 24 azimuths, 4 elevations) whose pixels encode (object, azimuth, elevation)."""
    im = np.zeros((size, size, 3, 24, 4), dtype=np.uint8)
    for azimuth in range(24):
        for elevation in range(4):
            im[:, :, 0, azimuth, elevation] = 10 * azimuth
            im[:, :, 1, azimuth, elevation] = 60 * elevation
            im[:, :, 2, azimuth, elevation] = 40 + number
            im[size // 4:size // 2, size // 4 + 2 * azimuth:size // 2 + 2 * azimuth, :, azimuth, elevation] = 255
    return im


def write_cars3d(path: Path, numbers=(7, 1, 3), list_order=None, *, list_suffix: str = "") -> Path:
    """A nips2015-analogy-data.tar.gz with ``data/cars/car_NNN_mesh.mat`` for ``numbers`` and list.txt.

    ``numbers`` is the order the files are added to the archive (not sorted, like a directory listing);
    ``list_order`` the order list.txt names them (default: sorted).
    """
    import scipy.io

    path = Path(path)
    list_order = sorted(numbers) if list_order is None else list_order

    def add(archive, name, data: bytes):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w:gz") as archive:
        for number in numbers:
            buffer = io.BytesIO()
            scipy.io.savemat(buffer, {"im": cars3d_mesh(number), "mask": np.ones((128, 128, 24, 4), np.uint8)})
            add(archive, f"data/cars/car_{number:03d}_mesh.mat", buffer.getvalue())
        add(archive, "data/cars/list.txt",
            "".join(f"car_{n:03d}_mesh{list_suffix}\n" for n in list_order).encode())
        add(archive, "data/shapes48.mat", b"not read")
    return path


def mpi3d_images(indices: np.ndarray, sizes) -> np.ndarray:
    """uint8 (n, 64, 64, 3) test images whose pixels encode their factor classes (cheap to generate)."""
    indices = np.asarray(indices, dtype=np.int64)
    strides = np.array([int(np.prod(sizes[k + 1:])) for k in range(len(sizes))])
    classes = (indices[:, None] // strides) % np.asarray(sizes)
    out = np.zeros((len(indices), 64, 64, 3), dtype=np.uint8)
    out[..., 2] = (indices % 61 + 20)[:, None, None]  # a dim blue background that differs between images
    columns = np.arange(64)
    for k, size in enumerate(sizes):  # one 9-row band per factor: a bright block whose place is its class
        left = (classes[:, k] * (64 - 6)) // max(size - 1, 1)
        block = (columns[None, :] >= left[:, None]) & (columns[None, :] < left[:, None] + 6)
        out[:, 9 * k:9 * k + 8, :, :] = np.where(block[:, None, :, None], np.uint8(230), out[:, 9 * k:9 * k + 8, :, :])
    return out


def write_mpi3d_npz(path: Path, sizes, *, compressed: bool = False) -> np.ndarray:
    """An npz with ``images`` (N, 64, 64, 3) uint8 for the grid ``sizes``; returns the images."""
    images = mpi3d_images(np.arange(int(np.prod(sizes))), sizes)
    (np.savez_compressed if compressed else np.savez)(path, images=images)
    return images


def write_mpi3d_npz_streaming(path: Path, sizes, block: int = 16_384, progress=None, *, compressed: bool = False) -> None:
    """A full-size npz (zip64) written block by block, as ``np.savez`` (or, compressed,
    ``np.savez_compressed``, here at deflate level 1) would lay it out."""
    count = int(np.prod(sizes))
    shape = (count, 64, 64, 3)
    compression = dict(compression=zipfile.ZIP_DEFLATED, compresslevel=1) if compressed else dict(
        compression=zipfile.ZIP_STORED)
    with zipfile.ZipFile(path, "w", allowZip64=True, **compression) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as stream:
            np.lib.format.write_array_header_2_0(stream, {"descr": "|u1", "fortran_order": False, "shape": shape})
            for start in range(0, count, block):
                stop = min(count, start + block)
                stream.write(mpi3d_images(np.arange(start, stop), sizes).tobytes())
                if progress is not None:
                    progress(stop - start)
