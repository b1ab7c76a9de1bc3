"""The one exception type for mistakes a user can fix (bad config, bad arch string, missing data).

The CLI turns it into a one-line message and exit code 2; anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import re


class UserError(ValueError):
    """Bad input from the user: the message names the bad value and what is allowed."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` on one line without terminal escapes (torch's unpickling errors carry bold codes).

    >>> plain("\\x1b[1mWeights only load failed\\x1b[0m.\\nmore")
    'Weights only load failed. more'
    """
    return " ".join(_ANSI.sub("", text).split())
