"""argparse value types of the ``syncammaster`` commands: the checks of :mod:`syncammaster.inputs`, whose one-line
messages (with the fix) become argparse's usage error instead of its generic "invalid value"."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import TypeVar

from .. import inputs

T = TypeVar("T")


def argument_type(check: Callable[[str], T]) -> Callable[[str], T]:
    """``check`` as an argparse ``type``: its ``InputError`` becomes an ``ArgumentTypeError`` with the same message."""

    @functools.wraps(check)
    def parse(text: str) -> T:
        try:
            return check(text)
        except inputs.InputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum``."""
    return argument_type(inputs.int_at_least(minimum))


positive_int = argument_type(inputs.positive_int)
non_negative_int = argument_type(inputs.non_negative_int)
positive_float = argument_type(inputs.positive_float)
non_negative_float = argument_type(inputs.non_negative_float)
positive_degrees = argument_type(inputs.positive_degrees)
size = argument_type(inputs.size)
frame_count = argument_type(inputs.frame_count)
lora_file_and_scale = argument_type(inputs.lora_file_and_scale)
