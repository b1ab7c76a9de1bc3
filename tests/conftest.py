"""Shared fixtures: small datasets the tests generate in the real file formats."""
from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.core.config import TrainConfig
from nas.data.splits import Preprocess
from nas.train.trainer import EpochHook, train

from tests import pg_server  # shared with benchmarks/reliability.py

if os.environ.get("PYTEST_XDIST_WORKER"):
    # parallel test processes share the cores: one intra-op thread each, and in the processes they start
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def pattern_images(labels: np.ndarray, size: int, rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    """Learnable images: a bright square whose position encodes the class, plus noise."""
    n = len(labels)
    images = rng.integers(0, 60, size=(n, size, size, channels)).astype(np.int32)
    cell = size // 4
    for i, label in enumerate(labels):
        r, c = divmod(int(label) % 16, 4)
        images[i, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell, :] += 180
    return np.clip(images, 0, 255).astype(np.uint8)


def make_idx_dataset(root: Path, *, n_train: int = 1000, n_test: int = 200, size: int = 16, compress: bool = True,
                     seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", pattern_images(labels, size, rng)[..., 0], compress=compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, compress=compress)
    return root


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"))


def tiny_config(data_dir: Path, **search: object) -> dict:
    """A search config small enough to train a trial in a second or two."""
    return {
        "name": "tiny",
        "seed": 0,
        "data": {"dataset": "mnist", "dir": str(data_dir), "val_fraction": 0.2},
        "space": {
            "resolutions": [12, 16], "widths": [0.5, 1.0], "stem_chs": 8, "stem_stride": 1, "head_chs": 32,
            "groups": [1, 2], "kernels": [3, 5], "exp_ratios": [1, 3],
            "stages": [{"chs": 8, "stride": 1, "depths": [1]}, {"chs": 16, "stride": 2, "depths": [1, 2]}],
        },
        "train": {"epochs": 3, "batch_size": 50, "lr": 0.02},
        "search": {"trials": 3, "population": 4, **search},
    }


class FakeTrainer:
    """Stands in for :func:`nas.train.trainer.train` in an evaluation context: counts its calls,
    raises where told (``fail_on``: call number -> exception), and otherwise trains for real
    (``real``) or leaves the model as built, which keeps tests that check the mechanics fast."""

    def __init__(self, *, real: bool = False, fail_on: dict[int, BaseException] | None = None) -> None:
        self.real = real
        self.fail_on = fail_on or {}
        self.calls = 0

    def __call__(self, model: nn.Module, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
                 resolution: int, cfg: TrainConfig, seed: int, teacher_logits: np.ndarray | None = None,
                 on_epoch: EpochHook | None = None) -> list[float]:
        self.calls += 1
        if self.calls in self.fail_on:
            raise self.fail_on[self.calls]
        if self.real:
            return train(model, images, labels, preprocess=preprocess, resolution=resolution, cfg=cfg, seed=seed,
                         teacher_logits=teacher_logits, on_epoch=on_epoch)
        for epoch in range(1, cfg.epochs + 1):
            if on_epoch is not None:
                on_epoch(epoch, model)
        return [0.0] * cfg.epochs


class Payload:
    """A pickle payload: unpickling it creates ``marker``, so a test sees whether a planted file
    (checkpoint, weights, CIFAR-10 batch) was run as code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def never_trains(*args: object, **kwargs: object) -> list[float]:
    """A trainer for tests where training would be a bug (candidates rejected before training)."""
    raise AssertionError("a candidate was trained")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on a loopback port; yields its URL without a database.
    Skipped where the server is not installed, unless HWNAS_REQUIRE_POSTGRES is set (.ci/run)."""
    if pg_server.server_bin() is None:
        if os.environ.get("HWNAS_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server programs not found (apt-get install postgresql)")
        pytest.skip("PostgreSQL server programs not installed; .ci/run installs them")
    with pg_server.temporary_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A new, empty database on the test server for each test."""
    pytest.importorskip("psycopg")
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return pg_server.create_database(postgres_server, name)
