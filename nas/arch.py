"""The architecture grammar: typed, frozen specs with one canonical string each.

A network is ``input - stem - stage... - head - fc``, parts joined by ``-``, each part a kind
followed by ``_``-separated ``<key><int>`` tokens in a fixed order::

    in_c1_r28-stem_k3_s1_c16-ir_r2_k5_s2_e6_c24-sh_r2_s2_g2_c48-head_c256-fc_c10

Keys: ``c`` channels (in: input channels), ``r`` resolution (in) or repeats (stages),
``k`` kernel, ``s`` stride, ``e`` expansion ratio, ``g`` groups. Stage kinds:

- ``ir``: MobileNetV2 inverted residual: 1x1 expand (skipped when e=1), kxk depthwise (stride s),
  1x1 project; residual add when stride is 1 and channels are kept.
- ``sh``: ShuffleNetV1 unit: 1x1 group conv to out/4 channels (grouped only when the input
  channels divide by g, as the paper does for narrow inputs), channel shuffle, 3x3 depthwise,
  1x1 group conv. Residual add when stride 1 and channels are kept; with stride 2 and
  ``(out - in) % g == 0`` the branch makes ``out - in`` channels and is concatenated with a 3x3
  average-pooled input (the paper's downsampling unit); otherwise no shortcut.

The stride of a stage applies to its first block. ``parse(s).format() == s`` for every
canonical string; anything else raises :class:`ArchError` naming the offending token.

>>> parse("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10").stages[0].kernel
3
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from nas.errors import UserError

_TOKEN = re.compile(r"^([a-z]+)(\d+)$")


class ArchError(UserError):
    """A malformed or impossible architecture string."""


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` blocks of one kind; only the first block is strided."""

    kind: str  # "ir" or "sh"
    repeats: int
    stride: int
    out_chs: int
    kernel: int = 3
    exp_ratio: int = 1
    groups: int = 1

    def format(self) -> str:
        if self.kind == "ir":
            return f"ir_r{self.repeats}_k{self.kernel}_s{self.stride}_e{self.exp_ratio}_c{self.out_chs}"
        return f"sh_r{self.repeats}_s{self.stride}_g{self.groups}_c{self.out_chs}"


@dataclass(frozen=True)
class ArchSpec:
    """A whole network; build it with :func:`nas.builder.build`."""

    in_chs: int
    resolution: int
    stem_chs: int
    stem_stride: int
    stages: tuple[StageSpec, ...]
    head_chs: int
    num_classes: int
    stem_kernel: int = 3

    def format(self) -> str:
        parts = [f"in_c{self.in_chs}_r{self.resolution}",
                 f"stem_k{self.stem_kernel}_s{self.stem_stride}_c{self.stem_chs}"]
        parts += [stage.format() for stage in self.stages]
        parts += [f"head_c{self.head_chs}", f"fc_c{self.num_classes}"]
        return "-".join(parts)

    def __str__(self) -> str:
        return self.format()


# kind -> keys in canonical order
_KEYS: dict[str, tuple[str, ...]] = {
    "in": ("c", "r"),
    "stem": ("k", "s", "c"),
    "ir": ("r", "k", "s", "e", "c"),
    "sh": ("r", "s", "g", "c"),
    "head": ("c",),
    "fc": ("c",),
}
_STAGE_KINDS = ("ir", "sh")


def _parse_part(part: str) -> tuple[str, dict[str, int]]:
    kind, *tokens = part.split("_")
    if kind not in _KEYS:
        raise ArchError(f"unknown block kind {kind!r} in {part!r}; allowed: {', '.join(_KEYS)}")
    expected = _KEYS[kind]
    values: dict[str, int] = {}
    for token in tokens:
        match = _TOKEN.match(token)
        if match is None:
            raise ArchError(f"malformed token {token!r} in {part!r}; expected <key><integer>")
        key, number = match.group(1), match.group(2)
        if key not in expected:
            raise ArchError(f"unknown token {token!r} in {part!r}; {kind} takes {', '.join(expected)}")
        if key in values:
            raise ArchError(f"repeated token {token!r} in {part!r}")
        if len(number) > 1 and number.startswith("0"):
            raise ArchError(f"non-canonical number in token {token!r} of {part!r}")
        values[key] = int(number)
    missing = [k for k in expected if k not in values]
    if missing:
        raise ArchError(f"{part!r} lacks {', '.join(missing)}; {kind} takes {', '.join(expected)}")
    return kind, values


