"""Weight sharing (Deep Compression, Han et al. 2016): per layer, k-means with 2^bits centroids
(linear initialisation) over the non-zero weights, zeros kept as their own symbol; the cluster
indices are Huffman-coded. :func:`encode` writes the result as a file (a JSON header, then canonical
Huffman bit streams, code lengths, codebooks, and the other tensors in fp32) so the reported size is that of a
real file, and :func:`decode` reads it back bit-exactly.

Weights are shared on the deployed (BatchNorm-folded) network, since folding rescales every output
channel. onnxruntime has no shared-weight format: the ONNX export of a shared model still stores
fp32 weights (the values are the centroids); the gain is in storage and transfer, not latency.
"""
from __future__ import annotations

import heapq
import json
import struct
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.core.errors import UserError


def kmeans_1d(values: np.ndarray, k: int, *, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Centroids and labels of 1-D k-means with linear initialisation between min and max."""
    if values.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    k = max(1, min(k, np.unique(values).size))
    centroids = np.linspace(values.min(), values.max(), k)
    for _ in range(iterations):
        edges = (centroids[1:] + centroids[:-1]) / 2
        labels = np.searchsorted(edges, values)
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids):
            break
        centroids = np.sort(updated)
    labels = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)
    return centroids.astype(np.float32), labels


def huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length per symbol (0 for unused symbols); one used symbol gets length 1."""
    lengths = np.zeros(len(counts), np.int64)
    heap: list[tuple[int, int, tuple[int, ...]]] = [(int(c), i, (i,)) for i, c in enumerate(counts) if c > 0]
    if len(heap) == 1:
        lengths[heap[0][1]] = 1
        return lengths
    heapq.heapify(heap)
    tie = len(counts)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def canonical_codes(lengths: np.ndarray) -> dict[int, str]:
    """Canonical Huffman codes (bit strings) from code lengths."""
    codes, code, prev = {}, 0, 0
    for length, symbol in sorted((int(l), s) for s, l in enumerate(lengths) if l > 0):
        code <<= length - prev
        codes[symbol] = format(code, f"0{length}b")
        code += 1
        prev = length
    return codes


@dataclass(frozen=True)
class SharedLayer:
    name: str
    shape: tuple[int, ...]
    codebook: np.ndarray  # float32 centroids; symbol len(codebook) is an exact zero
    symbols: np.ndarray  # per weight


def share_weights(model: nn.Module, bits: int = 4, layer_bits: dict[str, int] | None = None) -> list[SharedLayer]:
    """Replace each conv/linear weight by its cluster centroid (2^bits per layer; ``layer_bits``
    overrides by module name), in place; returns the codes."""
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        b = (layer_bits or {}).get(name, bits)
        if not 1 <= b <= 8:
            raise UserError(f"weight-sharing bits {b} for {name} not allowed; allowed: 1 to 8")
        w = module.weight.detach().cpu().numpy().astype(np.float32)
        flat = w.flatten()
        nonzero = flat != 0
        centroids, labels = kmeans_1d(flat[nonzero].astype(np.float64), 2 ** b)
        symbols = np.full(flat.size, len(centroids), np.int64)
        symbols[nonzero] = labels
        shared = np.append(centroids, np.float32(0.0))[symbols].reshape(w.shape)
        module.weight.data.copy_(torch.from_numpy(shared))
        layers.append(SharedLayer(f"{name}.weight", tuple(w.shape), centroids, symbols))
    return layers


def encode(model: nn.Module, layers: list[SharedLayer]) -> bytes:
    """One file: a 4-byte header length, a JSON header (per tensor: kind, shape, byte offsets,
    bit count), then the raw bytes: for each shared layer its packed canonical-Huffman bit stream,
    code lengths (uint8 per symbol) and fp32 codebook; every other floating tensor of the state
    dict in fp32."""

    header: dict[str, dict[str, object]] = {}
    chunks: list[bytes] = []
    offset = 0

    def put(data: bytes) -> list[int]:
        nonlocal offset
        chunks.append(data)
        offset += len(data)
        return [offset - len(data), len(data)]

    shared = {layer.name for layer in layers}
    for layer in layers:
        lengths = huffman_lengths(np.bincount(layer.symbols, minlength=len(layer.codebook) + 1))
        codes = canonical_codes(lengths)
        bitstring = "".join(codes[int(s)] for s in layer.symbols)
        bits = np.frombuffer(bitstring.encode(), np.uint8) - ord("0")
        header[layer.name] = {"kind": "shared", "shape": list(layer.shape), "nbits": len(bits),
                              "bits": put(np.packbits(bits).tobytes()),
                              "lengths": put(lengths.astype(np.uint8).tobytes()),
                              "codebook": put(layer.codebook.astype(np.float32).tobytes())}
    for name, tensor in model.state_dict().items():
        if name not in shared and tensor.dtype.is_floating_point:
            array = tensor.detach().cpu().numpy().astype(np.float32)
            header[name] = {"kind": "fp32", "shape": list(array.shape), "data": put(array.tobytes())}
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + b"".join(chunks)


def decode(blob: bytes) -> dict[str, np.ndarray]:
    """The tensors of an :func:`encode` file (shared weights rebuilt from their codes)."""

    (size,) = struct.unpack("<I", blob[:4])
    header = json.loads(blob[4:4 + size])
    body = blob[4 + size:]

    def get(span: list[int], dtype: type) -> np.ndarray:
        return np.frombuffer(body[span[0]:span[0] + span[1]], dtype)

    out: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        shape = tuple(entry["shape"])
        if entry["kind"] == "fp32":
            out[name] = get(entry["data"], np.float32).reshape(shape)
            continue
        codes = canonical_codes(get(entry["lengths"], np.uint8).astype(np.int64))
        lookup = {code: symbol for symbol, code in codes.items()}
        bits = np.unpackbits(get(entry["bits"], np.uint8))[:entry["nbits"]]
        symbols, current = [], ""
        for bit in "".join(map(str, bits)):
            current += bit
            if current in lookup:
                symbols.append(lookup[current])
                current = ""
        codebook = np.append(get(entry["codebook"], np.float32), np.float32(0.0))
        out[name] = codebook[np.array(symbols, np.int64)].reshape(shape)
    return out
