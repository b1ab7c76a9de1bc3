"""Reference architectures against published MACs and parameters (ImageNet settings).

    .venv/bin/python benchmarks/zoo_fidelity.py

Writes benchmarks/results/zoo_fidelity.md and zoo_fidelity.csv. MACs are fvcore's count of conv
and linear multiply-adds; parameters are all trainable parameters, BatchNorm included (the
convention torchvision reports).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from nas.cost.costs import count_costs
from nas.space.zoo import (
    mnasnet_b1,
    mobilenet_v1,
    mobilenet_v2,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    shufflenet_v1,
    shufflenet_v2,
)

RESULTS = Path(__file__).resolve().parent / "results"
# (model, spec, published MACs, published parameters, source of the published figures)
REFERENCE = [
    ("MobileNetV1 1.0-224", mobilenet_v1(), 569e6, 4.2e6, "Howard et al. 2017, Table 6"),
    ("MobileNetV1 0.5-160", mobilenet_v1(width=0.5, resolution=160), 76e6, 1.32e6, "Howard et al. 2017, Table 7"),
    ("MobileNetV2 1.0-224", mobilenet_v2(), 300e6, 3.4e6, "Sandler et al. 2018, Table 4 (3.4M rounds the released 3.47M)"),
    ("MobileNetV2 0.75-224", mobilenet_v2(width=0.75), 209e6, 2.61e6, "authors' released model table"),
    ("ShuffleNetV1 g3 1.0x", shufflenet_v1(groups=3), 140e6, 1.87e6, "Zhang et al. 2018 (137M-140M)"),
    ("ShuffleNetV2 1.0x", shufflenet_v2(width=1.0), 146e6, 2.28e6, "Ma et al. 2018, Table 5"),
    ("ResNet-18", resnet18(), 1.8e9, 11.69e6, "He et al. 2016, Table 1 (FLOPs there are multiply-adds); torchvision"),
    ("ResNet-34", resnet34(), 3.6e9, 21.80e6, "He et al. 2016, Table 1; torchvision"),
    ("ResNet-50 (v1.5)", resnet50(), 4.09e9, 25.56e6, "torchvision (the paper's v1, stride on the 1x1: 3.8G)"),
    ("ResNet-101 (v1.5)", resnet101(), 7.80e9, 44.55e6, "torchvision (the paper's v1: 7.6G)"),
    ("MnasNet-B1 1.0", mnasnet_b1(), 315e6, 4.4e6, "Tan et al. 2019; torchvision mnasnet1_0: 4,383,312 parameters"),
]


def main() -> int:
    rows = []
    for name, spec, macs, params, source in REFERENCE:
        costs = count_costs(spec)
        rows.append({"model": name, "macs": costs.macs, "published_macs": macs,
                     "macs_err_pct": round(100 * (costs.macs / macs - 1), 2), "parameters": costs.params,
                     "published_parameters": params, "params_err_pct": round(100 * (costs.params / params - 1), 2),
                     "source": source, "arch": spec.format()})
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "zoo_fidelity.csv", index=False)
    shown = table.drop(columns=["arch"])
    text = ("# Reference architectures vs published figures\n\nCommand: `.venv/bin/python benchmarks/zoo_fidelity.py`. "
            "ShuffleNetV1 g3 is compared with 140M; the paper also gives 137M, and ours lies between.\n"
            "MobileNetV2 1.0 has exactly torchvision's 3,504,872 parameters (3,470,760 without BatchNorm, the "
            "authors' released 3.47M); the paper prints 3.4M.\n\n" + shown.to_markdown(index=False) + "\n")
    (RESULTS / "zoo_fidelity.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
