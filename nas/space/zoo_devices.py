"""Reference families that published device latencies cover, beyond the MobileNet/ShuffleNet/ResNet
ones of :mod:`nas.space.zoo`: VGG, SqueezeNet, MobileNetV3, EfficientNet-Lite and
EfficientNet-EdgeTPU, as canonical strings of our grammar (MACs and parameters against the
published figures: ``tests/nas/space/test_zoo.py``, ``benchmarks/zoo_fidelity.py``).

>>> vgg(16).format()
'in_c3_r224-stem_k3_s1_c64-vgg_r1_s2_c64-vgg_r2_s2_c128-vgg_r3_s2_c256-vgg_r3_s2_c512-vgg_r3_s2_c512-fc_c1000_p7_h4096_n2'
"""
from __future__ import annotations

import math
from dataclasses import replace

from nas.core.errors import UserError
from nas.space.arch import ArchSpec, StageSpec, feature_size, validate
from nas.space.blocks import make_divisible
from nas.space.kinds import block_kind


def _finish(spec: ArchSpec) -> ArchSpec:
    validate(spec)
    return spec


def pooled_to_fit(spec: ArchSpec) -> ArchSpec:
    """``spec`` with its classifier's p x p pool (VGG's 7x7) cut to the largest p' <= p that divides
    the last feature map (p 1 at small inputs, where torchvision would copy one pixel 49 times)."""
    final = feature_size(spec)
    return replace(spec, pool_size=max(p for p in range(1, spec.pool_size + 1) if final % p == 0)) if final > 0 else spec


# EfficientNet-B0's stages (Tan & Le 2019, Table 1): (expansion, kernel, stride, channels, repeats).
_EFFNET_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
# EfficientNet-Lite (tensorflow/tpu efficientnet/lite): (width, depth, resolution) by variant.
EFFNET_LITE = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}


def efficientnet_lite(variant: int, *, width: float = 1.0, resolution: int | None = None, classes: int = 1000,
                      in_chs: int = 3) -> ArchSpec:
    """EfficientNet-Lite0..4: EfficientNet-B0's inverted residuals without squeeze-and-excite, with
    ReLU6, stem (32) and head (1280) kept fixed, and the first and last stages' repeats unscaled,
    as the lite builder does; channels scaled by the variant's width (times ``width``) to multiples
    of 8, repeats by its depth (rounded up)."""
    if variant not in EFFNET_LITE:
        raise UserError(f"efficientnet_lite variant {variant} not allowed; allowed: {', '.join(map(str, EFFNET_LITE))}")
    w, d, res = EFFNET_LITE[variant]
    last = len(_EFFNET_B0) - 1
    stages = tuple(StageSpec("ir", repeats=n if i in (0, last) else math.ceil(d * n), stride=s,
                             out_chs=make_divisible(c * w * width), kernel=k, exp_ratio=t)
                   for i, (t, k, s, c, n) in enumerate(_EFFNET_B0))
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution or res, stem_chs=32, stem_stride=2, stages=stages,
                            head_chs=1280, num_classes=classes))


# VGG (Simonyan & Zisserman 2015, Table 1, configurations A, B, D, E): convs per stack of 64, 128,
# 256, 512, 512 channels, each stack ending in a 2x2 max pool.
VGG_DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def vgg(depth: int, *, width: float = 1.0, resolution: int = 224, classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """VGG-11/13/16/19: the first conv is the stem; each stack a ``vgg`` stage ending in its max
    pool; the classifier averages to 7x7 (torchvision's adaptive pool) and has two hidden layers
    of 4096. VGG-11's first stack is the stem alone, so its pool is the stem's (3x3 stride 2,
    padded: the same output size as VGG's 2x2, about 0.4 M more comparisons)."""
    if depth not in VGG_DEPTHS:
        raise UserError(f"vgg depth {depth} not allowed; allowed: {', '.join(map(str, VGG_DEPTHS))}")
    chs = [make_divisible(c * width) for c in (64, 128, 256, 512, 512)]
    counts = VGG_DEPTHS[depth]
    stages = tuple(StageSpec("vgg", repeats=n - (i == 0), stride=2, out_chs=c)
                   for i, (c, n) in enumerate(zip(chs, counts)) if n - (i == 0) > 0)
    return _finish(pooled_to_fit(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=chs[0], stem_stride=1,
                                          stem_pool=counts[0] == 1, stages=stages, head_chs=None,
                                          num_classes=classes, pool_size=7, fc_hidden=make_divisible(4096 * width),
                                          fc_layers=2)))




