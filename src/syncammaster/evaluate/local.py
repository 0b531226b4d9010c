"""Loading an optional transformers model (CLIP, a keypoint matcher) from a local folder, with one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REQUIRED_FILES = ("config.json", "preprocessor_config.json")
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"
)

Loaded = TypeVar("Loaded")


def load_local(
    folder: str | Path, load: Callable[[Path], Loaded], error: type[Exception], what: str, fix: str
) -> Loaded:
    """``load(folder)`` once ``folder`` is known to hold a saved model: config, preprocessor config and weights.

    Args:
        folder: the local model folder (nothing is downloaded).
        load: reads the model (and its processors) from the folder.
        error: the exception raised, in one line, when the folder is missing, incomplete or unloadable.
        what: the model's name in messages ("CLIP", "matcher").
        fix: what the user should do, appended to every message.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise error(f"{what} folder {folder} does not exist; {fix}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append(WEIGHT_FILES[0])
    if missing:
        raise error(f"{what} folder {folder} lacks {', '.join(missing)}; {fix}")
    try:
        return load(folder)
    except (OSError, ValueError, KeyError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"cannot load {what} from {folder} ({first_line}); {fix}") from None
