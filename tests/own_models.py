"""Plain PyTorch classifiers with the structures users bring, written without hwnas's grammar:
residual stages, depthwise blocks with squeeze-excite and SiLU, grouped and dilated convs, a
multi-branch concat block, hard-swish, and a small attention block. Each is a callable returning
an ``nn.Module``, as ``hwnas cost FILE.py:CALLABLE`` takes them; shared by the tests and
``benchmarks/own_model.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: type[nn.Module] = nn.ReLU,
            dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, dilation * (k // 2), dilation=dilation, groups=groups,
                                   bias=False), nn.BatchNorm2d(cout), act())


class Basic(nn.Module):
    """A ResNet basic block, with a 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class ResNetSmall(nn.Module):
    def __init__(self, classes: int = 10, width: int = 16, in_chs: int = 3) -> None:
        super().__init__()
        self.stem = conv_bn(in_chs, width)
        self.layer1 = nn.Sequential(Basic(width, width, 1), Basic(width, width, 1))
        self.layer2 = nn.Sequential(Basic(width, 2 * width, 2), Basic(2 * width, 2 * width, 1))
        self.layer3 = nn.Sequential(Basic(2 * width, 4 * width, 2), Basic(4 * width, 4 * width, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, chs: int, squeeze: int, gate: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(chs, squeeze, 1)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(squeeze, chs, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """EfficientNet's block: expand, depthwise, squeeze-excite, project; SiLU; residual."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, k: int = 3,
                 act: type[nn.Module] = nn.SiLU, gate: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = conv_bn(cin, hidden, 1, act=act) if expand != 1 else nn.Identity()
        self.dw = conv_bn(hidden, hidden, k, stride, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, max(1, cin // 4), gate)
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class EfficientNetSmall(nn.Module):
    def __init__(self, classes: int = 10, in_chs: int = 3, act: type[nn.Module] = nn.SiLU,
                 gate: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.stem = conv_bn(in_chs, 16, 3, 1, act=act)
        self.blocks = nn.Sequential(MBConv(16, 16, 1, 1, act=act, gate=gate), MBConv(16, 24, 2, 4, act=act, gate=gate),
                                    MBConv(24, 24, 1, 4, 5, act=act, gate=gate),
                                    MBConv(24, 40, 2, 4, act=act, gate=gate),
                                    MBConv(40, 40, 1, 4, act=act, gate=gate))
        self.head = conv_bn(40, 128, 1, act=act)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class XBlock(nn.Module):
    """RegNet's X block: 1x1, grouped 3x3 (optionally dilated), 1x1, residual."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int, dilation: int = 1) -> None:
        super().__init__()
        self.a = conv_bn(cin, cout, 1)
        self.b = conv_bn(cout, cout, 3, stride, groups=cout // group_width, dilation=dilation)
        self.c = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.c(self.b(self.a(x))) + self.short(x))


class RegNetSmall(nn.Module):
    def __init__(self, classes: int = 10, in_chs: int = 3) -> None:
        super().__init__()
        self.stem = conv_bn(in_chs, 16, 3, 2)
        self.s1 = nn.Sequential(XBlock(16, 32, 1, 8), XBlock(32, 32, 1, 8, dilation=2))
        self.s2 = nn.Sequential(XBlock(32, 64, 2, 16), XBlock(64, 64, 1, 16))
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.s2(self.s1(self.stem(x))).mean((2, 3)))


class Inception(nn.Module):
    """Four branches concatenated: 1x1; 1x1 then 3x3; 1x1 then two 3x3; max-pool then 1x1."""

    def __init__(self, cin: int, b: int) -> None:
        super().__init__()
        self.b1 = conv_bn(cin, b, 1)
        self.b2 = nn.Sequential(conv_bn(cin, b, 1), conv_bn(b, b, 3))
        self.b3 = nn.Sequential(conv_bn(cin, b // 2, 1), conv_bn(b // 2, b, 3), conv_bn(b, b, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, b, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionSmall(nn.Module):
    def __init__(self, classes: int = 10, in_chs: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(in_chs, 32, 3, 2), nn.MaxPool2d(2))
        self.mix1 = Inception(32, 16)
        self.mix2 = Inception(64, 24)
        self.fc = nn.Linear(96, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.mix2(self.mix1(self.stem(x))), 1).flatten(1))


class Attention(nn.Module):
    """Multi-head self-attention written out (qkv projection, reshape to heads, two MatMuls)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(y)


class TinyViT(nn.Module):
    """A conv stem, then one transformer layer on the patches: LayerNorm, attention, GELU MLP."""

    def __init__(self, classes: int = 10, in_chs: int = 3, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(in_chs, dim, 3, 2, act=nn.Hardswish), nn.Conv2d(dim, dim, 4, 4))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return self.head(x.mean(1))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: 7x7 depthwise, LayerNorm over channels (channels last), GELU MLP, layer scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.gamma * self.fc2(F.gelu(self.fc1(y)))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtSmall(nn.Module):
    def __init__(self, classes: int = 10, in_chs: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_chs, 32, 4, 4)
        self.stage1 = ConvNeXtBlock(32)
        self.down = nn.Conv2d(32, 64, 2, 2)
        self.stage2 = ConvNeXtBlock(64)
        self.norm = nn.LayerNorm(64)
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(self.norm(x.mean((2, 3))))


class DenseSmall(nn.Module):
    """DenseNet's dense block: each layer's output concatenated to all before it; a transition."""

    def __init__(self, classes: int = 10, in_chs: int = 3, growth: int = 12) -> None:
        super().__init__()
        self.stem = conv_bn(in_chs, 24, 3, 2)
        self.layers = nn.ModuleList([nn.Sequential(nn.BatchNorm2d(24 + i * growth), nn.ReLU(),
                                                   nn.Conv2d(24 + i * growth, growth, 3, 1, 1, bias=False))
                                     for i in range(4)])
        self.transition = nn.Sequential(nn.BatchNorm2d(24 + 4 * growth), nn.ReLU(),
                                        nn.Conv2d(24 + 4 * growth, 48, 1, bias=False), nn.AvgPool2d(2))
        self.fc = nn.Linear(48, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return self.fc(self.transition(x).mean((2, 3)))


class MHASmall(nn.Module):
    """Patches through torch's own nn.MultiheadAttention, then a classifier on the mean token."""

    def __init__(self, classes: int = 10, in_chs: int = 3, dim: int = 32) -> None:
        super().__init__()
        self.patch = nn.Conv2d(in_chs, dim, 8, 8)
        self.attn = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = t + self.attn(t, t, t, need_weights=False)[0]
        return self.head(self.norm(t).mean(1))


def resnet() -> nn.Module:
    return ResNetSmall()


def efficientnet() -> nn.Module:
    return EfficientNetSmall()


def mobilenetv3_like() -> nn.Module:
    """EfficientNet's blocks with hard-swish and a hard-sigmoid gate, as MobileNetV3 has them."""
    return EfficientNetSmall(act=nn.Hardswish, gate=nn.Hardsigmoid)


def regnet() -> nn.Module:
    return RegNetSmall()


def inception() -> nn.Module:
    return InceptionSmall()


def vit() -> nn.Module:
    return TinyViT()


def convnext() -> nn.Module:
    return ConvNeXtSmall()


def densenet() -> nn.Module:
    return DenseSmall()


def mha() -> nn.Module:
    return MHASmall()


ALL = {"resnet": resnet, "efficientnet": efficientnet, "mobilenetv3_like": mobilenetv3_like, "regnet": regnet,
       "inception": inception, "vit": vit, "convnext": convnext, "densenet": densenet, "mha": mha}
