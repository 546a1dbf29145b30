"""Provenance: what can change a run's numbers (versions, device, threads, the data's identity and how its
files were checked), recorded with every result."""

from __future__ import annotations

import platform
import socket
from typing import Any

import numpy
import sklearn
import torch

from disent_bench import __version__
from disent_bench.run_store import utc_now

__all__ = ["provenance"]


def provenance(device: Any = None, dataset: Any = None) -> dict[str, Any]:
    """Versions, device and dataset identity recorded with every result."""
    info: dict[str, Any] = {
        "disent_bench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "torch_threads": torch.get_num_threads(),
        "date": utc_now(),
    }
    if device is not None:
        info["device"] = str(device)
        if getattr(device, "type", None) == "cuda":
            info["device_name"] = torch.cuda.get_device_name(device)
    if dataset is not None:
        info["dataset"] = {"name": dataset.name, "source": dataset.source, "checksum": dataset.checksum,
                           "num_images": len(dataset), "image_shape": list(dataset.image_shape),
                           "factor_names": list(dataset.factor_names),
                           "factor_sizes": list(dataset.factor_sizes)}
        # The checksum that was verified on this load, how (size and mtime against its stamp, or hashed)
        # and when its sha256 was last computed: a run on a changed file fails before it gets here.
        integrity = getattr(dataset, "integrity", None)
        if integrity is not None:
            info["dataset"]["integrity"] = dict(integrity)
    return info
