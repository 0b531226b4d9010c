"""Writing a whole folder all-or-nothing: build it next to its target, then move it into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def save_atomically(save, target: Path) -> Path:
    """Calls ``save(folder)`` on a temporary folder next to ``target`` and moves it into place when complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        save(staging)
        if target.exists():
            old = staging.with_name(staging.name + "-old")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
