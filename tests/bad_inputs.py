"""The bad inputs hwnas must refuse with one line and exit code 2, changing no file.

Each case prepares its input in a workspace (a valid config, generated idx data and an image
folder, and a finished tiny run) and names the ``hwnas`` arguments to run there. Used by
``benchmarks/reliability.py`` (each case in its own process) and by
``tests/test_bad_inputs.py`` (in process).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

Setup = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    setup: Setup


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(str(path) + ".gz", "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_idx(root: Path, *, n_train: int = 600, n_test: int = 120, labels_train: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n, n_labels in (("train", n_train, labels_train or n_train), ("t10k", n_test, n_test)):
        labels = rng.integers(0, 10, size=n_labels)
        images = rng.integers(0, 60, size=(n, 16, 16))
        for i, label in enumerate(labels[:n]):
            r, c = divmod(int(label) % 16, 4)
            images[i, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] += 180
        _idx(root / f"{prefix}-images-idx3-ubyte", np.clip(images, 0, 255))
        _idx(root / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def make_images(root: Path, *, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        for cls in ("a", "b"):
            folder = root / part / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def base_config(data: Path, **changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "tiny", "seed": 0, "data": {"dataset": "mnist", "dir": str(data), "val_fraction": 0.2},
        "space": {"resolutions": [12, 16], "widths": [0.5, 1.0], "stem_chs": 8, "stem_stride": 1, "head_chs": 32,
                  "groups": [1, 2], "kernels": [3, 5], "exp_ratios": [1, 3],
                  "stages": [{"chs": 8, "stride": 1, "depths": [1]}, {"chs": 16, "stride": 2, "depths": [1, 2]}]},
        "train": {"epochs": 1, "batch_size": 50, "lr": 0.02},
        "search": {"trials": 2, "population": 4},
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: Any = cfg  # nested dicts and lists of the YAML document
        for key in parents:
            node = node[key] if not key.isdigit() else node[int(key)]
        node[last] = value
    return cfg


def _search(cfg: dict[str, Any] | str | bytes, *extra: str) -> Setup:
    """A search on a config (a dict, or raw YAML text/bytes) written into the workspace."""
    def setup(ws: Path) -> list[str]:
        path = ws / "bad.yaml"
        if isinstance(cfg, bytes):
            path.write_bytes(cfg)
        elif isinstance(cfg, str):
            path.write_text(cfg.replace("DATA", str(ws / "idx")))
        else:
            path.write_text(yaml.safe_dump(cfg))
        return ["search", str(path), "--out", str(ws / "runs" / "new"), *extra]
    return setup


def _cfg(**changes: Any) -> Setup:
    def setup(ws: Path) -> list[str]:
        return _search(base_config(ws / "idx", **{k.replace("__", "."): v for k, v in changes.items()}))(ws)
    return setup


def _data(build: Callable[[Path], Path], dataset: str = "mnist") -> Setup:
    """A search on data that ``build`` writes (given a fresh folder)."""
    def setup(ws: Path) -> list[str]:
        shutil.rmtree(ws / "baddata", ignore_errors=True)
        root = build(ws / "baddata")
        return _search(base_config(root, **{"data.dataset": dataset}))(ws)
    return setup


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _then(make: Callable[[Path], Path], change: Callable[[Path], object]) -> Callable[[Path], Path]:
    """Valid data written by ``make``, then spoiled by ``change``."""
    def build(root: Path) -> Path:
        make(root)
        change(root)
        return root
    return build


def _idx_then(change: Callable[[Path], object]) -> Callable[[Path], Path]:
    return _then(make_idx, change)


def _images_then(change: Callable[[Path], object]) -> Callable[[Path], Path]:
    return _then(make_images, change)


def _argv(*args: str) -> Setup:
    """Plain arguments; ``WS`` stands for the workspace, ``RUN`` for the finished run."""
    return lambda ws: [a.replace("WS", str(ws)).replace("RUN", str(ws / "runs" / "tiny")) for a in args]


BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
               for p, c in zip(["", *"abcdef"], "abcdefg")) + "name: *g\n"


def _garbage_model(ws: Path) -> list[str]:
    (ws / "garbage.onnx").write_bytes(bytes(range(256)) * 4)
    return ["predict", str(ws / "garbage.onnx"), str(ws / "images" / "test" / "a" / "0.png")]


def _huge_image(ws: Path) -> list[str]:
    """A PNG of 20,000 x 20,000 pixels (2.2 times Pillow's limit), a few kB on disk."""
    path = ws / "huge.png"
    if not path.exists():
        Image.new("1", (20_000, 20_000)).save(path, optimize=True)
    return ["predict", str(ws / "runs" / "tiny" / "trials" / "0000" / "model.onnx"), str(path)]


def _arch(tail: str) -> str:
    return f"in_c1_r16-stem_k3_s1_c8-{tail}-head_c32-fc_c10"


CONFIG_CASES = [
    Case("YAML syntax error", _search("name: tiny\nseed: [0\n")),
    Case("YAML not UTF-8", _search(b"name: \xff\xfe tiny\nseed: 0\n")),
    Case("YAML duplicate key", _search("name: tiny\nseed: 0\nseed: 1\ndata: {dataset: mnist, dir: DATA}\n")),
    Case("YAML top level is a list", _search("- name\n- seed\n")),
    Case("YAML empty file", _search("")),
    Case("unknown top-level key", _cfg(epochs=3)),
    Case("unknown train key", _cfg(train__epoch=3)),
    Case("seed -1", _cfg(seed=-1)),
    Case("seed a string", _cfg(seed="abc")),
    Case("seed 5000 digits", _search(yaml.safe_dump(base_config(Path("DATA"))).replace("seed: 0", "seed: " + "9" * 5000))),
    Case("name '..'", _cfg(name="..")),
    Case("name '.'", _cfg(name=".")),
    Case("name with a slash", _cfg(name="a/b")),
    Case("name empty", _cfg(name="")),
    Case("name with a space and a quote", _cfg(name="my 'run'")),
    Case("train.lr .inf", _search(yaml.safe_dump(base_config(Path("DATA"))).replace("lr: 0.02", "lr: .inf"))),
    Case("train.lr .nan", _search(yaml.safe_dump(base_config(Path("DATA"))).replace("lr: 0.02", "lr: .nan"))),
    Case("train.lr 0", _cfg(train__lr=0)),
    Case("train.lr negative", _cfg(train__lr=-0.1)),
    Case("train.threads -2", _cfg(train__threads=-2)),
    Case("train.threads 0", _cfg(train__threads=0)),
    Case("train.threads 100000", _cfg(train__threads=100000)),
    Case("train.device cuda without a GPU", _cfg(train__device="cuda")),
    Case("train.device tpu", _cfg(train__device="tpu")),
    Case("train.epochs 0", _cfg(train__epochs=0)),
    Case("train.batch_size 0", _cfg(train__batch_size=0)),
    Case("train.weight_decay -5", _cfg(train__weight_decay=-5)),
    Case("space.head_chs 0", _cfg(space__head_chs=0)),
    Case("space.stem_chs 100000", _cfg(space__stem_chs=100000)),
    Case("space.resolutions 30000", _cfg(space__resolutions=[30000])),
    Case("space.resolutions empty", _cfg(space__resolutions=[])),
    Case("space.widths negative", _cfg(space__widths=[-1.0])),
    Case("space stage depth 100000", _cfg(**{"space__stages": [{"chs": 8, "stride": 1, "depths": [100000]}]})),
    Case("space stage chs 0", _cfg(**{"space__stages": [{"chs": 0, "stride": 1, "depths": [1]}]})),
    Case("space stage stride 3", _cfg(**{"space__stages": [{"chs": 8, "stride": 3, "depths": [1]}]})),
    Case("space.kernels 4", _cfg(space__kernels=[4])),
    Case("search.trials 0", _cfg(search__trials=0)),
    Case("search.population 1", _cfg(search__population=1)),
    Case("search.objectives unknown", _cfg(search__objectives=["accuracy", "speed"])),
    Case("search.profile unknown", _cfg(search__profile="jetson-xavier")),
    Case("search.budgets negative", _cfg(search__budgets={"latency_ms": -1})),
    Case("search.sampler unknown", _cfg(search__sampler="grid")),
    Case("data.dataset unknown", _cfg(data__dataset="imagenet-21k")),
    Case("data.dir missing", _cfg(data__dir="/nonexistent/hwnas-data")),
    Case("data.val_fraction 1.5", _cfg(data__val_fraction=1.5)),
    Case("data.val_fraction 0", _cfg(data__val_fraction=0)),
    Case("compression.quantize int4", _cfg(compression={"quantize": ["int4"]})),
    Case("final.epochs -1", _cfg(final={"epochs": -1})),
    Case("YAML alias bomb under name", _search(BOMB)),
    Case("YAML nested 20,000 deep", _search("a: " + "[" * 20_000 + "]" * 20_000 + "\n")),
    Case("config over 1 MB", _search("# " + "x" * 1_100_000 + "\n")),
    Case("name ending in a newline", _cfg(name="tiny\n")),
]

DATA_CASES = [
    Case("idx .gz truncated", _data(_idx_then(lambda r: _truncate(r / "train-images-idx3-ubyte.gz", 0.5)))),
    Case("idx .gz not gzip", _data(_idx_then(lambda r: (r / "train-images-idx3-ubyte.gz").write_bytes(b"x" * 100)))),
    Case("idx labels fewer than images", _data(lambda r: make_idx(r, labels_train=300))),
    Case("idx images empty file", _data(_idx_then(lambda r: (r / "t10k-images-idx3-ubyte.gz").write_bytes(b"")))),
    Case("idx test files missing", _data(_idx_then(lambda r: (r / "t10k-labels-idx1-ubyte.gz").unlink()))),
    Case("images: corrupt PNG", _data(_images_then(lambda r: (r / "train" / "a" / "0.png").write_bytes(b"\x89PNG junk")),
                                      dataset="image-folder")),
    Case("images: truncated PNG", _data(_images_then(lambda r: _truncate(r / "test" / "b" / "1.png", 0.5)),
                                        dataset="image-folder")),
    Case("images: truncated JPEG", _data(_images_then(
        lambda r: (r / "train" / "b" / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)), dataset="image-folder")),
    Case("images: dangling symlink", _data(_images_then(
        lambda r: os.symlink(r / "nowhere.png", r / "train" / "a" / "link.png")), dataset="image-folder")),
    Case("images: text file named .png", _data(_images_then(
        lambda r: (r / "train" / "a" / "note.png").write_text("hello")), dataset="image-folder")),
    Case("images: no test folder", _data(_images_then(lambda r: shutil.rmtree(r / "test")),
                                         dataset="image-folder")),
    Case("images: a test class not in train", _data(_images_then(
        lambda r: shutil.copytree(r / "test" / "a", r / "test" / "c")), dataset="image-folder")),
    Case("images: a class folder linking outside", _data(_images_then(
        lambda r: os.symlink("/etc", r / "train" / "c")), dataset="image-folder")),
    Case("images: one training image per class", _data(lambda r: make_images(r, n=1), dataset="image-folder")),
]


def _file(ws: Path) -> list[str]:
    (ws / "afile").write_text("x")
    return _cfg()(ws)[:-2] + ["--out", str(ws / "afile")]


ARG_CASES = [
    Case("--out is a file", _file),
    Case("--storage foo://x", lambda ws: _cfg()(ws) + ["--storage", "foo://x"]),
    Case("--storage unreachable PostgreSQL", lambda ws: _cfg()(ws) + ["--storage", "postgresql://u:pw@127.0.0.1:1/x"]),
    Case("--storage in-memory SQLite", lambda ws: _cfg()(ws) + ["--storage", "sqlite://"]),
    Case("--storage journal in a missing folder", lambda ws: _cfg()(ws) + ["--storage", "journal:/nonexistent/j.log"]),
    Case("--storage not a URL", lambda ws: _cfg()(ws) + ["--storage", "my database"]),
    Case("--trials 0", lambda ws: _cfg()(ws) + ["--trials", "0"]),
    Case("--workers 0", lambda ws: _cfg()(ws) + ["--workers", "0"]),
    Case("search config not found", _argv("search", "WS/nope.yaml")),
    Case("cost: 5000-digit channel count", _argv("cost", _arch("ir_r1_k3_s1_e1_c" + "9" * 5000))),
    Case("cost: resolution 30000", _argv("cost", "in_c1_r30000-stem_k3_s1_c8-head_c32-fc_c10")),
    Case("cost: repeat 100000000", _argv("cost", _arch("ir_r100000000_k3_s1_e1_c8"))),
    Case("cost: expansion 100000", _argv("cost", _arch("ir_r1_k3_s1_e100000_c8"))),
    Case("cost: kernel 99", _argv("cost", _arch("ir_r1_k99_s1_e1_c8"))),
    Case("cost: unknown token", _argv("cost", _arch("ir_r1_k3_s1_e1_c8_zz9"))),
    Case("cost: --resolution 30000", _argv("cost", "--zoo", "mobilenet_v2", "--resolution", "30000")),
    Case("cost: --width -1", _argv("cost", "--zoo", "mobilenet_v2", "--width", "-1")),
    Case("cost: unknown profile", _argv("cost", "--zoo", "mobilenet_v2", "--profile", "nope")),
    Case("cost: unknown zoo network", _argv("cost", "--zoo", "alexnet9")),
    Case("cost: Arabic-Indic digit", _argv("cost", _arch("ir_r1_k3_s1_e1_c\u0668"))),
    Case("cost: fullwidth digit", _argv("cost", _arch("ir_r1_k\uff13_s1_e1_c8"))),
    Case("--workers 100000", lambda ws: _cfg()(ws) + ["--workers", "100000"]),
    Case("--out of 300 characters", lambda ws: _cfg()(ws)[:3] + [str(ws / "runs" / ("x" * 300))]),
    Case("predict: not a model file", _garbage_model),
    Case("predict: image over Pillow's pixel limit", _huge_image),
]

RUN_CASES = [
    Case("another --storage on an existing run", _argv("search", "WS/tiny.yaml", "--out", "RUN", "--storage",
                                                        "journal:WS/other.log")),
    Case("changed config on an existing run", lambda ws: _search(base_config(ws / "idx", **{"train.epochs": 2}))(ws)[:-1]
         + [str(ws / "runs" / "tiny")]),
    Case("export: unknown trial", _argv("export", "RUN", "--trial", "999")),
    Case("export: --final leaves the model folder", _argv("export", "RUN", "--trial", "0", "--final", "../../../x")),
    Case("export: not a run folder", _argv("export", "WS/idx", "--trial", "0")),
    Case("front: not a run folder", _argv("front", "WS")),
    Case("dashboard: not a run folder", _argv("dashboard", "WS/idx")),
    Case("compress: --name leaves the model folder", _argv("compress", "RUN/trials/0000", "--recipe",
                                                            "WS/recipe.yaml", "--name", "../../x")),
    Case("train: unknown trial", _argv("train", "RUN", "--trial", "999")),
    Case("train: --epochs 0", _argv("train", "RUN", "--trial", "0", "--epochs", "0")),
    Case("train: --lr inf", _argv("train", "RUN", "--trial", "0", "--lr", "inf")),
    Case("predict: model file missing", _argv("predict", "WS/nope.onnx", "WS/images/test/a/0.png")),
    Case("predict: corrupt image", _argv("predict", "RUN/trials/0000/model.onnx", "WS/corrupt.png")),
]

CASES = CONFIG_CASES + DATA_CASES + ARG_CASES + RUN_CASES


def prepare_workspace(ws: Path, run_search: Callable[[list[str]], int]) -> None:
    """Valid data, an image folder, a recipe, a corrupt image and a finished tiny run (made with
    ``run_search``, given ``hwnas`` arguments)."""
    make_idx(ws / "idx")
    make_images(ws / "images")
    (ws / "recipe.yaml").write_text("quantize: {mode: dynamic}\n")
    (ws / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (ws / "tiny.yaml").write_text(yaml.safe_dump(base_config(ws / "idx")))
    code = run_search(["search", str(ws / "tiny.yaml"), "--out", str(ws / "runs" / "tiny")])
    assert code == 0, "the workspace's tiny run failed"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its content (symlinks by target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel] = "dir"
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
