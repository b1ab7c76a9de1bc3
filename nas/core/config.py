"""Search configuration (``searches/*.yaml``): frozen, validated on load.

>>> cfg = load_search_config("quickstart")
>>> cfg.search.profile
'cpu'
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import ClassVar

from nas.core.errors import UserError
from nas.core.schema import check, check_choices, from_mapping, load_yaml
from nas.core.vocab import ARTIFACT_NAMES, AUGMENTS, BUDGET_KEYS, OBJECTIVES, PRUNE_CRITERIA, QUANTIZE_MODES, QUANTIZE_SCALES

DATASETS = ("fashion-mnist", "mnist", "cifar10", "image-folder")
# bounds of a search space: far beyond what trains on one device, low enough never to hang
MAX_RESOLUTION, MAX_CHS, MAX_REPEATS = 1024, 16384, 64
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # fullmatch: "tiny\n" is not a name


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion-mnist"
    dir: str | None = None
    download: bool = False
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        check(self.dataset in DATASETS, "data.dataset", self.dataset, ", ".join(DATASETS))
        check(0.0 < self.val_fraction < 0.5, "data.val_fraction", self.val_fraction, "0 < x < 0.5")
        check(self.dataset != "image-folder" or self.dir is not None, "data.dir", self.dir,
              "a folder or .tar.gz path (required for image-folder)")


@dataclass(frozen=True)
class StageConfig:
    chs: int
    stride: int = 1
    depths: tuple[int, ...] = (1,)
    block_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check(8 <= self.chs <= MAX_CHS, "space.stages[].chs", self.chs, f"integers from 8 to {MAX_CHS}")
        check(self.stride in (1, 2), "space.stages[].stride", self.stride, "1, 2")
        check(bool(self.depths) and min(self.depths) >= 1 and max(self.depths) <= MAX_REPEATS, "space.stages[].depths",
              self.depths, f"integers from 1 to {MAX_REPEATS}")


@dataclass(frozen=True)
class SpaceConfig:
    stages: tuple[StageConfig, ...]
    resolutions: tuple[int, ...] = (28,)
    widths: tuple[float, ...] = (0.5, 0.75, 1.0)
    stem_chs: int = 16
    stem_stride: int = 1
    head_chs: int = 128
    block_types: tuple[str, ...] = ("ir", "sh")
    kernels: tuple[int, ...] = (3, 5, 7)
    exp_ratios: tuple[int, ...] = (1, 3, 4, 6)
    groups: tuple[int, ...] = (1, 2, 3, 4, 8)
    se: tuple[bool, ...] = (False,)
    hswish: tuple[bool, ...] = (False,)

    def __post_init__(self) -> None:
        check(bool(self.stages), "space.stages", self.stages, "a non-empty list of stages")
        for w in self.widths:
            check(0.25 <= w <= 1.4, "space.widths", w, "numbers from 0.25 to 1.4")
        for r in self.resolutions:
            check(8 <= r <= MAX_RESOLUTION, "space.resolutions", r, f"integers from 8 to {MAX_RESOLUTION}")
        for name in ("stem_chs", "head_chs"):
            value = getattr(self, name)
            check(1 <= value <= MAX_CHS, f"space.{name}", value, f"integers from 1 to {MAX_CHS}")
        check_choices(self.kernels, "space.kernels", (3, 5, 7))
        check_choices(self.exp_ratios, "space.exp_ratios", (1, 3, 4, 6))
        check_choices(self.groups, "space.groups", (1, 2, 3, 4, 8))
        check(self.stem_stride in (1, 2), "space.stem_stride", self.stem_stride, "1, 2")
        for name in ("resolutions", "widths", "block_types", "kernels", "exp_ratios", "groups", "se", "hswish"):
            check(bool(getattr(self, name)), f"space.{name}", getattr(self, name), "a non-empty list")


@dataclass(frozen=True)
class TeacherConfig:
    """Knowledge distillation for candidate training: Hinton's loss against a teacher's logits."""

    model: str  # an ONNX classifier of the same classes (e.g. runs/<run>/models/<n>/model.onnx)
    temperature: float = 4.0
    alpha: float = 0.9  # weight of the soft (teacher) term; 1 - alpha for the labels

    def __post_init__(self) -> None:
        check(self.model.endswith(".onnx"), "train.distill.model", self.model, "a path to an .onnx file")
        check(self.temperature > 0, "train.distill.temperature", self.temperature, "numbers > 0")
        check(0 <= self.alpha <= 1, "train.distill.alpha", self.alpha, "0 <= alpha <= 1")


@dataclass(frozen=True)
class TrainConfig:
    SECTION: ClassVar[str] = "train"  # where errors point in the YAML

    epochs: int = 2
    train_subset: int | None = None
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 0.003
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    device: str = "auto"
    threads: int | None = None
    distill: TeacherConfig | None = None

    def __post_init__(self) -> None:
        check(self.epochs >= 1, f"{self.SECTION}.epochs", self.epochs, "integers >= 1")
        check(self.train_subset is None or self.train_subset >= 1, f"{self.SECTION}.train_subset", self.train_subset,
              "null (all) or integers >= 1")
        check(1 <= self.epochs <= 100_000, f"{self.SECTION}.epochs", self.epochs, "integers from 1 to 100000")
        check(1 <= self.batch_size <= 65_536, f"{self.SECTION}.batch_size", self.batch_size, "integers from 1 to 65536")
        check(self.weight_decay >= 0, f"{self.SECTION}.weight_decay", self.weight_decay, "numbers >= 0")
        check(self.threads is None or 1 <= self.threads <= 1024, f"{self.SECTION}.threads", self.threads,
              "null (all cores) or integers from 1 to 1024")
        check(self.optimizer in ("adamw", "sgd"), f"{self.SECTION}.optimizer", self.optimizer, "adamw, sgd")
        check(self.lr > 0 and math.isfinite(self.lr), f"{self.SECTION}.lr", self.lr, "finite numbers > 0")
        check(self.schedule in ("onecycle", "cosine", "constant"), f"{self.SECTION}.schedule", self.schedule,
              "onecycle, cosine, constant")
        check(0 <= self.label_smoothing < 1, f"{self.SECTION}.label_smoothing", self.label_smoothing, "0 <= x < 1")
        check(self.device in ("auto", "cpu", "cuda"), f"{self.SECTION}.device", self.device, "auto, cpu, cuda")


@dataclass(frozen=True)
class FinalConfig(TrainConfig):
    """Training a chosen architecture to convergence (``hwnas train``): the whole training split
    (``train_subset: null``), augmentation, a longer schedule. Validation accuracy is reported every
    epoch; the model kept is the last epoch's."""

    SECTION: ClassVar[str] = "final"

    epochs: int = 30
    lr: float = 0.005
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    # "auto": random crop with padding (1/8 of the side) for every dataset, plus horizontal flip for
    # natural (RGB) images only: flipping breaks digits and the asymmetry of some clothes
    augment: tuple[str, ...] | None = None  # null: auto; []: none; or a list of crop, flip
    # QAT where post-training int8 is not enough: a final's int8 TFLite file is also made from a
    # copy fine-tuned this many steps with int8 fake quantization (distilled from the final), and
    # the file with the better validation accuracy is kept (0: post-training quantization only).
    # Measured on the quickstart's worst final (8-group shuffle units, 0.75 points lost by
    # post-training int8): 300 steps at 2e-4 lost 0.44-0.58 over calibration draws, 2000 steps at
    # 5e-4 0.10-0.19 (about a minute on 2 cores for a 0.4 M-MAC network).
    int8_qat_iters: int = 2000
    int8_qat_lr: float = 5e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self.augment or (), "final.augment", AUGMENTS)
        check(0 <= self.int8_qat_iters <= 1_000_000, "final.int8_qat_iters", self.int8_qat_iters,
              "integers from 0 to 1000000")
        check(self.int8_qat_lr > 0 and math.isfinite(self.int8_qat_lr), "final.int8_qat_lr", self.int8_qat_lr,
              "finite numbers > 0")

    def augmentations(self, channels: int) -> tuple[str, ...]:
        """The augmentations applied to a dataset with ``channels`` channels."""
        if self.augment is not None:
            return self.augment
        return ("crop", "flip") if channels == 3 else ("crop",)