def _positive(part: str, values: dict[str, int]) -> None:
    for key, value in values.items():
        if value < 1:
            raise ArchError(f"token {key}{value} in {part!r} must be at least 1")


def parse(text: str) -> ArchSpec:
    """Parse a canonical architecture string; raise :class:`ArchError` naming what is wrong."""
    parts = text.strip().split("-")
    if len(parts) < 5:
        raise ArchError(f"architecture {text!r} needs in, stem, at least one stage, head and fc parts")
    parsed = [_parse_part(p) for p in parts]
    for (kind, values), part in zip(parsed, parts):
        _positive(part, values)
    kinds = [k for k, _ in parsed]
    if kinds[0] != "in" or kinds[1] != "stem" or kinds[-2] != "head" or kinds[-1] != "fc":
        raise ArchError(f"architecture {text!r} must read in-stem-<stages>-head-fc, got {'-'.join(kinds)}")
    bad = [p for k, p in zip(kinds[2:-2], parts[2:-2]) if k not in _STAGE_KINDS]
    if bad:
        raise ArchError(f"{bad[0]!r} is not a stage; stages are {', '.join(_STAGE_KINDS)}")
    stages = tuple(_stage(kind, values) for kind, values in parsed[2:-2])
    inp, stem = parsed[0][1], parsed[1][1]
    spec = ArchSpec(in_chs=inp["c"], resolution=inp["r"], stem_kernel=stem["k"], stem_stride=stem["s"],
                    stem_chs=stem["c"], stages=stages, head_chs=parsed[-2][1]["c"],
                    num_classes=parsed[-1][1]["c"])
    validate(spec)
    return spec


def _stage(kind: str, v: dict[str, int]) -> StageSpec:
    if kind == "ir":
        return StageSpec("ir", repeats=v["r"], stride=v["s"], out_chs=v["c"], kernel=v["k"], exp_ratio=v["e"])
    return StageSpec("sh", repeats=v["r"], stride=v["s"], out_chs=v["c"], groups=v["g"])


def shuffle_mid_chs(out_chs: int) -> int:
    """Bottleneck width of a ShuffleNetV1 unit: a quarter of the unit's output, as in the paper."""
    return out_chs // 4


def validate(spec: ArchSpec) -> None:
    """Reject specs that cannot be built, naming the part and the rule broken."""
    for name, k in (("stem", spec.stem_kernel),) + tuple((s.format(), s.kernel) for s in spec.stages):
        if k % 2 == 0:
            raise ArchError(f"kernel {k} in {name!r} must be odd")
    strides = [("stem", spec.stem_stride)] + [(s.format(), s.stride) for s in spec.stages]
    for name, stride in strides:
        if stride not in (1, 2):
            raise ArchError(f"stride {stride} in {name!r} not allowed; allowed: 1, 2")
    for stage in spec.stages:
        if stage.kind == "sh":
            _validate_shuffle(stage)
    total_stride = 1
    for _, stride in strides:
        total_stride *= stride
    if spec.resolution < total_stride:
        raise ArchError(f"resolution {spec.resolution} is smaller than the total stride {total_stride}")


def _validate_shuffle(stage: StageSpec) -> None:
    g, out, mid = stage.groups, stage.out_chs, shuffle_mid_chs(stage.out_chs)
    name = stage.format()
    if out % g or mid < 1 or mid % g:
        raise ArchError(f"{name!r}: channels {out} and bottleneck {out}//4={mid} must divide by groups {g}")
