"""benchmarks/results/search_efficiency.md from the benchmark's figures."""
from __future__ import annotations

from typing import Any


def setup_text() -> str:
    return ("One worker, one training thread, 600 s of wall clock per run. Candidates: 3 epochs of the quickstart "
            "proxy training (Fashion-MNIST, 20,000 training images) or of the CIFAR-10 space (32 pixels, 10,000 "
            "training images), exported to ONNX, accuracy and host latency measured on the file. Real runs: "
            "benchmarks/search_real.py (hwnas run_search, random and TPE, seeds 0 and 1, the two datasets side by "
            "side on the two cores of this machine, every epoch's validation accuracy also measured). Replays: "
            "hwnas's samplers, space, pricing, budget gate, duplicate skipping and early-stopping judge against a "
            "surrogate fitted to every candidate the real runs trained, on a simulated clock (the surrogate's "
            "seconds per epoch and per file evaluation, the median rejection time, and the sampler's own time "
            "to propose, measured).")


def _fmt(value: Any, spec: str = ".4f") -> str:
    if value is None:
        return "never"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _strategy_rows(figures: dict[str, Any]) -> list[str]:
    lines = ["| strategy | seeds | HV median [q1, q3] | test-front HV median | regret median | time to random's "
             "median HV (s) | speedup vs random | p vs random (Mann-Whitney, one-sided) | trained / stopped / "
             "rejected per run | sampler s per run |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, f in figures.items():
        c = f["mean_counts"]
        lines.append(f"| {name} | {f['seeds']} | {f['hv_median']:.4f} [{f['hv_q1']:.4f}, {f['hv_q3']:.4f}] | "
                     f"{f['test_hv_median']:.4f} | {f['regret_median']:.4f} | {_fmt(f['time_to_random_hv_s'], '.0f')} | "
                     f"{_fmt(f['speedup_vs_random'], '.2f')} | {_fmt(f['p_vs_random'], '.3g')} | "
                     f"{c.get('trained', 0):.1f} / {c.get('stopped', 0):.1f} / {c.get('rejected', 0):.1f} | "
                     f"{f['sampler_s_median']:.1f} |")
    return lines


def markdown(payload: dict[str, Any]) -> str:
    lines = ["# Search efficiency: strategies against random sampling at equal wall clock", "",
             "`.venv/bin/python benchmarks/search_efficiency.py` (resumable; stages real, replay, report).", "",
             payload["setup"], "",
             "Hypervolume (HV): validation accuracy (max), host latency ms and MACs in millions (min), feasible "
             "trials only, up to a fixed reference point per dataset; not normalised. Regret: the HV of the union "
             "of every front any strategy found on that dataset, minus the strategy's. Test-front HV: the final "
             "front chosen on validation, scored with test accuracy (surrogate's in replays; measured on the "
             "files in real runs). `X+es1` / `X+es2`: sampler X with `search.early_stopping` at epoch 1 / epoch 2 of "
             "3 (`eta: 3`, `min_trials: 4`), on the model-based sampler with the best median HV. `tpe/p4`: TPE with "
             "`population: 4` (4 random start-up trials instead of 8). `X@real`: X "
             "replayed under the real runs' conditions (each epoch's validation accuracy also measured, as "
             "benchmarks/search_real.py does), to set beside the real runs; every replay also pays the real runs' "
             "median time between trials (tables, plot and models rewritten after each trial). `supernet` (Fashion-MNIST "
             "only): TPE on the supernet benchmarks/supernet.py trained (benchmarks/search_supernet.py), the clock "
             "starting at its training seconds, each candidate's accuracy its real inherited one (BatchNorm "
             "re-estimated) and its time the measured inherit-and-score seconds plus the surrogate's export and "
             "measurement; `supernet/amortised4`: the training shared by the four fronts searched from it (host CPU, "
             "Jetson Nano, Raspberry Pi 4, Edge TPU). Its front holds inherited accuracies: retrain before deploying.", ""]
    for data in ("fmnist", "cifar10"):
        if data not in payload:
            continue
        ref = payload["reference_points"][data]
        target = payload["target"][data]
        lines += [f"## {data}", "", f"Reference point: accuracy {ref['accuracy']}, latency {ref['latency_ms']} ms, "
                  f"{ref['macs_m']} M MACs; union HV {payload['union_hv'][data]:.4f}.", ""]
        lines += _strategy_rows(payload[data])
        lines += ["", f"Best strategy (fastest to random's median final HV; ties: the higher HV): **{target['best']}**, speedup vs random {_fmt(target['speedup_vs_random'], '.2f')}, "
                  f"p {_fmt(target['p_vs_random'], '.3g')}: target (speedup >= 2, p < 0.05) "
                  f"**{'MET' if target['met'] else 'NOT MET'}**.", ""]
        s = payload["surrogate_held_out"][data]
        lines += [f"Surrogate, fitted on {s['fitted_on']} architectures, scored on {s['held_out']} held out: "
                  f"file validation accuracy Kendall tau {s['val_file_kendall_tau']:.2f}, MAE "
                  f"{s['val_file_mae_points']:.2f} points; epoch-1 accuracy tau {s['acc_e1_kendall_tau']:.2f}, MAE "
                  f"{s['acc_e1_mae_points']:.2f} points; test accuracy tau {s['test_file_kendall_tau']:.2f}; seconds per "
                  f"epoch MdAPE {s['epoch_s_mdape_pct']:.0f}%; host latency MdAPE {s['latency_ms_mdape_pct']:.0f}%. What a rung "
                  f"knows, Kendall tau of the accuracy after epoch 1 (2) with the file's: real runs "
                  f"{s['acc_e1_tau_real']:.2f} ({s['acc_e2_tau_real']:.2f}), the surrogate's draws "
                  f"{s['acc_e1_tau_replayed']:.2f} ({s['acc_e2_tau_replayed']:.2f}).", ""]
        v = payload["validation"][data]
        lines += ["Real runs beside their replays (final HV at 600 s):", "",
                  "| strategy | real runs | replay q1 / median / q3 | real within replay min-max |", "|---|---|---|---|"]
        for sampler in ("random", "tpe"):
            r = v[sampler]
            lines.append(f"| {sampler} | {', '.join(f'{x:.4f}' for x in r['real_final_hv'])} | {r['replay_hv_q1']:.4f} / "
                         f"{r['replay_hv_median']:.4f} / {r['replay_hv_q3']:.4f} | {r['real_within_replay_range']} |")
        ratio = v["tpe_over_random"]
        lines += ["", f"TPE / random median final HV: real {ratio['real']:.3f}, replayed {ratio['replay']:.3f}.", "",
                  "| real run | trained | rejected | HV | test-front HV |", "|---|---|---|---|---|"]
        for run, r in payload["real_runs"][data].items():
            lines.append(f"| {run} | {r['trained']} | {r['rejected']} | {r['hv']:.4f} | {r['test_hv']:.4f} |")
        lines.append("")
    lines += ["![hypervolume over time](search_efficiency.png)", ""]
    return "\n".join(lines)
