"""hwnas: hardware-aware neural architecture search.

Public surface: the grammar (:func:`parse`, :class:`ArchSpec`), the builder (:func:`build`),
cost accounting (:func:`count_costs`), configs (:func:`load_search_config`), profiles
(:func:`load_profile`), pricing (:func:`price`), one candidate's evaluation (:func:`evaluate`,
:class:`CandidateResult`) and the search (:func:`run_search`); for a user's own model, loading
(:func:`load_own_model`), pricing (:func:`price_own`), compression (:func:`compress_model`) and the
compression search (:func:`search_recipes`). Everything else lives in the layer
packages (``nas.core``, ``nas.space``, ``nas.data``, ``nas.cost``, ``nas.deploy``, ``nas.train``,
``nas.hardware``, ``nas.search``, ``nas.cli``; README, "Code layout").

Names load on first use, so ``import nas.core.vocab`` does not import torch or Optuna, and the
package itself imports no layer (a layer imports only those below it).

>>> import nas
>>> nas.parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2").resolution
8
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.core.config import SearchConfig, load_search_config
    from nas.core.errors import UserError
    from nas.cost.costs import ModelCosts, count_costs
    from nas.hardware.pricing import price
    from nas.hardware.profiles import HardwareProfile, load_profile
    from nas.deploy.own_model import load_own_model
    from nas.hardware.own_pricing import price_own
    from nas.search.evaluate import EvalContext, evaluate
    from nas.search.own_compress import compress_model
    from nas.search.own_search import search_recipes
    from nas.search.record import CandidateResult
    from nas.search.study import run_search
    from nas.space.arch import ArchError, ArchSpec, StageSpec, parse
    from nas.space.builder import build

_EXPORTS = {
    "ArchError": "nas.space.arch", "ArchSpec": "nas.space.arch", "StageSpec": "nas.space.arch",
    "parse": "nas.space.arch", "build": "nas.space.builder", "SearchConfig": "nas.core.config",
    "load_search_config": "nas.core.config", "UserError": "nas.core.errors", "ModelCosts": "nas.cost.costs",
    "count_costs": "nas.cost.costs", "HardwareProfile": "nas.hardware.profiles",
    "load_profile": "nas.hardware.profiles", "price": "nas.hardware.pricing", "EvalContext": "nas.search.evaluate",
    "evaluate": "nas.search.evaluate", "CandidateResult": "nas.search.record", "run_search": "nas.search.study",
    "load_own_model": "nas.deploy.own_model", "price_own": "nas.hardware.own_pricing",
    "compress_model": "nas.search.own_compress", "search_recipes": "nas.search.own_search",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
