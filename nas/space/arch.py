"""The architecture grammar: typed, frozen specs with one canonical string each.

A network is ``in - stem - stage... - [head] - fc``, parts joined by ``-``, each part a kind
followed by ``_``-separated ``<key><int>`` tokens: required ones in a fixed order, then optional
ones (written only when they differ from their default)::

    in_c1_r28-stem_k3_s1_c16-ir_r2_k5_s2_e6_c24-sh_r2_s2_g2_c48-head_c256-fc_c10

Keys: ``c`` channels (in: input channels; fc: classes), ``r`` resolution (in) or repeats,
``k`` kernel, ``s`` stride, ``e`` expansion ratio, ``g`` groups; flags ``se1`` squeeze-and-excite,
``hs1`` hard-swish instead of ReLU6, ``mp1`` 3x3 stride-2 max pool after the stem, ``vp1`` valid
stem (no padding in the stem conv; its max pool unpadded with ceil mode, as SqueezeNet's), ``fg0``
first 1x1 conv of a ShuffleNetV1 stage left ungrouped; ``m`` the expanded channels of an ``ir`` or
``fir`` stage where they are not a multiple of its input (MobileNetV3's 200 from 80; written only
then, with ``e1``). The classifier ``fc`` takes ``p`` (average pool to p x p before it; default 1,
global pooling), ``h`` and ``n`` (n hidden linear layers of h features before it, ReLU or with
``hs1`` hard-swish: VGG's 4096-4096, MobileNetV3's 1280) and ``cv1`` (a 1x1 conv classifier with
ReLU before global pooling, as SqueezeNet's). Stage kinds (details in :mod:`nas.space.blocks`):

- ``ir``: MobileNetV2 inverted residual (no 1x1 expansion at e=1).
- ``fir``: fused inverted residual (EfficientNet-EdgeTPU): a full kxk conv expanding to in*e (or
  ``m``) channels, carrying the stride, then a 1x1 projection; residual add as ``ir``. ``ps1``: the
  projection carries the stride instead (EfficientNet-EdgeTPU's builder: the kxk conv runs at the
  input's resolution); ``ns1``: no residual add (its builder's "noskip" first stage).
- ``ds``: MobileNetV1 depthwise-separable conv.
- ``sh``: ShuffleNetV1 unit (group 1x1 convs, channel shuffle, bottleneck out/4).
- ``sh2``: ShuffleNetV2 unit (channel split, concat, shuffle).
- ``fb``: FBNet block as HW-NAS-Bench builds it (1x1 expansion conv even at e=1, grouped 1x1s).
- ``skip``: FBNet's skip op: identity, or a strided 1x1 conv + BN where the shape changes.
- ``rb``: ResNet basic block (two 3x3 convs, residual add; a strided 1x1 conv + BN shortcut where
  the shape changes).
- ``rbn``: ResNet bottleneck block (1x1 to c/4, 3x3 carrying the stride as torchvision's ResNet
  v1.5 does, 1x1 to c; residual add, shortcut as ``rb``).
- ``vgg``: VGG's plain 3x3 conv + ReLU, ``r`` of them; at ``s2`` a 2x2 max pool after the last
  (VGG's stacks end in one), not a strided conv.
- ``fire``: SqueezeNet's fire module: 1x1 squeeze to c/8, then 1x1 and 3x3 expands of c/2 each,
  concatenated; at ``s2`` a 3x3 stride-2 max pool (ceil mode) before the first, as SqueezeNet's.

The stride of a stage applies to its first block (``vgg``: after its last). ``parse(s).format() == s`` for every
canonical string; anything else raises :class:`ArchError` naming the offending token.

>>> parse("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10").stages[0].kernel
3
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from nas.core.errors import UserError
from nas.core.vocab import BLOCK_TYPES

_TOKEN = re.compile(r"^([a-z]+)(\d+)$")
# Upper bounds of the numbers in tokens: far beyond any network that trains on one device, low
# enough that pricing or building a string never hangs or exhausts memory. ("in", "r") is the
# input resolution; "r" elsewhere counts repeats.
_LIMITS = {("in", "r"): 1024, "r": 64, "c": 16384, "m": 65536, "k": 15, "e": 32, "g": 256, "n": 8}
STAGE_KINDS = (*BLOCK_TYPES, "skip")

# kind -> (required keys in canonical order, optional keys with their defaults)
_KEYS: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "in": (("c", "r"), {}),
    "stem": (("k", "s", "c"), {"hs": 0, "mp": 0, "vp": 0}),
    "ir": (("r", "k", "s", "e", "c"), {"m": 0, "se": 0, "hs": 0}),
    "fir": (("r", "k", "s", "e", "c"), {"m": 0, "se": 0, "hs": 0, "ps": 0, "ns": 0}),
    "ds": (("r", "k", "s", "c"), {"se": 0, "hs": 0}),
    "sh": (("r", "s", "g", "c"), {"fg": 1}),
    "sh2": (("r", "s", "c"), {}),
    "fb": (("r", "k", "s", "e", "g", "c"), {}),
    "skip": (("s", "c"), {}),
    "rb": (("r", "s", "c"), {}),
    "rbn": (("r", "s", "c"), {}),
    "vgg": (("r", "s", "c"), {}),
    "fire": (("r", "s", "c"), {}),
    "head": (("c",), {"hs": 0}),
    "fc": (("c",), {"p": 1, "h": 0, "n": 1, "hs": 0, "cv": 0}),
}
_FLAGS = ("se", "hs", "mp", "fg", "vp", "cv", "ps", "ns")
_COUNTS = ("m", "h")  # numbers that may be 0 (0: absent)


class ArchError(UserError):
    """A malformed or impossible architecture string."""


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` blocks of one kind; only the first block is strided."""

    kind: str
    repeats: int
    stride: int
    out_chs: int
    kernel: int = 3
    exp_ratio: int = 1
    groups: int = 1
    se: int = 0  # 0: none; 1: MobileNetV3's SE (expanded/4, hard-sigmoid); 2: MnasNet's (input/4, sigmoid)
    hswish: bool = False
    first_grouped: bool = True
    mid_chs: int = 0  # ir/fir: expanded channels when not in_chs * exp_ratio (0: in_chs * exp_ratio)
    proj_stride: bool = False  # fir: the 1x1 projection carries the stride, not the kxk conv
    no_skip: bool = False  # fir: no residual add even where the shape allows one

    def values(self) -> dict[str, int]:
        return {"r": self.repeats, "k": self.kernel, "s": self.stride, "e": self.exp_ratio, "g": self.groups,
                "c": self.out_chs, "se": int(self.se), "hs": int(self.hswish), "fg": int(self.first_grouped),
                "m": self.mid_chs, "ps": int(self.proj_stride), "ns": int(self.no_skip)}

    def expanded(self, in_chs: int) -> int:
        """Expanded channels of an ir/fir block reading ``in_chs``."""
        return self.mid_chs or in_chs * self.exp_ratio

    def format(self) -> str:
        return _format_part(self.kind, self.values())


