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
ReLU before global pooling, as SqueezeNet's). Stage kinds, their tokens and rules are the entries
of :mod:`nas.space.kinds`: ``ir`` MobileNetV2 inverted residual, ``sh`` ShuffleNetV1 unit, and
so on (each entry's ``summary`` says what it builds).

The stride of a stage applies to its first block (unless its kind says otherwise). ``parse(s).format() == s`` for every
canonical string; anything else raises :class:`ArchError` naming the offending token.

>>> parse("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10").stages[0].kernel
3
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from nas.space.kinds import block_kind, stage_kinds, table
from nas.space.errors import ArchError
from nas.space.spec import StageSpec, format_tokens

__all__ = ["ArchError", "ArchSpec", "StageSpec", "feature_size", "format_part", "parse", "stage_inputs", "validate"]

_TOKEN = re.compile(r"([a-z]+)([0-9]+)")  # ASCII digits only; fullmatch: no trailing newline
MAX_ARCH_CHARS = 10_000
# Upper bounds of the numbers in tokens: far beyond any network that trains on one device, low
# enough that pricing or building a string never hangs or exhausts memory. ("in", "r") is the
# input resolution; "r" elsewhere counts repeats. A kind bounds its own tokens (BlockKind.limits).
_LIMITS = {("in", "r"): 1024, "r": 64, "c": 16384, "m": 65536, "k": 15, "e": 32, "g": 256, "n": 8}

# the parts that are not stages: kind -> (required keys in canonical order, optional keys with their defaults)
_FRAME_KEYS: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "in": (("c", "r"), {}),
    "stem": (("k", "s", "c"), {"hs": 0, "mp": 0, "vp": 0}),
    "head": (("c",), {"hs": 0}),
    "fc": (("c",), {"p": 1, "h": 0, "n": 1, "hs": 0, "cv": 0}),
}
_FLAGS = ("se", "hs", "mp", "fg", "vp", "cv", "ps", "ns")
_COUNTS = ("m", "h")  # numbers that may be 0 (0: absent)


def _keys(kind: str) -> tuple[tuple[str, ...], dict[str, int]]:
    if kind in _FRAME_KEYS:
        return _FRAME_KEYS[kind]
    entry = block_kind(kind)
    return entry.required, entry.optional


def _limit(kind: str, key: str) -> int | None:
    own = table()[kind].limits if kind in table() else {}
    return own.get(key, _LIMITS.get((kind, key), _LIMITS.get(key)))


def _is_count(kind: str, key: str) -> bool:
    return key in _COUNTS or (kind in table() and key in table()[kind].counts)


def _is_flag(kind: str, key: str) -> bool:
    return key in _FLAGS or (kind in table() and key in table()[kind].flags)


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
        parts = [format_part("in", {"c": self.in_chs, "r": self.resolution}),
                 format_part("stem", {"k": self.stem_kernel, "s": self.stem_stride, "c": self.stem_chs,
                                       "hs": int(self.stem_hswish), "mp": int(self.stem_pool),
                                       "vp": int(self.stem_valid)})]
        parts += [stage.format() for stage in self.stages]
        if self.head_chs is not None:
            parts.append(format_part("head", {"c": self.head_chs, "hs": int(self.head_hswish)}))
        parts.append(format_part("fc", {"c": self.num_classes, "p": self.pool_size, "h": self.fc_hidden,
                                         "n": self.fc_layers, "hs": int(self.fc_hswish),
                                         "cv": int(self.conv_classifier)}))
        return "-".join(parts)

    def __str__(self) -> str:
        return self.format()


def format_part(kind: str, values: dict[str, int]) -> str:
    """The canonical text of one part (``in``, ``stem``, a stage, ``head``, ``fc``)."""
    required, optional = _keys(kind)
    return format_tokens(kind, required, optional, values)


