"""The tabulated benchmark of the search-efficiency benchmark: every candidate the real runs
trained (benchmarks/search_real.py), and a surrogate fitted to them that prices any candidate of
the space as a real run would see it (NAS-Bench-301 style: a model of the table, not only the
table, because the spaces hold 10^5-10^7 architectures).

What the surrogate predicts for an architecture, from its encoding (resolution, width, per stage:
kind, depth, kernel, expansion, groups; and its log MACs, parameters, memory, which hwnas prices
exactly):

- validation accuracy after each epoch (epochs 1..3 of the 3-epoch one-cycle schedule; measured
  in PyTorch by the curve trainer) and the file's validation and test accuracy: Gaussian-process
  regression (RBF kernel on standardised features over a linear mean; length scale, signal and
  noise by marginal likelihood on a grid). A replayed candidate draws its figures from the
  predictive mean plus the fitted noise (one draw shared by its epochs: curves are correlated), so
  a strategy meets the training noise a real run meets;
- seconds per epoch, the evaluation of the file after training (export, host latency, accuracy on
  the file), and the host latency: log-linear least squares on log MACs, log parameters and
  resolution, with their residual noise.

Its error is measured on trials it was not fitted to (:func:`held_out_error`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from scipy import stats

from nas.cost.costs import ModelCosts
from nas.search.record import result_of
from nas.search.storage import storage_from_url
from nas.space.arch import ArchSpec, parse

KINDS = ("ir", "sh", "ds")
ACC_TARGETS = ("acc_e1", "acc_e2", "acc_e3", "val_file", "test_file")


def features(spec: ArchSpec, costs: ModelCosts, n_stages: int = 4) -> np.ndarray:
    """The encoding the surrogate reads (one row)."""
    row = [spec.resolution, spec.stem_chs, math.log(costs.macs), math.log(costs.params), math.log(costs.memory_mb)]
    for stage in spec.stages[:n_stages]:
        row += [float(stage.kind == k) for k in KINDS]
        row += [stage.repeats, stage.out_chs, stage.kernel if stage.kind != "sh" else 0,
                stage.exp_ratio if stage.kind == "ir" else 0, stage.groups if stage.kind == "sh" else 0]
    return np.asarray(row, dtype=float)


def load_run(run_dir: Path, name: str) -> pd.DataFrame:
    """Every finished trial of one real run, with its learning curve (joined by the trial seed)."""
    curves = {}
    if (run_dir / "curves.jsonl").exists():
        for line in (run_dir / "curves.jsonl").read_text().splitlines():
            if line.strip():
                curve = json.loads(line)
                curves[curve["seed"]] = curve
    storage = storage_from_url(f"sqlite:///{run_dir / 'run' / 'study.db'}", heartbeat=False)
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[-1], storage=storage)
    started = json.loads((run_dir / "done.json").read_text())["started"]
    rows = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                          optuna.trial.TrialState.PRUNED)):
        r = result_of(trial)
        if r is None or r.costs is None or trial.datetime_complete is None:
            continue
        curve = curves.get(r.seed)
        row: dict[str, Any] = {
            "run": name, "trial": trial.number, "arch": r.arch, "macs": r.costs.macs, "params": r.costs.params,
            "memory_mb": r.costs.memory_mb, "rejected": bool(r.rejected_before_training),
            "feasible": bool(r.feasible), "val_file": r.val_accuracy, "test_file": r.test_accuracy,
            "latency_ms": r.host_latency_ms, "seconds": r.seconds, "train_seconds": r.train_seconds,
            "end_s": trial.datetime_complete.timestamp() - started}
        if curve is not None and len(curve["acc"]) == 3:
            evals = sum(curve["eval_s"])
            row |= {f"acc_e{i + 1}": a for i, a in enumerate(curve["acc"])}
            row |= {"epoch_s": (curve["epoch_end_s"][-1] - evals + curve["eval_s"][-1]) / 3,
                    "eval_s": float(np.mean(curve["eval_s"]))}
            row["after_train_s"] = (r.seconds or 0) - (r.train_seconds or 0)
        rows.append(row)
    return pd.DataFrame(rows)


def _rbf(a: np.ndarray, b: np.ndarray, length: float) -> np.ndarray:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2 / length ** 2)


@dataclass
class GP:
    """Gaussian-process regression over a least-squares linear mean, on standardised features."""

    length: float = 3.0
    signal: float = 0.05
    noise: float = 0.01

    def fit(self, x: np.ndarray, y: np.ndarray) -> GP:
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-9
        z = (x - self.mu) / self.sd
        design = np.c_[np.ones(len(z)), z]
        self.beta = np.linalg.lstsq(design.T @ design + 1.0 * np.eye(design.shape[1]), design.T @ y, rcond=None)[0]
        resid = y - design @ self.beta
        best = -np.inf
        for length in (1.0, 2.0, 3.0, 5.0, 8.0):
            for signal in np.std(resid) * np.array([0.3, 0.6, 1.0, 1.5]):
                for noise in np.std(resid) * np.array([0.1, 0.2, 0.4, 0.7]):
                    k = signal ** 2 * _rbf(z, z, length) + (noise ** 2 + 1e-10) * np.eye(len(z))
                    chol = np.linalg.cholesky(k)
                    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, resid))
                    ll = -0.5 * resid @ alpha - np.log(np.diag(chol)).sum()
                    if ll > best:
                        best, self.length, self.signal, self.noise = ll, length, float(signal), float(noise)
        self.z, self.resid = z, resid
        k = self.signal ** 2 * _rbf(z, z, self.length) + self.noise ** 2 * np.eye(len(z))
        self.alpha = np.linalg.solve(k, resid)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - self.mu) / self.sd
        mean = np.c_[np.ones(len(z)), z] @ self.beta
        return np.asarray(mean + self.signal ** 2 * _rbf(z, self.z, self.length) @ self.alpha)


@dataclass
class LogLinear:
    """log y = a + b * features (log MACs, log parameters, resolution), with its residual spread."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogLinear:
        design = np.c_[np.ones(len(x)), x]
        self.coef = np.linalg.lstsq(design, np.log(y), rcond=None)[0]
        self.noise = float(np.std(np.log(y) - design @ self.coef))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.exp(np.c_[np.ones(len(np.atleast_2d(x))), np.atleast_2d(x)] @ self.coef))


