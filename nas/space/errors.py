"""The error of a malformed or impossible architecture (its own module: the grammar, the specs and
every block kind raise it, and none of them may import the others' tables to get it)."""
from __future__ import annotations

from nas.core.errors import UserError


class ArchError(UserError):
    """A malformed or impossible architecture string."""
