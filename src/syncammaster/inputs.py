"""Values a user types, read from text and checked: the flags of ``syncammaster`` and the fields of the web app take
them through the same functions, so both say the same. A bad value raises ``InputError`` with a one-line message
that says the fix (the command line turns it into its usage error, the web app into the field's message)."""

from __future__ import annotations

import math
import os


class InputError(ValueError):
    """A typed value that cannot be used; the message names the fix."""


def int_at_least(minimum: int):
    """A whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise InputError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise InputError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def number_at_least(minimum: float, inclusive: bool):
    """A finite number >= ``minimum`` (``inclusive``) or > ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise InputError(f"must be {'>=' if inclusive else '>'} {minimum:g}, got {text}")
        return value

    return parse


positive_float = number_at_least(0.0, inclusive=False)
non_negative_float = number_at_least(0.0, inclusive=True)


def positive_degrees(text: str) -> float:
    """A finite angle > 0, in degrees."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"expected a number of degrees, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"must be a positive number of degrees, got {text}")
    return value


def size(text: str) -> int:
    """Pixels, a positive multiple of 16 (Wan's 8x VAE and 2x patch)."""
    value = positive_int(text)
    if value % 16:
        lower = max(16, value // 16 * 16)
        raise InputError(f"{value} is not a multiple of 16; try {lower} or {lower + 16}")
    return value


def frame_count(text: str) -> int:
    """A video frame count of the form 4k+1 (Wan's 4x temporal VAE)."""
    value = positive_int(text)
    if (value - 1) % 4:
        lower = (value - 1) // 4 * 4 + 1
        raise InputError(f"{value} is not of the form 4k+1; try {lower} or {lower + 4}")
    return value


def lora_file_and_scale(text: str) -> tuple[str, float]:
    """``FILE[:SCALE]``: an existing LoRA file and the scale it is applied at (default 1)."""
    path, scale = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            path, scale = head, float(tail)
        except ValueError:
            pass  # a colon that is part of the file name
    if not os.path.isfile(path):
        raise InputError(f"LoRA file not found: {path} (give FILE or FILE:SCALE)")
    if not math.isfinite(scale):
        raise InputError(f"LoRA scale must be a finite number, got {text!r}")
    return path, scale
