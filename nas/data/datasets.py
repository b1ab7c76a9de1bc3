"""Dataset readers: idx files (MNIST, Fashion-MNIST), CIFAR-10 python batches, image folders.

Every reader returns a :class:`RawDataset` of uint8 NHWC arrays. Downloads are optional
(``download=True``), verified against the publishers' MD5 checksums, and every reader also takes
local files, so nothing needs the network.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import pickle
import shutil
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nas.core.errors import UserError
from nas.core.progress import Ticker, note

log = logging.getLogger(__name__)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Publishers' MD5 of the .gz files (Fashion-MNIST README; the MNIST mirror torchvision uses).
REMOTE = {
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}),
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

# Input channels of each dataset; an image folder may hold either.
_CHANNELS = {"fashion-mnist": (1,), "mnist": (1,), "cifar10": (3,)}


def input_channels(dataset: str) -> tuple[int, ...]:
    """The channel counts images of ``dataset`` can have (1: gray, 3: RGB)."""
    return _CHANNELS.get(dataset, (1, 3))


@dataclass(frozen=True)
class RawDataset:
    """uint8 images (N, H, W, C) and int64 labels for the train and test splits."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


def read_idx(path: Path) -> np.ndarray:
    """Read one idx file (optionally gzipped) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt gzip, unreadable file
        raise UserError(f"{path}: cannot read ({type(exc).__name__}: {exc}); allowed: an idx file, plain or "
                        f"gzipped, complete") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte idx file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise UserError(f"{path}: header says shape {shape} but the file holds {body.size} bytes")
    return body.reshape(shape).copy()  # frombuffer is read-only; torch wants writable arrays


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def download(name: str, directory: Path, *, base_url: str | None = None,
             checksums: dict[str, str] | None = None) -> None:
    """Fetch the idx files of ``name`` into ``directory``, checking each file's MD5 (``checksums``
    and ``base_url`` default to the official ones in REMOTE)."""
    url, official = REMOTE[name]
    base_url, checksums = base_url or url, checksums or official
    directory.mkdir(parents=True, exist_ok=True)
    for filename, md5 in checksums.items():
        target = directory / filename
        if target.exists():
            continue
        partial = target.with_suffix(".part")
        log.info("downloading %s%s", base_url, filename)
        with urllib.request.urlopen(base_url + filename, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
        digest = hashlib.md5(partial.read_bytes()).hexdigest()
        if digest != md5:
            partial.unlink()
            raise UserError(f"checksum mismatch for {filename}: got md5 {digest}, expected {md5}")
        partial.rename(target)


def load_idx_dataset(name: str, directory: Path, *, download_ok: bool = False, base_url: str | None = None,
                     checksums: dict[str, str] | None = None) -> RawDataset:
    """MNIST-style dataset from the four idx files in ``directory`` (plain or .gz), downloaded
    first when allowed (from ``base_url`` with ``checksums``, by default the official files)."""
    paths = [_find(directory, stem) for stem in IDX_FILES]
    if any(p is None for p in paths):
        if not download_ok:
            raise UserError(f"{name} idx files not found in {directory}; give data.dir, install Debian's "
                            f"dataset-fashion-mnist, or set data.download: true")
        download(name, directory, base_url=base_url, checksums=checksums)
        paths = [_find(directory, stem) for stem in IDX_FILES]
    found = [p for p in paths if p is not None]
    if len(found) < len(IDX_FILES):
        missing = [stem for stem, p in zip(IDX_FILES, paths) if p is None]
        raise UserError(f"{name}: {', '.join(missing)} not found in {directory}; allowed: the four idx files, "
                        f"plain or .gz")
    x_train, y_train, x_test, y_test = (read_idx(p) for p in found)
    for split_name, x, y, stems in (("train", x_train, y_train, IDX_FILES[:2]), ("test", x_test, y_test, IDX_FILES[2:])):
        if len(x) != len(y) or x.ndim != 3 or y.ndim != 1:
            raise UserError(f"{name} {split_name}: {stems[0]} holds {len(x)} images of shape {x.shape[1:]} but "
                            f"{stems[1]} holds {len(y)} labels; allowed: one label per image, images as N x H x W")
    classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(i) for i in range(10))
    return RawDataset(name, x_train[..., None], y_train.astype(np.int64), x_test[..., None],
                      y_test.astype(np.int64), classes)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays, and nothing that names other code:
    the CIFAR-10 batches are pickles, and a pickle can call any function it names."""

    # array constructors of numpy's pickles (protocols 2-5), and the bytes decoder of protocol 2
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never does")
        return super().find_class(module, name)


