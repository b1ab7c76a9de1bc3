"""The one exception type for mistakes a user can fix (bad config, bad arch string, missing data).

The CLI turns it into a one-line message and exit code 2; anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: the message names the bad value and what is allowed."""
