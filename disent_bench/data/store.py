"""Memory-mapped image stores: large datasets converted once into a cache file that maps without a copy.

MPI3D is 12.7 GB of uint8 and 3D Shapes 5.5 GB; held in the heap they do not fit beside training on a
24 GB machine. Their official files cannot be mapped as they are (3D Shapes is gzip-chunked HDF5, a
compressed npz is deflated), so the loader streams them once into ``<data home>/cache/<name>-<checksum
prefix>-v<version>.npy`` (an ordinary ``.npy``, written atomically with a ``.json`` stamp) and every later
load maps that file with ``np.load(mmap_mode="c")``. A batch is still one vectorised gather
(``index_select`` on a tensor over the mapping): the kernel reads the pages it touches into the page
cache, which the OS can drop, instead of the process holding every image in its heap.

The stamp also records the store's own sha256 (:mod:`disent_bench.data.integrity`): a load compares size
and mtime with it and hashes the store when they differ (or when a full check is asked for). A store that
changed since it was converted is converted again from the verified official file, with a warning naming
it: it is derived data, never used once changed.

An npz whose member is *stored* (not deflated) is mapped straight from the npz (:func:`map_npz_member`):
no conversion and no second copy on disk.
"""

from __future__ import annotations

import json
import mmap
import shutil
import struct
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from disent_bench._io import atomic_path, atomic_write_json
from disent_bench.data import integrity
from disent_bench.errors import UserError

__all__ = ["advise", "cached_store", "open_cached", "cache_path", "map_npz_member", "npz_member_info", "stream_npz_member", "NpzMember"]

# Room left free on the disk after writing a cache file (other work needs some too).
_FREE_MARGIN_BYTES = 1 << 30


def cache_path(cache_dir: Path, name: str, checksum: str, version: int) -> Path:
    return Path(cache_dir) / f"{name}-{checksum[:16]}-v{version}.npy"


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def advise(array: np.ndarray, access: str) -> None:
    """Tell the kernel how a memory-mapped store will be read: ``"random"`` or ``"sequential"``.

    Random is what batches do: without it every page fault on a cold file reads ahead a whole window
    (8 MiB on the 2-core AMD EPYC test machine). Measured there, batches of 64 random images from a
    full-size MPI3D npz just dropped from the page cache: 16-20 ms a batch with ``"random"``, 234-251 ms
    without (2 runs each). A no-op for arrays that are not mapped, or where the platform has no ``madvise``.
    """
    handle = getattr(array, "_mmap", None)
    if handle is None or not hasattr(handle, "madvise"):
        return
    flag = getattr(mmap, "MADV_RANDOM" if access == "random" else "MADV_SEQUENTIAL", None)
    if flag is not None:
        handle.madvise(flag)


def _open_cached(path: Path, shape: tuple[int, ...], checksum: str, *, full: bool | None = None) -> np.memmap | None:
    """The mapped cache file when it and its stamp are current; None when it must be (re)built."""
    stamp = _stamp(path)
    if not (path.is_file() and stamp.is_file()):
        return None
    try:
        info = json.loads(stamp.read_text())
        if info.get("source_checksum") != checksum or not _intact(path, info, full):
            return None
        store = np.load(path, mmap_mode="c", allow_pickle=False)
    except (ValueError, OSError, KeyError):
        return None  # damaged or half-written: convert again
    if store.dtype != np.uint8 or tuple(store.shape) != tuple(shape):
        return None
    advise(store, "random")
    return store


def _intact(path: Path, info: dict, full: bool | None) -> bool:
    """Whether the store is as converted: size and mtime as stamped, else (or when asked) its sha256."""
    full = integrity.full_check_requested() if full is None else full
    unchanged = integrity.unchanged(path, info)
    if unchanged and not full:
        return True
    recorded = info.get("sha256")
    if not isinstance(recorded, str):
        return unchanged  # converted before stores kept a checksum: only size and mtime to go by
    if path.stat().st_size == info.get("size") and integrity.digests(path)["sha256"] == recorded:
        if not unchanged:
            integrity.restamp(path, info, recorded)  # the same bytes under a new mtime (a copy): cheap again
        return True
    warnings.warn(f"{path} changed since it was converted (its sha256 or size is not the one recorded in "
                  f"{_stamp(path)}); converting it again from the verified official file", stacklevel=4)
    return False


