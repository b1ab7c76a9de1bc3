"""hwnas: hardware-aware neural architecture search.

Public surface: the grammar (:func:`parse`, :class:`ArchSpec`), the builder (:func:`build`),
cost accounting (:func:`count_costs`), configs (:func:`load_search_config`), profiles
(:func:`load_profile`) and the search (:func:`run_search`).
"""
from __future__ import annotations

from nas.arch import ArchError, ArchSpec, StageSpec, parse
from nas.builder import build
from nas.config import SearchConfig, load_search_config
from nas.costs import ModelCosts, count_costs
from nas.errors import UserError
from nas.profiles import HardwareProfile, load_profile
from nas.study import run_search

__all__ = ["ArchError", "ArchSpec", "HardwareProfile", "ModelCosts", "SearchConfig", "StageSpec", "UserError",
           "build", "count_costs", "load_profile", "load_search_config", "parse", "run_search"]
__version__ = "0.1.0"
