"""Model compression for hwnas: structured pruning (:mod:`compress.prune`), distillation
(:mod:`compress.distill`), onnxruntime quantization (:mod:`compress.quantize`), recipes
(:mod:`compress.recipe`) and applying them with before/after measurements (:mod:`compress.pipeline`).
"""