def _cost_columns(x: np.ndarray) -> np.ndarray:
    return np.atleast_2d(x)[:, [2, 3, 0]]  # log MACs, log parameters, resolution


class Surrogate:
    """Fitted to the trained rows of a table; :meth:`draw` prices one candidate for a replay."""

    def __init__(self, table: pd.DataFrame, specs: dict[str, tuple[ArchSpec, ModelCosts]]) -> None:
        trained = table.dropna(subset=["acc_e3", "val_file", "test_file", "epoch_s", "latency_ms"])
        trained = trained.drop_duplicates("arch")
        self.rows = trained
        x = np.stack([features(*specs[a]) for a in trained["arch"]])
        self.acc = {t: GP().fit(x, trained[t].to_numpy(float)) for t in ACC_TARGETS}
        self.corr = _residual_correlation(x, trained)
        cost_x = _cost_columns(x)
        self.epoch_s = LogLinear().fit(cost_x, trained["epoch_s"].to_numpy(float))
        self.after_s = LogLinear().fit(cost_x, trained["after_train_s"].clip(lower=0.1).to_numpy(float))
        self.latency = LogLinear().fit(cost_x, trained["latency_ms"].to_numpy(float))
        self.eval_s = float(trained["eval_s"].median())
        rejected = table[table["rejected"]]
        self.reject_s = float(rejected["seconds"].median()) if len(rejected) else 0.2
        self.between_s = between_trials_s(table)

    def mean(self, x: np.ndarray) -> dict[str, float]:
        cost_x = _cost_columns(x)
        out = {t: float(gp.predict(x)[0]) for t, gp in self.acc.items()}
        return out | {"epoch_s": float(self.epoch_s.predict(cost_x)[0]), "after_s": float(self.after_s.predict(cost_x)[0]),
                      "latency_ms": float(self.latency.predict(cost_x)[0])}

    def draw(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        """One candidate's figures as a real run would see them: mean plus noise."""
        out = self.mean(x)
        z = np.linalg.cholesky(self.corr) @ rng.standard_normal(len(ACC_TARGETS))
        for i, (t, gp) in enumerate(self.acc.items()):
            out[t] = float(np.clip(out[t] + gp.noise * z[i], 0.0, 1.0))
        for key, model in (("epoch_s", self.epoch_s), ("after_s", self.after_s), ("latency_ms", self.latency)):
            out[key] *= math.exp(model.noise * rng.standard_normal())
        return out


def between_trials_s(table: pd.DataFrame) -> float:
    """The median time from one trial's end to the next one's start in the real runs (the run's
    tables, front plot and models rewritten after each trial; the next candidate sampled)."""
    gaps = []
    for _, rows in table.groupby("run"):
        rows = rows.sort_values("end_s")
        gaps.extend((rows["end_s"].diff() - rows["seconds"]).dropna().tolist())
    return float(np.median(gaps)) if gaps else 0.0


def _residual_correlation(x: np.ndarray, trained: pd.DataFrame) -> np.ndarray:
    """How the accuracies of one candidate err together (epoch 1 against the file's, ...): the
    correlation of their two-fold cross-fitted residuals, so a replayed candidate's epoch-1 figure
    is as (un)informative of its final one as in the real runs."""
    half = np.arange(len(x)) % 2 == 0
    residuals = np.zeros((len(x), len(ACC_TARGETS)))
    for j, target in enumerate(ACC_TARGETS):
        y = trained[target].to_numpy(float)
        for fit in (half, ~half):
            residuals[~fit, j] = y[~fit] - GP().fit(x[fit], y[fit]).predict(x[~fit])
    corr = np.corrcoef(residuals.T)
    values, vectors = np.linalg.eigh(corr)  # nearest positive definite: a Cholesky factor exists
    corr = vectors @ np.diag(np.clip(values, 1e-6, None)) @ vectors.T
    scale = np.sqrt(np.diag(corr))
    return np.asarray(corr / np.outer(scale, scale) + 1e-9 * np.eye(len(ACC_TARGETS)))


def rung_agreement(surrogate: Surrogate, specs: dict[str, tuple[ArchSpec, ModelCosts]],
                   seed: int = 0) -> dict[str, float]:
    """Kendall tau of the accuracy at epochs 1 and 2 with the file's, in the real runs and in the
    surrogate's draws for the same architectures: what early stopping at a rung can know."""
    rng = np.random.default_rng(seed)
    real = surrogate.rows
    drawn = pd.DataFrame([surrogate.draw(features(*specs[a]), rng) for a in real["arch"]])
    out = {}
    for epoch in ("acc_e1", "acc_e2"):
        out[f"{epoch}_tau_real"] = float(stats.kendalltau(real[epoch], real["val_file"]).statistic)
        out[f"{epoch}_tau_replayed"] = float(stats.kendalltau(drawn[epoch], drawn["val_file"]).statistic)
    return out


def held_out_error(table: pd.DataFrame, specs: dict[str, tuple[ArchSpec, ModelCosts]], *,
                   seed: int = 0) -> dict[str, float]:
    """Fit on a random half of the trained architectures, score on the other half."""
    trained = table.dropna(subset=["acc_e3", "val_file", "test_file", "epoch_s", "latency_ms"]).drop_duplicates("arch")
    rng = np.random.default_rng(seed)
    mask = rng.random(len(trained)) < 0.5
    fit, held = trained[mask], trained[~mask]
    model = Surrogate(fit, specs)
    pred = pd.DataFrame([model.mean(features(*specs[a])) for a in held["arch"]])
    truth = held.reset_index(drop=True)
    out: dict[str, float] = {"fitted_on": len(fit), "held_out": len(held)}
    for target in ("acc_e1", "val_file", "test_file"):
        out[f"{target}_kendall_tau"] = float(stats.kendalltau(pred[target], truth[target]).statistic)
        out[f"{target}_mae_points"] = float(100 * np.mean(np.abs(pred[target] - truth[target])))
    for target in ("epoch_s", "latency_ms"):
        out[f"{target}_mdape_pct"] = float(100 * np.median(np.abs(pred[target] / truth[target] - 1)))
    return out


def parse_all(archs: list[str], price: Any) -> dict[str, tuple[ArchSpec, ModelCosts]]:
    """Each architecture string parsed and priced (``price(spec) -> ModelCosts``)."""
    return {a: (spec := parse(a), price(spec)) for a in dict.fromkeys(archs)}
