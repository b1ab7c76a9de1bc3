"""Reference architectures as canonical strings of our grammar: MobileNetV1/V2, ShuffleNetV1/V2,
ResNet-18/34/50/101/152, MnasNet-A1/B1, GoogLeNet and the FBNet space as HW-NAS-Bench builds it; VGG,
SqueezeNet, MobileNetV3 and EfficientNet-Lite/EdgeTPU live in :mod:`nas.space.zoo_devices`;
:data:`FAMILIES` registers them all.

Each family is a function returning an :class:`ArchSpec`, with the paper's layer tables below.
ImageNet settings (224, 1000 classes, 3 channels) reproduce the papers' MACs and parameters
within 2% (``tests/nas/test_zoo.py``).

>>> mobilenet_v2(width=1.0, resolution=224).format()[:60]
'in_c3_r224-stem_k3_s2_c32-ir_r1_k3_s1_e1_c16-ir_r2_k3_s2_e6_'
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from nas.core.errors import UserError
from nas.space.arch import ArchSpec, StageSpec, validate
from nas.space.blocks import make_divisible
from nas.space.zoo_devices import (
    EFFNET_EDGETPU,
    EFFNET_LITE,
    MIXNET_WIDTH,
    VGG_DEPTHS,
    efficientnet_edgetpu,
    efficientnet_lite,
    mixnet,
    mobilenet_v3,
    pooled_to_fit,
    squeezenet,
    vgg,
)

# MobileNetV1 (Howard et al. 2017, Table 1): (channels, stride, repeats) of depthwise-separable layers.
_MBV1 = ((64, 1, 1), (128, 2, 1), (128, 1, 1), (256, 2, 1), (256, 1, 1), (512, 2, 1), (512, 1, 5),
         (1024, 2, 1), (1024, 1, 1))
# MobileNetV2 (Sandler et al. 2018, Table 2): (expansion, channels, repeats, stride).
_MBV2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
         (6, 320, 1, 1))
# ShuffleNetV1 (Zhang et al. 2018, Table 1): stage output channels at 1.0x by groups; repeats 4, 8, 4.
_SHV1 = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}
# ShuffleNetV2 (Ma et al. 2018, Table 5): stage channels and conv5 width by width multiplier.
_SHV2 = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024), 1.5: (176, 352, 704, 1024),
         2.0: (244, 488, 976, 2048)}
# ResNet (He et al. 2016, Table 1): blocks per stage; stage channels 64, 128, 256, 512 (x4 for bottlenecks).
_RESNET = {18: ("rb", (2, 2, 2, 2)), 34: ("rb", (3, 4, 6, 3)), 50: ("rbn", (3, 4, 6, 3)), 101: ("rbn", (3, 4, 23, 3)),
           152: ("rbn", (3, 8, 36, 3))}
# MnasNet-B1 (Tan et al. 2019, as torchvision's mnasnet1_0 builds it): after a 16-channel separable
# conv, (expansion, kernel, stride, channels, repeats) of inverted residuals; a 1280 head.
_MNASNET_B1 = ((3, 3, 2, 24, 3), (3, 5, 2, 40, 3), (6, 5, 2, 80, 3), (6, 3, 1, 96, 2), (6, 5, 2, 192, 4),
               (6, 3, 1, 320, 1))
# MnasNet-A1 (Tan et al. 2019, Figure 7; mnasnet_models.py's mnasnet_a1): after a 16-channel
# separable conv, (expansion, kernel, stride, channels, repeats, squeeze-and-excite) of inverted
# residuals, SE squeezed to a quarter of each block's input with a sigmoid gate; a 1280 head.
_MNASNET_A1 = ((6, 3, 2, 24, 2, 0), (3, 5, 2, 40, 3, 2), (6, 3, 2, 80, 4, 0), (6, 3, 1, 112, 2, 2),
               (6, 5, 2, 160, 3, 2), (6, 3, 1, 320, 1, 0))
# FBNet space as HW-NAS-Bench builds it.
FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
_FBNET_LAYERS = (1, 4, 4, 4, 4, 4, 1)
_FBNET_CHS = (16, 24, 32, 64, 112, 184, 352)
FBNET_SETTINGS = {  # resolution, stem stride, stage strides, head channels, classes
    "imagenet": (224, 2, (1, 2, 2, 2, 1, 2, 1), 1984, 1000),
    "cifar": (32, 1, (1, 1, 2, 2, 1, 2, 1), 1504, 100),
}


def _finish(spec: ArchSpec) -> ArchSpec:
    validate(spec)
    return spec


def mobilenet_v1(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """MobileNetV1: channels scaled by ``width`` and rounded to multiples of 8; no head conv."""
    stages = tuple(StageSpec("ds", repeats=n, stride=s, out_chs=make_divisible(c * width)) for c, s, n in _MBV1)
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=make_divisible(32 * width), stem_stride=2,
                            stages=stages, head_chs=None, num_classes=classes))


def mobilenet_v2(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """MobileNetV2: channels scaled by ``width`` (multiples of 8); the 1280 head is kept below 1.0."""
    stages = tuple(StageSpec("ir", repeats=n, stride=s, out_chs=make_divisible(c * width), exp_ratio=t)
                   for t, c, n, s in _MBV2)
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=make_divisible(32 * width), stem_stride=2,
                            stages=stages, head_chs=make_divisible(1280 * max(1.0, width)), num_classes=classes))


def shufflenet_v1(*, groups: int = 3, width: float = 1.0, resolution: int = 224, classes: int = 1000,
                  in_chs: int = 3) -> ArchSpec:
    """ShuffleNetV1: stem 3x3 s2 + max pool; first 1x1 of stage 2 ungrouped, as in the paper."""
    if groups not in _SHV1:
        raise UserError(f"shufflenet_v1 groups {groups} not allowed; allowed: {', '.join(map(str, _SHV1))}")
    divisor = 4 * groups  # bottleneck (out/4) and both group convs divide by g
    chs = [c if width == 1.0 else make_divisible(c * width, divisor) for c in _SHV1[groups]]
    stages = tuple(StageSpec("sh", repeats=n, stride=2, out_chs=c, groups=groups, first_grouped=i > 0)
                   for i, (c, n) in enumerate(zip(chs, (4, 8, 4))))
    stem = 24 if width == 1.0 else make_divisible(24 * width, 4)
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=stem, stem_stride=2, stem_pool=True,
                            stages=stages, head_chs=None, num_classes=classes))


def shufflenet_v2(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """ShuffleNetV2: stem 3x3 s2 + max pool, three stages of units, 1x1 conv5, pool, FC."""
    if width not in _SHV2:
        raise UserError(f"shufflenet_v2 width {width} not allowed; allowed: {', '.join(map(str, _SHV2))}")
    *chs, conv5 = _SHV2[width]
    stages = []
    for c, n in zip(chs, (4, 8, 4)):
        stages += [StageSpec("sh2", repeats=1, stride=2, out_chs=c), StageSpec("sh2", repeats=n - 1, stride=1, out_chs=c)]
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=24, stem_stride=2, stem_pool=True,
                            stages=tuple(stages), head_chs=conv5, num_classes=classes))


def _fbnet_layer(op: str, out_chs: int, stride: int) -> StageSpec:
    if op == "skip":
        return StageSpec("skip", repeats=1, stride=stride, out_chs=out_chs)
    kernel, exp, *group = op.split("_")
    return StageSpec("fb", repeats=1, stride=stride, out_chs=out_chs, kernel=int(kernel[1:]), exp_ratio=int(exp[1:]),
                     groups=int(group[0][1:]) if group else 1)


def fbnet(ops: tuple[int, ...] | list[int], *, setting: str = "imagenet", resolution: int | None = None,
          classes: int | None = None, in_chs: int = 3) -> ArchSpec:
    """An FBNet-space network from 22 op indices into :data:`FBNET_OPS`, built as HW-NAS-Bench does."""
    if setting not in FBNET_SETTINGS:
        raise UserError(f"fbnet setting {setting!r} not allowed; allowed: {', '.join(FBNET_SETTINGS)}")
    if len(ops) != sum(_FBNET_LAYERS) or any(not 0 <= i < len(FBNET_OPS) for i in ops):
        raise UserError(f"fbnet needs {sum(_FBNET_LAYERS)} op indices in 0..{len(FBNET_OPS) - 1}, got {list(ops)}")
    res, stem_stride, strides, head, n_classes = FBNET_SETTINGS[setting]
    layers, it = [], iter(ops)
    for n, chs, stride in zip(_FBNET_LAYERS, _FBNET_CHS, strides):
        layers += [_fbnet_layer(FBNET_OPS[next(it)], chs, stride if i == 0 else 1) for i in range(n)]
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution or res, stem_chs=16, stem_stride=stem_stride,
                            stages=tuple(layers), head_chs=head, num_classes=classes or n_classes))


def _resnet(depth: int, *, width: float, resolution: int, classes: int, in_chs: int) -> ArchSpec:
    kind, repeats = _RESNET[depth]
    scale = 4 if kind == "rbn" else 1
    stages = tuple(StageSpec(kind, repeats=n, stride=1 if i == 0 else 2, out_chs=make_divisible(c * width) * scale)
                   for i, (c, n) in enumerate(zip((64, 128, 256, 512), repeats)))
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=make_divisible(64 * width), stem_stride=2,
                            stages=stages, head_chs=None, num_classes=classes, stem_kernel=7, stem_pool=True))


def resnet18(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """ResNet-18: 7x7 stem and max pool, basic blocks (2, 2, 2, 2), no head conv; ``width`` scales channels."""
    return _resnet(18, width=width, resolution=resolution, classes=classes, in_chs=in_chs)


def resnet34(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """ResNet-34: basic blocks (3, 4, 6, 3)."""
    return _resnet(34, width=width, resolution=resolution, classes=classes, in_chs=in_chs)


def resnet50(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """ResNet-50 (v1.5: the stride on the 3x3 conv): bottleneck blocks (3, 4, 6, 3)."""
    return _resnet(50, width=width, resolution=resolution, classes=classes, in_chs=in_chs)


def resnet101(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """ResNet-101 (v1.5): bottleneck blocks (3, 4, 23, 3)."""
    return _resnet(101, width=width, resolution=resolution, classes=classes, in_chs=in_chs)


def mnasnet_b1(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """MnasNet-B1 (no squeeze-and-excite): a 32-channel stem, a separable conv to 16, six stages of
    inverted residuals, a 1280 head kept at widths below 1.0 (as torchvision)."""
    stages: tuple[StageSpec, ...] = (StageSpec("ds", repeats=1, stride=1, out_chs=make_divisible(16 * width)),)
    stages += tuple(StageSpec("ir", repeats=n, stride=s, out_chs=make_divisible(c * width), kernel=k, exp_ratio=t)
                    for t, k, s, c, n in _MNASNET_B1)
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=make_divisible(32 * width), stem_stride=2,
                            stages=stages, head_chs=1280, num_classes=classes))


def mnasnet_a1(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """MnasNet-A1: MnasNet-B1's layout with other stages, kernels and squeeze-and-excite (``se2``)."""
    stages: tuple[StageSpec, ...] = (StageSpec("ir", repeats=1, stride=1, out_chs=make_divisible(16 * width)),)
    stages += tuple(StageSpec("ir", repeats=n, stride=s, out_chs=make_divisible(c * width), kernel=k, exp_ratio=t,
                              se=se) for t, k, s, c, n, se in _MNASNET_A1)
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=make_divisible(32 * width), stem_stride=2,
                            stages=stages, head_chs=1280, num_classes=classes))


