"""The dataset API with dSprites: get_dataset sources, verification stamps, and fetch (download) behaviour."""

from __future__ import annotations

import dataclasses
import hashlib
import time

import numpy as np
import pytest

from disent_bench import data as data_api
from disent_bench.data import dsprites
from disent_bench.data.fetch import fetch
from disent_bench.errors import UserError
from http_files import FileServer

NAME = "dsprites.npz"
UNREACHABLE_URL = "http://127.0.0.1:9/dsprites.npz"  # the discard port: closed, so refused at once


@pytest.fixture
def official_spec(monkeypatch):
    """Point the dSprites spec at a test URL and checksum: ``use(url=..., payload=...)``."""
    def use(url=UNREACHABLE_URL, payload=None, md5=None):
        if md5 is None and payload is not None:
            md5 = hashlib.md5(payload).hexdigest()
        spec = dataclasses.replace(dsprites.SPEC, official_url=url, official_md5=md5 or dsprites.OFFICIAL_MD5)
        monkeypatch.setattr(dsprites, "SPEC", spec)
        return spec
    return use


def _Server(payload: bytes, *, honour_range: bool = True) -> FileServer:
    """One dSprites payload at ``server.url(NAME)``."""
    return FileServer({NAME: payload}, honour_range=honour_range)


def _ranges(server: FileServer) -> list[str | None]:
    return [wanted for _, wanted in server.requests]


@pytest.fixture
def payload(tmp_path, write_dsprites_npz):
    path = tmp_path / "source.npz"
    write_dsprites_npz(path)
    return path.read_bytes()


def test_fetch_downloads_verifies_and_stamps(data_home, official_spec, payload):
    with _Server(payload) as server:
        official_spec(server.url(NAME), payload)
        path = fetch("dsprites", progress=False)
    assert path == data_home / dsprites.OFFICIAL_FILENAME
    assert path.read_bytes() == payload
    assert not path.with_name(path.name + ".part").exists()
    assert data_api.dataset_status("dsprites")["official_verified"]
    # Present and verified: a second fetch needs no network at all.
    official_spec(UNREACHABLE_URL, payload)
    assert fetch("dsprites", progress=False) == path
    data = data_api.get_dataset("dsprites", source="auto", progress=False)
    assert data.source == "official" and data.factor_sizes == (3, 1, 2, 2, 3)
    assert data.checksum == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("honour_range", [True, False])
def test_fetch_resumes_a_partial_download(data_home, official_spec, payload, honour_range):
    part = data_home / (dsprites.OFFICIAL_FILENAME + ".part")
    half = len(payload) // 2
    part.write_bytes(payload[:half])
    with _Server(payload, honour_range=honour_range) as server:
        official_spec(server.url(NAME), payload)
        path = fetch("dsprites", progress=False)
    assert _ranges(server) == [f"bytes={half}-"]
    # A server that ignores Range sends everything and the download starts over.
    assert server.bytes_sent == (len(payload) - half if honour_range else len(payload))
    assert path.read_bytes() == payload and not part.exists()


def test_fetch_of_a_complete_part_file_only_verifies_it(data_home, official_spec, payload):
    part = data_home / (dsprites.OFFICIAL_FILENAME + ".part")
    part.write_bytes(payload)
    with _Server(payload) as server:
        official_spec(server.url(NAME), payload)
        path = fetch("dsprites", progress=False)
    assert server.bytes_sent == 0 and path.read_bytes() == payload


def test_checksum_mismatch_leaves_no_file(data_home, official_spec, payload):
    with _Server(payload) as server:
        official_spec(server.url(NAME), md5="0" * 32)
        with pytest.raises(UserError, match="corrupt .*md5 .*expected 0000"):
            fetch("dsprites", progress=False)
    assert sorted(p.name for p in data_home.iterdir() if not p.name.endswith(".lock")) == []


def test_a_users_file_is_never_replaced_or_deleted(data_home, official_spec, payload):
    mine = data_home / dsprites.OFFICIAL_FILENAME
    mine.write_bytes(b"my own bytes")
    with _Server(payload) as server:
        official_spec(server.url(NAME), payload)
        with pytest.raises(UserError, match="does not match the official checksum"):
            fetch("dsprites", progress=False)
    assert mine.read_bytes() == b"my own bytes" and _ranges(server) == []


def test_offline_fetch_fails_fast_with_the_ways_forward(data_home, official_spec):
    official_spec(UNREACHABLE_URL)
    start = time.perf_counter()
    with pytest.raises(UserError) as error:
        fetch("dsprites", progress=False)
    assert time.perf_counter() - start < 30
    message = str(error.value)
    assert UNREACHABLE_URL in message
    assert str(data_api.official_path("dsprites")) in message
    assert "source='synthetic'" in message and "disent-bench data generate dsprites" in message
    assert list(data_home.glob("*.part")) == []


def test_fetch_of_a_rendering_only_dataset_is_a_user_error(data_home):
    with pytest.raises(UserError, match="dsprites_tiny has no official file"):
        fetch("dsprites_tiny", progress=False)


def test_unknown_names_and_sources_list_the_valid_ones(data_home):
    with pytest.raises(UserError, match="unknown dataset 'dsprite'; valid names: .*dsprites.*dsprites_tiny"):
        data_api.get_dataset("dsprite")
    with pytest.raises(UserError, match="valid sources: auto, official, synthetic"):
        data_api.get_dataset("dsprites_tiny", source="offical")


def test_official_source_without_a_file_says_how_to_get_one(data_home):
    with pytest.raises(UserError, match=r"official file not found at .*data fetch dsprites"):
        data_api.get_dataset("dsprites", source="official")


def test_corrupt_official_file_is_refused(data_home, official_spec, payload):
    official_spec(payload=payload)
    path = data_home / dsprites.OFFICIAL_FILENAME
    path.write_bytes(payload[:-10] + b"0123456789")
    with pytest.raises(UserError, match="does not match the official checksum"):
        data_api.get_dataset("dsprites", source="official")


def test_auto_falls_back_to_synthetic_with_one_warning(data_home, monkeypatch):
    # The full renderer takes seconds; render the tiny grid under the dsprites name instead.
    spec = dataclasses.replace(dsprites.SPEC, factor_sizes=dsprites.TINY_SPEC.factor_sizes,
                               render_synthetic=dsprites.TINY_SPEC.render_synthetic,
                               factor_values=dsprites.TINY_SPEC.factor_values)
    monkeypatch.setattr(dsprites, "SPEC", spec)
    with pytest.warns(data_api.SyntheticDataWarning, match="SYNTHETIC"):
        data = data_api.get_dataset("dsprites", progress=False)
    assert data.source == "synthetic" and data.factor_sizes == (3, 2, 4, 8, 8)
    np.testing.assert_array_equal(data.images([0])[0, ..., 0] > 0, dsprites.render([[0, 1, 0, 0, 0]])[0] > 0)