@dataclass(frozen=True)
class SupernetConfig(TrainConfig):
    """Training a weight-sharing supernet over the space (``hwnas supernet train``): each step
    trains the largest subnetwork on the labels, then the smallest and ``random_subnets`` random
    ones distilled from the largest's outputs (BigNAS's sandwich rule, in-place distillation)."""

    SECTION: ClassVar[str] = "supernet"

    epochs: int = 12
    # SGD with Nesterov momentum, not AdamW: Adam scales each weight's step by its own gradient history,
    # so slices few subnetworks use take full-size noisy steps; on the quickstart space (3 epochs, 12 random
    # feasible subnetworks) inherited accuracy rose from 29% (AdamW, lr 0.005) to 44% (SGD, lr 0.05).
    optimizer: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 4e-5
    random_subnets: int = 2
    distill_temperature: float = 1.0
    reorder: bool = True  # sort hidden channels by importance after each epoch (once-for-all)
    label_smoothing: float = 0.1  # the largest's labels (the others learn its outputs), as once-for-all
    space: str = "derive"  # derive: narrowed to the budgets (nas.supernet.derive); given: as written
    sampling: str = "macs"  # macs: random subnetworks at MAC targets up to search.budgets; uniform
    bn_images: int = 2000  # training images a subnetwork's BatchNorm statistics are re-estimated on
    checkpoint_minutes: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.distill is None, "supernet.distill", self.distill, "null (the supernet distills in place from "
              "its largest subnetwork)")
        check(0 <= self.random_subnets <= 16, "supernet.random_subnets", self.random_subnets, "integers from 0 to 16")
        check(self.space in ("derive", "given"), "supernet.space", self.space, "derive, given")
        check(self.sampling in ("macs", "uniform"), "supernet.sampling", self.sampling, "macs, uniform")
        check(self.distill_temperature > 0, "supernet.distill_temperature", self.distill_temperature, "numbers > 0")
        check(1 <= self.bn_images <= 1_000_000, "supernet.bn_images", self.bn_images, "integers from 1 to 1000000")
        check(0 < self.checkpoint_minutes <= 1440, "supernet.checkpoint_minutes", self.checkpoint_minutes,
              "numbers in (0, 1440]")