def resnet152(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """ResNet-152 (v1.5): bottleneck blocks (3, 8, 36, 3)."""
    return _resnet(152, width=width, resolution=resolution, classes=classes, in_chs=in_chs)


# GoogLeNet (Szegedy et al. 2015, Table 1): each inception module's #1x1, #3x3 reduce, #3x3,
# #5x5 reduce, #5x5 and pool proj, and whether a 3x3 stride-2 max pool precedes it (3a, 4a, 5a).
_GOOGLENET = (((64, 96, 128, 16, 32, 32), 2), ((128, 128, 192, 32, 96, 64), 1), ((192, 96, 208, 16, 48, 64), 2),
              ((160, 112, 224, 24, 64, 64), 1), ((128, 128, 256, 24, 64, 64), 1), ((112, 144, 288, 32, 64, 64), 1),
              ((256, 160, 320, 32, 128, 128), 1), ((256, 160, 320, 32, 128, 128), 2),
              ((384, 192, 384, 48, 128, 128), 1))


def googlenet(*, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3,
              five_kernel: int = 3) -> ArchSpec:
    """GoogLeNet without its auxiliary heads: 7x7/2 conv, max pool, 1x1 and 3x3 convs, nine
    inception modules, global pooling, linear classifier (BatchNorm after every conv, as
    torchvision's). ``five_kernel`` 3 is torchvision's model, whose published 6.6 M parameters and
    1.5 G MACs it reproduces; 5 is the paper's 5x5 branch (7.0 M parameters, 1.58 G MACs)."""
    def scaled(c: int) -> int:
        return make_divisible(c * width) if width != 1.0 else c

    stages = [StageSpec("cv", repeats=1, stride=1, out_chs=scaled(64), kernel=1),
              StageSpec("cv", repeats=1, stride=1, out_chs=scaled(192), kernel=3)]
    for counts, stride in _GOOGLENET:
        o, tr, t, fr, f, pp = (scaled(c) for c in counts)
        stages.append(StageSpec("inc", repeats=1, stride=stride, out_chs=o + t + f + pp, kernel=five_kernel,
                                extra=(("o", o), ("tr", tr), ("t", t), ("fr", fr), ("f", f), ("pp", pp))))
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=scaled(64), stem_stride=2, stem_kernel=7,
                            stem_pool=True, stages=tuple(stages), head_chs=None, num_classes=classes))


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str
    width: float | None
    resolution: int
    groups: int | None
    spec: ArchSpec