@dataclass(frozen=True)
class ArchSpec:
    """A whole network; build it with :func:`nas.space.builder.build`. ``head_chs`` None: no head conv."""

    in_chs: int
    resolution: int
    stem_chs: int
    stem_stride: int
    stages: tuple[StageSpec, ...]
    head_chs: int | None
    num_classes: int
    stem_kernel: int = 3
    stem_pool: bool = False
    stem_hswish: bool = False
    head_hswish: bool = False
    stem_valid: bool = False  # no padding in the stem conv, unpadded ceil-mode stem pool (SqueezeNet)
    pool_size: int = 1  # average pool to pool_size x pool_size before the classifier (1: global)
    fc_hidden: int = 0  # features of each hidden linear layer before the classifier (0: none)
    fc_layers: int = 1  # hidden linear layers, when fc_hidden
    fc_hswish: bool = False  # hard-swish after the hidden layers (else ReLU)
    conv_classifier: bool = False  # 1x1 conv + ReLU classifier before global pooling (SqueezeNet)

    def format(self) -> str:
        parts = [_format_part("in", {"c": self.in_chs, "r": self.resolution}),
                 _format_part("stem", {"k": self.stem_kernel, "s": self.stem_stride, "c": self.stem_chs,
                                       "hs": int(self.stem_hswish), "mp": int(self.stem_pool),
                                       "vp": int(self.stem_valid)})]
        parts += [stage.format() for stage in self.stages]
        if self.head_chs is not None:
            parts.append(_format_part("head", {"c": self.head_chs, "hs": int(self.head_hswish)}))
        parts.append(_format_part("fc", {"c": self.num_classes, "p": self.pool_size, "h": self.fc_hidden,
                                         "n": self.fc_layers, "hs": int(self.fc_hswish),
                                         "cv": int(self.conv_classifier)}))
        return "-".join(parts)

    def __str__(self) -> str:
        return self.format()


def _format_part(kind: str, values: dict[str, int]) -> str:
    required, optional = _KEYS[kind]
    tokens = [f"{k}{values[k]}" for k in required]
    tokens += [f"{k}{values[k]}" for k, default in optional.items() if values[k] != default]
    return "_".join([kind, *tokens])


