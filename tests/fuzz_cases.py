"""Property-based fuzzing of what users type and supply (Hypothesis): arch strings, search configs,
``hwnas`` arguments and image files. Each target either accepts its input or refuses it with a
:class:`UserError` (one line, exit code 2 at the CLI); any other exception is a finding.

Used by ``tests/test_fuzz.py`` (a few hundred cases per target) and by ``benchmarks/faults.py``
(thousands), through :func:`run_target`.
"""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st

from nas.cli import main
from nas.core.config import parse_search_config
from nas.core.errors import UserError
from nas.core.schema import parse_yaml
from nas.data.datasets import load_image_folder
from nas.space.arch import parse
from tests.bad_inputs import base_config

# arch strings: the grammar's own words with numbers (most near-valid), or any text
_WORDS = ["in", "stem", "ir", "fir", "ds", "sh", "sh2", "fb", "skip", "rb", "rbn", "vgg", "fire", "inc", "cv", "head",
          "fc", "zz"]
_KEYS = ["c", "r", "k", "s", "e", "g", "hs", "se", "m", "p", "mp", "vp", "o", "tr", "t", "fr", "f", "pp", "x"]
_token = st.builds(lambda k, n: f"{k}{n}", st.sampled_from(_KEYS), st.integers(-3, 2000))
_part = st.builds(lambda w, ts: "_".join([w, *ts]), st.sampled_from(_WORDS), st.lists(_token, max_size=6))
ARCH = st.one_of(st.builds("-".join, st.lists(_part, min_size=1, max_size=8)), st.text(max_size=200))

# config values: JSON-like data of any shape, put at any key of a valid config
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
                     | st.text(max_size=30), lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
_PATHS = ["name", "seed", "data.dataset", "data.val_fraction", "space.resolutions", "space.widths", "space.stem_chs",
          "space.block_types", "space.kernels", "space.exp_ratios", "space.stages", "space.stages.0.chs",
          "space.stages.0.depths", "space.stages.1.stride", "train.epochs", "train.lr", "train.batch_size",
          "train.schedule", "train.optimizer", "train.distill", "search.trials", "search.sampler", "search.population",
          "search.objectives", "search.profile", "search.budgets", "search.budgets.latency_ms", "search.precision",
          "search.artifacts", "compression", "final", "baselines", "supernet", "bogus"]
CONFIG_CHANGE = st.tuples(st.lists(st.sampled_from(_PATHS), min_size=1, max_size=3), st.lists(_JSON, min_size=3,
                                                                                             max_size=3))
YAML_TEXT = st.text(alphabet=st.sampled_from(list("ab:- []{}&*!|>'\"\n #0123456789.,?%@`\t")), max_size=300)

# arguments: the commands that read files and refuse, with option words and random values
_COMMANDS = [["front"], ["export"], ["train"], ["compress"], ["predict"], ["supernet", "info"], ["profile", "calibrate"],
             ["baselines"]]
_ARGS = ["--trial", "--front", "--final", "--format", "--precision", "--epochs", "--train-subset", "--lr", "--recipe",
         "--storage", "--out", "--top", "--stage", "--init-from", "--networks", "--measurements", "--resolution",
         "--classes", "--json", "onnx", "tflite", "int8", "1e3", "-1", "0", "nan", "runs/none", "RUN", "x.onnx",
         "{quantize: {mode: static}}", "{prune: 3}", "../../etc", "\x00", "\u0663"]
ARGV = st.tuples(st.sampled_from(_COMMANDS), st.lists(st.sampled_from(_ARGS) | st.text(max_size=12), max_size=6))
IMAGE_BYTES = st.one_of(st.binary(max_size=400), st.builds(
    lambda head, rest: head + rest, st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM"]),
    st.binary(max_size=300)))


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node: Any = cfg
    for key in parents:
        node = node[int(key)] if key.isdigit() and isinstance(node, list) else node.setdefault(key, {})
        if not isinstance(node, (dict, list)):
            return
    if isinstance(node, list):
        if last.isdigit() and int(last) < len(node):
            node[int(last)] = value
    else:
        node[last] = value


def check_arch(text: str) -> None:
    with contextlib.suppress(UserError):
        parse(text)


def check_config(change: tuple[list[str], list[Any]]) -> None:
    cfg = base_config(Path("/nonexistent"))
    for dotted, value in zip(*change):
        _set(cfg, dotted, value)
    with contextlib.suppress(UserError):
        parse_search_config(json.loads(json.dumps(cfg, default=str)))


def check_yaml(text: str) -> None:
    with contextlib.suppress(UserError):
        parse_yaml(text, "fuzz.yaml")


def check_argv(args: tuple[list[str], list[str]]) -> None:
    command, rest = args
    with tempfile.TemporaryDirectory() as ws, contextlib.chdir(ws), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = main([*command, *rest])
        except SystemExit as exit_:  # argparse: --help (0) or a usage mistake (2, one line)
            code = int(exit_.code or 0)
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        assert code in (0, 2) and (code == 0 or len(lines) == 1), (command, rest, code, lines)


def check_image(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as ws:
        root = Path(ws) / "set"
        for part in ("train", "test"):
            for cls in ("a", "b"):
                (root / part / cls).mkdir(parents=True)
                for i in range(2):
                    (root / part / cls / f"{i}.png").write_bytes(data)
        with contextlib.suppress(UserError), contextlib.redirect_stdout(io.StringIO()):
            load_image_folder(root, cache_dir=Path(ws) / "cache")


TARGETS: dict[str, tuple[Any, Callable[[Any], None]]] = {
    "arch": (ARCH, check_arch), "config": (CONFIG_CHANGE, check_config), "yaml": (YAML_TEXT, check_yaml),
    "argv": (ARGV, check_argv), "image": (IMAGE_BYTES, check_image),
}


def run_target(name: str, examples: int, seed: int = 0) -> int:
    """Run ``examples`` generated cases of target ``name``; raises on the first finding; returns
    how many cases ran (shrinking a finding included)."""
    strategy, check = TARGETS[name]
    calls = [0]

    def counted(value: Any) -> None:
        calls[0] += 1
        check(value)

    fuzz = fixed_seed(seed)(settings(max_examples=examples, deadline=None, database=None,
                                     suppress_health_check=list(HealthCheck))(given(strategy)(counted)))
    fuzz()
    return calls[0]
