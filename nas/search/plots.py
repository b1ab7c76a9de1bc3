"""front.png: accuracy against MACs and against latency, front highlighted, baselines marked,
budgets drawn."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from nas.core.files import write_atomic  # noqa: E402


def _axes(front: pd.DataFrame, profile: str) -> tuple[tuple[str, str], ...]:
    kind = front["latency_kind"].iloc[0] if len(front) else "measured"
    how = "measured, onnxruntime on this host" if kind == "measured" else f"predicted, profile {profile}"
    caveats = front["latency_caveat"].notna() if "latency_caveat" in front else pd.Series(dtype=bool)
    if caveats.any():
        how += f"; EXTRAPOLATED for {int(caveats.sum())} of {len(front)} points, hollow"
    return ("macs", "MACs (fvcore, batch 1)"), ("latency_ms", f"latency ms ({how})")


def _rejected(trials: pd.DataFrame | None) -> pd.DataFrame:
    if trials is None or not len(trials):
        return pd.DataFrame(columns=["macs", "latency_ms"])
    return trials[trials["rejected_before_training"].fillna(False).astype(bool)]


def plot_front(trials: pd.DataFrame, front: pd.DataFrame, *, budgets: dict[str, float | None], path: Path,
               title: str, baseline_trials: pd.DataFrame | None = None, profile: str = "",
               finals: pd.DataFrame | None = None) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    complete = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    searched = front[front["source"] == "search"]
    baselines = front[front["source"] == "baseline"]
    for ax, (x, label) in zip(axes, _axes(front, profile)):
        if len(complete):
            ax.scatter(complete[x], complete["accuracy"] * 100, c="0.65", s=22, label="searched trials")
        for rejected, color, what in ((_rejected(trials), "tab:red", "search"),
                                      (_rejected(baseline_trials), "tab:orange", "baseline")):
            if len(rejected) and rejected[x].notna().any():
                ax.plot(rejected[x], [0.02] * len(rejected), "|", color=color, ms=14,
                        transform=ax.get_xaxis_transform(), label=f"{what} rejected before training")
        ordered = searched.sort_values(x)
        if len(ordered):
            # a point whose latency the profile extrapolates is drawn hollow on both panels
            hollow = ordered["latency_caveat"].notna() if "latency_caveat" in ordered else ordered["trial"] < 0
            ax.scatter(ordered[x], ordered["accuracy"] * 100, s=45, zorder=3, label="Pareto front (all objectives)",
                       facecolors=["none" if h else "tab:blue" for h in hollow], edgecolors="tab:blue")
            for _, row in ordered.iterrows():
                ax.annotate(str(int(row["trial"])), (row[x], row["accuracy"] * 100), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        if len(baselines):
            ax.scatter(baselines[x], baselines["accuracy"] * 100, marker="s", c="tab:orange", s=30,
                       label="handcrafted baselines")
            for _, row in baselines.iterrows():
                ax.annotate(str(row["name"]).replace("shufflenet", "shn").replace("mobilenet", "mbn"),
                            (row[x], row["accuracy"] * 100), fontsize=6, xytext=(3, -8), textcoords="offset points",
                            color="tab:orange")
        if finals is not None and len(finals):
            _draw_finals(ax, x, finals, front)
        if budgets.get(x) is not None:
            ax.axvline(budgets[x], color="tab:red", ls="--", label=f"budget {budgets[x]:g}")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy % (measured on the exported file)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title}: accuracy vs cost")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _draw_finals(ax: plt.Axes, x: str, finals: pd.DataFrame, front: pd.DataFrame) -> None:
    """Finals (hwnas train) as stars, each joined to its proxy-trained trial on the front."""
    shown = finals[finals[x].notna() & finals["final_accuracy"].notna()]
    ax.scatter(shown[x], shown["final_accuracy"] * 100, marker="*", s=90, color="tab:green", zorder=4,
               label="trained to convergence (hwnas train)")
    searched = front[front["source"] == "search"].set_index("trial") if len(front) else front
    for _, row in shown.iterrows():
        trial = row["trial"]
        if pd.notna(trial) and int(trial) in searched.index:
            proxy = searched.loc[int(trial)]
            ax.plot([proxy[x], row[x]], [proxy["accuracy"] * 100, row["final_accuracy"] * 100], color="tab:green",
                    lw=0.8, alpha=0.6)
