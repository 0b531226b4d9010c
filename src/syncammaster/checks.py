"""Checks of plain values that several modules make the same way."""

from __future__ import annotations

import numbers


def is_int(value: object) -> bool:
    """Whether ``value`` is a whole number (Python's or numpy's integers), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