STRATEGIES = ("per-trial", "supernet")


@dataclass(frozen=True)
class Budgets:
    latency_ms: float | None = None
    peak_memory_mb: float | None = None
    macs: float | None = None

    def __post_init__(self) -> None:
        for key in BUDGET_KEYS:
            value = getattr(self, key)
            check(value is None or value > 0, f"search.budgets.{key}", value, "null or numbers > 0")


@dataclass(frozen=True)
class EarlyStopping:
    """Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021): after
    each epoch in ``rungs`` a trial continues only if its validation accuracy there, with its
    costs (known before training), is in the best 1/``eta`` of the trials that reached the same
    rung so far, ranked by non-dominated sorting then crowding distance. Nothing is stopped at a
    rung fewer than ``min_trials`` trials (this one included) have reached."""

    rungs: tuple[int, ...] = (1,)
    eta: int = 3
    min_trials: int = 4

    def __post_init__(self) -> None:
        check(bool(self.rungs) and all(r >= 1 for r in self.rungs) and list(self.rungs) == sorted(set(self.rungs)),
              "search.early_stopping.rungs", self.rungs, "a non-empty increasing list of epochs >= 1")
        check(self.eta >= 2, "search.early_stopping.eta", self.eta, "integers >= 2")
        check(self.min_trials >= 2, "search.early_stopping.min_trials", self.min_trials, "integers >= 2")


SAMPLERS = ("random", "nsga2", "tpe", "gp")


