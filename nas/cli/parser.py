"""The ``hwnas`` argument parser: every command, option and help text, with no heavy import.

Each command's handler lives in its own module (``nas.cli.search``, ``nas.cli.train``, ...) and is
imported only when that command runs, so ``hwnas --help`` and ``hwnas search --help`` answer
without loading torch, onnx or Optuna.

>>> build_parser().parse_args(["zoo", "--json"]).json
True
"""
from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import NoReturn

from nas import __version__
from nas.core.errors import plain
from nas.core.vocab import AUGMENTS, PRECISIONS, SUPERNET_FINAL_INIT

# argparse names the type of add_subparsers() only privately
Subparsers = argparse._SubParsersAction
Handler = Callable[[argparse.Namespace], int]
_STORAGE_HELP = "Optuna storage URL if the run used one"


def _handler(module: str, name: str) -> Handler:
    """The command ``name`` of ``nas.cli.<module>``, imported when the command runs."""
    def run(args: argparse.Namespace) -> int:
        command: Handler = getattr(importlib.import_module(f"nas.cli.{module}"), name)
        return command(args)
    run.__qualname__ = f"{module}.{name}"
    return run


class _OneLineParser(argparse.ArgumentParser):
    """argparse's parser, but a usage mistake is one line (the README's promise) naming the
    command's --help, not the usage block and then the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"hwnas: error: {self.prog}: {plain(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="hwnas", description="Hardware-aware neural architecture search.")
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library details")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_search, _compression, _networks, _profile, _device, _train, _supernet, _predict):
        add(sub)
    return parser


def _search(sub: Subparsers) -> None:
    """Register the run-folder commands on the ``hwnas`` parser."""
    p = sub.add_parser("search", help="run or resume a search", description="Run or resume a search from a YAML file.")
    p.add_argument("config", help="a searches/*.yaml path or the name of a bundled search (e.g. quickstart)")
    p.add_argument("--trials", type=int, help="total number of finished trials wanted (overrides search.trials)")
    p.add_argument("--storage", help="Optuna storage: an SQLAlchemy URL (sqlite:///..., postgresql://...) or "
                                     "journal:PATH (default: $HWNAS_STORAGE, else sqlite file study.db in the run "
                                     "folder); fixed when the run is created")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--workers", type=int, help="start this many local worker processes on the run's storage")
    p.add_argument("--profile", help="search for this hardware profile instead of search.profile: the run is "
                                     "named <name>-<profile> (runs/<name>-<profile>); with search.strategy supernet "
                                     "it reuses the config's trained supernet")
    p.set_defaults(func=_handler("search", "cmd_search"))
    p = sub.add_parser("baselines", help="train handcrafted baselines beside a search",
                       description="Train and evaluate the config's handcrafted grid (MobileNetV2 width x resolution, "
                                   "ShuffleNetV1 groups, ShuffleNetV2 widths, fitted to the input size) with the "
                                   "search's data, training budget and budgets; resumable; shown in front.csv/png.")
    p.add_argument("config", help="a searches/*.yaml path or the name of a bundled search")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite file study.db in the run folder)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--ignore-budgets", action="store_true",
                   help="train over-budget baselines too (recorded as infeasible) instead of rejecting them")
    p.set_defaults(func=_handler("search", "cmd_baselines"))
    p = sub.add_parser("front", help="print the Pareto front of a run", description="Print the Pareto front of a run.")
    p.add_argument("run_dir", help="a run folder written by hwnas search (e.g. runs/quickstart)")
    p.add_argument("--storage", help=_STORAGE_HELP)
    p.set_defaults(func=_handler("search", "cmd_front"))
    p = sub.add_parser("export", help="export a completed trial's model files (or another format of them)",
                       description="Copy a completed trial's files (the kinds its target profile runs) into "
                                   "models/<trial>/ with arch.txt, metrics.json and README.md. With --format, also "
                                   "write that format from the trial's weights (recipe re-applied) and measure it "
                                   "on the file with its runtime (onnxruntime or LiteRT).")
    p.add_argument("run_dir", help="a run folder written by hwnas search (e.g. runs/quickstart)")
    p.add_argument("--trial", type=int, required=True,
                   help="the trial number to export (the # column of hwnas front and trials.csv)")
    p.add_argument("--final", nargs="?", const="", metavar="STAGE",
                   help="the trial's final model (hwnas train) instead; STAGE for a final-STAGE folder")
    p.add_argument("--format", choices=("onnx", "tflite"), help="write this format too")
    p.add_argument("--precision", choices=("fp32", "int8"), help="with --format: fp32 (default) or full-integer int8")
    p.add_argument("--storage", help=_STORAGE_HELP)
    p.set_defaults(func=_handler("search", "cmd_export"))
    p = sub.add_parser("dashboard", help="serve optuna-dashboard for a run",
                       description="Serve optuna-dashboard for a run's study (bound to localhost by default).")
    p.add_argument("run_dir", help="a run folder written by hwnas search (e.g. runs/quickstart)")
    p.add_argument("--storage", help=_STORAGE_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    p.set_defaults(func=_handler("search", "cmd_dashboard"))


def _compression(sub: Subparsers) -> None:
    """Register ``compress`` on the ``hwnas`` parser."""
    p = sub.add_parser("compress", help="apply a compression recipe to a trained model of a run or your own model",
                       description="Prune (with fine-tuning, optionally distilled) and/or quantize a trained trial, "
                                   "or your own model (FILE.onnx, or FILE.py:CALLABLE returning a torch.nn.Module: "
                                   "this imports and runs FILE.py), and report accuracy, file size, MACs and "
                                   "latency before and after, each measured on the file.")
    p.add_argument("model_dir", help="runs/<name>/trials/<n>, runs/<name>/models/<n>, FILE.onnx or FILE.py:CALLABLE")
    p.add_argument("--recipe", help="a recipe YAML/JSON file or an inline mapping, e.g. "
                                    "'{prune: {criterion: l1, target_macs: 0.5}, quantize: {mode: static}}'")
    p.add_argument("--name", help="output folder name under MODEL_DIR/compressed (default: recipe-<hash>)")
    own = p.add_argument_group("your own model (FILE.onnx or FILE.py:CALLABLE)")
    own.add_argument("--data", help="fashion-mnist, mnist, cifar10, or an image folder / .tar.gz with train/ and test/")
    own.add_argument("--weights", help="a state dict file (read with weights_only=True: tensors only, no code runs)")
    own.add_argument("--input-shape", help="C,H,W of the model's input (FILE.py:CALLABLE needs it)")
    own.add_argument("--profile", help="the target device profile: latency budgets and predictions (default cpu)")
    own.add_argument("--format", action="append", choices=("onnx", "tflite"),
                     help="files to write: onnx (default), tflite (int8, full-integer, for the Edge TPU); repeatable")
    own.add_argument("--mean", help="per-channel mean the model was trained with (default: the data's own)")
    own.add_argument("--std", help="per-channel std the model was trained with (default: the data's own)")
    own.add_argument("--contract", help="a JSON deploy contract (hwnas.preprocess) giving mean and std instead")
    own.add_argument("--out", help="output folder (default compressed/<model>-<recipe hash>)")
    own.add_argument("--seed", type=int, default=0, help="seed of the data split and calibration draw (default 0)")
    own.add_argument("--search", action="store_true", help="search recipes under the budgets instead of applying "
                                                          "--recipe: writes a front of measured files")
    own.add_argument("--trials", type=int, default=12, help="with --search: finished trials wanted (default 12)")
    own.add_argument("--budget", action="append", metavar="KEY=VALUE",
                     help="with --search: latency_ms, peak_memory_mb or file_mb on the profile; repeatable")
    own.add_argument("--finetune-iters", type=int, default=300,
                     help="with --search: distilled fine-tuning steps after pruning (default 300)")
    p.set_defaults(func=_handler("compression", "cmd_compress"))


def _networks(sub: Subparsers) -> None:
    """Register ``zoo`` and ``cost`` on the ``hwnas`` parser."""
    p = sub.add_parser("zoo", help="list reference architectures with MACs and parameters",
                       description="List reference families (MobileNetV1/V2, ShuffleNetV1/V2, ResNet-18/34/50/101, "
                                   "MnasNet-B1, FBNet) as arch strings of the grammar, with fvcore MACs and "
                                   "parameters.")
    p.add_argument("--json", action="store_true", help="one JSON object per row")
    p.add_argument("--classes", type=int, help="classifier outputs (default: 1000; FBNet CIFAR rows: 100)")
    p.add_argument("--in-channels", type=int, help="input channels (default 3)")
    p.add_argument("--resolution", type=int, help="input resolution for every row (default: each row's own)")
    p.set_defaults(func=_handler("networks", "cmd_zoo"))
    p = sub.add_parser("cost", help="price one architecture or your own model on hardware profiles",
                       description="MACs, parameters, weight and peak activation memory, and latency of an "
                                   "architecture string, a zoo network, or your own model (an ONNX file, or "
                                   "FILE.py:CALLABLE returning a torch.nn.Module: this imports and runs FILE.py), "
                                   "saying how the latency was obtained.")
    p.add_argument("arch", nargs="?", help="a canonical architecture string, FILE.onnx, or FILE.py:CALLABLE")
    p.add_argument("--weights", help="with FILE.py:CALLABLE: a state dict file (read with weights_only=True: "
                                     "tensors only, no code runs)")
    p.add_argument("--input-shape", help="C,H,W of the model's input (FILE.py:CALLABLE needs it; an ONNX file "
                                         "states its own)")
    p.add_argument("--zoo", help="a reference family instead of ARCH (the families hwnas zoo lists, e.g. mobilenet_v2)")
    p.add_argument("--width", type=float, help="with --zoo: width multiplier (default 1.0)")
    p.add_argument("--resolution", type=int, help="with --zoo: input resolution (default: the family's own)")
    p.add_argument("--groups", type=int, help="with --zoo shufflenet_v1: groups")
    p.add_argument("--classes", type=int, help="with --zoo: classifier outputs (default 1000)")
    p.add_argument("--in-channels", type=int, help="with --zoo: input channels (default 3)")
    p.add_argument("--profile", help="a bundled profile name or a profile YAML path (default: cpu for an "
                                     "architecture; every bundled profile for a model file)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="the precision priced (default fp32)")
    p.add_argument("--layers", action="store_true", help="add the per-layer table of the deployed graph")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=_handler("networks", "cmd_cost"))


def _profile(sub: Subparsers) -> None:
    """Register ``profile calibrate`` and ``profile build`` on the ``hwnas`` parser."""
    profile = sub.add_parser("profile", help="hardware profile tools",
                             description="Hardware profile tools.").add_subparsers(dest="profile_command", required=True)
    p = profile.add_parser("calibrate", help="fit a predicted profile's latency model to measured latencies",
                           description="Fit a predicted profile's latency model to per-block latencies "
                                       "(HW-NAS-Bench's table format; error on a held-out half), to networks timed "
                                       "by hwnas profile build, or to published whole-network latencies (--networks; "
                                       "error leave-one-family-out), and write a new profile version with the fit, "
                                       "a note of data and conditions, and its cross-validated error.")
    p.add_argument("profile", help="a bundled profile name or a profile YAML path")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--measurements",
                        help="a file written by hwnas profile build, or a HW-NAS-Bench-style JSON table "
                             "{metric: {key: ms}}")
    source.add_argument("--networks",
                        help="whole-network latencies, a CSV with columns network (a zoo family or an arch string), "
                             "width, resolution, runtime, precision, latency_ms[, family, source]; rows of another "
                             "runtime or precision are skipped and counted; error is leave-one-family-out")
    p.add_argument("--runtime", help="with --networks: the runtime column rows must have (default: the profile's "
                                     "conditions.runtime)")
    p.add_argument("--scale-from", choices=PRECISIONS,
                   help="with --networks: fit --precision as a scaled copy of the model this precision's rows give "
                        "(when --precision's rows cover too few families to fit the terms)")
    p.add_argument("--scale-from-runtime", help="with --scale-from: the runtime of those rows (default: --runtime)")
    p.add_argument("--metric", help="with a HW-NAS-Bench table: which table of the file, e.g. raspi4_latency")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="the precision the measurements were taken at (its peak is used)")
    p.add_argument("--out", help="where to write the new version (default: over the profile file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the half/half split")
    p.add_argument("--measured-on", help="the measurements come from this sibling device (e.g. 'Jetson TX2'); "
                                         "its fit carries across to the profile's own peak and bandwidth")
    p.add_argument("--measured-on-peak", type=float, help="the sibling's peak MAC/s at --precision")
    p.add_argument("--measured-on-bandwidth", type=float, help="the sibling's memory bandwidth, GB/s")
    p.add_argument("--form", default="auto", choices=["auto", "roofline", "linear"],
                   help="with a HW-NAS-Bench table: the model form to fit; auto fits both and keeps the one with the "
                        "lower held-out error (default). profile build files always fit the linear form")
    p.add_argument("--assume", action="append", metavar="KIND=LIKE",
                   help="with a HW-NAS-Bench table: a compute kind the table lacks runs with the fitted parameters of "
                        "one it has (e.g. conv=pwconv); written into the fit note; repeatable")
    p.set_defaults(func=_handler("profile", "cmd_profile_calibrate"))
    _profile_build(profile)


def _profile_build(profile: Subparsers) -> None:
    """Register ``profile build``."""
    p = profile.add_parser("build", help="measure this machine (or a device, --remote) with onnxruntime for calibrate",
                           description="Time a designed set of networks with onnxruntime on this machine (and its "
                                       "peak MAC rate, bandwidth and layout), write NAME-measurements.json with the "
                                       "conditions and an uncalibrated profile NAME.yaml; then run calibrate.")
    p.add_argument("--name", required=True, help="the profile's name")
    p.add_argument("--out", default=".", help="folder for NAME.yaml and NAME-measurements.json (default: .)")
    p.add_argument("--n", type=int, default=300, help="networks in the designed set (default 300)")
    p.add_argument("--precision", action="append", choices=PRECISIONS,
                   help="precision to measure; repeat for several (default: fp32 and int8)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=200, help="timed runs per network; the median counts (default 200)")
    p.add_argument("--rounds", type=int, default=3,
                   help="passes over the whole set; each network's figure is the median of its passes (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random designed set (default 0)")
    p.add_argument("--space", help="time random networks of this search file's space instead of the generic "
                                   "designed set (a model for the space you will search)")
    p.add_argument("--force", action="store_true", help="overwrite an existing NAME.yaml with version 1")
    p.add_argument("--remote", metavar="URL",
                   help="measure the device at URL instead of this machine: its latency agent (hwnas device serve "
                        "on the device; token from HWNAS_AGENT_TOKEN) times every file with the device's onnxruntime")
    p.set_defaults(func=_handler("profile", "cmd_profile_build"))


def _device(sub: Subparsers) -> None:
    """Register ``device serve`` and ``device measure`` (the latency agent on the user's device)."""
    device = sub.add_parser("device", help="the latency agent that times model files on your device",
                            description="Serve hwnas's latency agent on a device, or time a file through one.")
    commands = device.add_subparsers(dest="device_command", required=True)
    p = commands.add_parser("serve", help="serve the latency agent on this device",
                            description="Serve the latency agent (nas/deploy/device_agent.py; the file alone also runs "
                                        "without hwnas or torch). Its token is read from HWNAS_AGENT_TOKEN (16 "
                                        "characters or more); it listens on loopback unless --host says otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free one, printed)")
    p.add_argument("--max-bytes", type=int, default=64 * 2 ** 20, help="largest model file accepted (default 64 MiB)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="longest measurement (default 120 s)")
    p.set_defaults(func=_handler("device", "cmd_device_serve"))
    p = commands.add_parser("measure", help="time a model file on a device through its agent",
                            description="Send an .onnx or .tflite file to the agent at --url and print its timings "
                                        "and the device's conditions (token from HWNAS_AGENT_TOKEN).")
    p.add_argument("model", help="an .onnx or .tflite file")
    p.add_argument("--url", required=True, help="the agent, e.g. http://127.0.0.1:8765")
    p.add_argument("--threads", type=int, default=1, help="runtime threads on the device (default 1)")
    p.add_argument("--repeats", type=int, default=50, help="timed runs; the median counts (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.set_defaults(func=_handler("device", "cmd_device_measure"))


def _train(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train chosen trials to convergence (resumable)",
                       description="Train trials of a run (or arch strings) to convergence on the whole training "
                                   "split with augmentation, with their compression recipe; export and measure the "
                                   "files into models/<trial>/final/ and write finals.csv. A checkpoint is written "
                                   "every epoch: the same command after a kill resumes.")
    p.add_argument("run_dir", help="a run folder written by hwnas search")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, nargs="+", help="trial numbers of the search")
    which.add_argument("--front", action="store_true", help="every feasible Pareto-optimal trial of the search")
    which.add_argument("--arch", nargs="+", help="arch strings to train with the run's data (models/arch-<hash>/)")
    p.add_argument("--epochs", type=int, help="overrides final.epochs")
    p.add_argument("--train-subset", help="all (default) or a number of training images; overrides final.train_subset")
    p.add_argument("--lr", type=float, help="overrides final.lr")
    p.add_argument("--batch-size", type=int, help="overrides final.batch_size")
    p.add_argument("--optimizer", help="adamw or sgd; overrides final.optimizer")
    p.add_argument("--schedule", help="onecycle, cosine or constant; overrides final.schedule")
    p.add_argument("--weight-decay", type=float, help="overrides final.weight_decay")
    p.add_argument("--label-smoothing", type=float, help="overrides final.label_smoothing")
    p.add_argument("--augment", help=f"auto, none, or a comma list of {', '.join(AUGMENTS)}; overrides final.augment")
    p.add_argument("--threads", type=int, help="torch threads; overrides final.threads")
    p.add_argument("--device", help="auto, cpu or cuda; overrides final.device")
    p.add_argument("--init-from", metavar="WEIGHTS", help="start from these weights (e.g. models/<trial>/final/"
                   "weights.pt) instead of random ones: a warm restart or a fine-tune; needs --stage")
    p.add_argument("--init", choices=("scratch", "inherited"),
                   help="trials of a supernet search: start from random weights (scratch) or fine-tune their "
                        f"inherited weights (inherited); default {SUPERNET_FINAL_INIT} (benchmarks/results/supernet.md "
                        "compares them). Other trials always start from scratch")
    p.add_argument("--stage", help="name of this training stage: results go to models/<trial>/final-STAGE/")
    p.add_argument("--restart", action="store_true", help="drop checkpoints and finished finals of these models first")
    p.add_argument("--storage", help="Optuna storage URL if the run used one")
    p.set_defaults(func=_handler("train", "cmd_train"))


def _supernet(sub: Subparsers) -> None:
    p = sub.add_parser("supernet", help="train or inspect a weight-sharing supernet over a search space",
                       description="A once-for-all/BigNAS supernet over a config's space "
                                   "(the block kinds with an elastic form: depth, width, expansion, kernel and resolution), searched with "
                                   "search.strategy: supernet.")
    commands = p.add_subparsers(dest="supernet_command", required=True)
    t = commands.add_parser("train", help="train (or resume) the supernet of a config",
                            description="Train the supernet with the sandwich rule and in-place distillation; "
                                        "resumable (checkpoint every epoch and every supernet.checkpoint_minutes).")
    t.add_argument("config", help="a searches/*.yaml path or the name of a bundled search (e.g. supernet)")
    t.add_argument("--out", help="folder for supernet.pt, checkpoint.pt, training.json "
                                 "(default: runs/<name>-supernet)")
    t.add_argument("--epochs", type=int, help="overrides supernet.epochs")
    t.add_argument("--restart", action="store_true", help="drop the checkpoint and train from scratch")
    t.add_argument("--print-every", type=int, default=20, help="progress line every N steps (default 20)")
    t.set_defaults(func=_handler("supernet", "cmd_supernet_train"))
    i = commands.add_parser("info", help="describe a supernet file", description="Describe a supernet file.")
    i.add_argument("path", help="a supernet.pt, or a config whose default supernet to describe")
    i.set_defaults(func=_handler("supernet", "cmd_supernet_info"))


def _predict(sub: Subparsers) -> None:
    p = sub.add_parser("predict", help="classify images with an exported model, following its deploy contract",
                       description="Prepare each image exactly as the file's hwnas.preprocess metadata says and run "
                                   "the file (onnxruntime for .onnx, LiteRT for .tflite); print the top classes.")
    p.add_argument("model", help="an exported .onnx or .tflite file")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=3, help="how many classes to print (default 3)")
    p.set_defaults(func=_handler("predict", "cmd_predict"))
