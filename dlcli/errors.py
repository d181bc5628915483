"""The one error type for user mistakes.

Anything the user can fix (a bad recipe key, a missing file, a NaN in the
data) raises :class:`DlcliError`. The CLI prints its message as one
paragraph and exits with code 2; every other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DlcliError(Exception):
    """A mistake the user can fix. Its message says what, where and how."""

    exit_code = 2


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A ` Did you mean 'x'?` suffix, or an empty string when nothing is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    return ", ".join(sorted(str(c) for c in choices))
