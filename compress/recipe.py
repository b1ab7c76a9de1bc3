"""A compression recipe: what to do to a trained model, validated like every hwnas config
(unknown keys rejected, one-line errors naming the allowed values). Round-trips through JSON so a
trial can store it and ``hwnas compress`` can take it from a file or inline.

    prune: {criterion: l1, target_macs: 0.5, scope: per-layer, steps: 2, finetune_iters: 300,
            distill: {temperature: 4, alpha: 0.9}}
    quantize: {mode: static, calibration_method: minmax, calibration_images: 256}
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from optuna.trial import BaseTrial

from compress.lowbit import BITS
from compress.prune import CRITERIA, SCOPES
from compress.quantize import ACTIVATION_TYPES, CALIBRATION_METHODS, FORMATS, MODES, SCALES
from nas.core.config import CompressionSpace
from nas.core.errors import UserError
from nas.core.schema import check, from_mapping, load_yaml, parse_yaml
from nas.deploy.tflite_int8 import Int8Options

T = TypeVar("T", bool, int, float, str)  # the types of an Optuna categorical choice


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
    target_params: float | None = None  # ... or the share of its parameters (file size, on-chip memory)
    target_latency_ms: float | None = None  # ... or a predicted latency on the target profile (own models)
    stage_ratios: dict[str, float] = field(default_factory=dict)  # own models, with ratio: a ratio per stage
    scope: str = "per-layer"
    round_to: int = 8
    streams: bool = False  # also the residual-coupled channels between inverted residuals (compress.prune)
    steps: int = 1  # iterative: prune a share, fine-tune, repeat
    finetune_iters: int = 200  # per step
    lr: float = 1e-3
    batch_size: int = 128
    taylor_batches: int = 8
    distill: DistillConfig | None = None  # fine-tune with the unpruned model as teacher
    # network slimming: train this many iterations with an L1 penalty of this strength on the
    # BatchNorm scales before pruning by them (criterion bn), so that unneeded channels fade out
    slimming: float = 0.0
    slimming_iters: int = 0

    def __post_init__(self) -> None:
        check(self.criterion in CRITERIA, "prune.criterion", self.criterion, ", ".join(CRITERIA))
        check(self.scope in SCOPES, "prune.scope", self.scope, ", ".join(SCOPES))
        given = [k for k in ("ratio", "target_macs", "target_params", "target_latency_ms")
                 if getattr(self, k) is not None]
        check(len(given) == 1, "prune", "/".join(given) or "none of ratio/target_macs/target_params/target_latency_ms",
              "exactly one of ratio, target_macs, target_params or target_latency_ms")
        if self.target_latency_ms is not None:
            check(self.target_latency_ms > 0, "prune.target_latency_ms", self.target_latency_ms, "numbers > 0")
        check(not self.stage_ratios or self.ratio is not None, "prune.stage_ratios", self.stage_ratios,
              "per-stage ratios together with ratio (the ratio of layers outside the named stages)")
        for stage, r in self.stage_ratios.items():
            check(0 <= r < 1, f"prune.stage_ratios.{stage}", r, "0 <= ratio < 1")
        if self.ratio is not None:
            check(0 <= self.ratio < 1, "prune.ratio", self.ratio, "0 <= ratio < 1")
        if self.target_macs is not None:
            check(0 < self.target_macs <= 1, "prune.target_macs", self.target_macs, "0 < share <= 1")
        if self.target_params is not None:
            check(0 < self.target_params <= 1, "prune.target_params", self.target_params, "0 < share <= 1")
        check(self.round_to >= 1, "prune.round_to", self.round_to, "integers >= 1")
        check(self.steps >= 1, "prune.steps", self.steps, "integers >= 1")
        check(self.finetune_iters >= 0, "prune.finetune_iters", self.finetune_iters, "integers >= 0")
        check(self.slimming >= 0, "prune.slimming", self.slimming, "numbers >= 0")
        check(self.slimming_iters >= 0, "prune.slimming_iters", self.slimming_iters, "integers >= 0")
        check((self.slimming > 0) == (self.slimming_iters > 0), "prune.slimming", self.slimming,
              "a strength > 0 together with slimming_iters > 0, or neither")
        check(self.slimming == 0 or self.criterion == "bn", "prune.slimming", self.slimming,
              "0 unless criterion is bn (slimming trains the BatchNorm scales that bn prunes by)")


@dataclass(frozen=True)
class SparsityConfig:
    """Unstructured magnitude pruning, raised along TF-MOT's polynomial schedule while fine-tuning."""

    final: float = 0.5
    initial: float = 0.0
    scope: str = "per-layer"  # global thresholds can empty small layers (depthwise) at high sparsity
    finetune_iters: int = 200  # the schedule ramps over the first 75%, then the mask is fixed
    mask_every: int = 10
    lr: float = 5e-4
    batch_size: int = 128
    distill: DistillConfig | None = None

    def __post_init__(self) -> None:
        check(0 < self.final < 1, "sparsity.final", self.final, "0 < final < 1")
        check(0 <= self.initial <= self.final, "sparsity.initial", self.initial, "0 <= initial <= final")
        check(self.scope in ("global", "per-layer"), "sparsity.scope", self.scope, "global, per-layer")
        check(self.finetune_iters >= 0, "sparsity.finetune_iters", self.finetune_iters, "integers >= 0")
        check(self.mask_every >= 1, "sparsity.mask_every", self.mask_every, "integers >= 1")