def _parse_part(part: str) -> tuple[str, dict[str, int]]:
    kind, *tokens = part.split("_")
    if kind not in _FRAME_KEYS and kind not in table():
        raise ArchError(f"unknown block kind {kind!r} in {part!r}; allowed: {', '.join([*_FRAME_KEYS, *table()])}")
    required, optional = _keys(kind)
    allowed = (*required, *optional)
    values: dict[str, int] = {}
    for token in tokens:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ArchError(f"malformed token {token!r} in {part!r}; expected <key><integer>")
        key, number = match.group(1), match.group(2)
        if key not in allowed:
            raise ArchError(f"unknown token {token!r} in {part!r}; {kind} takes {', '.join(allowed)}")
        if key in values:
            raise ArchError(f"repeated token {token!r} in {part!r}")
        if len(number) > 1 and number.startswith("0"):
            raise ArchError(f"non-canonical number in token {token!r} of {part!r}")
        limit = _limit(kind, key)
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
        if _is_flag(kind, key) and key != "se" and value not in (0, 1):
            raise ArchError(f"flag {key}{value} in {part!r} must be {key}0 or {key}1")
        if not _is_flag(kind, key) and value < (0 if _is_count(kind, key) else 1):
            raise ArchError(f"token {key}{value} in {part!r} must be at least 1")
    if tokens != format_part(kind, values).split("_")[1:]:
        raise ArchError(f"tokens of {part!r} out of order; canonical: {format_part(kind, values)!r}")
    return kind, values


def parse(text: str) -> ArchSpec:
    """Parse a canonical architecture string; raise :class:`ArchError` naming what is wrong."""
    text = text.strip()
    if len(text) > MAX_ARCH_CHARS:
        raise ArchError(f"architecture of {len(text):,} characters; allowed: up to {MAX_ARCH_CHARS:,}")
    odd = next((ch for ch in text if not (ch.isascii() and (ch.isalnum() or ch in "_-"))), None)
    if odd is not None:
        raise ArchError(f"character {odd!r} (U+{ord(odd):04X}) in architecture {text[:60]!r}; allowed: ASCII "
                        "letters, digits 0-9, '_' and '-'")
    parts = text.split("-")
    parsed = [_parse_part(p) for p in parts]
    kinds = [k for k, _ in parsed]
    has_head = len(kinds) >= 2 and kinds[-2] == "head"
    body = kinds[2:-2] if has_head else kinds[2:-1]
    if len(kinds) < 4 or kinds[0] != "in" or kinds[1] != "stem" or kinds[-1] != "fc" or not body:
        raise ArchError(f"architecture {text!r} must read in-stem-<stages>-[head]-fc with at least one stage, "
                        f"got {'-'.join(kinds)}")
    stage_parts = parts[2:2 + len(body)]
    bad = [p for k, p in zip(body, stage_parts) if k not in table()]
    if bad:
        raise ArchError(f"{bad[0]!r} is not a stage; stages are {', '.join(stage_kinds())}")
    stages = tuple(StageSpec.from_values(kind, values) for kind, values in parsed[2:2 + len(body)])
    inp, stem, head, fc = parsed[0][1], parsed[1][1], parsed[-2][1] if has_head else None, parsed[-1][1]
    spec = ArchSpec(in_chs=inp["c"], resolution=inp["r"], stem_kernel=stem["k"], stem_stride=stem["s"],
                    stem_chs=stem["c"], stem_pool=bool(stem["mp"]), stem_hswish=bool(stem["hs"]), stages=stages,
                    head_chs=head["c"] if head else None, head_hswish=bool(head and head["hs"]),
                    num_classes=fc["c"], stem_valid=bool(stem["vp"]), pool_size=fc["p"], fc_hidden=fc["h"],
                    fc_layers=fc["n"], fc_hswish=bool(fc["hs"]), conv_classifier=bool(fc["cv"]))
    validate(spec)
    return spec


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
    block_kind(stage.kind).validate(stage, in_chs)


def feature_size(spec: ArchSpec) -> int:
    """Height (= width) of the last stage's output: padded convs and pools halve rounding up,
    VGG's 2x2 pools round down, valid (unpadded) convs and SqueezeNet's ceil-mode pools lose borders."""
    n = (spec.resolution - spec.stem_kernel) // spec.stem_stride + 1 if spec.stem_valid else \
        -(-spec.resolution // spec.stem_stride)
    if spec.stem_pool:  # 3x3 stride 2: ceil mode unpadded after a valid stem, else padded
        n = -(-(n - 3) // 2) + 1 if spec.stem_valid else -(-n // 2)
    for stage in spec.stages:
        if stage.stride == 2:
            n = block_kind(stage.kind).halve(n)
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
