"""Measure load time and peak memory of a dataset while training and scoring on it (prints JSON).

Not a test: a command for the numbers in the README and in reviews. Each measurement runs in a fresh
process (peak figures are per process)::

    # a full-size MPI3D file in the official npz layout, from generated images (12.7 GB on disk)
    python tests/measure_data_memory.py build-mpi3d DATA_HOME/mpi3d_toy.npz
    # a full-size 3dshapes.h5 in the official layout (gzip-chunked), from generated images
    python tests/measure_data_memory.py build-shapes3d DATA_HOME/3dshapes.h5
    # SmallNORB's six files (full grid) and Cars3D's archive (183 cars), from generated images
    python tests/measure_data_memory.py build-smallnorb DATA_HOME
    python tests/measure_data_memory.py build-cars3d DATA_HOME/nips2015-analogy-data.tar.gz
    # load (first: convert/verify; then: mapped), train a VAE a few steps, score it (quick preset)
    python tests/measure_data_memory.py measure mpi3d_toy --data-dir DATA_HOME --steps 50

Peak memory: ``VmHWM`` (largest resident set, file-backed page-cache pages of a mapping included) and
the largest ``RssAnon`` sampled every 20 ms (the process's own memory: heap, tensors; what the 2 GiB
budget of the memory-mapped stores is about).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakAnon:
    """Samples RssAnon in a thread; ``peak`` in bytes."""

    def __init__(self, every: float = 0.02) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every):
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kib("RssAnon") * 1024)
            time.sleep(every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kib("RssAnon") * 1024)


def _cpu() -> str:
    import torch

    from disent_bench.speed import _device_name

    return _device_name(torch.device("cpu"))


def build_mpi3d(path: Path, complex_: bool, compressed: bool = False) -> None:
    from official_formats import write_mpi3d_npz_streaming

    from disent_bench.data import mpi3d
    from disent_bench.progress import ProgressReporter

    sizes = mpi3d.SIZES_4X4 if complex_ else mpi3d.SIZES_6X6
    start = time.perf_counter()
    with ProgressReporter(f"write {path.name}", int(np.prod(sizes))) as reporter:
        write_mpi3d_npz_streaming(path, sizes, progress=reporter.update, compressed=compressed)
    print(json.dumps({"built": str(path), "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 1)}))


def build_shapes3d(path: Path) -> None:
    """480,000 generated images and their label values, gzip-chunked like the official file."""
    import h5py

    from disent_bench.data import shapes3d
    from disent_bench.progress import ProgressReporter

    sizes = shapes3d.FACTOR_SIZES
    count = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(count), sizes), 1)
    labels = np.stack([shapes3d.FACTOR_VALUES[k][classes[:, k]] for k in range(len(sizes))], 1)
    start = time.perf_counter()
    block = 10_000
    with h5py.File(path, "w") as handle, ProgressReporter(f"write {path.name}", count) as reporter:
        images = handle.create_dataset("images", (count, 64, 64, 3), np.uint8, chunks=(100, 64, 64, 3),
                                       compression="gzip", compression_opts=1)
        handle.create_dataset("labels", data=labels)
        for first in range(0, count, block):
            index = np.arange(first, min(count, first + block))
            tile = np.zeros((len(index), 64, 64, 3), np.uint8)
            tile[..., 0] = (classes[index, 0] * 25)[:, None, None]
            tile[..., 1] = (classes[index, 1] * 25)[:, None, None]
            tile[:, 16:48, 16:48, 2] = (classes[index, 2] * 25)[:, None, None]
            tile[:, 60:, :4 * classes[index, 5].max() + 4] = 255
            images[first:first + len(index)] = tile
            reporter.update(len(index))
    print(json.dumps({"built": str(path), "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 1)}))


def build_smallnorb(directory: Path) -> None:
    """The six files for the full 5 x 10 x 9 x 18 x 6 grid (48,600 stereo pairs of generated 96x96 images)."""
    from official_formats import write_smallnorb

    start = time.perf_counter()
    paths = write_smallnorb(directory, categories=range(5), train_instances=(4, 6, 7, 8, 9),
                            test_instances=(0, 1, 2, 3, 5), elevations=range(9), azimuths=range(0, 36, 2),
                            lightings=range(6))
    print(json.dumps({"built": str(directory), "bytes": sum(p.stat().st_size for p in paths.values()),
                      "seconds": round(time.perf_counter() - start, 1)}))


def build_cars3d(path: Path) -> None:
    """nips2015-analogy-data.tar.gz with 183 generated car_XXX_mesh.mat files and list.txt."""
    from official_formats import write_cars3d

    start = time.perf_counter()
    write_cars3d(path, numbers=tuple(range(1, 184)))
    print(json.dumps({"built": str(path), "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 1)}))


def _open_unverified(name: str, data_dir: str):
    """The official loader on generated files (their checksums cannot match the published ones): the same
    path as ``get_dataset`` after verification, with the release checksum computed here."""
    from disent_bench import data
    from disent_bench._io import file_digest
    from disent_bench.data.spec import LoadContext

    paths = data.official_paths(name, data_dir)
    checksum = data.release_checksum({file: file_digest(p, "sha256") for file, p in paths.items()})
    context = LoadContext(name, paths, checksum, data.data_home(data_dir) / "cache", progress=False)
    return data.get_spec(name).open_official(context)


def measure(name: str, data_dir: str, source: str, steps: int, batch_size: int, eval_images: int,
            unverified: bool = False) -> None:
    import torch

    from disent_bench import data, models
    from disent_bench.metrics import evaluate
    from disent_bench.train import TrainConfig, train

    torch.set_num_threads(2)
    result = {"dataset": name, "cpu": _cpu(), "torch_threads": torch.get_num_threads()}
    with PeakAnon() as load_peak:
        start = time.perf_counter()
        dataset = (_open_unverified(name, data_dir) if unverified else
                   data.get_dataset(name, source, data_dir, progress=False))
        result["load_seconds"] = round(time.perf_counter() - start, 2)
    result.update(source=dataset.source, images=len(dataset), memory_mapped=dataset.memory_mapped,
                  store_bytes=dataset.nbytes, load_peak_rss_anon_mib=round(load_peak.peak / 2**20, 1))
    with PeakAnon() as gather_peak:
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(200):
            dataset.batch(rng.integers(0, len(dataset), batch_size))
        result["gather_ms_per_batch"] = round((time.perf_counter() - start) / 200 * 1000, 2)
    result["gather_peak_rss_anon_mib"] = round(gather_peak.peak / 2**20, 1)
    model = models.build("vae", in_channels=dataset.num_channels, latent_dim=10)
    with PeakAnon() as train_peak:
        start = time.perf_counter()
        train(model, dataset, TrainConfig(steps=steps, batch_size=batch_size, log_every=max(1, steps)), progress=False)
        result["train_seconds"] = round(time.perf_counter() - start, 1)
    result["train_peak_rss_anon_mib"] = round(train_peak.peak / 2**20, 1)
    settings = {"mig": {"num_train": eval_images}, "factor_vae": {"num_train": 50, "num_eval": 25,
                                                                  "num_variance_estimate": eval_images}}
    with PeakAnon() as eval_peak:
        start = time.perf_counter()
        scores = evaluate(dataset, model, metrics=["mig", "factor_vae"], preset="quick", settings=settings,
                          progress=False, batch_size=512)
        result["eval_seconds"] = round(time.perf_counter() - start, 1)
    result.update(eval_peak_rss_anon_mib=round(eval_peak.peak / 2**20, 1), images_encoded=scores["images_encoded"],
                  peak_rss_vmhwm_mib=round(_status_kib("VmHWM") / 1024, 1),
                  rss_file_end_mib=round(_status_kib("RssFile") / 1024, 1))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build-mpi3d")
    b.add_argument("path", type=Path)
    b.add_argument("--complex", action="store_true", help="460,800 images (4x4 layout)")
    b.add_argument("--compressed", action="store_true", help="deflated, as np.savez_compressed writes")
    s = sub.add_parser("build-shapes3d")
    s.add_argument("path", type=Path)
    n = sub.add_parser("build-smallnorb")
    n.add_argument("path", type=Path, help="the data home")
    c = sub.add_parser("build-cars3d")
    c.add_argument("path", type=Path)
    m = sub.add_parser("measure")
    m.add_argument("name")
    m.add_argument("--data-dir", required=True)
    m.add_argument("--source", default="official")
    m.add_argument("--steps", type=int, default=50)
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--eval-images", type=int, default=10_000)
    m.add_argument("--unverified", action="store_true",
                   help="generated files: skip the published-checksum check (the loader and cache are the same)")
    args = parser.parse_args()
    if args.command == "build-mpi3d":
        build_mpi3d(args.path, args.complex, args.compressed)
    elif args.command == "build-shapes3d":
        build_shapes3d(args.path)
    elif args.command == "build-smallnorb":
        build_smallnorb(args.path)
    elif args.command == "build-cars3d":
        build_cars3d(args.path)
    else:
        measure(args.name, args.data_dir, args.source, args.steps, args.batch_size, args.eval_images, args.unverified)


if __name__ == "__main__":
    main()
