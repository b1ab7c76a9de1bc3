"""Splits and preprocessing: a deterministic train/validation split and normalised tensors.

The search selects on the validation split (carved from the training images); the front reports
accuracy on the untouched test split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.core.config import DataConfig
from nas.core.errors import UserError
from nas.data.datasets import RawDataset, load_cifar10_batches, load_idx_dataset, load_image_folder

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Preprocess:
    """What a deployer must do to an image before the model: written into every ONNX file."""

    source_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str  # "gray" or "RGB"

    def describe_resize(self, resolution: int) -> str:
        if resolution == self.source_size:
            return "none"
        return f"bilinear (antialiased) from {self.source_size}x{self.source_size} to {resolution}x{resolution}"


@dataclass(frozen=True)
class Splits:
    """uint8 NHWC images: train (for fitting), val (for selection), test (for reporting)."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preprocess: Preprocess


def default_dir(dataset: str, cache_dir: Path) -> Path:
    if dataset == "fashion-mnist" and DEBIAN_FASHION_MNIST.is_dir():
        return DEBIAN_FASHION_MNIST
    return cache_dir / dataset


def load_raw(cfg: DataConfig, *, cache_dir: Path) -> RawDataset:
    """Read the dataset the config names (see README, "Data")."""
    directory = Path(cfg.dir).expanduser() if cfg.dir else default_dir(cfg.dataset, cache_dir)
    if cfg.dataset in ("fashion-mnist", "mnist"):
        return load_idx_dataset(cfg.dataset, directory, download_ok=cfg.download)
    if not directory.exists():
        raise UserError(f"data.dir {str(directory)!r} does not exist")
    if cfg.dataset == "cifar10" and directory.is_dir() and not (directory / "train").is_dir():
        return load_cifar10_batches(directory)
    return load_image_folder(directory, cache_dir=cache_dir)


def split(raw: RawDataset, *, val_fraction: float, seed: int) -> Splits:
    """Hold out ``val_fraction`` of the training images, stratified by class, reproducibly."""
    rng = np.random.default_rng(seed)
    val_idx: list[np.ndarray] = []
    for cls in np.unique(raw.y_train):
        members = np.flatnonzero(raw.y_train == cls)
        if len(members) - max(1, round(len(members) * val_fraction)) < 1:
            raise UserError(f"class {raw.classes[int(cls)]!r} has {len(members)} training image(s): holding out "
                            f"data.val_fraction {val_fraction} leaves none to train on; allowed: at least 2 images "
                            "per class in the training split")
        rng.shuffle(members)
        val_idx.append(members[: max(1, round(len(members) * val_fraction))])
    val = np.sort(np.concatenate(val_idx))
    train = np.setdiff1d(np.arange(len(raw.y_train)), val)
    mean, std = channel_stats(raw.x_train[train])
    channels = raw.x_train.shape[-1]
    preprocess = Preprocess(source_size=raw.x_train.shape[1], channels=channels, mean=mean, std=std,
                            channel_order="gray" if channels == 1 else "RGB")
    return Splits(raw.name, raw.classes, raw.x_train[train], raw.y_train[train], raw.x_train[val],
                  raw.y_train[val], raw.x_test, raw.y_test, preprocess)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and standard deviation of uint8 NHWC images, on the 0-1 scale.

    Counted from a histogram of the 256 byte values per channel (integer counts, float64 moments),
    so the result does not drift with the number of pixels: a float32 sum over CIFAR-10's 153 M
    values per channel stops growing at 2**24 and gave 0.33 for every channel instead of 0.49.
    """
    channels = images.shape[-1]
    flat = np.ascontiguousarray(images).reshape(-1, channels)
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(channels):
        counts = np.bincount(flat[:, c], minlength=256).astype(np.float64)
        n = counts.sum()
        mean = float((counts * values).sum() / n)
        var = float((counts * (values - mean) ** 2).sum() / n)
        means.append(mean)
        stds.append(var ** 0.5)
    return tuple(means), tuple(stds)


def to_tensor(images: np.ndarray, preprocess: Preprocess, resolution: int) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW at ``resolution`` (the exact deploy-time recipe)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if resolution != preprocess.source_size:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=True)
    mean = torch.tensor(preprocess.mean).view(1, -1, 1, 1)
    std = torch.tensor(preprocess.std).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()
