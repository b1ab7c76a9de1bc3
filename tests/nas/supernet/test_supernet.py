"""The supernet: elastic slices, extraction as a plain network, importance order, the file, training
with resume, BatchNorm re-estimation."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.core.config import Budgets, SpaceConfig, StageConfig, SupernetConfig
from nas.core.errors import UserError
from nas.data.splits import Preprocess, Splits, to_tensor
from nas.cost.parts import PartCosts
from nas.space.arch import ArchSpec, parse
from nas.space.builder import build
from nas.supernet.inherit import Inheritor, accuracy, recalibrate_bn
from nas.supernet.net import Supernet
from nas.supernet.space import SupernetSpace
from nas.supernet.store import check_matches, load_supernet, save_supernet
from nas.supernet.training import StepReport, SupernetTrainer

SPACE = SpaceConfig(stages=(StageConfig(chs=16, depths=(1,)), StageConfig(chs=24, stride=2, depths=(1, 2)),
                            StageConfig(chs=32, stride=2, depths=(1, 2, 3))),
                    resolutions=(12, 16), widths=(0.5, 1.0, 1.25), stem_chs=8, head_chs=32,
                    block_types=("ir", "fir", "ds"), kernels=(3, 5), exp_ratios=(1, 3, 6))


def _space(cfg: SpaceConfig = SPACE) -> SupernetSpace:
    return SupernetSpace(cfg, in_chs=1, num_classes=4)


def _scramble_bn(net: nn.Module) -> None:
    """Non-trivial BatchNorm parameters and statistics, so a wrong slice shows."""
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))


def _splits(n: int = 96, size: int = 16) -> Splits:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, n).astype(np.int64)
    images = (rng.random((n, size, size, 1)) * 60 + labels[:, None, None, None] * 50).astype(np.uint8)
    pre = Preprocess(size, 1, (0.4,), (0.3,), "gray")
    return Splits("synthetic", ("a", "b", "c", "d"), images, labels, images[:32], labels[:32], images[:32],
                  labels[:32], pre)


def test_every_subnetwork_extracts_to_the_same_function_as_a_plain_network() -> None:
    space = _space()
    net = Supernet(space)
    _scramble_bn(net)
    net.eval()
    rng = np.random.default_rng(0)
    kinds = set()
    for spec in [space.largest(), space.smallest(), *(space.random(rng) for _ in range(10))]:
        kinds |= {s.kind for s in spec.stages}
        x = torch.randn(3, 1, spec.resolution, spec.resolution)
        plain = net.extract(spec).eval()
        assert type(plain).__name__ == "Net" and plain.spec == spec
        torch.testing.assert_close(plain(x), net(x, spec), rtol=1e-5, atol=1e-5)
        rebuilt = build(parse(spec.format()))  # the arch string alone rebuilds it
        rebuilt.load_state_dict(plain.state_dict())
        torch.testing.assert_close(rebuilt.eval()(x), net(x, spec), rtol=1e-5, atol=1e-5)
    assert kinds == {"ir", "fir", "ds"}


def test_subnetworks_are_the_search_spaces_architectures() -> None:
    space = _space()
    spec, params = space.sample(lambda name, choices: choices[-1])
    assert space.space.sample(_Fixed(params)) == spec  # the same choices an Optuna trial would make
    assert space.largest().stages[-1].out_chs == space.max_out[-1] == 40
    assert [s.repeats for s in space.smallest().stages] == [1, 1, 1]


class _Fixed:
    def __init__(self, params: dict) -> None:
        self.params = params

    def suggest_categorical(self, name: str, choices: list) -> object:
        assert self.params[name] in choices
        return self.params[name]


def test_a_space_the_supernet_cannot_slice_is_refused_in_one_line() -> None:
    with pytest.raises(UserError, match=r"block type sh .*grouped 1x1 convs.*allowed with a supernet: ir, fir, ds"):
        _space(dataclasses.replace(SPACE, block_types=("ir", "sh")))
    with pytest.raises(UserError, match="squeeze-and-excite"):
        _space(dataclasses.replace(SPACE, se=(False, True)))
    space = _space()
    with pytest.raises(UserError, match="not a subnetwork of this supernet: stage 2"):
        Supernet(space).extract(parse("in_c1_r16-stem_k3_s1_c8-ds_r1_k3_s1_c8-ds_r1_k3_s2_c16-ds_r4_k3_s2_c24"
                                      "-head_c32-fc_c4"))


def test_reordering_keeps_the_largest_function_and_sorts_hidden_channels() -> None:
    space = _space(dataclasses.replace(SPACE, exp_ratios=(3, 6)))  # ir can reorder without e=1
    net = Supernet(space)
    optimizer = torch.optim.AdamW(net.parameters())
    spec = space.largest()
    x = torch.randn(2, 1, 16, 16)
    net(x, spec).sum().backward()
    optimizer.step()
    net.eval()
    before = net(x, spec)
    block = net.stages[2][0]["ir"]
    weight = block.project.conv.weight
    order = torch.argsort(weight.abs().sum(dim=(0, 2, 3)), descending=True)
    moment = optimizer.state[weight]["exp_avg"].clone()
    assert net.reorder(optimizer) == 12  # the ir and the fir block of each of the 6 positions
    torch.testing.assert_close(net(x, spec), before, rtol=1e-5, atol=1e-5)
    norms = weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(norms[:-1] >= norms[1:])
    torch.testing.assert_close(optimizer.state[weight]["exp_avg"], moment[:, order])  # the state moved with them


def test_batchnorm_statistics_are_re_estimated_exactly() -> None:
    splits = _splits()
    model = build(parse("in_c1_r16-stem_k3_s1_c8-ds_r1_k3_s1_c8-head_c16-fc_c4")).eval()
    used = recalibrate_bn(model, splits.x_train, splits.preprocess, 16, n_images=64, seed=0, batch_size=16)
    assert used == 64
    chosen = np.sort(np.random.default_rng(0).choice(96, 64, replace=False))
    with torch.no_grad():
        conv_out = model.stem[0].conv(to_tensor(splits.x_train[chosen], splits.preprocess, 16))
    torch.testing.assert_close(model.stem[0].bn.running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert model.stem[0].bn.momentum == 0.1 and not model.training


def test_file_round_trip_and_mismatches(tmp_path: Path) -> None:
    splits = _splits()
    net = Supernet(_space())
    _scramble_bn(net)
    path = tmp_path / "supernet.pt"
    sha = save_supernet(path, net, splits, {"epochs": 0})
    loaded = load_supernet(path)
    assert loaded.sha256 == sha and loaded.classes == splits.classes
    spec = _space().random(np.random.default_rng(3))
    x = torch.randn(2, 1, spec.resolution, spec.resolution)
    torch.testing.assert_close(loaded.net(x, spec), net.eval()(x, spec))
    check_matches(loaded, dataclasses.replace(SPACE, widths=(0.5,)), splits)  # a narrower space is covered
    with pytest.raises(UserError, match="space.kernels"):
        check_matches(loaded, dataclasses.replace(SPACE, kernels=(3, 7)), splits)
    with pytest.raises(UserError, match="trained on synthetic"):
        check_matches(loaded, SPACE, dataclasses.replace(splits, classes=("a", "b")))
    (tmp_path / "bad.pt").write_bytes(b"not a supernet")
    with pytest.raises(UserError, match="not a readable supernet file"):
        load_supernet(tmp_path / "bad.pt")
    # image folders name their classes with numpy strings: the file must still load with weights_only
    numpy_names = dataclasses.replace(splits, classes=tuple(np.array(["a", "b", "c", "d"])))
    save_supernet(tmp_path / "folder.pt", net, numpy_names, {"epochs": 0})
    assert load_supernet(tmp_path / "folder.pt").classes == ("a", "b", "c", "d")


class _Stop(KeyboardInterrupt):
    pass


def test_training_resumes_exactly_after_a_kill(tmp_path: Path) -> None:
    splits = _splits()
    cfg = SupernetConfig(epochs=2, batch_size=32, lr=0.01, checkpoint_minutes=1000.0, threads=1)

    def trained(checkpoint: Path, stop_at: tuple[int, int] | None) -> Supernet:
        torch.manual_seed(0)
        net = Supernet(_space())

        def on_step(r: StepReport) -> None:
            if stop_at == (r.epoch, r.step):
                raise _Stop()
        trainer = SupernetTrainer(net, splits, cfg, seed=0, checkpoint=checkpoint, on_step=on_step)
        trainer.run()
        return net

    straight = trained(tmp_path / "a.pt", None)
    with pytest.raises(_Stop):
        trained(tmp_path / "b.pt", (2, 2))  # killed in epoch 2: the epoch-1 checkpoint remains
    resumed = trained(tmp_path / "b.pt", None)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(UserError, match="other settings"):
        SupernetTrainer(Supernet(_space()), splits, dataclasses.replace(cfg, lr=0.02), seed=0,
                        checkpoint=tmp_path / "b.pt").run()


def test_inherited_weights_beat_random_ones_after_supernet_training(tmp_path: Path) -> None:
    splits = _splits(n=256)
    torch.manual_seed(0)
    net = Supernet(_space())
    SupernetTrainer(net, splits, SupernetConfig(epochs=3, batch_size=32, lr=0.01), seed=0,
                    checkpoint=tmp_path / "c.pt").run()
    spec = net.space.smallest()
    model = build(spec)
    assert Inheritor(net, bn_images=128)(model, splits.x_train, splits.y_train, preprocess=splits.preprocess,
                                         resolution=spec.resolution, cfg=SupernetConfig(), seed=0) == []
    inherited = accuracy(model, splits.x_val, splits.y_val, splits.preprocess, spec.resolution)
    assert inherited > 0.5  # four classes: chance is 0.25


def test_each_step_runs_one_resolution_and_budget_feasible_random_subnetworks(tmp_path: Path) -> None:
    splits = _splits()
    torch.manual_seed(0)
    net = Supernet(_space())
    parts = PartCosts()
    low, high = (parts.costs(spec).macs for spec in (net.space.smallest(), net.space.largest()))
    budgets = Budgets(macs=(low + high) / 2)
    seen: list[tuple[int, ArchSpec]] = []
    forward = net.forward

    def spy(x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        seen.append((x.shape[-1], spec))
        return forward(x, spec)
    net.forward = spy  # type: ignore[method-assign]
    trainer = SupernetTrainer(net, splits, SupernetConfig(epochs=1, batch_size=16, threads=1), seed=0,
                              checkpoint=tmp_path / "d.pt", budgets=budgets)
    trainer.run()
    steps = [seen[i:i + 4] for i in range(0, len(seen), 4)]  # largest, smallest, two random
    assert len(steps) == trainer.steps == 6
    for step in steps:
        assert len({r for r, _ in step} | {spec.resolution for _, spec in step}) == 1  # one resolution a batch
        assert step[0][1].format() == dataclasses.replace(net.space.largest(), resolution=step[0][0]).format()
        assert all(trainer.sampler.fits(spec) for _, spec in step[2:])  # random ones within the budget
    assert {step[0][0] for step in steps} == set(SPACE.resolutions)  # the largest trains at every resolution