def load_cifar10_batches(directory: Path) -> RawDataset:
    """CIFAR-10 in the official python layout (data_batch_1..5, test_batch, batches.meta).

    These files are pickles, as published; they are read with an unpickler that builds arrays,
    dicts and lists only (:class:`_ArraysOnly`), so a planted file is refused, not run.
    """
    root = directory / "cifar-10-batches-py" if (directory / "cifar-10-batches-py").is_dir() else directory
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = root / name
        if not path.exists():
            raise UserError(f"CIFAR-10 batch {path} not found; expected data_batch_1..5 and test_batch")
        try:
            with open(path, "rb") as f:
                batch = _ArraysOnly(f, encoding="bytes").load()
            data, labels = batch[b"data"], batch[b"labels"]
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {str(exc)[:120]}); "
                            "allowed: the official cifar-10-batches-py files") from None
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(labels, dtype=np.int64)
    train = [read(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = read("test_batch")
    return RawDataset("cifar10", np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                      x_test, y_test, CIFAR10_CLASSES)


def _read_split(directory: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:

    images: list[np.ndarray] = []
    labels: list[int] = []
    listed = [(label, sorted(p for p in (directory / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
              for label, cls in enumerate(classes)]
    ticker = Ticker(f"decoding {directory}", sum(len(files) for _, files in listed), every_s=10.0, indent="  ")
    for label, files in listed:
        for file in files:
            ticker.update(len(labels))
            try:
                with Image.open(file) as img:
                    images.append(np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img))
            # Pillow's errors for corrupt and truncated files, and for images over its pixel limit
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                raise UserError(f"{file}: not a readable image ({type(exc).__name__}: {str(exc)[:80]}); allowed: "
                                f"complete image files only (remove or fix it)") from None
            labels.append(label)
    if not images:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {directory}")
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise UserError(f"images under {directory} differ in size or channels: {sorted(shapes)[:3]}")
    x = np.stack(images)
    return (x[..., None] if x.ndim == 3 else x), np.asarray(labels, dtype=np.int64)


def _class_folders(root: Path) -> list[str]:
    """The class names of an image folder: the same folders under train/ and test/, none of them
    (nor the splits) a link leaving ``root``."""
    base = root.resolve()
    found = {}
    for part in ("train", "test"):
        for folder in (root / part).iterdir():
            if folder.is_symlink() and base not in folder.resolve().parents:
                raise UserError(f"{folder} links outside the image folder ({folder.resolve()}); allowed: class "
                                f"folders inside {root}")
        found[part] = {p.name for p in (root / part).iterdir() if p.is_dir()}
    for part, other in (("test", "train"), ("train", "test")):
        extra = sorted(found[part] - found[other])
        if extra:
            raise UserError(f"class folder{'s' if len(extra) > 1 else ''} {', '.join(extra[:3])} in {root / part} "
                            f"but not in {root / other}; allowed: the same class folders in train/ and test/")
    if len(found["train"]) < 2:
        raise UserError(f"{root / 'train'} has {len(found['train'])} class folder(s); allowed: 2 or more")
    return sorted(found["train"])


def _content_key(path: Path) -> str:
    """A key of what ``path`` holds: for a folder, every file's relative path, size and
    modification time (a replaced image changes it, even when the folder's own time does not);
    for an archive, its size and modification time."""
    digest = hashlib.sha1(str(path.resolve()).encode())
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"\0{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        stat = path.stat()
        digest.update(f":{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_image_folder(path: Path, *, cache_dir: Path) -> RawDataset:
    """``train/<class>/*`` and ``test/<class>/*`` images, from a folder or a .tar.gz of one.

    Decoded arrays are cached as .npz in ``cache_dir`` keyed by the source's content listing
    (:func:`_content_key`), so an image replaced, added or removed is read again.
    """
    key = _content_key(path)
    cached = cache_dir / f"imagefolder-{key}.npz"
    if cached.exists():
        z = np.load(cached)
        return RawDataset(path.name, z["x_train"], z["y_train"], z["x_test"], z["y_test"], tuple(z["classes"]))
    root = path
    if path.is_file():
        root = cache_dir / f"imagefolder-{key}"
        if not root.exists():
            note("  extracting %s (first use) ...", path)
            with tarfile.open(path) as tar:
                tar.extractall(root, filter="data")
        tops = [p for p in root.iterdir() if p.is_dir()]
        root = tops[0] if len(tops) == 1 and not (root / "train").is_dir() else root
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise UserError(f"image folder {path} needs train/<class>/ and test/<class>/ subfolders")
    classes = _class_folders(root)
    note("  reading image folder %s (first use; the decoded arrays are cached in %s)", path, cache_dir)
    x_train, y_train = _read_split(root / "train", classes)
    x_test, y_test = _read_split(root / "test", classes)
    counts = np.bincount(y_train, minlength=len(classes))
    if counts.min() < 2:  # checked before caching: a refused folder leaves nothing behind
        raise UserError(f"class {classes[int(counts.argmin())]!r} has {int(counts.min())} training image(s); "
                        "allowed: at least 2 per class (one is held out for validation)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cached, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=np.array(classes))
    return RawDataset(path.name, x_train, y_train, x_test, y_test, tuple(classes))