def _parse_part(part: str) -> tuple[str, dict[str, int]]:
    kind, *tokens = part.split("_")
    if kind not in _KEYS:
        raise ArchError(f"unknown block kind {kind!r} in {part!r}; allowed: {', '.join(_KEYS)}")
    required, optional = _KEYS[kind]
    allowed = (*required, *optional)
    values: dict[str, int] = {}
    for token in tokens:
        match = _TOKEN.match(token)
        if match is None:
            raise ArchError(f"malformed token {token!r} in {part!r}; expected <key><integer>")
        key, number = match.group(1), match.group(2)
        if key not in allowed:
            raise ArchError(f"unknown token {token!r} in {part!r}; {kind} takes {', '.join(allowed)}")
        if key in values:
            raise ArchError(f"repeated token {token!r} in {part!r}")
        if len(number) > 1 and number.startswith("0"):
            raise ArchError(f"non-canonical number in token {token!r} of {part!r}")
        limit = _LIMITS.get((kind, key), _LIMITS.get(key))
        if limit is not None and (len(number) > 6 or int(number) > limit):
            raise ArchError(f"token {key}{number[:12]}{'...' if len(number) > 12 else ''} in {kind} too large; "
                            f"allowed: {key} up to {limit}")
        values[key] = int(number)
    missing = [k for k in required if k not in values]
    if missing:
        raise ArchError(f"{part!r} lacks {', '.join(missing)}; {kind} takes {', '.join(allowed)}")
    for key, default in optional.items():
        if key in values and values[key] == default:
            raise ArchError(f"token {key}{default} in {part!r} is the default; canonical strings omit it")
        values.setdefault(key, default)
    for key, value in values.items():
        if key == "se" and value not in (0, 1, 2):
            raise ArchError(f"token se{value} in {part!r} not allowed; allowed: se1 (MobileNetV3's squeeze-and-excite) "
                            "or se2 (MnasNet's and EfficientNet's: squeezed to a quarter of the block's input, sigmoid)")
        if key in _FLAGS and key != "se" and value not in (0, 1):
            raise ArchError(f"flag {key}{value} in {part!r} must be {key}0 or {key}1")
        if key not in _FLAGS and value < (0 if key in _COUNTS else 1):
            raise ArchError(f"token {key}{value} in {part!r} must be at least 1")
    if tokens != _format_part(kind, values).split("_")[1:]:
        raise ArchError(f"tokens of {part!r} out of order; canonical: {_format_part(kind, values)!r}")
    return kind, values


def parse(text: str) -> ArchSpec:
    """Parse a canonical architecture string; raise :class:`ArchError` naming what is wrong."""
    parts = text.strip().split("-")
    parsed = [_parse_part(p) for p in parts]
    kinds = [k for k, _ in parsed]
    has_head = len(kinds) >= 2 and kinds[-2] == "head"
    body = kinds[2:-2] if has_head else kinds[2:-1]
    if len(kinds) < 4 or kinds[0] != "in" or kinds[1] != "stem" or kinds[-1] != "fc" or not body:
        raise ArchError(f"architecture {text!r} must read in-stem-<stages>-[head]-fc with at least one stage, "
                        f"got {'-'.join(kinds)}")
    stage_parts = parts[2:2 + len(body)]
    bad = [p for k, p in zip(body, stage_parts) if k not in STAGE_KINDS]
    if bad:
        raise ArchError(f"{bad[0]!r} is not a stage; stages are {', '.join(STAGE_KINDS)}")
    stages = tuple(_stage(kind, values) for kind, values in parsed[2:2 + len(body)])
    inp, stem, head, fc = parsed[0][1], parsed[1][1], parsed[-2][1] if has_head else None, parsed[-1][1]
    spec = ArchSpec(in_chs=inp["c"], resolution=inp["r"], stem_kernel=stem["k"], stem_stride=stem["s"],
                    stem_chs=stem["c"], stem_pool=bool(stem["mp"]), stem_hswish=bool(stem["hs"]), stages=stages,
                    head_chs=head["c"] if head else None, head_hswish=bool(head and head["hs"]),
                    num_classes=fc["c"], stem_valid=bool(stem["vp"]), pool_size=fc["p"], fc_hidden=fc["h"],
                    fc_layers=fc["n"], fc_hswish=bool(fc["hs"]), conv_classifier=bool(fc["cv"]))
    validate(spec)
    return spec


def _stage(kind: str, v: dict[str, int]) -> StageSpec:
    return StageSpec(kind, repeats=v.get("r", 1), stride=v["s"], out_chs=v["c"], kernel=v.get("k", 3),
                     exp_ratio=v.get("e", 1), groups=v.get("g", 1), se=v.get("se", 0),
                     hswish=bool(v.get("hs", 0)), first_grouped=bool(v.get("fg", 1)), mid_chs=v.get("m", 0),
                     proj_stride=bool(v.get("ps", 0)), no_skip=bool(v.get("ns", 0)))


def shuffle_mid_chs(out_chs: int) -> int:
    """Bottleneck width of a ShuffleNetV1 unit: a quarter of the unit's output, as in the paper."""
    return out_chs // 4


