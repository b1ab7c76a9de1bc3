"""The architecture grammar: typed, frozen specs with one canonical string each.

A network is ``in - stem - stage... - [head] - fc``, parts joined by ``-``, each part a kind
followed by ``_``-separated ``<key><int>`` tokens: required ones in a fixed order, then optional
ones (written only when they differ from their default)::

    in_c1_r28-stem_k3_s1_c16-ir_r2_k5_s2_e6_c24-sh_r2_s2_g2_c48-head_c256-fc_c10

Keys: ``c`` channels (in: input channels; fc: classes), ``r`` resolution (in) or repeats,
``k`` kernel, ``s`` stride, ``e`` expansion ratio, ``g`` groups; flags ``se1`` squeeze-and-excite,
``hs1`` hard-swish instead of ReLU6, ``mp1`` 3x3 stride-2 max pool after the stem, ``fg0`` first
1x1 conv of a ShuffleNetV1 stage left ungrouped. Stage kinds (details in :mod:`nas.space.blocks`):

- ``ir``: MobileNetV2 inverted residual (no 1x1 expansion at e=1).
- ``ds``: MobileNetV1 depthwise-separable conv.
- ``sh``: ShuffleNetV1 unit (group 1x1 convs, channel shuffle, bottleneck out/4).
- ``sh2``: ShuffleNetV2 unit (channel split, concat, shuffle).
- ``fb``: FBNet block as HW-NAS-Bench builds it (1x1 expansion conv even at e=1, grouped 1x1s).
- ``skip``: FBNet's skip op: identity, or a strided 1x1 conv + BN where the shape changes.
- ``rb``: ResNet basic block (two 3x3 convs, residual add; a strided 1x1 conv + BN shortcut where
  the shape changes).
- ``rbn``: ResNet bottleneck block (1x1 to c/4, 3x3 carrying the stride as torchvision's ResNet
  v1.5 does, 1x1 to c; residual add, shortcut as ``rb``).

The stride of a stage applies to its first block. ``parse(s).format() == s`` for every
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
STAGE_KINDS = (*BLOCK_TYPES, "skip")

# kind -> (required keys in canonical order, optional keys with their defaults)
_KEYS: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "in": (("c", "r"), {}),
    "stem": (("k", "s", "c"), {"hs": 0, "mp": 0}),
    "ir": (("r", "k", "s", "e", "c"), {"se": 0, "hs": 0}),
    "ds": (("r", "k", "s", "c"), {"se": 0, "hs": 0}),
    "sh": (("r", "s", "g", "c"), {"fg": 1}),
    "sh2": (("r", "s", "c"), {}),
    "fb": (("r", "k", "s", "e", "g", "c"), {}),
    "skip": (("s", "c"), {}),
    "rb": (("r", "s", "c"), {}),
    "rbn": (("r", "s", "c"), {}),
    "head": (("c",), {"hs": 0}),
    "fc": (("c",), {}),
}
_FLAGS = ("se", "hs", "mp", "fg")


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
    se: bool = False
    hswish: bool = False
    first_grouped: bool = True

    def values(self) -> dict[str, int]:
        return {"r": self.repeats, "k": self.kernel, "s": self.stride, "e": self.exp_ratio, "g": self.groups,
                "c": self.out_chs, "se": int(self.se), "hs": int(self.hswish), "fg": int(self.first_grouped)}

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

    def format(self) -> str:
        parts = [_format_part("in", {"c": self.in_chs, "r": self.resolution}),
                 _format_part("stem", {"k": self.stem_kernel, "s": self.stem_stride, "c": self.stem_chs,
                                       "hs": int(self.stem_hswish), "mp": int(self.stem_pool)})]
        parts += [stage.format() for stage in self.stages]
        if self.head_chs is not None:
            parts.append(_format_part("head", {"c": self.head_chs, "hs": int(self.head_hswish)}))
        parts.append(_format_part("fc", {"c": self.num_classes}))
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
        values[key] = int(number)
    missing = [k for k in required if k not in values]
    if missing:
        raise ArchError(f"{part!r} lacks {', '.join(missing)}; {kind} takes {', '.join(allowed)}")
    for key, default in optional.items():
        if key in values and values[key] == default:
            raise ArchError(f"token {key}{default} in {part!r} is the default; canonical strings omit it")
        values.setdefault(key, default)
    for key, value in values.items():
        if key in _FLAGS and value not in (0, 1):
            raise ArchError(f"flag {key}{value} in {part!r} must be {key}0 or {key}1")
        if key not in _FLAGS and value < 1:
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
    inp, stem, head = parsed[0][1], parsed[1][1], parsed[-2][1] if has_head else None
    spec = ArchSpec(in_chs=inp["c"], resolution=inp["r"], stem_kernel=stem["k"], stem_stride=stem["s"],
                    stem_chs=stem["c"], stem_pool=bool(stem["mp"]), stem_hswish=bool(stem["hs"]), stages=stages,
                    head_chs=head["c"] if head else None, head_hswish=bool(head and head["hs"]),
                    num_classes=parsed[-1][1]["c"])
    validate(spec)
    return spec


def _stage(kind: str, v: dict[str, int]) -> StageSpec:
    return StageSpec(kind, repeats=v.get("r", 1), stride=v["s"], out_chs=v["c"], kernel=v.get("k", 3),
                     exp_ratio=v.get("e", 1), groups=v.get("g", 1), se=bool(v.get("se", 0)),
                     hswish=bool(v.get("hs", 0)), first_grouped=bool(v.get("fg", 1)))


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
    total_stride = 2 if spec.stem_pool else 1
    for _, stride in strides:
        total_stride *= stride
    if spec.resolution < total_stride:
        raise ArchError(f"resolution {spec.resolution} is smaller than the total stride {total_stride}")


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
    elif stage.kind == "fb" and (in_chs * stage.exp_ratio % g or out * stage.exp_ratio % g or out % g):
        raise ArchError(f"{name!r}: expanded channels {in_chs}*{stage.exp_ratio} and output {out} must "
                        f"divide by groups {g}")
