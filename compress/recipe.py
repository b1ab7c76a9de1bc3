"""A compression recipe: what to do to a trained model, validated like every hwnas config
(unknown keys rejected, one-line errors naming the allowed values). Round-trips through JSON so a
trial can store it and ``hwnas compress`` can take it from a file or inline.

    prune: {criterion: l1, target_macs: 0.5, scope: per-layer, steps: 2, finetune_iters: 300,
            distill: {temperature: 4, alpha: 0.9}}
    quantize: {mode: static, calibration_method: minmax, calibration_images: 256}
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from compress.prune import CRITERIA, SCOPES
from compress.quantize import CALIBRATION_METHODS, MODES
from optuna.trial import BaseTrial

from nas._schema import check, from_mapping
from nas.config import CompressionSpace
from nas.errors import UserError


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 4.0
    alpha: float = 0.9

    def __post_init__(self) -> None:
        check(self.temperature > 0, "distill.temperature", self.temperature, "numbers > 0")
        check(0 <= self.alpha <= 1, "distill.alpha", self.alpha, "0 <= alpha <= 1")


@dataclass(frozen=True)
class PruneConfig:
    criterion: str = "l1"
    ratio: float | None = None  # share of hidden channels to remove ...
    target_macs: float | None = None  # ... or the share of the model's MACs to keep
    scope: str = "per-layer"
    round_to: int = 8
    steps: int = 1  # iterative: prune a share, fine-tune, repeat
    finetune_iters: int = 200  # per step
    lr: float = 1e-3
    batch_size: int = 128
    taylor_batches: int = 8
    distill: DistillConfig | None = None  # fine-tune with the unpruned model as teacher

    def __post_init__(self) -> None:
        check(self.criterion in CRITERIA, "prune.criterion", self.criterion, ", ".join(CRITERIA))
        check(self.scope in SCOPES, "prune.scope", self.scope, ", ".join(SCOPES))
        check((self.ratio is None) != (self.target_macs is None), "prune", "ratio/target_macs",
              "exactly one of ratio or target_macs")
        if self.ratio is not None:
            check(0 <= self.ratio < 1, "prune.ratio", self.ratio, "0 <= ratio < 1")
        if self.target_macs is not None:
            check(0 < self.target_macs <= 1, "prune.target_macs", self.target_macs, "0 < share <= 1")
        check(self.round_to >= 1, "prune.round_to", self.round_to, "integers >= 1")
        check(self.steps >= 1, "prune.steps", self.steps, "integers >= 1")
        check(self.finetune_iters >= 0, "prune.finetune_iters", self.finetune_iters, "integers >= 0")


@dataclass(frozen=True)
class QuantizeConfig:
    mode: str = "static"
    calibration_method: str = "minmax"
    calibration_images: int = 256  # from the training split
    per_channel: bool = True

    def __post_init__(self) -> None:
        check(self.mode in MODES, "quantize.mode", self.mode, ", ".join(MODES))
        check(self.calibration_method in CALIBRATION_METHODS, "quantize.calibration_method",
              self.calibration_method, ", ".join(CALIBRATION_METHODS))
        check(self.calibration_images >= 1, "quantize.calibration_images", self.calibration_images, "integers >= 1")


@dataclass(frozen=True)
class Recipe:
    prune: PruneConfig | None = None
    quantize: QuantizeConfig | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def precision(self) -> str:
        if self.quantize is None:
            return "fp32"
        return "fp16" if self.quantize.mode == "fp16" else "int8"


def sample_recipe(trial: BaseTrial, space: CompressionSpace) -> Recipe | None:
    """The compression knobs of one trial (parameters ``c.prune``, ``c.prune_ratio``,
    ``c.distill``, ``c.quantize``); None when the trial compresses nothing."""
    def choose(name: str, options: tuple[object, ...]) -> object:
        return options[0] if len(options) == 1 else trial.suggest_categorical(name, list(options))

    prune, quantize = None, None
    criterion = choose("c.prune", space.prune_criteria)
    if criterion != "none":
        distill = choose("c.distill", space.distill)
        prune = PruneConfig(criterion=str(criterion), ratio=float(choose("c.prune_ratio", space.prune_ratios)),  # type: ignore[arg-type]
                            finetune_iters=space.finetune_iters, distill=DistillConfig() if distill else None)
    mode = choose("c.quantize", space.quantize)
    if mode != "none":
        quantize = QuantizeConfig(mode=str(mode), calibration_images=space.calibration_images)
    return Recipe(prune=prune, quantize=quantize) if prune or quantize else None


def parse_recipe(data: object, *, where: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping with prune and/or quantize, got {data!r}")
    return from_mapping(Recipe, data, where)


def load_recipe(text_or_path: str) -> Recipe:
    """A recipe from a YAML/JSON file path or an inline YAML/JSON mapping."""
    path = Path(text_or_path)
    if path.suffix in (".yaml", ".yml", ".json") and not path.is_file():
        raise UserError(f"recipe file {path} not found; give a file or an inline mapping like "
                        "'{quantize: {mode: static}}'")
    text = path.read_text() if path.is_file() else text_or_path
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"recipe is not valid YAML or JSON: {str(exc).splitlines()[0]}") from None
    return parse_recipe(data, where=str(path) if path.is_file() else "recipe")