@dataclass(frozen=True)
class LowRankConfig:
    rank_ratio: float = 0.5  # kept rank as a share of min(out, in) of each 1x1 conv and linear layer
    finetune_iters: int = 0
    lr: float = 5e-4
    batch_size: int = 128

    def __post_init__(self) -> None:
        check(0 < self.rank_ratio <= 1, "lowrank.rank_ratio", self.rank_ratio, "0 < ratio <= 1")
        check(self.finetune_iters >= 0, "lowrank.finetune_iters", self.finetune_iters, "integers >= 0")


@dataclass(frozen=True)
class ShareConfig:
    """Weight sharing + Huffman coding (Deep Compression)."""

    bits: int = 4  # centroids per layer: 2^bits
    layer_bits: dict[str, int] = field(default_factory=dict)  # per-layer overrides, by module name

    def __post_init__(self) -> None:
        for name, b in {"bits": self.bits, **self.layer_bits}.items():
            check(1 <= b <= 8, f"share.{name}", b, "integers from 1 to 8")


@dataclass(frozen=True)
class QuantizeConfig:
    mode: str = "static"
    calibration_method: str = "minmax"
    calibration_images: int = 256  # from the training split
    per_channel: bool = True
    format: str = "qdq"  # static only: qdq (portable) or qoperator (onnxruntime's integer ops, smaller file)
    activations: str = "uint8"  # static only: uint8 (onnxruntime's fast x86 U8S8 kernels) or int8
    weight_bits: dict[str, int] = field(default_factory=dict)  # static only: 8 or 4 per group (compress.lowbit)
    qat_iters: int = 0  # > 0: quantization-aware fine-tuning first (compress.qat), static mode only
    qat_lr: float = 2e-4
    scales: str = "float"  # static only: float, or pof2 (power-of-two scales, per-tensor int8: Vitis AI's DPU)

    def __post_init__(self) -> None:
        check(self.mode in MODES, "quantize.mode", self.mode, ", ".join(MODES))
        check(self.calibration_method in CALIBRATION_METHODS, "quantize.calibration_method",
              self.calibration_method, ", ".join(CALIBRATION_METHODS))
        check(self.format in FORMATS, "quantize.format", self.format, ", ".join(FORMATS))
        check(self.activations in ACTIVATION_TYPES, "quantize.activations", self.activations,
              ", ".join(ACTIVATION_TYPES))
        check(self.calibration_images >= 1, "quantize.calibration_images", self.calibration_images, "integers >= 1")
        check(self.scales in SCALES, "quantize.scales", self.scales, ", ".join(SCALES))
        check(self.scales == "float" or (self.mode == "static" and self.format == "qdq" and not self.per_channel
                                         and self.activations == "int8"),
              "quantize.scales", self.scales, "pof2 only with mode: static, format: qdq, per_channel: false, "
              "activations: int8 (Vitis AI's DPU scheme)")
        check(self.qat_iters >= 0, "quantize.qat_iters", self.qat_iters, "integers >= 0")
        check(self.qat_iters == 0 or self.mode == "static", "quantize.qat_iters", self.qat_iters,
              "0 unless mode is static (QAT simulates static int8)")
        check(not self.weight_bits or self.mode == "static", "quantize.weight_bits", self.weight_bits,
              "empty unless mode is static")
        for group, bits in self.weight_bits.items():
            check(bits in BITS, f"quantize.weight_bits.{group}", bits, ", ".join(map(str, BITS)))


