"""Model compression for hwnas (pruning, quantization, distillation, low-rank).

Nothing is implemented here yet: it arrives with the compression issue. Searches today export
fp32 models only, and say so in every ONNX file's ``hwnas.precision``.
"""
