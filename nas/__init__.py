"""hwnas: hardware-aware neural architecture search.

Public surface: the grammar (:func:`parse`, :class:`ArchSpec`), the builder (:func:`build`),
cost accounting (:func:`count_costs`), configs (:func:`load_search_config`), profiles
(:func:`load_profile`) and the search (:func:`run_search`).
"""
from __future__ import annotations

from nas.space.arch import ArchError, ArchSpec, StageSpec, parse
from nas.space.builder import build
from nas.core.config import SearchConfig, load_search_config
from nas.cost.costs import ModelCosts, count_costs
from nas.core.errors import UserError
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.search.study import run_search

__all__ = ["ArchError", "ArchSpec", "HardwareProfile", "ModelCosts", "SearchConfig", "StageSpec", "UserError",
           "build", "count_costs", "load_profile", "load_search_config", "parse", "run_search"]
__version__ = "0.1.0"