# SqueezeNet (Iandola et al. 2016; v1.1 from the authors' repository): fire modules' output
# channels, a 0 marking a 3x3 stride-2 max pool before the next.
_SQUEEZENET = {"1.0": (7, 96, (128, 128, 256, 0, 256, 384, 384, 512, 0, 512)),
               "1.1": (3, 64, (128, 128, 0, 256, 256, 0, 384, 384, 512, 512))}


def squeezenet(version: str = "1.0", *, width: float = 1.0, resolution: int = 224, classes: int = 1000,
               in_chs: int = 3) -> ArchSpec:
    """SqueezeNet 1.0 / 1.1: an unpadded stride-2 stem conv (7x7 96 / 3x3 64) and ceil-mode max
    pools, fire modules, and a 1x1 conv classifier with ReLU before global pooling."""
    if version not in _SQUEEZENET:
        raise UserError(f"squeezenet version {version!r} not allowed; allowed: {', '.join(_SQUEEZENET)}")
    kernel, stem, fires = _SQUEEZENET[version]
    stages: list[StageSpec] = []
    pool = False
    for c in fires:
        if c == 0:
            pool = True
            continue
        stages.append(StageSpec("fire", repeats=1, stride=2 if pool else 1, out_chs=make_divisible(c * width, 16)))
        pool = False
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=make_divisible(stem * width),
                            stem_stride=2, stem_kernel=kernel, stem_pool=True, stem_valid=True,
                            stages=merge_stages(stages), head_chs=None, num_classes=classes, conv_classifier=True))




def merge_stages(stages: list[StageSpec]) -> tuple[StageSpec, ...]:
    """Consecutive stages that build the same blocks, the later at stride 1, as one stage with
    their repeats added (the canonical way to write them)."""
    merged: list[StageSpec] = []
    for stage in stages:
        prev = merged[-1] if merged else None
        if (prev is not None and stage.stride == 1 and not block_kind(stage.kind).stride_at_end
                and replace(stage, repeats=prev.repeats, stride=prev.stride) == prev):
            merged[-1] = replace(prev, repeats=prev.repeats + stage.repeats)
        else:
            merged.append(stage)
    return tuple(merged)


def _ir(kind: str, in_chs: int, *, k: int, s: int, mid: int, out: int, se: int = 0, hswish: bool = False,
        edgetpu: bool = False, no_skip: bool = False) -> StageSpec:
    """One ir/fir block with ``mid`` expanded channels, written as e where it is a multiple of the input."""
    exp, extra = (mid // in_chs, 0) if mid % in_chs == 0 else (1, mid)
    return StageSpec(kind, repeats=1, stride=s, out_chs=out, kernel=k, exp_ratio=exp, mid_chs=extra, se=se,
                     hswish=hswish, proj_stride=edgetpu and kind == "fir", no_skip=no_skip)


# MobileNetV3 (Howard et al. 2019, Tables 1 and 2): kernel, expanded channels, output channels,
# squeeze-and-excite, hard-swish, stride; then the last conv and the hidden classifier layer.
_MBV3 = {
    "large": ((3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2),
              (5, 120, 40, 1, 0, 1), (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1),
              (3, 184, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1),
              (5, 672, 160, 1, 1, 2), (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1)),
    "small": ((3, 16, 16, 1, 0, 2), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1), (5, 96, 40, 1, 1, 2),
              (5, 240, 40, 1, 1, 1), (5, 240, 40, 1, 1, 1), (5, 120, 48, 1, 1, 1), (5, 144, 48, 1, 1, 1),
              (5, 288, 96, 1, 1, 2), (5, 576, 96, 1, 1, 1), (5, 576, 96, 1, 1, 1)),
}
_MBV3_TOP = {"large": (960, 1280), "small": (576, 1024)}