def tflite_int8_options(recipe: Recipe | None) -> Int8Options:
    """The recipe's static int8 choices as the int8 TFLite file takes them (one int8 path: what a
    recipe says about quantization applies to whichever file its target runs); defaults when the
    recipe quantizes otherwise or not at all."""
    q = recipe.quantize if recipe is not None else None
    if q is None or q.mode != "static":
        return Int8Options()
    return Int8Options(calibration_images=q.calibration_images, per_channel=q.per_channel,
                       calibration_method=q.calibration_method, scales=q.scales, qat=q.qat_iters > 0)


@dataclass(frozen=True)
class Recipe:
    """Steps run in this order: prune, sparsity, lowrank, share, quantize."""

    prune: PruneConfig | None = None
    sparsity: SparsityConfig | None = None
    lowrank: LowRankConfig | None = None
    share: ShareConfig | None = None
    quantize: QuantizeConfig | None = None

    def __post_init__(self) -> None:
        check(self.share is None or self.quantize is None, "recipe", "share + quantize",
              "one of share (fp32 centroids, Huffman-coded) or quantize (int8/fp16)")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def precision(self) -> str:
        if self.quantize is None:
            return "fp32"
        return "fp16" if self.quantize.mode == "fp16" else "int8"


def sample_recipe(trial: BaseTrial, space: CompressionSpace, groups: Sequence[str] = ()) -> Recipe | None:
    """The compression knobs of one trial (parameters ``c.prune``, ``c.prune_ratio``, ``c.distill``,
    ``c.rank_ratio``, ``c.share_bits``, ``c.quantize``, and with static int8 ``c.bits.<group>`` for
    each of ``groups`` (compress.lowbit.group_names); a knob with one option adds no parameter);
    None when the trial compresses nothing."""
    def choose(name: str, options: tuple[T, ...]) -> T:
        return options[0] if len(options) == 1 else trial.suggest_categorical(name, list(options))

    prune, quantize = None, None
    criterion = choose("c.prune", space.prune_criteria)
    if criterion != "none":
        distill = choose("c.distill", space.distill)
        prune = PruneConfig(criterion=criterion, ratio=choose("c.prune_ratio", space.prune_ratios),
                            finetune_iters=space.finetune_iters, distill=DistillConfig() if distill else None)
    rank = choose("c.rank_ratio", space.rank_ratios)
    lowrank = LowRankConfig(rank_ratio=rank, finetune_iters=space.finetune_iters) if rank < 1 else None
    share_bits = choose("c.share_bits", space.share_bits)
    share = ShareConfig(bits=share_bits) if share_bits else None
    mode = "none" if share else choose("c.quantize", space.quantize)  # shared weights stay fp32 centroids
    if mode != "none":
        bits = {g: choose(f"c.bits.{g}", space.weight_bits) for g in groups} if mode == "static" else {}
        pof2 = {"per_channel": False, "activations": "int8", "scales": "pof2"} \
            if mode == "static" and space.quantize_scales == "pof2" else {}
        quantize = QuantizeConfig(mode=mode, calibration_images=space.calibration_images,
                                  weight_bits={g: b for g, b in bits.items() if b != 8}, **pof2)  # type: ignore[arg-type]
    if not (prune or quantize or lowrank or share):
        return None
    return Recipe(prune=prune, lowrank=lowrank, share=share, quantize=quantize)


def parse_recipe(data: object, *, where: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of prune, sparsity, lowrank, share, quantize; got {data!r}")
    return from_mapping(Recipe, data, where)


def load_recipe(text_or_path: str) -> Recipe:
    """A recipe from a YAML/JSON file path or an inline YAML/JSON mapping."""
    path = Path(text_or_path)
    if path.suffix in (".yaml", ".yml", ".json") and not path.is_file():
        raise UserError(f"recipe file {path} not found; give a file or an inline mapping like "
                        "'{quantize: {mode: static}}'")
    is_file = len(text_or_path) < 4096 and path.is_file()
    data = load_yaml(path) if is_file else parse_yaml(text_or_path, "recipe")
    return parse_recipe(data, where=str(path) if is_file else "recipe")
