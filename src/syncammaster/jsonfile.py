"""Reading JSON files: one function and one error, whose message is one line naming the file, the problem and the
fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# What a JSON document calls the values Python reads from it.
_JSON_KINDS = ((bool, "boolean"), (dict, "object"), (list, "array"), (str, "string"), ((int, float), "number"))


class JSONFileError(ValueError):
    """A JSON file that cannot be read, is not valid JSON or holds another kind of value than expected."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for types, name in _JSON_KINDS if isinstance(value, types)), type(value).__name__)


def read_json(path: str | Path, fix: str, what: str | None = None, expect: type | None = dict) -> Any:
    """The value held by the JSON file ``path``, an object (a dict) unless ``expect`` says otherwise (None: any).

    Raises ``JSONFileError`` with one line, ``"[what ]PATH <problem>; FIX"``, when the file cannot be read, is not
    UTF-8 JSON, or holds another kind of value.
    """
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise JSONFileError(f"cannot read {name} ({error.strerror or error}); {fix}") from None
    except UnicodeDecodeError as error:
        raise JSONFileError(f"{name} is not valid JSON (not UTF-8 text: {error.reason}); {fix}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise JSONFileError(f"{name} is not valid JSON ({error}); {fix}") from None
    if expect is not None and not isinstance(data, expect):
        expected = _kind(expect()) if expect in (dict, list, str) else expect.__name__
        article = "an" if expected[0] in "aeiou" else "a"
        raise JSONFileError(f"{name} holds a JSON {_kind(data)}, not {article} {expected}; {fix}") from None
    return data