FAMILIES: dict[str, Callable[..., ArchSpec]] = {
    "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2, "shufflenet_v1": shufflenet_v1,
    "shufflenet_v2": shufflenet_v2, "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
    "resnet101": resnet101, "resnet152": resnet152, "mnasnet_b1": mnasnet_b1, "mnasnet_a1": mnasnet_a1,
    **{f"vgg{d}": partial(vgg, d) for d in VGG_DEPTHS},
    "squeezenet1_0": partial(squeezenet, "1.0"), "squeezenet1_1": partial(squeezenet, "1.1"),
    "mobilenet_v3_large": partial(mobilenet_v3, "large"), "mobilenet_v3_small": partial(mobilenet_v3, "small"),
    **{f"efficientnet_lite{v}": partial(efficientnet_lite, v) for v in EFFNET_LITE},
    **{f"efficientnet_edgetpu_{z.lower()}": partial(efficientnet_edgetpu, z) for z in EFFNET_EDGETPU},
    "googlenet": googlenet, "fbnet": fbnet,
    **{f"mixnet_{z}": partial(mixnet, z) for z in MIXNET_WIDTH},
}
# The resolution each family is published at, where it is not 224.
DEFAULT_RESOLUTION = {**{f"efficientnet_lite{v}": r for v, (_, _, r) in EFFNET_LITE.items()},
                      **{f"efficientnet_edgetpu_{z.lower()}": r for z, (_, _, r) in EFFNET_EDGETPU.items()}}
