from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.data.datasets import load_idx_dataset
from nas.data.splits import channel_stats, split, to_tensor
from tests.conftest import make_idx_dataset


def test_split_is_deterministic_stratified_and_disjoint(tmp_path: Path) -> None:
    raw = load_idx_dataset("mnist", make_idx_dataset(tmp_path, n_train=400, n_test=50, size=8))
    a = split(raw, val_fraction=0.25, seed=1)
    b = split(raw, val_fraction=0.25, seed=1)
    c = split(raw, val_fraction=0.25, seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val) or not np.array_equal(a.x_val, c.x_val)
    assert len(a.y_train) + len(a.y_val) == 400
    for cls in range(10):
        share = (a.y_val == cls).sum() / max(1, (raw.y_train == cls).sum())
        assert abs(share - 0.25) < 0.05
    train_rows = {row.tobytes() for row in a.x_train}
    assert not any(row.tobytes() in train_rows for row in a.x_val)


def test_to_tensor_normalises_and_resizes(tmp_path: Path) -> None:
    raw = load_idx_dataset("mnist", make_idx_dataset(tmp_path, n_train=200, n_test=20, size=8))
    s = split(raw, val_fraction=0.1, seed=0)
    x = to_tensor(s.x_train, s.preprocess, 8)
    assert x.shape == (len(s.y_train), 1, 8, 8)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2
    assert to_tensor(s.x_train[:2], s.preprocess, 12).shape == (2, 1, 12, 12)
    assert s.preprocess.describe_resize(12).startswith("bilinear") and s.preprocess.describe_resize(8) == "none"
    assert x.dtype == torch.float32


def test_channel_stats_exact_at_cifar10_scale() -> None:
    # 40,000 CIFAR-10-sized RGB images: 41 M values per channel, past where a float32 sum stops
    # growing (the bug that recorded 0.364 for every CIFAR-10 channel). Each channel alternates two
    # byte values image by image, so its mean and deviation are known in closed form.
    n = 40_000
    low, high = np.array([100, 90, 70], np.uint8), np.array([150, 156, 158], np.uint8)
    images = np.empty((n, 32, 32, 3), np.uint8)
    images[0::2] = low
    images[1::2] = high
    mean, std = channel_stats(images)
    expected_mean = (low.astype(float) + high) / 2 / 255
    expected_std = (high.astype(float) - low) / 2 / 255
    np.testing.assert_allclose(mean, expected_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=0, atol=1e-12)


def test_channel_stats_match_float64_numpy_on_random_images() -> None:
    images = np.random.default_rng(3).integers(0, 256, (64, 9, 9, 3), dtype=np.uint8)
    mean, std = channel_stats(images)
    as_float = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, as_float.mean(axis=(0, 1, 2)), atol=1e-12)
    np.testing.assert_allclose(std, as_float.std(axis=(0, 1, 2)), atol=1e-12)
