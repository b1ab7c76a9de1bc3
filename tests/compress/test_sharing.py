"""Weight sharing with Huffman coding: clustered weights and a code that decodes exactly."""
from __future__ import annotations

import numpy as np
import torch

from compress.sharing import decode, encode, huffman_lengths, share_weights
from nas.space.arch import parse
from nas.space.builder import build, fuse_bn


def test_weight_sharing_codes_round_trip_exactly() -> None:
    assert list(huffman_lengths(np.array([5, 0, 1, 1]))) == [1, 0, 2, 2]
    model = fuse_bn(build(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e4_c16-head_c32-fc_c10")).eval())
    x = torch.randn(2, 1, 8, 8)
    layers = share_weights(model, bits=3, layer_bits={"classifier": 2})
    assert all(len(np.unique(l.symbols)) <= 2 ** 3 + 1 for l in layers)
    assert len(np.unique(model.classifier.weight.detach().numpy())) <= 4
    blob = encode(model, layers)
    tensors = decode(blob)
    for name, tensor in model.state_dict().items():
        if tensor.dtype.is_floating_point:
            assert np.array_equal(tensors[name], tensor.numpy()), name
    dense_bytes = sum(t.numel() * 4 for t in model.state_dict().values() if t.dtype.is_floating_point)
    assert len(blob) < dense_bytes
    assert model(x).shape == (2, 10)
