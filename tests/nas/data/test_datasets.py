from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.core.errors import UserError
from nas.data.datasets import load_cifar10_batches, load_idx_dataset, load_image_folder, read_idx
from tests.conftest import Payload, make_idx_dataset, write_idx


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array, compress=compress)
    path = tmp_path / ("a-idx3-ubyte.gz" if compress else "a-idx3-ubyte")
    np.testing.assert_array_equal(read_idx(path), array)


def test_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab")
    with pytest.raises(UserError, match="not an unsigned-byte idx file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(UserError, match="shape \\(5,\\) but the file holds 2 bytes"):
        read_idx(tmp_path / "short")


def test_idx_dataset_shapes(tmp_path: Path) -> None:
    raw = load_idx_dataset("fashion-mnist", make_idx_dataset(tmp_path, n_train=50, n_test=20, size=8))
    assert raw.x_train.shape == (50, 8, 8, 1) and raw.x_test.shape == (20, 8, 8, 1)
    assert raw.y_train.dtype == np.int64 and raw.classes[0] == "T-shirt/top"


def test_missing_files_without_download_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="idx files not found .* set data.download: true"):
        load_idx_dataset("fashion-mnist", tmp_path / "empty")


def test_download_verifies_checksums(tmp_path: Path) -> None:
    source = make_idx_dataset(tmp_path / "server", n_train=30, n_test=10, size=8)
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in source.iterdir()}
    url = source.as_uri() + "/"
    raw = load_idx_dataset("mnist", tmp_path / "got", download_ok=True, base_url=url, checksums=sums)
    assert raw.x_train.shape == (30, 8, 8, 1)
    bad = dict(sums, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    with pytest.raises(UserError, match="checksum mismatch for t10k-labels-idx1-ubyte.gz"):
        load_idx_dataset("mnist", tmp_path / "got2", download_ok=True, base_url=url, checksums=bad)
    assert not (tmp_path / "got2" / "t10k-labels-idx1-ubyte.gz").exists()


def test_cifar_python_batches(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 3)]:
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)
    raw = load_cifar10_batches(tmp_path)
    assert raw.x_train.shape == (20, 32, 32, 3) and raw.x_test.shape == (3, 32, 32, 3)
    first = pickle.load(open(root / "data_batch_1", "rb"), encoding="bytes")[b"data"][0]
    np.testing.assert_array_equal(raw.x_train[0, :, :, 0].ravel(), first[:1024])  # red plane first


def _image_folder(root: Path) -> None:
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((6, 6, 3), i * 40, dtype=np.uint8)).save(root / split / cls / f"{i}.png")


def test_image_folder_and_tarball(tmp_path: Path) -> None:
    _image_folder(tmp_path / "set")
    raw = load_image_folder(tmp_path / "set", cache_dir=tmp_path / "cache")
    assert raw.classes == ("cat", "dog") and raw.x_train.shape == (6, 6, 6, 3)
    assert raw.y_test.tolist() == [0, 0, 1, 1]
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "set", arcname="set")
    packed = load_image_folder(tmp_path / "set.tar.gz", cache_dir=tmp_path / "cache2")
    np.testing.assert_array_equal(packed.x_train, raw.x_train)
    cached = load_image_folder(tmp_path / "set.tar.gz", cache_dir=tmp_path / "cache2")
    np.testing.assert_array_equal(cached.x_test, raw.x_test)
    # an image replaced in place (same name, the folder's own time unchanged) is read again
    replaced = next((tmp_path / "set" / "test" / "cat").iterdir())
    Image.fromarray(np.full((6, 6, 3), 7, np.uint8)).save(replaced)
    again = load_image_folder(tmp_path / "set", cache_dir=tmp_path / "cache")
    assert (again.x_test == 7).all(axis=(1, 2, 3)).sum() == 1 and len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_image_folder_needs_splits(tmp_path: Path) -> None:
    (tmp_path / "flat" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="needs train/<class>/ and test/<class>/"):
        load_image_folder(tmp_path / "flat", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_any_protocol_read_and_a_planted_one_never_runs(tmp_path: Path, protocol: int) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (2, 3072), dtype=np.uint8), b"labels": [0, 1]}
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    assert load_cifar10_batches(tmp_path).x_train.shape == (10, 32, 32, 3)
    marker = tmp_path / "ran"
    (root / "test_batch").write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0]}, protocol=protocol))
    with pytest.raises(UserError, match="not a CIFAR-10 python batch .*UnpicklingError: it names (io|builtins).open"):
        load_cifar10_batches(tmp_path)
    assert not marker.exists()