# (family, width, resolution, groups or FBNet setting+op) rows that `hwnas zoo` lists.
_DEFAULT_ROWS: tuple[tuple[str, float | None, int, int | None], ...] = (
    ("mobilenet_v1", 1.0, 224, None), ("mobilenet_v1", 0.75, 192, None), ("mobilenet_v1", 0.5, 160, None),
    ("mobilenet_v1", 0.25, 128, None),
    ("mobilenet_v2", 1.4, 224, None), ("mobilenet_v2", 1.0, 224, None), ("mobilenet_v2", 0.75, 224, None),
    ("mobilenet_v2", 0.5, 160, None), ("mobilenet_v2", 0.35, 96, None),
    *(("shufflenet_v1", 1.0, 224, g) for g in (1, 2, 3, 4, 8)), ("shufflenet_v1", 0.5, 224, 3),
    *(("shufflenet_v2", w, 224, None) for w in (0.5, 1.0, 1.5, 2.0)),
    *((f"resnet{d}", 1.0, 224, None) for d in (18, 34, 50, 101)),
    ("mnasnet_b1", 1.0, 224, None), ("mnasnet_b1", 0.5, 224, None), ("mnasnet_a1", 1.0, 224, None), ("resnet152", 1.0, 224, None),
    *((f"vgg{d}", 1.0, 224, None) for d in VGG_DEPTHS), ("squeezenet1_0", 1.0, 224, None),
    ("squeezenet1_1", 1.0, 224, None), ("mobilenet_v3_large", 1.0, 224, None), ("mobilenet_v3_large", 0.75, 224, None),
    ("mobilenet_v3_small", 1.0, 224, None), ("mobilenet_v3_small", 0.75, 224, None),
    *((f"efficientnet_lite{v}", 1.0, r, None) for v, (_, _, r) in EFFNET_LITE.items()),
    *((f"efficientnet_edgetpu_{z.lower()}", 1.0, r, None) for z, (_, _, r) in EFFNET_EDGETPU.items()),
    ("googlenet", 1.0, 224, None), *((f"mixnet_{z}", 1.0, 224, None) for z in MIXNET_WIDTH),
)