def open_cached(cache_dir: Path, name: str, checksum: str, *, version: int = 1) -> tuple[np.memmap, dict] | None:
    """The current cache file for ``(name, checksum, version)`` and the ``meta`` stored with it, else None.

    For loaders that learn the store's shape only by reading the whole source (Cars3D's archive).
    """
    path = cache_path(cache_dir, name, checksum, version)
    try:
        info = json.loads(_stamp(path).read_text())
        shape = tuple(info["shape"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    store = _open_cached(path, shape, checksum)
    return None if store is None else (store, dict(info.get("meta") or {}))


def cached_store(cache_dir: Path, name: str, checksum: str, shape: tuple[int, ...],
                 fill: Callable[[np.ndarray], None], *, version: int = 1, meta: dict | None = None) -> np.memmap:
    """A memory-mapped uint8 store of ``shape``: the cache file for ``(name, checksum, version)``.

    When no current cache file exists, ``fill(array)`` writes every row into a fresh memory-mapped
    ``.npy`` beside it (on failure nothing is left behind), which then replaces the cache atomically.
    ``meta`` (JSON) is kept in the stamp for :func:`open_cached`.
    """
    path = cache_path(cache_dir, name, checksum, version)
    store = _open_cached(path, shape, checksum)
    if store is not None:
        return store
    nbytes = int(np.prod(shape))
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < nbytes + _FREE_MARGIN_BYTES:
        raise UserError(f"{name}: converting to a memory-mappable store needs {nbytes / 2**30:.1f} GiB in "
                        f"{path.parent}, which has {free / 2**30:.1f} GiB free; free space or choose another "
                        "data home (--data-dir / DISENT_BENCH_DATA)")
    start = time.perf_counter()
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))
        fill(array)
        array.flush()
        del array
        sha256 = integrity.digests(tmp)["sha256"]  # what `data verify` and a changed mtime are checked against
    stat = path.stat()
    atomic_write_json(_stamp(path), {"dataset": name, "source_checksum": checksum, "shape": list(shape),
                                     "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256,
                                     "verified_at": integrity.now(),
                                     "convert_seconds": round(time.perf_counter() - start, 2), "meta": meta or {},
                                     "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    store = _open_cached(path, shape, checksum, full=False)  # hashed a moment ago
    if store is None:  # cannot happen unless the file changed under us
        raise UserError(f"{name}: the converted store {path} could not be mapped back; delete it and retry")
    return store


# -- npz members ------------------------------------------------------------------------------------
class NpzMember:
    """Where an array lives inside an npz: its npy header and, for a stored member, its byte offset."""

    def __init__(self, shape, dtype, fortran: bool, compressed: bool, data_offset: int | None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.fortran = fortran
        self.compressed = compressed
        self.data_offset = data_offset  # absolute file offset of the array's bytes (stored members only)


def npz_member_info(path: Path, key: str) -> NpzMember:
    """Read the npy header of ``key`` in the npz ``path`` without reading its data (nor unpickling)."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable npz (zip) file ({exc})") from None
    with archive:
        name = f"{key}.npy"
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise UserError(f"{path}: no '{key}' array in the npz (it has "
                            f"{', '.join(sorted(archive.namelist())) or 'nothing'})") from None
        with archive.open(info) as stream:
            try:
                version = np.lib.format.read_magic(stream)
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = reader(stream)
            except ValueError as exc:
                raise UserError(f"{path}: '{key}' is not a readable npy array ({exc})") from None
            header_bytes = stream.tell()
        if dtype.hasobject:
            raise UserError(f"{path}: '{key}' holds Python objects; refusing to unpickle it")
        compressed = info.compress_type != zipfile.ZIP_STORED or bool(info.flag_bits & 0x1)
        offset = None
        if not compressed:
            # The local header repeats the name and has its own extra field: read its lengths there.
            with open(path, "rb") as handle:
                handle.seek(info.header_offset)
                local = handle.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise UserError(f"{path}: damaged zip local header for '{name}'")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            offset = info.header_offset + 30 + name_len + extra_len + header_bytes
    return NpzMember(shape, dtype, fortran, compressed, offset)


def map_npz_member(path: Path, member: NpzMember) -> np.memmap:
    """Map a stored (uncompressed) npz member in place, copy-on-write."""
    if member.compressed or member.data_offset is None:
        raise ValueError("only stored (uncompressed) npz members can be mapped")
    store = np.memmap(path, dtype=member.dtype, mode="c", offset=member.data_offset, shape=member.shape,
                      order="F" if member.fortran else "C")
    advise(store, "random")
    return store


def stream_npz_member(path: Path, key: str, out: np.ndarray, *, block_rows: int,
                      progress_update: Callable[[int], None] | None = None) -> None:
    """Decompress ``key`` of the npz ``path`` into ``out`` (same shape and dtype) block by block."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as stream:
        version = np.lib.format.read_magic(stream)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(stream)
        if tuple(shape) != out.shape or np.dtype(dtype) != out.dtype:
            raise UserError(f"{path}: '{key}' is {dtype} {shape}, expected {out.dtype} {out.shape}")
        for start in range(0, out.shape[0], block_rows):
            block = out[start:start + block_rows]
            view = memoryview(block.reshape(-1).view(np.uint8))
            filled = 0
            while filled < len(view):
                try:
                    count = stream.readinto(view[filled:])
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise UserError(f"{path}: '{key}' cannot be read past row {start} ({exc}); "
                                    "the file is damaged") from None
                if not count:
                    raise UserError(f"{path}: '{key}' ends early at row {start} (truncated file)")
                filled += count
            if progress_update is not None:
                progress_update(len(block))