@dataclass(frozen=True)
class SearchSection:
    trials: int = 12
    sampler: str = "tpe"  # fastest to random sampling's hypervolume on both datasets (benchmarks/search_efficiency.py)
    population: int = 8
    objectives: tuple[str, ...] = ("accuracy", "latency_ms", "macs")
    profile: str = "cpu"
    precision: str = "fp32"
    budgets: Budgets = field(default_factory=Budgets)
    artifacts: tuple[str, ...] | None = None  # the files each trial exports; None: the profile's
    # Optuna file-system artifact store every worker uploads its trials' files to (shared by
    # workers on several machines); null: <run folder>/artifacts; relative paths: to the run folder
    artifact_store: str | None = None
    # per-trial: every candidate trained from scratch; supernet: weights inherited from a trained
    # supernet (hwnas supernet train), at ``supernet`` (null: runs/<name>-supernet/supernet.pt)
    strategy: str = "per-trial"
    supernet: str | None = None
    # null: budgets hold the point prediction; q (e.g. 0.9): the q-quantile of the target profile's
    # held-out error around it (a latency the device meets with probability about q)
    budget_quantile: float | None = None
    early_stopping: EarlyStopping | None = None  # null: every candidate trains all its epochs
    verify_front: str | None = None  # a remote profile: the front's files measured on its device at the end

    def __post_init__(self) -> None:
        check(self.trials >= 1, "search.trials", self.trials, "integers >= 1")
        check(self.budget_quantile is None or 0 < self.budget_quantile < 1, "search.budget_quantile",
              self.budget_quantile, "null or numbers between 0 and 1 (e.g. 0.9)")
        check(self.strategy in STRATEGIES, "search.strategy", self.strategy, ", ".join(STRATEGIES))
        if self.artifacts is not None:
            check(bool(self.artifacts), "search.artifacts", self.artifacts, f"null or a list of {', '.join(ARTIFACT_NAMES)}")
            check_choices(self.artifacts, "search.artifacts", ARTIFACT_NAMES)
        check(self.sampler in SAMPLERS, "search.sampler", self.sampler, ", ".join(SAMPLERS))
        check(self.early_stopping is None or self.strategy != "supernet", "search.early_stopping",
              self.early_stopping, "null with search.strategy supernet (subnetworks inherit weights, no epochs)")
        check(self.population >= 2, "search.population", self.population, "integers >= 2")
        check_choices(self.objectives, "search.objectives", OBJECTIVES)
        check("accuracy" in self.objectives, "search.objectives", self.objectives, "lists that include accuracy")
        check(len(set(self.objectives)) == len(self.objectives), "search.objectives", self.objectives,
              "lists without repeats")
        check(self.precision == "fp32", "search.precision", self.precision,
              "fp32 (int8 and fp16 trials come from compression.quantize)")


@dataclass(frozen=True)
class BaselinesConfig:
    """The handcrafted grid of `hwnas baselines`, adapted to the dataset's input size."""

    mobilenet_v2_widths: tuple[float, ...] = (0.25, 0.35, 0.5)
    mobilenet_v2_resolutions: tuple[int, ...] | None = None  # default: space.resolutions
    shufflenet_v1_groups: tuple[int, ...] = (1, 2, 3, 4, 8)
    shufflenet_v1_width: float = 0.25
    shufflenet_v2_widths: tuple[float, ...] = (0.5,)
    min_feature: int = 3

    def __post_init__(self) -> None:
        for w in self.mobilenet_v2_widths:
            check(0.1 <= w <= 1.4, "baselines.mobilenet_v2_widths", w, "numbers from 0.1 to 1.4")
        for r in self.mobilenet_v2_resolutions or ():
            check(r >= 8, "baselines.mobilenet_v2_resolutions", r, "integers >= 8")
        check_choices(self.shufflenet_v1_groups, "baselines.shufflenet_v1_groups", (1, 2, 3, 4, 8))
        check(0.1 <= self.shufflenet_v1_width <= 2.0, "baselines.shufflenet_v1_width", self.shufflenet_v1_width,
              "numbers from 0.1 to 2.0")
        check_choices(self.shufflenet_v2_widths, "baselines.shufflenet_v2_widths", (0.5, 1.0, 1.5, 2.0))
        check(self.min_feature >= 1, "baselines.min_feature", self.min_feature, "integers >= 1")