def stage_inputs(spec: ArchSpec) -> list[int]:
    """Input channels of each stage's first block."""
    ins, chs = [], spec.stem_chs
    for stage in spec.stages:
        ins.append(chs)
        chs = stage.out_chs
    return ins


def validate(spec: ArchSpec) -> None:
    """Reject specs that cannot be built, naming the part and the rule broken."""
    kernels = [("stem", spec.stem_kernel)] + [(s.format(), s.kernel) for s in spec.stages]
    for name, k in kernels:
        if k % 2 == 0:
            raise ArchError(f"kernel {k} in {name!r} must be odd")
    strides = [("stem", spec.stem_stride)] + [(s.format(), s.stride) for s in spec.stages]
    for name, stride in strides:
        if stride not in (1, 2):
            raise ArchError(f"stride {stride} in {name!r} not allowed; allowed: 1, 2")
    for stage, in_chs in zip(spec.stages, stage_inputs(spec)):
        _validate_stage(stage, in_chs)
    _validate_classifier(spec)
    total_stride = 2 if spec.stem_pool else 1
    for _, stride in strides:
        total_stride *= stride
    if spec.resolution < total_stride:
        raise ArchError(f"resolution {spec.resolution} is smaller than the total stride {total_stride}")
    if feature_size(spec) < 1 or (spec.stem_valid and spec.resolution < spec.stem_kernel):
        raise ArchError(f"resolution {spec.resolution} leaves no pixels after the unpadded stem and pools")


def _validate_stage(stage: StageSpec, in_chs: int) -> None:
    name, g, out = stage.format(), stage.groups, stage.out_chs
    if stage.kind == "sh":
        mid = shuffle_mid_chs(out)
        if out % g or mid < 1 or mid % g:
            raise ArchError(f"{name!r}: channels {out} and bottleneck {out}//4={mid} must divide by groups {g}")
    elif stage.kind == "rbn":
        if out % 4:
            raise ArchError(f"{name!r}: channels {out} must divide by 4 (the bottleneck is a quarter of them)")
    elif stage.kind == "sh2":
        if out % 2:
            raise ArchError(f"{name!r}: channels {out} must be even (the unit splits them in two)")
    elif stage.kind == "fire" and out % 8:
        raise ArchError(f"{name!r}: channels {out} must divide by 8 (squeeze c/8, two expands of c/2)")
    elif stage.kind in ("ir", "fir") and stage.mid_chs:
        if stage.exp_ratio != 1:
            raise ArchError(f"{name!r}: give expanded channels as e or as m, not both (m goes with e1)")
        if stage.mid_chs % in_chs == 0:
            raise ArchError(f"{name!r}: {stage.mid_chs} expanded channels are {stage.mid_chs // in_chs}x the input "
                            f"{in_chs}; canonical: e{stage.mid_chs // in_chs} without m")
    elif stage.kind == "fb" and (in_chs * stage.exp_ratio % g or out * stage.exp_ratio % g or out % g):
        raise ArchError(f"{name!r}: expanded channels {in_chs}*{stage.exp_ratio} and output {out} must "
                        f"divide by groups {g}")


def feature_size(spec: ArchSpec) -> int:
    """Height (= width) of the last stage's output: padded convs and pools halve rounding up,
    VGG's 2x2 pools round down, valid (unpadded) convs and SqueezeNet's ceil-mode pools lose borders."""
    def halve(n: int, kind: str) -> int:
        if kind == "vgg":
            return n // 2
        if kind == "fire":
            return -(-(n - 3) // 2) + 1
        return -(-n // 2)

    n = (spec.resolution - spec.stem_kernel) // spec.stem_stride + 1 if spec.stem_valid else \
        -(-spec.resolution // spec.stem_stride)
    if spec.stem_pool:
        n = halve(n, "fire" if spec.stem_valid else "ir")
    for stage in spec.stages:
        if stage.stride == 2:
            n = halve(n, stage.kind)
    return n


def _validate_classifier(spec: ArchSpec) -> None:
    fc = f"fc_c{spec.num_classes}"
    if spec.pool_size > 1 and feature_size(spec) % spec.pool_size:
        raise ArchError(f"{fc}_p{spec.pool_size}: the last feature map is {feature_size(spec)}x{feature_size(spec)}, "
                        f"which does not pool evenly to {spec.pool_size}x{spec.pool_size}; p must divide it")
    if spec.conv_classifier and (spec.fc_hidden or spec.pool_size != 1):
        raise ArchError(f"{fc}: a conv classifier (cv1) pools globally after it; it takes no h, n or p")
    if not spec.fc_hidden and (spec.fc_layers != 1 or spec.fc_hswish):
        raise ArchError(f"{fc}: n and hs describe hidden layers; give their width h too")
