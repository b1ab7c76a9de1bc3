"""front.png: accuracy against MACs and against latency, front highlighted, budgets drawn."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_front(trials: pd.DataFrame, front: pd.DataFrame, *, budgets: dict[str, float | None], path: Path,
               title: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    complete = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    rejected = trials[trials["rejected_before_training"] == True] if len(trials) else trials  # noqa: E712
    for ax, x, label, budget in ((axes[0], "macs", "MACs (fvcore, batch 1)", budgets.get("macs")),
                                 (axes[1], "latency_ms", "latency ms (measured, onnxruntime)",
                                  budgets.get("latency_ms"))):
        ax.scatter(complete[x], complete["accuracy"] * 100, c="0.6", s=22, label="trained trials")
        if len(rejected) and rejected[x].notna().any():
            ax.plot(rejected[x], [0.02] * len(rejected), "|", color="tab:red", ms=14,
                    transform=ax.get_xaxis_transform(), label="rejected before training")
        ordered = front.sort_values(x)
        ax.plot(ordered[x], ordered["accuracy"] * 100, "-o", color="tab:blue", label="Pareto front (all objectives)")
        for _, row in ordered.iterrows():
            ax.annotate(str(int(row["trial"])), (row[x], row["accuracy"] * 100), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        if budget is not None:
            ax.axvline(budget, color="tab:red", ls="--", label=f"budget {budget:g}")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy % (exported ONNX)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title}: accuracy vs cost")
    fig.savefig(path, dpi=120)
    plt.close(fig)
