"""HW-NAS-Bench keys become the blocks they name; the tables' zero figures are left out."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas.core.errors import UserError
from nas.cost.layers import module_layers
from nas.hardware.hwnasbench import block_module, hwnasbench_measurements, load_table
from nas.space.blocks import FBNetBlock

SHARED_TABLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "hwnasbench_fbnet_blocks.json"


def test_block_keys_become_modules() -> None:
    module, shape = block_module("ConvBlock_H56_W56_Cin24_Cout32_exp6_kernel5_stride2_group1")
    assert isinstance(module, FBNetBlock) and shape == (1, 24, 56, 56)
    assert module.body[2][0].kernel_size == (5, 5) and module.body[2][0].stride == (2, 2)
    kinds = [l.kind for l in module_layers(*block_module("ConvBlock_H8_W8_Cin64_Cout64_exp1_kernel3_stride1_group2"))]
    assert kinds == ["gconv", "act", "shuffle", "dwconv", "act", "gconv", "add"]
    assert [l.kind for l in module_layers(*block_module("FC_Cin1504_Cout100"))] == ["linear"]
    assert module_layers(*block_module("Skip_H8_W8_Cin64_Cout64_stride1")) == []
    with pytest.raises(UserError, match="unknown HW-NAS-Bench block 'Pool_H8'"):
        block_module("Pool_H8")


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="../shared/data/hwnasbench_fbnet_blocks.json not present")
def test_hwnasbench_fpga_zeros_are_left_out() -> None:
    blocks, left_out = hwnasbench_measurements(load_table(SHARED_TABLE), "fpga_latency")
    assert len(blocks) + left_out == 225 and left_out >= 12 and all(b.latency_ms > 0 for b in blocks)
