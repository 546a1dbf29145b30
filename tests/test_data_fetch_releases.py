"""data fetch for releases of several files (SmallNORB), files verified by format (MPI3D, the Scream painting)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from PIL import Image

from disent_bench import data as data_api
from disent_bench.data import mpi3d, scream, smallnorb
from disent_bench.data.fetch import fetch
from disent_bench.data.spec import OfficialFile
from disent_bench.errors import UserError
from http_files import FileServer
from official_formats import write_mpi3d_npz, write_smallnorb


@pytest.fixture
def norb_payloads(tmp_path):
    return {name: path.read_bytes() for name, path in write_smallnorb(tmp_path / "norb").items()}


def _point_smallnorb(monkeypatch, base_url, payloads, corrupt=None):
    files = tuple(OfficialFile(name, base_url + name, len(body),
                               "0" * 64 if name == corrupt else hashlib.sha256(body).hexdigest())
                  for name, body in payloads.items())
    monkeypatch.setattr(smallnorb, "SPEC", dataclasses.replace(smallnorb.SPEC, official_files=files))


def test_fetch_smallnorb_downloads_all_six_files_resuming_a_partial_one(data_home, monkeypatch, norb_payloads):
    dat = f"{smallnorb.TRAIN_STEM}-dat.mat.gz"
    half = len(norb_payloads[dat]) // 2
    (data_home / (dat + ".part")).write_bytes(norb_payloads[dat][:half])
    with FileServer(norb_payloads) as server:
        _point_smallnorb(monkeypatch, server.base, norb_payloads)
        assert fetch("smallnorb", progress=False) == data_home
    assert (f"/{dat}", f"bytes={half}-") in server.requests and len(server.requests) == 6
    for name, body in norb_payloads.items():
        assert (data_home / name).read_bytes() == body
    status = data_api.dataset_status("smallnorb")
    assert status["official_verified"] and len(status["official_files"]) == 6
    assert data_api.get_dataset("smallnorb", progress=False).factor_sizes == (2, 2, 3, 2)


def test_a_checksum_mismatch_removes_only_that_download(data_home, monkeypatch, norb_payloads):
    bad = f"{smallnorb.TEST_STEM}-info.mat.gz"
    with FileServer(norb_payloads) as server:
        _point_smallnorb(monkeypatch, server.base, norb_payloads, corrupt=bad)
        with pytest.raises(UserError, match=f"download of smallnorb from {server.base}{bad} is corrupt .*sha256"):
            fetch("smallnorb", progress=False)
    assert not (data_home / bad).exists() and not (data_home / (bad + ".part")).exists()


def test_offline_fetch_of_a_dataset_without_synthetic_says_so(data_home, monkeypatch, norb_payloads):
    _point_smallnorb(monkeypatch, "http://127.0.0.1:9/", norb_payloads)
    with pytest.raises(UserError) as error:
        fetch("smallnorb", progress=False)
    message = str(error.value)
    assert "copy the official file by hand to" in message and "smallnorb has no synthetic version" in message
    assert "source='synthetic'" not in message


def _point_mpi3d(monkeypatch, url, count):
    spec = next(s for s in mpi3d.SPECS if s.name == "mpi3d_toy")
    file = OfficialFile("mpi3d_toy.npz", url, check_format=lambda p: mpi3d.check_npz(p, count))
    patched = dataclasses.replace(spec, official_files=(file,))
    monkeypatch.setattr(mpi3d, "SPECS", tuple(patched if s.name == "mpi3d_toy" else s for s in mpi3d.SPECS))


def test_fetch_verifies_by_format_and_records_our_sha256(data_home, monkeypatch, tmp_path):
    images = write_mpi3d_npz(tmp_path / "m.npz", (1, 1, 1, 1, 1, 2, 3))
    body = (tmp_path / "m.npz").read_bytes()
    with FileServer({"mpi3d_toy.npz": body}) as server:
        _point_mpi3d(monkeypatch, server.base + "mpi3d_toy.npz", len(images))
        path = fetch("mpi3d_toy", progress=False)
    stamp = (data_home / "mpi3d_toy.npz.json").read_text()
    assert hashlib.sha256(body).hexdigest() in stamp and "format" in stamp and path.read_bytes() == body


def test_a_download_in_the_wrong_format_is_removed(data_home, monkeypatch, tmp_path):
    np.savez(tmp_path / "m.npz", images=np.zeros((5, 64, 64, 3), np.uint8))
    with FileServer({"mpi3d_toy.npz": (tmp_path / "m.npz").read_bytes()}) as server:
        _point_mpi3d(monkeypatch, server.base + "mpi3d_toy.npz", 6)
        with pytest.raises(UserError, match="corrupt .not in the official format: .*holds 5 images, this MPI3D file has 6"):
            fetch("mpi3d_toy", progress=False)
    assert [p.name for p in data_home.glob("mpi3d_toy.npz*") if not p.name.endswith(".lock")] == []


def test_a_web_page_instead_of_the_file_is_refused(data_home, monkeypatch):
    with FileServer({"mpi3d_toy.npz": b"<html>confirm download</html>"}, content_type="text/html") as server:
        _point_mpi3d(monkeypatch, server.base + "mpi3d_toy.npz", 6)
        with pytest.raises(UserError, match="answered with a web page.*download it in a browser and copy it to"):
            fetch("mpi3d_toy", progress=False)


def test_fetch_scream_gets_the_painting_alone(data_home, monkeypatch, tmp_path):
    Image.fromarray((np.random.default_rng(1).random((300, 240, 3)) * 255).astype(np.uint8)).save(tmp_path / "s.jpg")
    body = (tmp_path / "s.jpg").read_bytes()
    with FileServer({"The_Scream.jpg": body}) as server:
        monkeypatch.setattr(scream, "OFFICIAL", dataclasses.replace(scream.OFFICIAL, url=server.base + "The_Scream.jpg"))
        assert fetch("scream", progress=False) == data_home / "The_Scream.jpg"
    assert hashlib.sha256(body).hexdigest() in (data_home / "The_Scream.jpg.json").read_text()
    # Copied by hand: found and verified once, never downloaded.
    monkeypatch.setattr(scream, "OFFICIAL", dataclasses.replace(scream.OFFICIAL, url="http://127.0.0.1:9/x.jpg"))
    assert fetch("scream", progress=False) == data_home / "The_Scream.jpg"
