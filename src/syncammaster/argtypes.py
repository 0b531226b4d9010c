"""argparse value types shared by the ``syncammaster`` subcommands: one-line messages that say the fix."""

from __future__ import annotations

import argparse


def int_at_least(minimum: int):
    """A whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def size(text: str) -> int:
    """Pixels, a positive multiple of 16 (Wan's 8x VAE and 2x patch)."""
    value = positive_int(text)
    if value % 16:
        lower = max(16, value // 16 * 16)
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of 16; try {lower} or {lower + 16}")
    return value


def frame_count(text: str) -> int:
    """A video frame count of the form 4k+1 (Wan's 4x temporal VAE)."""
    value = positive_int(text)
    if (value - 1) % 4:
        lower = (value - 1) // 4 * 4 + 1
        raise argparse.ArgumentTypeError(f"{value} is not of the form 4k+1; try {lower} or {lower + 4}")
    return value