@dataclass(frozen=True)
class CompressionSpace:
    """Compression knobs searched beside the architecture (see compress.recipe.sample_recipe)."""

    prune_criteria: tuple[str, ...] = ("none",)  # none, or vocab.PRUNE_CRITERIA
    prune_ratios: tuple[float, ...] = (0.25, 0.5)  # share of hidden channels removed
    distill: tuple[bool, ...] = (True,)  # fine-tune after pruning with the unpruned model as teacher
    finetune_iters: int = 100
    quantize: tuple[str, ...] = ("none",)  # none, or vocab.QUANTIZE_MODES
    calibration_images: int = 256
    rank_ratios: tuple[float, ...] = (1.0,)  # low-rank 1x1 convs and linear layers; 1.0: off
    share_bits: tuple[int, ...] = (0,)  # weight sharing + Huffman, bits per layer; 0: off
    weight_bits: tuple[int, ...] = (8,)  # static int8: bits per layer group (stem, each stage, head), 8 or 4
    quantize_scales: str = "float"  # static int8: float, or pof2 (per-tensor power-of-two scales: Vitis AI's DPU)

    def __post_init__(self) -> None:
        check_choices(self.prune_criteria, "compression.prune_criteria", ("none", *PRUNE_CRITERIA))
        for r in self.prune_ratios:
            check(0 < r < 1, "compression.prune_ratios", r, "numbers between 0 and 1")
        check_choices(self.quantize, "compression.quantize", ("none", *QUANTIZE_MODES))
        check(self.finetune_iters >= 0, "compression.finetune_iters", self.finetune_iters, "integers >= 0")
        check(self.calibration_images >= 1, "compression.calibration_images", self.calibration_images,
              "integers >= 1")
        for r in self.rank_ratios:
            check(0 < r <= 1, "compression.rank_ratios", r, "numbers in (0, 1]; 1.0 turns low-rank off")
        for b in self.share_bits:
            check(0 <= b <= 8, "compression.share_bits", b, "integers from 0 (off) to 8")
        check_choices(self.weight_bits, "compression.weight_bits", (8, 4))
        check(self.quantize_scales in QUANTIZE_SCALES, "compression.quantize_scales", self.quantize_scales,
              ", ".join(QUANTIZE_SCALES))
        for name in ("prune_criteria", "prune_ratios", "distill", "quantize", "rank_ratios", "share_bits",
                     "weight_bits"):
            check(bool(getattr(self, name)), f"compression.{name}", getattr(self, name), "a non-empty list")


@dataclass(frozen=True)
class SearchConfig:
    name: str
    space: SpaceConfig
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    final: FinalConfig = field(default_factory=FinalConfig)  # hwnas train: chosen architectures to convergence
    search: SearchSection = field(default_factory=SearchSection)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    compression: CompressionSpace | None = None  # none: trials export the trained fp32 network
    supernet: SupernetConfig = field(default_factory=SupernetConfig)  # hwnas supernet train

    def __post_init__(self) -> None:
        check(bool(_SAFE_NAME.fullmatch(self.name)), "name", self.name,
              "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the run folder)")
        check(0 <= self.seed < 2**32, "seed", self.seed, "integers from 0 to 2**32 - 1")
        check(self.search.strategy != "supernet" or self.train.distill is None, "train.distill", self.train.distill,
              "null with search.strategy supernet (subnetworks inherit weights; the supernet distills in place)")
        stopping = self.search.early_stopping
        check(stopping is None or stopping.rungs[-1] < self.train.epochs, "search.early_stopping.rungs",
              stopping.rungs if stopping else None, f"epochs below train.epochs ({self.train.epochs}): a rung is "
              "where a trial may stop before its last epoch")


def bundled_searches() -> dict[str, Path]:
    """Search files shipped with the package (``searches/*.yaml``), by stem."""
    root = resources.files("searches")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def resolve_search_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a bundled search such as ``quickstart``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_searches()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise UserError(f"search config {str(name_or_path)!r} not found; give a YAML path or one of: "
                    f"{', '.join(sorted(bundled))}")


def parse_search_config(data: object, *, where: str = "") -> SearchConfig:
    return from_mapping(SearchConfig, data, where)


def load_search_config(name_or_path: str | Path) -> SearchConfig:
    path = resolve_search_path(name_or_path)
    data = load_yaml(path)
    try:
        return parse_search_config(data)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