def mobilenet_v3(size: str = "large", *, width: float = 1.0, resolution: int = 224, classes: int = 1000,
                 in_chs: int = 3) -> ArchSpec:
    """MobileNetV3 large/small as the paper builds it (torchvision's layout): hard-swish stem of
    16, inverted residuals with squeeze-and-excite (hard-sigmoid gate, squeeze to a quarter
    rounded to 8) and hard-swish where the paper has them (its ReLU is ReLU6 here), every
    channel count scaled by ``width`` and rounded to 8 (the stem, last conv scaled alike), and
    a hidden hard-swish layer (1280 / 1024, not scaled) before the classifier."""
    if size not in _MBV3:
        raise UserError(f"mobilenet_v3 size {size!r} not allowed; allowed: {', '.join(_MBV3)}")
    in_ch = make_divisible(16 * width)
    stages = []
    for k, exp, out, se, hs, s in _MBV3[size]:
        out_ch = make_divisible(out * width)
        stages.append(_ir("ir", in_ch, k=k, s=s, mid=make_divisible(exp * width), out=out_ch, se=int(bool(se)),
                          hswish=bool(hs)))
        in_ch = out_ch
    last, hidden = _MBV3_TOP[size]
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=make_divisible(16 * width), stem_stride=2,
                            stem_hswish=True, stages=merge_stages(stages), head_chs=make_divisible(last * width),
                            head_hswish=True, num_classes=classes, fc_hidden=hidden, fc_hswish=True))




# EfficientNet-EdgeTPU (tensorflow/tpu efficientnet/edgetpu builder): (repeats, kernel, stride,
# expansion, channels, fused) per stage; (width, depth, resolution) by size.
_EDGETPU = ((1, 3, 1, 4, 24, True), (2, 3, 2, 8, 32, True), (4, 3, 2, 8, 48, True), (5, 5, 2, 8, 96, False),
            (4, 5, 1, 8, 144, False), (2, 5, 2, 8, 192, False))
EFFNET_EDGETPU = {"S": (1.0, 1.0, 224), "M": (1.0, 1.1, 240), "L": (1.2, 1.4, 300)}


def efficientnet_edgetpu(size: str = "S", *, width: float = 1.0, resolution: int | None = None,
                         classes: int = 1000, in_chs: int = 3) -> ArchSpec:
    """EfficientNet-EdgeTPU S/M/L: fused inverted residuals (a full 3x3 expansion conv at the input's
    resolution, then a 1x1 projection carrying the stride, as the builder's block without depthwise
    does) in the first three stages, inverted residuals after, no squeeze-and-excite; stem 32 and
    head 1280 scaled with the width, every stage's repeats by the depth (rounded up). The first
    stage has no residual add ("noskip") and its first block expands to 4x the builder's nominal
    24 channels (not 4x the stem's 32), as the builder does. The builder's ReLU is ReLU6 here."""
    if size not in EFFNET_EDGETPU:
        raise UserError(f"efficientnet_edgetpu size {size!r} not allowed; allowed: {', '.join(EFFNET_EDGETPU)}")
    w, d, res = EFFNET_EDGETPU[size]
    stem = make_divisible(32 * w * width)
    stages: list[StageSpec] = []
    in_ch = stem
    nominal = stem
    for i, (n, k, s, e, c, fused) in enumerate(_EDGETPU):
        out = make_divisible(c * w * width)
        nominal = out if i == 0 else nominal
        for j in range(math.ceil(d * n)):
            mid = (nominal if j == 0 else out) * e
            stages.append(_ir("fir" if fused else "ir", in_ch, k=k if not fused else 3, s=s if j == 0 else 1, mid=mid,
                              out=out, edgetpu=True, no_skip=i == 0))
            in_ch = nominal = out
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution or res, stem_chs=stem, stem_stride=2,
                            stages=merge_stages(stages), head_chs=make_divisible(1280 * w * width),
                            num_classes=classes))