def zoo_entries(*, classes: int | None = None, in_chs: int = 3, resolution: int | None = None) -> list[ZooEntry]:
    """The reference rows `hwnas zoo` lists; ``resolution`` overrides every row's input size."""
    entries = []
    n_classes = classes or 1000
    for family, width, res, groups in _DEFAULT_ROWS:
        r = resolution or res
        kwargs = {"width": width, "resolution": r, "classes": n_classes, "in_chs": in_chs}
        if groups is not None:
            kwargs["groups"] = groups
        suffix = f"_g{groups}" if groups else ""
        entries.append(ZooEntry(f"{family}_{width:g}x{suffix}_{r}", family, width, r, groups,
                                FAMILIES[family](**kwargs)))
    for setting, op in (("imagenet", 0), ("cifar", 0), ("imagenet", 7)):
        spec = fbnet([op] * 22, setting=setting, resolution=resolution, classes=classes, in_chs=in_chs)
        entries.append(ZooEntry(f"fbnet_{setting}_all_{FBNET_OPS[op]}", "fbnet", None, spec.resolution, None, spec))
    return entries


def adapt_to_input(spec: ArchSpec, *, resolution: int, in_chs: int, classes: int, min_feature: int = 3) -> ArchSpec:
    """Fit an ImageNet network to a small input: same layers and channels, but each stride-2 layer
    (stem, stem pool, stage starts, in order) keeps its stride only while its output stays at least
    ``min_feature`` pixels wide; later ones run at stride 1, as CIFAR adaptations of these nets do."""
    size = resolution

    def stride_for(stride: int) -> int:
        nonlocal size
        if stride == 2 and -(-size // 2) >= min_feature:
            size = -(-size // 2)
            return 2
        return 1

    stem_stride = stride_for(spec.stem_stride)
    stem_pool = spec.stem_pool and stride_for(2) == 2
    stages = tuple(replace(stage, stride=stride_for(stage.stride)) for stage in spec.stages)
    return _finish(pooled_to_fit(replace(spec, in_chs=in_chs, resolution=resolution, num_classes=classes,
                                         stem_stride=stem_stride, stem_pool=stem_pool, stages=stages)))