# MixNet (Tan & Le 2019; timm's mixnet_s / mixnet_m definitions): per stage (repeats, kernel, kernels,
# stride, expansion, channels, expansion groups, projection groups, SE divisor, swish). The first
# stage is a depthwise-separable conv (timm's ds; its residual add is left out here).
_MIXNET = {
    "s": (16, ((1, 3, 1, 2, 6, 24, 2, 2, 0, 0), (1, 3, 1, 1, 3, 24, 2, 2, 0, 0),
               (1, 3, 3, 2, 6, 40, 1, 1, 2, 1), (3, 3, 2, 1, 6, 40, 2, 2, 2, 1),
               (1, 3, 3, 2, 6, 80, 1, 2, 4, 1), (2, 3, 2, 1, 6, 80, 1, 2, 4, 1),
               (1, 3, 3, 1, 6, 120, 2, 2, 2, 1), (2, 3, 4, 1, 3, 120, 2, 2, 2, 1),
               (1, 3, 5, 2, 6, 200, 1, 1, 2, 1), (2, 3, 4, 1, 6, 200, 1, 2, 2, 1))),
    "m": (24, ((1, 3, 3, 2, 6, 32, 2, 2, 0, 0), (1, 3, 1, 1, 3, 32, 2, 2, 0, 0),
               (1, 3, 4, 2, 6, 40, 1, 1, 2, 1), (3, 3, 2, 1, 6, 40, 2, 2, 2, 1),
               (1, 3, 3, 2, 6, 80, 1, 1, 4, 1), (3, 3, 4, 1, 6, 80, 2, 2, 4, 1),
               (1, 3, 1, 1, 6, 120, 1, 1, 2, 1), (3, 3, 4, 1, 3, 120, 2, 2, 2, 1),
               (1, 3, 4, 2, 6, 200, 1, 1, 2, 1), (3, 3, 4, 1, 6, 200, 1, 2, 2, 1))),
}
MIXNET_WIDTH = {"s": ("s", 1.0), "m": ("m", 1.0), "l": ("m", 1.3)}  # MixNet-L is MixNet-M at 1.3x channels


def mixnet(size: str = "s", *, width: float = 1.0, resolution: int = 224, classes: int = 1000,
           in_chs: int = 3) -> ArchSpec:
    """MixNet-S/M/L: a 3x3 stem (ReLU), a depthwise-separable stage, then ``mx`` stages (mixed
    depthwise kernels, grouped 1x1 convs, SE, swish in the later stages), a 1x1 head to 1536 and the
    classifier; MixNet-L is MixNet-M with every channel count but the head's times 1.3, rounded
    to 8 (with the head scaled too it would have 7.9 M parameters, not the published 7.3 M)."""
    if size not in MIXNET_WIDTH:
        raise UserError(f"mixnet size {size!r} not allowed; allowed: {', '.join(MIXNET_WIDTH)}")
    base, multiplier = MIXNET_WIDTH[size]
    stem, rows = _MIXNET[base]
    w = multiplier * width
    stem_chs = make_divisible(stem * w)
    stages = [StageSpec("ds", repeats=1, stride=1, out_chs=stem_chs, kernel=3)]
    for r, k, n, s, e, c, xg, pg, sq, sw in rows:
        stages.append(StageSpec.from_values("mx", {"r": r, "k": k, "s": s, "e": e, "c": make_divisible(c * w),
                                                   "n": n, "xg": xg, "pg": pg, "sq": sq, "sw": sw}))
    return _finish(ArchSpec(in_chs=in_chs, resolution=resolution, stem_chs=stem_chs, stem_stride=2,
                            stages=tuple(stages), head_chs=make_divisible(1536 * width), num_classes=classes))
